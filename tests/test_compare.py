"""The comparison tool: end to end on a tiny budget, resume after a kill, and the --algos syntax."""

import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sb3_reinforce.common.estimators import BASELINES, RETURN_MODES
from sb3_reinforce.compare import (
    AlgoSpec,
    AlgoSpecError,
    load_run,
    machine_description,
    parse_algo_spec,
    run_comparison,
    run_csv_path,
    run_record_path,
    write_report,
)

TINY = dict(timesteps=2000, eval_freq=1000, eval_episodes=2)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_end_to_end(tmp_path):
    specs = [parse_algo_spec("reinforce:total+mean+norm"), parse_algo_spec("a2c")]
    results = run_comparison("CartPole-v1", specs, [0, 1], out=tmp_path, n_jobs=2, progress=False, **TINY)
    for paths in results.values():
        for path in paths:
            rows = read_rows(path)
            assert list(rows[0]) == ["timesteps", "wall_s", "mean_return", "std_return"]
            steps = [int(row["timesteps"]) for row in rows]
            assert steps[0] == 0 and steps[-1] >= 2000 and len(steps) >= 3
            assert float(rows[-1]["wall_s"]) > 0
            _, record = load_run(path)  # the sidecar says complete and matches the CSV
            assert record["protocol"]["timesteps"] == 2000 and run_record_path(path).is_file()
    markdown, plots = write_report("CartPole-v1", results, tmp_path)
    assert "reinforce:total+mean+norm" in markdown and "| a2c | 2 |" in markdown
    assert (tmp_path / "summary.md").read_text() == markdown
    assert all(plot.stat().st_size > 1000 for plot in plots)


def test_resume_after_kill(tmp_path):
    command = [sys.executable, "-m", "sb3_reinforce.compare", "--env", "CartPole-v1", "--algos", "reinforce"]
    command += ["--seeds", "2", "--timesteps", "3000", "--eval-freq", "1000", "--eval-episodes", "2"]
    command += ["--out", str(tmp_path), "--no-progress"]
    spec = AlgoSpec("reinforce", "reinforce")
    first, second = run_csv_path(tmp_path, spec, 0), run_csv_path(tmp_path, spec, 1)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        # Killed as soon as seed 1 says it is training (its 'running' sidecar, written before its first step): a
        # fixed wait after seed 0 let seed 1 finish first on a fast machine
        while not (run_record_path(second).exists() and '"running"' in run_record_path(second).read_text()):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert '"complete"' in run_record_path(first).read_text()
    finally:
        process.kill()
        process.wait()
    assert not second.exists(), "the second run finished before the kill"
    # simulate a crash mid-write: a partial temporary CSV is left behind
    (tmp_path / (second.name + ".tmp999")).write_text("timesteps,wall_s\n1000,")
    finished_mtime = first.stat().st_mtime_ns
    result = subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    assert first.stat().st_mtime_ns == finished_mtime, "a finished run was redone"
    # the killed run had written its 'running' sidecar: it is named and redone
    assert f"redoing {second}: " in result.stderr and "status 'running'" in result.stderr
    rows = read_rows(second)
    assert int(rows[0]["timesteps"]) == 0 and int(rows[-1]["timesteps"]) >= 3000
    assert not list(tmp_path.glob("*.tmp*"))
    assert (tmp_path / "summary.md").exists()


@pytest.mark.parametrize(
    "token, algo, overrides",
    [
        ("reinforce", "reinforce", {}),
        ("ppo", "ppo", {}),
        ("A2C", "a2c", {}),
        ("reinforce:total", "reinforce", {"return_mode": "total"}),
        ("reinforce:reward_to_go+value", "reinforce", {"return_mode": "reward_to_go", "baseline": "value"}),
        ("reinforce:total+mean+norm", "reinforce", {"return_mode": "total", "baseline": "mean", "normalize_advantage": True}),
        ("reinforce+none+nonorm", "reinforce", {"baseline": None, "normalize_advantage": False}),
        ("reinforce+optimal", "reinforce", {"baseline": "optimal"}),
        ("reinforce+time", "reinforce", {"baseline": "time"}),
    ],
)
def test_parse_algo_spec(token, algo, overrides):
    spec = parse_algo_spec(token)
    assert (spec.algo, spec.overrides) == (algo, overrides)


@pytest.mark.parametrize(
    "token, message",
    [
        ("reinforce:sum", "return mode 'sum'.*" + ", ".join(RETURN_MODES)),
        ("reinforce:total+avg", "option 'avg'.*" + ", ".join(BASELINES) + ".*norm / nonorm"),
        ("reinforce:+mean", "':' must be followed by a return mode"),
        ("reinforce+mean+value", "baseline is given twice"),
        ("ppo:total", "only reinforce takes"),
        ("dqnn", "unknown algorithm 'dqnn'"),
    ],
)
def test_parse_algo_spec_errors(token, message):
    with pytest.raises(AlgoSpecError, match=message):
        parse_algo_spec(token)


