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
        # seed 0 is done when its sidecar says so (written after its CSV)
        while not (run_record_path(first).exists() and '"complete"' in run_record_path(first).read_text()):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # seed 1 is training now
    finally:
        process.kill()
        process.wait()
    if second.exists():
        pytest.skip("the second run finished before the kill")
    started = run_record_path(second).exists()
    # simulate a crash mid-write: a partial temporary CSV is left behind
    (tmp_path / (second.name + ".tmp999")).write_text("timesteps,wall_s\n1000,")
    finished_mtime = first.stat().st_mtime_ns
    result = subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    assert first.stat().st_mtime_ns == finished_mtime, "a finished run was redone"
    if started:  # the killed run had written its 'running' sidecar: it is named and redone
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
