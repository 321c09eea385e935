"""
``sb3-reinforce-compare --ray-address``: the runs of a comparison as tasks of a real Ray cluster on loopback (a head
and one worker node, one CPU each, ``ray.cluster_utils.Cluster``), with the worker node killed in the middle of a run.

Needs Ray (``pip install -e ".[ray]"``): skipped without it, except in CI (``CI`` set), where that is a failure.
The test without Ray (the one-line error) always runs.
"""

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time

import pytest

from sb3_reinforce.compare import main, read_curve
from sb3_reinforce.compare.ray_backend import INSTALL_HINT
from sb3_reinforce.hyperparams import default_hyperparams_path

# A comparison small enough for 2 cores: REINFORCE (zoo entry), 2 seeds, a few thousand steps
ARGS = ["--env", "CartPole-v1", "--algos", "reinforce", "--seeds", "2", "--timesteps", "3000", "--eval-freq", "1500"]
ARGS += ["--eval-episodes", "2", "--no-progress"]
RUNS = ("reinforce__seed0", "reinforce__seed1")


def _ray_or_skip():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"CI: Ray is not installed ({INSTALL_HINT}; scripts/setup_env.sh installs it)")
        pytest.skip(f"Ray is not installed ({INSTALL_HINT})")
    return ray


def test_without_ray_one_line_and_local_runs_unchanged(tmp_path, monkeypatch, capsys):
    """With Ray not importable, --ray-address is one error line (status 2) naming the extra, and nothing runs."""
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError, as when it is not installed
    out = tmp_path / "ray"
    assert main([*ARGS, "--timesteps", "300", "--out", str(out), "--ray-address", "127.0.0.1:6379"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: --ray-address needs Ray, which is not installed: {INSTALL_HINT}"]
    assert not out.exists()
    assert main([*ARGS, "--out", str(out), "--ray-cpus-per-task", "2"]) == 2
    assert "--ray-cpus-per-task is for runs on a Ray cluster: give --ray-address too" in capsys.readouterr().err
    # The local path does not need Ray
    assert main([*ARGS, "--seeds", "1", "--timesteps", "300", "--out", str(tmp_path / "local")]) == 0
    assert (tmp_path / "local" / "summary.md").exists()


def test_bad_ray_arguments_are_one_line(tmp_path, capsys):
    """A bad CPU count, a malformed address or one where nothing listens: one line, status 2, nothing runs."""
    _ray_or_skip()
    with socket.socket() as sock:  # a loopback port where nothing listens (bound, then freed)
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    out = tmp_path / "out"
    address = "127.0.0.1:6379"
    for extra, message in (
        (["--ray-address", address, "--ray-cpus-per-task", "0"], "--ray-cpus-per-task 0: expected a number in (0, inf) (CPUs"),
        (["--ray-address", address, "--ray-cpus-per-task", "nan"], "--ray-cpus-per-task nan: expected a number in (0, inf)"),
        (["--ray-address", "127.0.0.1"], "--ray-address '127.0.0.1':"),
        (["--ray-address", f"127.0.0.1:{free_port}"], f"--ray-address '127.0.0.1:{free_port}': no Ray cluster answers"),
    ):
        assert main([*ARGS, "--out", str(out), *extra]) == 2, extra
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), (extra, lines)
        assert not out.exists()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """
    A head and one worker node on loopback, one CPU each; Ray's usage statistics off. The worker node's processes
    have their own temporary folder (``TMPDIR``), where its runs train: the test sees when one is under way.
    """
    worker_tmp = tmp_path_factory.mktemp("worker_node_tmp")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (
            ("RAY_USAGE_STATS_ENABLED", "0"),
            ("RAY_AUTH_MODE", "disabled"),
            # Ray replaces 127.0.0.1 by the machine's network address unless told it is a one-machine cluster
            ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"),
        ):
            patch.setenv(name, value)
        ray = _ray_or_skip()
        from ray._private import ray_constants
        from ray.cluster_utils import Cluster

        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        # Node death is noticed after 3 missed health checks of 0.5 s (Ray's defaults take about 15 s)
        system_config = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
        head = dict(num_cpus=1, node_ip_address="127.0.0.1", include_dashboard=False, _system_config=system_config)
        nodes = Cluster(initialize_head=True, head_node_args=head)
        try:
            with pytest.MonkeyPatch.context() as worker_env:
                worker_env.setenv("TMPDIR", str(worker_tmp))  # inherited by the worker node's raylet and workers
                worker = nodes.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            nodes.wait_for_nodes()
            patch.setenv("RAY_ADDRESS", nodes.address)  # what --ray-address auto finds
            yield nodes, worker, worker_tmp
        finally:
            if ray.is_initialized():
                ray.shutdown()
            nodes.shutdown()


def _run_training_in(folder) -> tuple[str, int] | None:
    """The run (``label__seed<k>``) training in ``folder`` and its process: its sidecar there says ``running``."""
    for sidecar in folder.glob("sb3-reinforce-ray-*/out/*.json"):
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue  # being written, or its folder being removed
        if record.get("status") == "running":
            return sidecar.stem, int(record["pid"])
    return None


def test_cluster_matches_local_and_survives_losing_a_node(cluster, tmp_path, capsys):
    """
    The comparison on the cluster gives the local returns (``--n-jobs 1``), seed for seed, and the same files. The
    worker node is killed while it trains a run: Ray redoes that run on the head, the run is written once, and
    ``summary.md`` says one run was retried.
    """
    nodes, worker, worker_tmp = cluster
    local, remote = tmp_path / "local", tmp_path / "ray"
    # --conf-file lives on this machine only: the tasks get its content, the sidecars name this path
    conf = tmp_path / "my_reinforce.yml"
    conf.write_bytes(default_hyperparams_path("reinforce").read_bytes())
    args = [*ARGS, "--conf-file", str(conf)]
    assert main([*args, "--out", str(local), "--n-jobs", "1"]) == 0
    capsys.readouterr()

    killed: list[str] = []

    def kill_worker_mid_run() -> None:
        while not done.is_set():
            found = _run_training_in(worker_tmp)
            if found is not None:
                run, pid = found
                nodes.remove_node(worker, allow_graceful=False)
                # A lost node takes its processes with it. Without this, a worker process that outlives its raylet
                # for a moment can finish a short run and hand back its result (no retry).
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.append(run)
                return
            time.sleep(0.05)

    done = threading.Event()
    killer = threading.Thread(target=kill_worker_mid_run, daemon=True)
    killer.start()
    try:
        assert main([*args, "--out", str(remote), "--ray-address", nodes.address]) == 0
    finally:
        done.set()
        killer.join()
    summary = capsys.readouterr().out
    assert len(killed) == 1, "no run was seen training on the worker node"
    assert killed[0] in RUNS
    killed_run = killed[0].replace("__seed", " seed ")

    # Nothing lost, nothing twice: the same files as the local comparison, one curve per run, same returns
    assert sorted(path.name for path in remote.iterdir()) == sorted(path.name for path in local.iterdir())
    for run in RUNS:
        ours, theirs = read_curve(remote / f"{run}.csv"), read_curve(local / f"{run}.csv")
        for column in ("timesteps", "mean_return", "std_return"):
            assert ours[column].tolist() == theirs[column].tolist(), (run, column)
        record, local_record = (json.loads((folder / f"{run}.json").read_text()) for folder in (remote, local))
        assert record["status"] == "complete"
        assert record["protocol"] == local_record["protocol"]
        assert record["hyperparams_path"] == local_record["hyperparams_path"] == str(conf.resolve())
    # The report counts 2 seeds (not 3) and says which run Ray retried
    text = (remote / "summary.md").read_text()
    assert text.strip() in summary  # what the command printed
    assert "| reinforce | 2 |" in text
    assert "- runs trained on the cluster by this command: 2, on 2 node(s)" in text
    assert "- runs retried (worker or node lost, run redone from its start): 1" in text
    assert f"  - {killed_run}: 2 attempts; started on " in text

    # Started again with --ray-address auto (RAY_ADDRESS): every run is done, none is trained again
    before = {path.name: path.read_bytes() for path in remote.glob("*.csv")}
    assert main([*args, "--out", str(remote), "--ray-address", "auto"]) == 0
    assert {path.name: path.read_bytes() for path in remote.glob("*.csv")} == before
    assert "- runs trained on the cluster by this command: 0, on 0 node(s)" in (remote / "summary.md").read_text()
