"""
The comparison tool publishes only what it ran: every run records its protocol, a run made with another protocol
is never reused silently, a damaged or unfinished run is redone (and never reported), and the workers die with
the command.
"""

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from sb3_reinforce.compare import (
    VERSION_PACKAGES,
    load_run,
    main,
    parse_algo_spec,
    run_comparison,
    run_csv_path,
    run_record_path,
    write_report,
)
from sb3_reinforce.compare.checkpoints import RunProgress, checkpoint_dir, save_checkpoint
from sb3_reinforce.compare.records import check_run, run_protocol
from sb3_reinforce.compare.training import _make_model
from sb3_reinforce.hyperparams import default_hyperparams_path, load_hyperparams

ALGOS = ["reinforce:total+mean", "a2c"]
TINY = dict(timesteps=1000, eval_freq=500, eval_episodes=1)
SPECS = [parse_algo_spec(token) for token in ALGOS]


def cli(out: Path, *extra: str, algos: list[str] = ALGOS, timesteps: int = 1000, eval_episodes: int = 1) -> list[str]:
    args = ["--env", "CartPole-v1", "--algos", *algos, "--seeds", "1", "--timesteps", str(timesteps)]
    args += ["--eval-freq", "500", "--eval-episodes", str(eval_episodes), "--out", str(out), "--no-progress", *extra]
    return args


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.suffix in (".csv", ".json")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A folder with two finished runs (reinforce:total+mean and a2c, seed 0), made once for the module."""
    out = tmp_path_factory.mktemp("finished")
    run_comparison("CartPole-v1", SPECS, [0], out=out, progress=False, **TINY)
    return out


@pytest.fixture
def runs(finished, tmp_path) -> Path:
    """A private copy of the finished runs, to damage or rerun."""
    out = tmp_path / "runs"
    shutil.copytree(finished, out)
    return out


def test_every_run_records_the_protocol_it_was_made_with(finished):
    expected_versions = {name: version(name) for name in VERSION_PACKAGES}
    for spec in SPECS:
        csv_path = run_csv_path(finished, spec, 0)
        record = json.loads(run_record_path(csv_path).read_text())
        # The hash of the entry actually used, computed here independently: zoo entry + the variant's overrides
        entry = load_hyperparams(spec.algo, "CartPole-v1")
        entry.update(spec.overrides)
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        assert record["protocol"] == {
            "env_id": "CartPole-v1",
            "algo": {"label": spec.label, "algo": spec.algo, "overrides": spec.overrides},
            "seed": 0,
            "timesteps": 1000,
            "eval_freq": 500,
            "eval_episodes": 1,
            "hyperparams_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
        }
        assert record["hyperparams"] == entry
        assert record["hyperparams_path"] == str(default_hyperparams_path(spec.algo).resolve())
        assert record["versions"] == expected_versions
        assert record["status"] == "complete"
        assert record["result"]["csv_sha256"] == hashlib.sha256(csv_path.read_bytes()).hexdigest()
        curve, _ = load_run(csv_path)
        assert record["result"]["final_step"] == curve["timesteps"][-1] >= 1000
    assert SPECS[0].overrides == {"return_mode": "total", "baseline": "mean"}


def test_summary_states_the_protocol(runs):
    markdown, _ = write_report("CartPole-v1", {spec.label: [run_csv_path(runs, spec, 0)] for spec in SPECS}, runs)
    assert (runs / "summary.md").read_text() == markdown
    protocol = markdown.split("## Protocol", 1)[1]
    assert "- env: CartPole-v1\n" in protocol
    assert "- env steps per run: 1,000\n" in protocol
    assert "every 500 env steps, 1 episode(s)" in protocol
    assert "- seeds: 0\n" in protocol
    for name in VERSION_PACKAGES:
        assert f"{name} {version(name)}" in protocol
    for spec in SPECS:
        record = json.loads(run_record_path(run_csv_path(runs, spec, 0)).read_text())
        line = f"| {spec.label} | 0 | {record['hyperparams_path']} | {record['protocol']['hyperparams_sha256']} |"
        assert line in protocol


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(timesteps=1500), "timesteps 1000 (done) != 1500 (asked)"),
        (dict(eval_episodes=2), "eval_episodes 1 (done) != 2 (asked)"),
    ],
)
def test_another_protocol_is_refused_naming_the_fields(runs, capsys, change, field):
    before = snapshot(runs)
    assert main(cli(runs, **change)) == 2
    err = capsys.readouterr().err
    for spec in SPECS:
        assert f"{run_csv_path(runs, spec, 0)}: {field}" in err
    assert "--rerun-changed" in err and "--out" in err
    assert snapshot(runs) == before, "a finished run was touched"


def test_another_hyperparameter_entry_is_refused(runs, tmp_path, capsys):
    content = (default_hyperparams_path("reinforce")).read_text()
    assert "learning_rate: lin_0.001" in content
    changed = tmp_path / "reinforce.yml"
    changed.write_text(content.replace("learning_rate: lin_0.001", "learning_rate: lin_0.002", 1))
    before = snapshot(runs)
    assert main(cli(runs, "--conf-file", str(changed))) == 2
    err = capsys.readouterr().err
    reinforce, a2c = (run_csv_path(runs, spec, 0) for spec in SPECS)
    assert f"{reinforce}: hyperparams_sha256 " in err
    assert str(a2c) not in err  # --conf-file is REINFORCE's: the a2c run did not change
    assert snapshot(runs) == before


def test_rerun_changed_redoes_the_changed_runs_only(runs, capsys):
    reinforce, a2c = (run_csv_path(runs, spec, 0) for spec in SPECS)
    a2c_before = a2c.read_bytes(), run_record_path(a2c).read_bytes()
    assert main(cli(runs, "--rerun-changed", algos=[ALGOS[0]], timesteps=1500)) == 0
    assert "redoing" in capsys.readouterr().err
    curve, record = load_run(reinforce)
    assert record["protocol"]["timesteps"] == 1500 and curve["timesteps"][-1] >= 1500
    assert (a2c.read_bytes(), run_record_path(a2c).read_bytes()) == a2c_before


def test_other_package_versions_are_reused_with_a_warning_and_reported(runs, capsys):
    reinforce = run_csv_path(runs, SPECS[0], 0)
    record = json.loads(run_record_path(reinforce).read_text())
    record["versions"]["torch"] = "0.0.1"
    run_record_path(reinforce).write_text(json.dumps(record))
    before = snapshot(runs)
    assert main(cli(runs)) == 0
    captured = capsys.readouterr()
    assert f"warning: {reinforce} reused" in captured.err and "torch '0.0.1' (run) != " in captured.err
    assert snapshot(runs) == before  # reused, not redone
    summary = (runs / "summary.md").read_text()
    assert "- versions: differs between runs: " in summary
    assert "torch 0.0.1 (reinforce:total+mean seed 0)" in summary
    assert f"torch {version('torch')} (a2c seed 0)" in summary


def test_a_run_from_another_machine_or_before_machines_were_recorded_is_reused_and_reported(runs, capsys):
    for spec, machine in ((SPECS[0], "Other CPU, 64 cores"), (SPECS[1], None)):
        path = run_record_path(run_csv_path(runs, spec, 0))
        record = json.loads(path.read_text())
        if machine is None:
            del record["machine"]  # a record written before machines were recorded
        else:
            record["machine"] = machine
        path.write_text(json.dumps(record))
    before = snapshot(runs)
    assert main(cli(runs)) == 0
    assert snapshot(runs) == before  # the machine is reported, never compared: both reused, not redone
    summary = (runs / "summary.md").read_text()
    assert "- machine: differs between runs: Other CPU, 64 cores (reinforce:total+mean seed 0)" in summary
    assert "not recorded (a2c seed 0)" in summary
    capsys.readouterr()


def _truncate(path: Path) -> None:
    data = run_csv_path(path, SPECS[0], 0).read_bytes()
    run_csv_path(path, SPECS[0], 0).write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    run_csv_path(path, SPECS[0], 0).write_bytes(os.urandom(200))


def _inflated(path: Path) -> None:
    # Parses fine, but is not what the run wrote: a better final score typed in
    csv_path = run_csv_path(path, SPECS[0], 0)
    lines = csv_path.read_text().splitlines()
    steps, wall, _, std = lines[-1].split(",")
    csv_path.write_text("\n".join([*lines[:-1], f"{steps},{wall},500.0,{std}"]) + "\n")


def _no_sidecar(path: Path) -> None:
    run_record_path(run_csv_path(path, SPECS[0], 0)).unlink()


def _sidecar_garbage(path: Path) -> None:
    run_record_path(run_csv_path(path, SPECS[0], 0)).write_bytes(b"\x00\xff{not json")


def _files_of_another_run(path: Path) -> None:
    # The a2c run's CSV and sidecar (which match each other) under the REINFORCE run's names
    source, target = run_csv_path(path, SPECS[1], 0), run_csv_path(path, SPECS[0], 0)
    shutil.copy(source, target)
    shutil.copy(run_record_path(source), run_record_path(target))


def _still_running(path: Path) -> None:
    # What a run killed in the middle leaves: a 'running' sidecar, no CSV (or an old one)
    sidecar = run_record_path(run_csv_path(path, SPECS[0], 0))
    record = json.loads(sidecar.read_text())
    record["status"] = "running"
    del record["result"]
    sidecar.write_text(json.dumps(record))


def _no_csv(path: Path) -> None:
    run_csv_path(path, SPECS[0], 0).unlink()


DAMAGES = {
    "truncated csv": (_truncate, "(truncated?)"),
    "garbage csv": (_garbage, ""),
    "edited csv": (_inflated, "sha256 differs"),
    "missing sidecar": (_no_sidecar, "is missing"),
    "garbage sidecar": (_sidecar_garbage, "not a readable run record"),
    "files of another run": (_files_of_another_run, "is the record of another run (algo 'a2c', seed 0)"),
    "unfinished run": (_still_running, "status 'running'"),
    "missing csv": (_no_csv, "cannot be read"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_run_is_named_and_redone(runs, capsys, damage):
    damage_files, reason = DAMAGES[damage]
    damage_files(runs)
    reinforce, a2c = (run_csv_path(runs, spec, 0) for spec in SPECS)
    a2c_before = a2c.read_bytes(), run_record_path(a2c).read_bytes()
    # A temporary file of a killed write (atomic_write's hidden name) is removed when the run is redone
    (runs / f".{reinforce.name}.x1y2.tmp").write_bytes(b"timesteps,wall")
    run_comparison("CartPole-v1", SPECS, [0], out=runs, progress=False, **TINY)
    err = capsys.readouterr().err
    assert f"redoing {reinforce}: " in err and reason in err
    curve, record = load_run(reinforce)  # redone: complete, and the CSV matches its sidecar again
    assert record["protocol"]["algo"]["label"] == SPECS[0].label and curve["timesteps"][-1] >= 1000
    assert (a2c.read_bytes(), run_record_path(a2c).read_bytes()) == a2c_before, "the intact run was redone"
    assert not list(runs.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["truncated csv", "garbage csv", "edited csv", "missing sidecar", "unfinished run"])
def test_the_report_leaves_a_damaged_run_out(runs, capsys, damage):
    DAMAGES[damage][0](runs)
    reinforce = run_csv_path(runs, SPECS[0], 0)
    markdown, _ = write_report("CartPole-v1", {spec.label: [run_csv_path(runs, spec, 0)] for spec in SPECS}, runs)
    err = capsys.readouterr().err
    assert "left out of the report: " in err and reinforce.stem in err
    table, protocol = markdown.split("## Protocol")
    assert "| reinforce:total+mean |" not in table and "| a2c | 1 |" in table
    assert "Runs left out (damaged or unfinished, not counted):" in protocol and reinforce.stem in protocol


# A checkpoint is read as untrusted input: it runs no code, and one that does not load is named and redone -------


def _asked(spec, hyperparams_path: Path | None = None, **kwargs) -> dict:
    """The protocol record of ``spec``'s seed-0 run with the TINY settings."""
    return run_protocol("CartPole-v1", spec, 0, **TINY, hyperparams_path=hyperparams_path, **kwargs)


