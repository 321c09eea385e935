"""
The runs of a comparison as Ray tasks (``sb3-reinforce-compare ... --ray-address ADDRESS``): one task per algorithm x
seed run, ``--ray-cpus-per-task`` CPUs each (default 1), on a Ray cluster started beforehand (``ray start``).

Each task trains in a temporary folder of the node it lands on, with copies of what ``--out`` already holds for its
run (a checkpoint to resume from), and sends the run's files back; this process writes them into ``--out`` as a
local run does (the CSV, then its sidecar saying ``complete``), so the summary and the plots are made from the same
files, and a run's returns do not depend on the node it ran on (one torch thread, same seeds).

Fault tolerance is Ray's: a task whose worker process or node dies is retried by Ray (``max_retries``) on another
node, from the start of its run. A lost attempt writes nothing into ``--out`` (only a finished task's result does,
once: Ray returns one result per task), so a run is never counted twice. Exceptions raised by the training itself
are not retried (``retry_exceptions=False``): they are raised here, as with local workers. Each attempt is recorded
(node, Ray's attempt number) by a small actor on this node; ``summary.md`` gets a "Ray cluster" section saying how
many runs were retried and where.

Ray is an optional dependency: ``pip install -e ".[ray]"``. Without it everything else works, and ``--ray-address``
is a one-line error (exit status 2) naming the extra.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sb3_reinforce.common.checks import number_problem
from sb3_reinforce.common.safety import UsageError, atomic_write
from sb3_reinforce.compare import pool
from sb3_reinforce.compare.records import PROTOCOL_FIELDS, run_csv_path, run_protocol, run_record_path

__all__ = ["INSTALL_HINT", "MAX_RETRIES", "TASK_NAME_PREFIX", "RayRunner", "add_arguments", "runner_from_args", "running"]

#: What to install for ``--ray-address``.
INSTALL_HINT = 'pip install -e ".[ray]"'
#: Ray retries of a task whose worker or node died (Ray's own default for tasks).
MAX_RETRIES = 3
#: Ray task names (and so the worker's process title, ``ray::<name>``) start with it.
TASK_NAME_PREFIX = "sb3-reinforce-compare"
# Each attempt trains in a temporary folder named after its process
_FOLDER_PREFIX = "sb3-reinforce-ray-"
# Seconds to wait for the cluster's address to accept a TCP connection: ray.init itself retries forever
_PROBE_TIMEOUT_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--ray-address`` and ``--ray-cpus-per-task`` to the comparison's parser."""
    parser.add_argument(
        "--ray-address",
        default=None,
        help="run every run as a task on the Ray cluster at this address (host:port of 'ray start --head', or auto: "
        f"the cluster this machine belongs to); --n-jobs is then unused. Needs: {INSTALL_HINT}",
    )
    parser.add_argument(
        "--ray-cpus-per-task",
        type=float,
        default=None,
        help="CPUs Ray reserves for each run (None: 1; training itself uses one torch thread, as locally)",
    )