def test_cli_reports_bad_token(capsys):
    from sb3_reinforce.compare import main

    with pytest.raises(SystemExit):
        main(["--algos", "reinforce:sum", "--out", "unused"])
    assert "return mode 'sum'" in capsys.readouterr().err


def test_interval_estimates_use_rliable_and_are_reproducible():
    from rliable import library as rly  # must import: the CIs come from rliable

    from sb3_reinforce.compare import interval_estimates

    scores = np.array([120.0, 500.0, 480.0, 9.0, 500.0])
    first, again = interval_estimates(scores, seed=3), interval_estimates(scores, seed=3)
    assert first == again
    iqm, low, high = first["iqm"]
    # IQM of 5 scores: 25% trimmed on each side -> mean of the middle values (scipy's trim_mean)
    assert iqm == pytest.approx(np.mean([120.0, 480.0, 500.0]))
    assert scores.min() <= low <= iqm <= high <= scores.max() and low < high
    mean, low, high = first["mean"]
    assert mean == pytest.approx(scores.mean())
    # Same percentile bootstrap computed directly with rliable
    np.random.seed(3)
    _, cis = rly.get_interval_estimates({"x": scores[:, None]}, lambda x: np.array([np.mean(x)]), reps=2000)
    assert (low, high) == pytest.approx((cis["x"][0, 0], cis["x"][1, 0]))
    # A constant score has a zero-width interval
    assert interval_estimates(np.full(3, 500.0))["mean"] == (500.0, 500.0, 500.0)


def test_the_pong_comparison_counts_steps_to_a_score_of_zero():
    # KarpathyPong-v0 declares a reward_threshold (the compare tool's default), unlike ale-py's Pong ids
    import gymnasium as gym

    import sb3_reinforce  # noqa: F401  (registers KarpathyPong-v0)
    from sb3_reinforce.compare import default_threshold

    assert gym.spec("KarpathyPong-v0").reward_threshold == 0.0 == default_threshold("KarpathyPong-v0")
    assert default_threshold("CartPole-v1") == 475.0


def test_steps_to_threshold_ignores_the_untrained_policy():
    from sb3_reinforce.compare import steps_to_threshold

    curve = {"timesteps": np.array([0.0, 5000.0, 10000.0, 15000.0]), "mean_return": np.array([500.0, 80.0, 480.0, 500.0])}
    assert steps_to_threshold(curve, 475) == 10000
    assert steps_to_threshold(curve, 501) == float("inf")


def test_plot_bands_are_rliable_mean_intervals():
    from rliable import library as rly
    from rliable import metrics

    from sb3_reinforce.compare import mean_band

    values = np.array([[0.0, 10.0, 200.0], [5.0, 30.0, 480.0], [1.0, 20.0, 500.0], [2.0, 90.0, 20.0]])
    state = np.random.get_state()
    mean, low, high = mean_band(values, reps=500, seed=4)
    assert np.array_equal(np.random.get_state()[1], state[1]), "numpy's global generator was not restored"
    np.testing.assert_allclose(mean, values.mean(axis=0))
    # the same pointwise percentile bootstrap computed directly with rliable (runs x tasks x points)
    np.random.seed(4)
    _, cis = rly.get_interval_estimates({"x": values[:, None, :]}, metrics.aggregate_mean, reps=500)
    np.testing.assert_array_equal(low, cis["x"][0])
    np.testing.assert_array_equal(high, cis["x"][1])
    assert (low <= mean).all() and (mean <= high).all() and (low < high).all()
    _, low, high = mean_band(values[:1])  # one seed: no spread
    np.testing.assert_array_equal(low, values[0])
    np.testing.assert_array_equal(high, values[0])


def finished_run(out: Path, spec: AlgoSpec, seed: int, returns: list[float]) -> Path:
    """A finished run's files as the tool writes them (no training: a fixed curve)."""
    from sb3_reinforce.compare.records import run_protocol, write_curve, write_record

    path = run_csv_path(out, spec, seed)
    rows = [(1000 * k, 0.5 * k, value, 0.0) for k, value in enumerate(returns)]
    record = run_protocol("CartPole-v1", spec, seed, 1000 * (len(returns) - 1), 1000, 2)
    write_record(run_record_path(path), dict(record, status="complete", result=write_curve(path, rows)))
    return path