def _killed_after_a_checkpoint(out: Path, spec, hyperparams_path: Path | None = None) -> tuple[Path, dict]:
    """What a run killed after its first checkpoint leaves: ``(its checkpoint folder, the folder's state)``."""
    model, env, _ = _make_model(spec, "CartPole-v1", 0, hyperparams_path, evaluation_env=False)
    model.learn(200)
    directory = checkpoint_dir(run_csv_path(out, spec, 0))
    # A return CartPole cannot give (it is >= 1): shows whether the checkpoint's rows were used
    progress = RunProgress(rows=[(0, 0.0, -1.0, 0.0)], next_eval=500)
    save_checkpoint(directory, _asked(spec, hyperparams_path)["protocol"], model, env, progress)
    env.close()
    return directory, json.loads((directory / "state.json").read_text())


def _redone_from_0(out: Path, spec, capsys, reason: str, hyperparams_path: Path | None = None) -> str:
    """Run the comparison again: the run is named, started from 0 and completed, its checkpoint removed."""
    run_comparison("CartPole-v1", [spec], [0], out=out, progress=False, hyperparams_path=hyperparams_path, **TINY)
    err = capsys.readouterr().err
    csv_path = run_csv_path(out, spec, 0)
    assert f"{csv_path}: checkpoint not used, the run starts from 0: {reason}" in err
    curve, record = load_run(csv_path)
    assert record["result"]["resumes"] == 0 and curve["mean_return"][0] >= 1.0 and curve["timesteps"][-1] >= 1000
    assert not checkpoint_dir(csv_path).exists()
    return err