def import_ray() -> Any:
    """
    Import Ray.

    :raises UsageError: Ray is not installed, naming the extra to install
    """
    try:
        import ray
    except ImportError:
        raise UsageError(f"--ray-address needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _check_address(address: str) -> None:
    """
    Refuse an address that is malformed or where nothing listens, before ``ray.init`` (which would retry forever).

    :raises UsageError: naming ``--ray-address``, the address and what to do
    """
    if address.startswith("ray://"):
        return  # Ray Client: ray.init reports itself, with a timeout
    from ray._private.services import canonicalize_bootstrap_address

    try:
        # Ray's own reading of the address: "auto" (RAY_ADDRESS or this machine's latest cluster), localhost resolved
        canonical = canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as error:
        raise UsageError(f"--ray-address {address!r}: {str(error).splitlines()[0]}") from None
    if canonical is None:
        raise UsageError(f"--ray-address {address!r}: not a cluster address; give host:port (of 'ray start --head') or auto")
    host, _, port = canonical.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--ray-address {address!r}: give host:port, port in 1..65535")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as error:
        raise UsageError(
            f"--ray-address {address!r}: no Ray cluster answers at {canonical} ({error.strerror or error}); start its head "
            "with 'ray start --head --port=6379', or check the address and the firewall"
        ) from None


def runner_from_args(args: argparse.Namespace) -> RayRunner | None:
    """
    The Ray runner the command line asks for, connected (None without ``--ray-address``).

    :raises UsageError: bad ``--ray-cpus-per-task``, Ray not installed, or no cluster at the address
    """
    cpus = args.ray_cpus_per_task
    problem = None if cpus is None else number_problem(cpus, 0, math.inf, low_open=True)
    if problem is not None:
        raise UsageError(f"--ray-cpus-per-task {cpus:g}: {problem} (CPUs; fractions allowed)")
    if args.ray_address is None:
        if cpus is not None:
            raise UsageError("--ray-cpus-per-task is for runs on a Ray cluster: give --ray-address too")
        return None
    runner = RayRunner(args.ray_address, 1.0 if cpus is None else cpus)
    runner.connect()
    return runner


@contextlib.contextmanager
def running(runner: RayRunner | None) -> Iterator[None]:
    """
    While active, :func:`sb3_reinforce.compare.pool.run_in_workers` sends its jobs to ``runner`` (nothing changes
    when it is None); the runner is closed at the end.
    """
    if runner is None:
        yield
        return
    token = pool.remote_runner.set(runner)
    try:
        yield
    finally:
        pool.remote_runner.reset(token)
        runner.close()


def _run_files(out: Path, stem: str) -> list[Path]:
    """A run's entries in ``out``: ``<stem>.csv``, ``<stem>.json`` and its checkpoint folder ``<stem>.ckpt``."""
    return sorted(path for path in out.iterdir() if path.name.startswith(f"{stem}.") and not path.name.endswith(".tmp"))


def _read_tree(root: Path, entries: Sequence[Path]) -> dict[str, bytes]:
    """``{path relative to root (posix): bytes}`` of the regular files in ``entries`` (folders: recursively)."""
    files = {}
    for entry in entries:
        for path in [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file()):
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            file.write(data)


class _AttemptLog:
    """The attempts of every run (a Ray actor on the driver's node): each attempt says where it started."""

    def __init__(self) -> None:
        self.attempts: dict[str, list[dict[str, Any]]] = {}

    def started(self, key: str, attempt: dict[str, Any]) -> None:
        self.attempts.setdefault(key, []).append(attempt)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return self.attempts


def _attempt_number(ray: Any) -> int | None:
    """Ray's number of the attempt of the running task (0: first), None where this Ray does not tell it."""
    core_worker = getattr(getattr(ray._private, "worker", None), "global_worker", None)
    getter = getattr(getattr(core_worker, "core_worker", None), "get_current_task_attempt_number", None)
    try:
        return None if getter is None else int(getter())
    except Exception:  # a private API: its absence only loses the number
        return None


def _run_attempt(
    function: Callable[..., Any],
    job: dict[str, Any],
    key: str,
    log: Any,
    expected: dict[str, Any],
    inputs: dict[str, bytes],
    conf: tuple[str, bytes] | None,
) -> dict[str, Any]:
    """
    One attempt of one run, in a Ray worker: train in a temporary folder holding ``inputs`` (what ``--out`` had for
    the run), then return the run's files (``{"files": {name: bytes}}``, names relative to the folder).

    :param expected: the run's protocol record as the driver computes it: a node whose packages or hyperparameter
        files give another protocol refuses to train (the runs of a comparison must share it)
    :param conf: ``(file name, bytes)`` of ``--conf-file`` (it lives on the driver's machine)
    """
    import ray

    context = ray.get_runtime_context()
    attempt = dict(
        node_id=context.get_node_id(),
        node_ip=ray.util.get_node_ip_address(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
        ray_attempt=_attempt_number(ray),
    )
    ray.get(log.started.remote(key, attempt))
    _remove_dead_attempts_folders()
    with tempfile.TemporaryDirectory(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-") as tmp:
        out = Path(tmp, "out")
        out.mkdir()
        _write_tree(out, inputs)
        local = dict(job, out=out)
        if conf is not None:
            Path(tmp, "conf").mkdir()
            local["hyperparams_path"] = str(Path(tmp, "conf", conf[0]))
            Path(local["hyperparams_path"]).write_bytes(conf[1])
        mine = _protocol_record(local)
        differences = [
            f"{name} {mine['protocol'].get(name)!r} (node) != {expected['protocol'].get(name)!r} (driver)"
            for name in PROTOCOL_FIELDS
            if mine["protocol"].get(name) != expected["protocol"].get(name)
        ]
        if differences:
            raise RuntimeError(
                f"node {attempt['hostname']} ({attempt['node_ip']}) would train {key} with another protocol than the "
                f"command's: {'; '.join(differences)}. Install the same sb3_reinforce, rl_zoo3 and hyperparameter "
                "files on every node."
            )
        function(**local)
        stem = run_csv_path(out, job["spec"], job["seed"]).stem
        return dict(files=_read_tree(out, _run_files(out, stem)), attempt=attempt)


def _remove_dead_attempts_folders() -> None:
    """Remove the temporary folders that attempts killed on this machine left (their process is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(_FOLDER_PREFIX).split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue  # alive (another user's: PermissionError)


def _protocol_record(job: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_protocol` of a job of :func:`train_and_evaluate` (the arguments they share, by name)."""
    names = inspect.signature(run_protocol).parameters
    return run_protocol(**{name: value for name, value in job.items() if name in names})


class RayRunner:
    """
    Runs the jobs of :func:`sb3_reinforce.compare.pool.run_in_workers` as Ray tasks (installed there by
    :func:`running`). Each job is a call of :func:`sb3_reinforce.compare.training.train_and_evaluate`.

    :param address: the cluster's address (``host:port``, ``auto`` or ``ray://...``), as ``ray.init`` takes it
    :param cpus_per_task: CPUs Ray reserves for each run
    :param max_retries: Ray's retries of a run whose worker or node died
    """

    def __init__(self, address: str, cpus_per_task: float = 1.0, max_retries: int = MAX_RETRIES) -> None:
        self.address = address
        self.cpus_per_task = cpus_per_task
        self.max_retries = max_retries
        #: ``{run label: [attempt]}`` of the runs trained by this runner (node, pid, Ray's attempt number)
        self.attempts: dict[str, list[dict[str, Any]]] = {}
        self._owns_connection = False
        self._ray: Any = None

    def connect(self) -> None:
        """
        Connect to the cluster (``ray.init``), unless this process already is.

        :raises UsageError: Ray is not installed, or no cluster answers at the address
        """
        ray = self._ray = import_ray()
        if ray.is_initialized():
            return
        _check_address(self.address)
        try:
            ray.init(address=self.address, logging_level="WARNING", configure_logging=True)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise UsageError(f"--ray-address {self.address!r}: {str(error).splitlines()[0]}") from None
        self._owns_connection = True

    def close(self) -> None:
        """Disconnect from the cluster if :meth:`connect` connected (the cluster goes on)."""
        if self._owns_connection and self._ray is not None:
            self._ray.shutdown()
            self._owns_connection = False

    def __call__(
        self,
        function: Callable[..., Any],
        jobs: Sequence[dict[str, Any]],
        on_start: Callable[[dict[str, Any]], None] | None = None,
        on_done: Callable[[dict[str, Any], Any], None] | None = None,
    ) -> None:
        """
        Run every job as a Ray task and write each finished run's files into its ``out``; a run's error is raised
        once every other run has ended (as :func:`~sb3_reinforce.compare.pool.run_in_workers` does).

        :param function: :func:`~sb3_reinforce.compare.training.train_and_evaluate`
        :param jobs: its keyword arguments, one dict per run
        :param on_start: called with a job when its first attempt starts
        :param on_done: called with a job and its CSV path once its files are in ``out``
        """
        if not jobs:
            return
        if self._ray is None:
            self.connect()
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # The record of attempts lives on this node (it needs no CPU): it is lost only with the command itself
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        log = ray.remote(num_cpus=0, max_restarts=0)(_AttemptLog).options(scheduling_strategy=here).remote()
        task = ray.remote(_run_attempt)
        refs: dict[Any, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        for job in jobs:
            key = f"{job['spec'].label} seed {job['seed']}"
            out = Path(job["out"])
            conf = None
            if job.get("hyperparams_path") is not None:
                conf = (Path(job["hyperparams_path"]).name, Path(job["hyperparams_path"]).read_bytes())
            inputs = _read_tree(out, _run_files(out, run_csv_path(out, job["spec"], job["seed"]).stem))
            remote_job = {name: value for name, value in job.items() if name != "out"}
            expected = _protocol_record(job)
            ref = task.options(
                name=f"{TASK_NAME_PREFIX} {key}",
                num_cpus=self.cpus_per_task,
                max_retries=self.max_retries,
                retry_exceptions=False,
            ).remote(function, remote_job, key, log, expected, inputs, conf)
            refs[ref] = (key, job, expected)
        errors: list[tuple[str, BaseException]] = []
        started: set[str] = set()
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                self.attempts = ray.get(log.snapshot.remote())
                for key, job, _ in refs.values():
                    if key in self.attempts and key not in started:
                        started.add(key)
                        if on_start is not None:
                            on_start(job)
                for ref in ready:
                    key, job, expected = refs[ref]
                    try:
                        payload = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        errors.append((key, error.as_instanceof_cause()))
                        continue
                    except ray.exceptions.RayError as error:
                        lost = RuntimeError(f"run {key} lost {self.max_retries + 1} times on the cluster: {error}")
                        errors.append((key, lost))
                        continue
                    csv_path = self._write_run(job, expected, payload["files"])
                    if on_done is not None:
                        on_done(job, csv_path)
            self.attempts = ray.get(log.snapshot.remote())
        finally:
            for ref in pending:  # interrupted (Ctrl-C): the cluster stops the runs nobody waits for
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            with contextlib.suppress(Exception):
                ray.kill(log)
        if errors:
            for key, error in errors[1:]:
                print(f"error: run {key}: {type(error).__name__}: {error}", file=sys.stderr)
            raise errors[0][1]

    @staticmethod
    def _write_run(job: dict[str, Any], expected: dict[str, Any], files: dict[str, bytes]) -> Path:
        """
        Put a finished run's files into ``out`` as a local run leaves them: every file but the sidecar, then the
        sidecar (saying ``complete``; with the driver's ``--conf-file`` path), then remove what the run no longer has
        (its checkpoint).
        """
        import json

        out = Path(job["out"])
        csv_path = run_csv_path(out, job["spec"], job["seed"])
        sidecar = run_record_path(csv_path).name
        record = json.loads(files[sidecar])
        # The node read the entry from its own copy (checked equal: same protocol); name the file the command read
        record["hyperparams_path"] = expected["hyperparams_path"]
        _write_tree(out, {name: data for name, data in files.items() if name != sidecar})
        _write_tree(out, {sidecar: (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()})
        for entry in _run_files(out, csv_path.stem):
            for path in [entry] if entry.is_file() else sorted(entry.rglob("*"), reverse=True):
                if path.is_file() and path.relative_to(out).as_posix() not in files:
                    path.unlink(missing_ok=True)
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
            if entry.is_dir() and not any(entry.iterdir()):
                entry.rmdir()
        return csv_path

    def summary_markdown(self) -> str:
        """The ``summary.md`` section of this runner's runs: where they ran, how many were retried."""
        ray_version = getattr(self._ray, "__version__", "?")
        lines = ["## Ray cluster", ""]
        nodes = {attempt["node_id"] for attempts in self.attempts.values() for attempt in attempts}
        retried = {key: attempts for key, attempts in self.attempts.items() if _retries(attempts) > 0}
        lines.append(
            f"- address: {self.address} (Ray {ray_version}); {self.cpus_per_task:g} CPU(s) per run, max_retries "
            f"{self.max_retries}"
        )
        lines.append(f"- runs trained on the cluster by this command: {len(self.attempts)}, on {len(nodes)} node(s)")
        lines.append(f"- runs retried (worker or node lost, run redone from its start): {len(retried)}")
        for key, attempts in sorted(retried.items()):
            where = ", ".join(f"{one['hostname']} ({one['node_ip']}, node {one['node_id'][:8]})" for one in attempts)
            lines.append(f"  - {key}: {_retries(attempts) + 1} attempts; started on {where}; its last attempt's files kept")
        return "\n".join(lines) + "\n"


def _retries(attempts: Sequence[dict[str, Any]]) -> int:
    """Retries of a run: Ray's number of its last attempt, or the attempts recorded less one (the larger)."""
    numbers = [attempt["ray_attempt"] for attempt in attempts if attempt.get("ray_attempt") is not None]
    return max([len(attempts) - 1, *numbers])