def test_report_files_are_replaced_atomically(tmp_path):
    spec = parse_algo_spec("reinforce")
    results = {spec.label: [finished_run(tmp_path, spec, seed, [10.0, 100.0 + seed, 400.0 + seed]) for seed in range(3)]}
    names = ("summary.md", "returns_vs_steps.png", "returns_vs_wall.png")
    # Earlier files hard-linked elsewhere: an atomic write replaces the name, an in-place write changes both
    for name in names:
        (tmp_path / f"kept-{name}").write_bytes(b"earlier")
        (tmp_path / name).hardlink_to(tmp_path / f"kept-{name}")
    markdown, plots = write_report("CartPole-v1", results, tmp_path, threshold=300)
    assert (tmp_path / "summary.md").read_text() == markdown and "| reinforce | 3 | 401.0 [400.0, 402.0] |" in markdown
    assert [plot.name for plot in plots] == list(names[1:])
    for name in names:
        assert (tmp_path / f"kept-{name}").read_bytes() == b"earlier", f"{name} was written in place"
    assert all(plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for plot in plots)
    assert not [path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


# Issue 14: a wall-clock budget per run, checkpoints, resume after a kill ------------------------------------------


#: A step cap far beyond what a few seconds can train: with it the clock, not the entry's n_timesteps (the cap with
#: --minutes alone, which a fast CI machine reached first on CartPole), stops a --minutes run on any machine.
UNREACHABLE_STEP_CAP = ("--timesteps", "100000000")


def compare_command(out: Path, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "sb3_reinforce.compare", "--env", "CartPole-v1", "--algos", "reinforce", "--seeds", "1"]
    return [*command, "--eval-freq", "1000", "--eval-episodes", "2", "--out", str(out), "--no-progress", *extra]


class FakeClock:
    """A perf_counter that advances 1 ms per call: the run's training clock, independent of the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.001
        return self.now


def test_minutes_budget_stops_within_one_step_of_the_limit(tmp_path, monkeypatch):
    import sb3_reinforce.compare.training as training

    monkeypatch.setattr(training, "time", FakeClock())
    spec = parse_algo_spec("reinforce")
    results = run_comparison(
        "CartPole-v1", [spec], [0], None, tmp_path, eval_freq=500, eval_episodes=1, progress=False, minutes=0.02
    )
    curve, record = load_run(results["reinforce"][0])
    result = record["result"]
    # the budget: 0.02 min = 1.2 s of training clock; a step reads the clock a few times (1 ms each)
    assert record["protocol"]["minutes"] == 0.02 and record["protocol"]["timesteps"] == 100_000  # the entry's n_timesteps
    assert result["stopped_by"] == "minutes"
    assert 1.2 <= result["wall_s"] < 1.2 + 0.01
    assert curve["wall_s"][-1] == result["wall_s"] and curve["timesteps"][-1] == result["steps"] == result["final_step"]
    assert 0 < result["steps"] < 100_000 and result["episodes"] >= 1
    assert not (tmp_path / "reinforce__seed0.ckpt").exists(), "the checkpoint of a complete run is removed"


def test_minutes_cli_records_steps_episodes_and_time(tmp_path):
    command = compare_command(tmp_path, "--minutes", "0.05", *UNREACHABLE_STEP_CAP)
    subprocess.run(command, check=True, stdout=subprocess.PIPE, timeout=300)
    _, record = load_run(tmp_path / "reinforce__seed0.csv")
    result = record["result"]
    assert result["stopped_by"] == "minutes" and result["wall_s"] >= 3.0
    assert 0 < result["steps"] < 100_000 and result["episodes"] >= 1 and result["resumes"] == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "- wall-clock budget per run: 0.05 min of training time\n" in summary
    # The machine is reported (float results, so a seed's curve, can differ between machines), never compared
    assert record["machine"] == machine_description() and "torch CPU capability" in record["machine"]
    assert f"- machine: {record['machine']}\n" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| reinforce |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[6] == f"{result['steps']:,}" and cells[7] == f"{result['episodes']:,}"
    assert cells[8] == f"{result['wall_s'] / 60:.2f}"


def test_minutes_and_checkpoint_minutes_are_checked(tmp_path, capsys):
    from sb3_reinforce.compare import main

    for option, value in (("--minutes", "0"), ("--minutes", "nan"), ("--checkpoint-minutes", "-1"), ("--timesteps", "0")):
        assert main(["--algos", "reinforce", "--out", str(tmp_path / "out"), option, value]) == 2
        assert f"error: {option} {value}: expected " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="timesteps=None needs a wall-clock budget"):
        run_comparison("CartPole-v1", [parse_algo_spec("reinforce")], [0], None, tmp_path)


def wait_for_checkpoint(process: subprocess.Popen, state: Path, min_steps: int) -> dict:
    import json

    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint written"
        try:
            progress = json.loads(state.read_text())["progress"]
            if progress["num_timesteps"] >= min_steps:
                return progress
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    command = compare_command(tmp_path, "--minutes", "0.15", "--checkpoint-minutes", "0.02", *UNREACHABLE_STEP_CAP)
    csv_path = tmp_path / "reinforce__seed0.csv"
    state = tmp_path / "reinforce__seed0.ckpt" / "state.json"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_checkpoint(process, state, min_steps=2000)
    finally:
        process.kill()  # SIGKILL: no chance to clean up
        process.wait()
    import json

    saved = json.loads(state.read_text())["progress"]  # the last checkpoint before the kill
    assert saved["num_timesteps"] >= 2000 and not csv_path.exists()
    result = subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    assert f"resuming {csv_path} from its checkpoint: {saved['num_timesteps']:,} env steps" in result.stderr
    curve, record = load_run(csv_path)
    # the curve is the checkpoint's rows, then the rows trained after the restart: steps and time go on from there
    n_saved = len(saved["rows"])
    np.testing.assert_array_equal(curve["timesteps"][:n_saved], [row[0] for row in saved["rows"]])
    np.testing.assert_array_equal(curve["wall_s"][:n_saved], [row[1] for row in saved["rows"]])
    assert curve["timesteps"][n_saved] >= saved["num_timesteps"] and curve["wall_s"][n_saved] >= saved["train_s"]
    assert (np.diff(curve["timesteps"]) > 0).all() and (np.diff(curve["wall_s"]) >= 0).all()
    outcome = record["result"]
    assert outcome["resumes"] == 1 and outcome["stopped_by"] == "minutes" and outcome["wall_s"] >= 9.0
    assert outcome["steps"] > saved["num_timesteps"] and outcome["episodes"] > saved["episodes"]
    assert not state.parent.exists()
    # counted once: one run in the table and the protocol
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("| reinforce | 1 |") == 1 and "- resumed from a checkpoint: 1 time(s)\n" in summary


def test_a_damaged_or_foreign_checkpoint_is_not_resumed(tmp_path):
    from sb3_reinforce.compare.checkpoints import CheckpointError, RunProgress, read_checkpoint, save_checkpoint
    from sb3_reinforce.compare.records import run_protocol
    from sb3_reinforce.compare.training import _make_model

    spec = parse_algo_spec("reinforce")
    protocol = run_protocol("CartPole-v1", spec, 0, 1000, 500, 1, minutes=1.0)["protocol"]
    model, env, _ = _make_model(spec, "CartPole-v1", 0, evaluation_env=False)
    model.learn(300)
    directory = tmp_path / "run.ckpt"
    progress = RunProgress(rows=[(0, 0.0, 9.0, 1.0)], train_s=2.5, next_eval=500)
    save_checkpoint(directory, protocol, model, env, progress)
    save_checkpoint(directory, protocol, model, env, progress)  # the first generation's files are removed
    assert sorted(path.name for path in directory.iterdir()) == ["model-2.zip", "state.json"]
    loaded, paths = read_checkpoint(directory, protocol)
    assert loaded.num_timesteps == model.num_timesteps >= 300
    assert (loaded.train_s, loaded.rows, loaded.generation) == (2.5, [(0, 0.0, 9.0, 1.0)], 2)
    with pytest.raises(CheckpointError, match="made with another protocol \\(minutes differ\\)"):
        read_checkpoint(directory, {**protocol, "minutes": 2.0})
    data = paths["model"].read_bytes()
    paths["model"].write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match=r"model-2\.zip does not match state\.json"):
        read_checkpoint(directory, protocol)
    env.close()


def test_checkpoints_keep_the_vecnormalize_statistics(tmp_path):
    """Pendulum's entry normalizes observations: a resumed run must see them as before the kill."""
    from stable_baselines3.common.vec_env import unwrap_vec_normalize

    from sb3_reinforce.compare.checkpoints import RunProgress, read_checkpoint, restore_checkpoint, save_checkpoint
    from sb3_reinforce.compare.records import run_protocol
    from sb3_reinforce.compare.training import _make_model

    spec = parse_algo_spec("reinforce")
    protocol = run_protocol("Pendulum-v1", spec, 0, 1000, 500, 1)["protocol"]
    model, env, _ = _make_model(spec, "Pendulum-v1", 0, evaluation_env=False)
    model.learn(400)
    saved_mean = unwrap_vec_normalize(env).obs_rms.mean.copy()
    save_checkpoint(tmp_path / "ckpt", protocol, model, env, RunProgress())
    fresh, fresh_env, _ = _make_model(spec, "Pendulum-v1", 0, evaluation_env=False)
    assert not np.array_equal(unwrap_vec_normalize(fresh_env).obs_rms.mean, saved_mean)
    _, paths = read_checkpoint(tmp_path / "ckpt", protocol)
    restored = restore_checkpoint(fresh, fresh_env, paths)
    np.testing.assert_array_equal(unwrap_vec_normalize(fresh_env).obs_rms.mean, saved_mean)
    assert restored.num_timesteps == model.num_timesteps and restored.get_env() is fresh_env
    env.close()
    fresh_env.close()


# Issue 15: a report a reader trusts at a glance -------------------------------------------------------------------


def fixed_run(
    out: Path, spec: AlgoSpec, seed: int, returns: list[float], seconds: float, minutes: float | None = None
) -> Path:
    """A finished run with a fixed curve: one evaluation every 1000 steps and every ``seconds`` of training."""
    from sb3_reinforce.compare.records import run_protocol, write_curve, write_record

    path = run_csv_path(out, spec, seed)
    rows = [(1000 * k, seconds * k, value, 0.0) for k, value in enumerate(returns)]
    record = run_protocol("CartPole-v1", spec, seed, 1000 * (len(returns) - 1), 1000, 2, minutes=minutes)
    result = dict(write_curve(path, rows), episodes=10 + seed, wall_s=rows[-1][1])
    write_record(run_record_path(path), dict(record, status="complete", result=result))
    return path


def table_rows(markdown: str) -> dict[str, dict[str, str]]:
    lines = [line for line in markdown.split("## Protocol")[0].splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]
    return {cells[0]: dict(zip(header, cells, strict=True)) for cells in rows}


@pytest.fixture
def report(tmp_path):
    """Three seeds of reinforce (ending at different wall times), two of a2c, one of them damaged: left out."""
    from sb3_reinforce.compare import write_report

    reinforce, a2c = parse_algo_spec("reinforce"), parse_algo_spec("a2c")
    results = {
        "reinforce": [
            fixed_run(tmp_path, reinforce, seed, [10.0, 100.0 * (seed + 1), 200.0 + seed], 40.0 + 20 * seed)
            for seed in range(3)
        ],
        "a2c": [fixed_run(tmp_path, a2c, seed, [10.0, 50.0, 60.0 + 10 * seed], 30.0) for seed in range(3)],
    }
    results["a2c"][2].write_text("timesteps,wall_s\n")  # damaged: the report leaves it out
    markdown, _ = write_report("CartPole-v1", results, tmp_path, threshold=150)
    return tmp_path, results, markdown


def test_plots_state_env_budget_seeds_and_what_the_band_is(report):
    from sb3_reinforce.compare.records import load_run
    from sb3_reinforce.compare.report import BAND_LABEL, budget_text, curve_figures

    _, results, _ = report
    curves, records = {}, {}
    for label, paths in results.items():
        for path in paths[: 3 if label == "reinforce" else 2]:
            curve, record = load_run(path)
            curves.setdefault(label, []).append(curve)
            records.setdefault(label, []).append(record)
    assert budget_text(records) == "2,000 env steps"
    figures = curve_figures(curves, 150, "CartPole-v1", budget_text(records))
    try:
        for name, figure in figures.items():
            ax = figure.axes[0]
            assert ax.get_title() == "CartPole-v1, 2,000 env steps, 2-3 seeds per algo", name
            legend = [text.get_text() for text in ax.get_legend().get_texts()]
            assert legend == [
                "reinforce (mean of 3 seeds)",
                "a2c (mean of 2 seeds, too few for a CI)",
                "threshold 150",
                BAND_LABEL,
            ]
            assert "95% percentile-bootstrap CI of the mean over seeds" in BAND_LABEL
            # one band: reinforce's; a2c (2 seeds) has none
            assert len(ax.collections) == 1
    finally:
        import matplotlib.pyplot as plt

        for figure in figures.values():
            plt.close(figure)
    one_seed = curve_figures({"a2c": curves["a2c"][:1]}, None, "CartPole-v1", "2,000 env steps")
    ax = one_seed["returns_vs_steps.png"].axes[0]
    assert ax.get_title() == "CartPole-v1, 2,000 env steps, 1 seed"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a2c (mean of 1 seed, too few for a CI)"]
    assert not ax.collections


def test_wall_time_plot_matches_the_summary_table(report):
    from sb3_reinforce.compare.records import load_run
    from sb3_reinforce.compare.report import curve_figures, wall_unit

    _, results, markdown = report
    rows = table_rows(markdown)
    # same runs: the damaged a2c seed is left out of both
    assert rows["reinforce"]["seeds"] == "3" and rows["a2c"]["seeds"] == "2"
    curves = {label: [load_run(path)[0] for path in paths[: int(rows[label]["seeds"])]] for label, paths in results.items()}
    # the longest run trained 80 s per evaluation x 2: 160 s >= 2 min, so minutes in the table and the plot
    assert wall_unit(curves) == ("min", 60.0)
    assert "train wall time (min, mean)" in markdown.splitlines()[4]
    figures = curve_figures(curves, 150)
    try:
        for name, figure in figures.items():
            ax = figure.axes[0]
            if name == "returns_vs_wall.png":
                assert ax.get_xlabel() == "training wall-clock time (min)"
            for line, label in zip(ax.lines, ["reinforce", "a2c"], strict=False):
                # the line ends at the table's final mean (a run that ended keeps its final value)
                final_mean = float(rows[label]["final mean [95% CI]"].split(" [")[0])
                assert round(float(line.get_ydata()[-1]), 1) == final_mean, (name, label)
                if name == "returns_vs_wall.png":
                    longest = max(float(curve["wall_s"][-1]) for curve in curves[label]) / 60
                    assert line.get_xdata()[-1] == pytest.approx(longest)
    finally:
        import matplotlib.pyplot as plt

        for figure in figures.values():
            plt.close(figure)
    # the table's wall time is the mean training time of the same runs, in the same unit
    assert rows["reinforce"]["train wall time (min, mean)"] == f"{np.mean([80.0, 120.0, 160.0]) / 60:.2f}"
    assert rows["reinforce"]["episodes (mean)"] == "11"


def test_minutes_budget_in_the_title_and_the_protocol(tmp_path):
    from sb3_reinforce.compare.records import load_run
    from sb3_reinforce.compare.report import budget_text

    spec = parse_algo_spec("reinforce")
    paths = [fixed_run(tmp_path, spec, seed, [1.0, 2.0], 30.0, minutes=0.5) for seed in range(2)]
    records = {"reinforce": [load_run(path)[1] for path in paths]}
    assert budget_text(records) == "0.5 min of training (at most 1,000 steps)"
    markdown, _ = write_report("CartPole-v1", {"reinforce": paths}, tmp_path)
    assert "- wall-clock budget per run: 0.5 min of training time\n" in markdown
    assert "train wall time (min, mean)" in markdown  # a wall-clock budget: minutes, whatever the length


@pytest.mark.parametrize("argv", [[], ["variance"]], ids=["compare", "variance"])
def test_help_shows_every_default(argv, capsys):
    import argparse

    from sb3_reinforce.compare import build_parser, main

    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    if not argv:
        parser = build_parser()
    else:
        from sb3_reinforce.variance import build_parser as variance_parser

        parser = variance_parser()
    options = [action for action in parser._actions if action.option_strings and action.default is not argparse.SUPPRESS]
    assert len(options) >= 8
    for action in options:
        assert f"(default: {action.default})" in text, (action.option_strings, action.default)
    if not argv:
        assert "--minutes MINUTES" in text and "(default: None)" in text and "--checkpoint-minutes" in text


# Issue 14: Pong, REINFORCE next to PPO on the same observations and rl-zoo's Atari PPO -------------------------------


def test_pong_rows_train_the_entries_asked_for():
    from stable_baselines3.common.atari_wrappers import AtariWrapper
    from stable_baselines3.common.vec_env import VecFrameStack

    from sb3_reinforce.compare.pong import KARPATHY_PONG_PPO_ENTRY
    from sb3_reinforce.compare.records import resolve_entry, run_protocol
    from sb3_reinforce.compare.training import _make_model
    from sb3_reinforce.hyperparams import load_hyperparams
    from sb3_reinforce.pong.karpathy import KarpathyPolicy

    pong = "KarpathyPong-v0"
    reinforce, ppo, atari = (parse_algo_spec(token) for token in ("reinforce", "ppo", "ppo@ALE/Pong-v5"))
    assert (atari.algo, atari.env_id, atari.label) == ("ppo", "ALE/Pong-v5", "ppo@ALE/Pong-v5")
    assert atari.file_label == "ppo@ALE-Pong-v5"
    assert resolve_entry(reinforce, pong)[0] == load_hyperparams("reinforce", pong)
    assert resolve_entry(ppo, pong)[0] == KARPATHY_PONG_PPO_ENTRY
    # rl-zoo's Atari PPO, unchanged but for sticky actions 0.25 (frameskip 1: AtariWrapper skips 4 frames itself)
    entry, path = resolve_entry(atari, pong)
    sticky = {"repeat_action_probability": 0.25, "frameskip": 1}
    assert entry == {**load_hyperparams("ppo", "ALE/Pong-v5"), "env_kwargs": sticky}
    assert entry["policy"] == "CnnPolicy" and entry["frame_stack"] == 4 and path.name == "ppo.yml"
    protocol = run_protocol(pong, atari, 0, 1000, 500, 10)["protocol"]
    assert (protocol["env_id"], protocol["train_env_id"], protocol["evaluation"]) == (pong, "ALE/Pong-v5", "pong")
    # outside a Pong comparison a row keeps rl_zoo3's entry as it stands
    assert "env_kwargs" not in resolve_entry(atari, "CartPole-v1")[0]

    model, env, _ = _make_model(reinforce, pong, 0, evaluation_env=False)
    assert isinstance(model.policy, KarpathyPolicy) and env.observation_space.shape == (6400,)
    env.close()
    model, env, _ = _make_model(ppo, pong, 0, evaluation_env=False)
    assert env.observation_space.shape == (6400,) and env.num_envs == 8
    extractor = model.policy.mlp_extractor
    for net in (extractor.policy_net, extractor.value_net):
        assert [(layer.in_features, layer.out_features) for layer in net if hasattr(layer, "in_features")] == [(6400, 200)]
    assert type(extractor.policy_net[1]).__name__ == "ReLU"
    env.close()
    model, env, _ = _make_model(atari, pong, 0, evaluation_env=False)
    assert isinstance(env, VecFrameStack) and env.observation_space.shape == (84, 84, 4)
    game = env.venv.envs[0]
    assert isinstance(game, AtariWrapper) and game.unwrapped.spec.id == "ALE/Pong-v5"
    assert game.unwrapped._frameskip == 1 and game.unwrapped.ale.getFloat("repeat_action_probability") == 0.25
    env.close()


def test_pong_needs_the_protocols_number_of_games(tmp_path, capsys):
    from sb3_reinforce.compare import main

    out = ["--out", str(tmp_path / "o")]
    assert main(["--env", "KarpathyPong-v0", "--algos", "reinforce", "--eval-episodes", "3", *out]) == 2
    assert "error: --eval-episodes 3: the Pong protocol plays at least 10 games" in capsys.readouterr().err
    assert main(["--env", "KarpathyPong-v0", "--algos", "ppo@ALE/Pongg-v5", *out]) == 2
    assert "error: --algos 'ppo@ALE/Pongg-v5': 'ALE/Pongg-v5' is not a registered gymnasium env id" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_pong_comparison_is_scored_by_the_pong_protocol(tmp_path):
    """A few thousand steps of REINFORCE on KarpathyPong-v0, scored at 0 and at the end by the Pong protocol."""
    from sb3_reinforce.pong.evaluation import pong_evaluation_seeds

    spec = parse_algo_spec("reinforce")
    results = run_comparison(
        "KarpathyPong-v0", [spec], [0], 2000, tmp_path, eval_freq=100_000, eval_episodes=10, progress=False
    )
    curve, record = load_run(results["reinforce"][0])
    pong = record["result"]["pong"]
    assert pong["n_games"] == 10 and pong["repeat_action_probability"] == 0.25
    assert pong["seeds"] == list(pong_evaluation_seeds(10))
    assert curve["timesteps"].tolist() == [0, 2000] and curve["mean_return"][-1] == pong["greedy_mean"]
    assert all(-21 <= score <= 21 for score in pong["greedy_scores"] + pong["stochastic_scores"])
    markdown, _ = write_report("KarpathyPong-v0", results, tmp_path)
    assert "Pong protocol (sb3_reinforce.pong.evaluation): 10 whole games per policy" in markdown
    assert f"| {pong['greedy_mean']:+.1f} | {pong['stochastic_mean']:+.1f} |" in markdown


@pytest.mark.parametrize("token, env_id", [("ppo", "CartPole-v1"), ("reinforce", "KarpathyPong-v0")])
def test_a_checkpoint_continues_the_same_model(tmp_path, token, env_id):
    """PPO (SB3's own load) and Karpathy's REINFORCE agent (packed buffer): the run goes on from the saved steps."""
    import torch as th

    from sb3_reinforce.compare.checkpoints import RunProgress, read_checkpoint, restore_checkpoint, save_checkpoint
    from sb3_reinforce.compare.records import run_protocol
    from sb3_reinforce.compare.training import _make_model

    spec = parse_algo_spec(token)
    protocol = run_protocol(env_id, spec, 0, 5000, 1000, 10)["protocol"]
    model, env, _ = _make_model(spec, env_id, 0, evaluation_env=False)
    model.learn(300)
    save_checkpoint(tmp_path / "ckpt", protocol, model, env, RunProgress())
    _, paths = read_checkpoint(tmp_path / "ckpt", protocol)
    fresh, fresh_env, _ = _make_model(spec, env_id, 1, evaluation_env=False)
    restored = restore_checkpoint(fresh, fresh_env, paths)
    assert type(restored) is type(model) and restored.num_timesteps == model.num_timesteps
    for saved, loaded in zip(model.policy.parameters(), restored.policy.parameters(), strict=True):
        assert th.equal(saved, loaded)
    steps = restored.num_timesteps
    restored.learn(total_timesteps=2 * fresh_env.num_envs, reset_num_timesteps=False)
    # counting goes on from the checkpoint (REINFORCE stops at the budget, PPO at the end of its rollout)
    rollout = restored.n_steps * fresh_env.num_envs if token == "ppo" else 2 * fresh_env.num_envs
    assert restored.num_timesteps == steps + rollout
    env.close()
    fresh_env.close()


@pytest.mark.slow
def test_atari_pong_rows_are_scored_on_the_protocols_games():
    """rl-zoo's Atari PPO (AtariWrapper frames): the protocol's seeds, sticky actions, whole games, both policies."""
    from sb3_reinforce.compare.training import _make_model
    from sb3_reinforce.pong.evaluation import evaluate_pong, pong_evaluation_seeds

    model, env, _ = _make_model(parse_algo_spec("ppo@ALE/Pong-v5"), "KarpathyPong-v0", 0, evaluation_env=False)
    env.close()
    # the difference-frame pipeline (the default) refuses an Atari agent, and names the one it needs
    with pytest.raises(ValueError, match="observations='atari'"):
        evaluate_pong(model)
    result = evaluate_pong(model, n_games=10, observations="atari")
    assert result.seeds == pong_evaluation_seeds(10) and result.n_games == 10
    assert (result.repeat_action_probability, result.frameskip) == (0.25, 4)
    scores = result.greedy_scores + result.stochastic_scores
    # whole games (none cut at the frame limit), scored as points won minus lost
    assert len(scores) == 20 and all(-21 <= score <= 21 for score in scores)
    assert result.greedy_truncated == result.stochastic_truncated == 0 and min(result.greedy_lengths) > 0
    assert result.greedy_mean == pytest.approx(np.mean(result.greedy_scores))
    with pytest.raises(ValueError, match="n_games=3"):
        evaluate_pong(model, n_games=3, observations="atari")


def test_report_only_trains_nothing_and_refuses_other_protocols(tmp_path, capsys):
    from sb3_reinforce.compare import main

    reinforce, a2c = parse_algo_spec("reinforce"), parse_algo_spec("a2c")
    for seed in range(2):
        fixed_run(tmp_path, reinforce, seed, [10.0, 50.0, 90.0 + seed], 30.0)
    fixed_run(tmp_path, a2c, 0, [10.0, 20.0, 30.0], 30.0)
    # a2c seed 1 is still training in another command: its checkpoint and partial write must stay as they are
    running = run_csv_path(tmp_path, a2c, 1)
    stale = tmp_path / f".{running.name}.123.tmp"
    stale.write_text("partial")
    before = sorted(path.name for path in tmp_path.iterdir())
    argv = ["--algos", "reinforce", "a2c", "--seeds", "2", "--timesteps", "2000", "--eval-freq", "1000"]
    argv += ["--eval-episodes", "2", "--no-progress", "--out", str(tmp_path), "--report-only"]
    assert main(argv) == 0
    rows = table_rows((tmp_path / "summary.md").read_text())
    assert rows["reinforce"]["seeds"] == "2" and rows["a2c"]["seeds"] == "1"
    assert f"{running.stem}.json is missing" in (tmp_path / "summary.md").read_text().split("Runs left out")[1]
    assert not running.exists() and stale.read_text() == "partial"  # nothing trained, nothing removed
    after = sorted(path.name for path in tmp_path.iterdir())
    assert set(after) - set(before) <= {"summary.md", "returns_vs_steps.png", "returns_vs_wall.png"}
    capsys.readouterr()
    # the runs were made with 2,000 steps: a report "of 3,000-step runs" would be false
    assert main([*argv[:6], "3000", *argv[7:]]) == 2
    assert "--report-only trains nothing" in capsys.readouterr().err
    assert main([*argv, "--rerun-changed"]) == 2
    assert "error: --report-only trains nothing: it cannot redo runs (--rerun-changed)" in capsys.readouterr().err