def _crafted_model(path: Path, marker: Path) -> None:
    from tests.test_trust_checkpoints import _replace_entries, _RunsShell

    _replace_entries(path, path, {"lr_schedule": _RunsShell(f"touch {marker}")})


def _crafted_statistics(path: Path, marker: Path) -> None:
    from tests.test_trust_checkpoints import _RunsShell

    path.write_bytes(pickle.dumps(_RunsShell(f"touch {marker}")))


SYSTEM = f"{os.system.__module__}.system is not allowed"
CRAFTED_CHECKPOINTS = {
    # SB3's own A2C.load would unpickle the entry with cloudpickle: os.system would run
    "a2c model": ("a2c", "model", _crafted_model, f"entry 'lr_schedule': {SYSTEM}"),
    "reinforce model": ("reinforce", "model", _crafted_model, f"entry 'lr_schedule': {SYSTEM}"),
    "vecnormalize statistics": ("reinforce", "vecnormalize", _crafted_statistics, SYSTEM),
}


@pytest.mark.parametrize("case", list(CRAFTED_CHECKPOINTS))
def test_a_crafted_checkpoint_runs_no_code_and_its_run_is_redone(tmp_path, capsys, case):
    token, part, craft, reason = CRAFTED_CHECKPOINTS[case]
    spec, out, marker = parse_algo_spec(token), tmp_path / "runs", tmp_path / "pwned"
    conf = None
    if part == "vecnormalize":  # the CartPole entry with VecNormalize (observations and rewards)
        conf = tmp_path / "normalized.yml"
        conf.write_text(yaml.safe_dump({"CartPole-v1": {**load_hyperparams("reinforce", "CartPole-v1"), "normalize": True}}))
    directory, state = _killed_after_a_checkpoint(out, spec, conf)
    # The crafted file, and a state.json that vouches for it (whoever can write the one can write the other)
    target = directory / state["files"][part]["name"]
    craft(target, marker)
    state["files"][part]["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    (directory / "state.json").write_text(json.dumps(state))
    err = _redone_from_0(out, spec, capsys, f"{target}: cannot be loaded", conf)
    assert reason in err
    assert not marker.exists()


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("train_s", "x", "progress train_s='x' is not a finite number >= 0"),
        ("next_eval", None, "progress next_eval=None is not a finite int >= 0"),
        ("episodes", -5, "progress episodes=-5 is not a finite int >= 0"),  # would be added to the published count
        ("rows", [[0, 0.0, 1.0]], "progress rows must be [timesteps, wall_s, mean, std] rows"),
        ("rows", [[500, 0.0, 1.0, 0.0], [0, 1.0, 1.0, 0.0]], "progress rows do not start at 0 steps and increase"),
        ("resumes", True, "progress resumes=True is not a finite int >= 0"),
    ],
)
def test_an_edited_checkpoint_state_is_named_and_its_run_redone(tmp_path, capsys, field, value, reason):
    spec, out = SPECS[0], tmp_path / "runs"
    directory, state = _killed_after_a_checkpoint(out, spec)
    state["progress"][field] = value
    (directory / "state.json").write_text(json.dumps(state))
    _redone_from_0(out, spec, capsys, f"{directory / 'state.json'}: {reason}")


def test_minutes_and_the_training_env_are_part_of_the_protocol(runs):
    reinforce, a2c = (run_csv_path(runs, spec, 0) for spec in SPECS)
    # --minutes added to a comparison made without it: another protocol, never reused
    assert check_run(reinforce, _asked(SPECS[0], minutes=0.5)) == ("changed", ["minutes None (done) != 0.5 (asked)"])
    # a record saying the row trained on another env (<algo>@<env id>)
    record = json.loads(run_record_path(a2c).read_text())
    record["protocol"]["train_env_id"] = "CartPole-v0"
    run_record_path(a2c).write_text(json.dumps(record))
    assert check_run(a2c, _asked(SPECS[1])) == ("changed", ["train_env_id 'CartPole-v0' (done) != None (asked)"])


def test_checkpoint_minutes_change_when_checkpoints_are_taken_not_what_is_published(tmp_path, monkeypatch):
    # Not in the protocol (a run checkpointed every few steps is reused for one checkpointed every 5 minutes):
    # checkpoints pause the clock and draw no random numbers, so the curve of an uninterrupted run is the same
    import sb3_reinforce.compare.training as training

    written = []
    monkeypatch.setattr(training, "save_checkpoint", lambda *args: written.append(save_checkpoint(*args)))
    curves = []
    for minutes in (5.0, 1e-4):
        out = tmp_path / str(minutes)
        csv_path = training.train_and_evaluate("CartPole-v1", SPECS[0], 0, out=out, checkpoint_minutes=minutes, **TINY)
        curves.append(load_run(csv_path)[0]["mean_return"].tolist())
    assert len(written) > 0 and curves[0] == curves[1]


# The workers die with the command ---------------------------------------------------------------------------------

psutil = pytest.importorskip("psutil")


def _start_long_comparison(out: Path) -> tuple[subprocess.Popen, list]:
    """Start a 2-worker comparison too long to end by itself; return it and its descendants once they train."""
    command = [sys.executable, "-m", "sb3_reinforce.compare"]
    command += cli(out, "--n-jobs", "2", algos=["reinforce", "a2c"], timesteps=10_000_000)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, "the comparison ended before it could be killed"
        assert time.monotonic() < deadline, "the workers did not start"
        children = parent.children(recursive=True)
        try:
            # Two workers that have trained a little (spawned workers first import torch)
            training = [child for child in children if sum(child.cpu_times()[:2]) > 3.0]
        except psutil.NoSuchProcess:
            continue
        if len(training) >= 2:
            return process, children
        time.sleep(0.2)


def _wait_gone(children: list, timeout: float = 60.0) -> list:
    deadline = time.monotonic() + timeout
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [child for child in alive if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    for child in alive:  # do not leave them behind when the test fails
        child.kill()
    return alive


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_command_stops_its_workers(tmp_path, sig):
    process, children = _start_long_comparison(tmp_path / "runs")
    try:
        process.send_signal(sig)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    alive = _wait_gone(children)
    assert not alive, f"workers still running after the command got {sig.name}: {alive}"
    if sig == signal.SIGTERM:
        assert process.returncode in (143, -signal.SIGTERM)
