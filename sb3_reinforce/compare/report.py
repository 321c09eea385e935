"""The report of a comparison: ``summary.md`` (IQM and mean with rliable's bootstrap CIs, protocol) and the plots."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sb3_reinforce.common.safety import atomic_write
from sb3_reinforce.compare.records import RunFileError, load_run

__all__ = [
    "default_threshold",
    "interval_estimates",
    "mean_band",
    "plot_curves",
    "protocol_markdown",
    "steps_to_threshold",
    "summarize",
    "write_report",
]


def _interval_estimates(
    scores: np.ndarray, aggregate: Callable[[np.ndarray], np.ndarray], reps: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    rliable's point estimates and 95% percentile-bootstrap CIs (``library.get_interval_estimates``, resampling the
    runs, axis 0) of ``aggregate(scores)``.

    :return: ``(points, lows, highs)``, each shaped as ``aggregate``'s output
    """
    from rliable import library as rly

    # rliable draws its resamples from numpy's global generator: seed it for reproducible CIs, then restore it
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        points, cis = rly.get_interval_estimates({"x": scores}, aggregate, reps=reps)
    finally:
        np.random.set_state(state)
    return np.asarray(points["x"]), cis["x"][0], cis["x"][1]


def interval_estimates(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """
    IQM and mean of final scores across seeds (rliable's ``metrics.aggregate_iqm`` and ``aggregate_mean``) with
    95% percentile-bootstrap CIs (rliable's ``library.get_interval_estimates``).

    :param scores: one final score per seed
    :param reps: bootstrap resamples
    :param seed: seed of the bootstrap
    :return: ``{"iqm": (point, low, high), "mean": (...)}``
    """
    from rliable import metrics

    names = ("iqm", "mean")
    points, lows, highs = _interval_estimates(
        np.asarray(scores, dtype=float)[:, None],
        lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)]),
        reps,
        seed,
    )
    return {name: (float(points[i]), float(lows[i]), float(highs[i])) for i, name in enumerate(names)}


def mean_band(values: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    The mean over seeds of curves sampled on a common grid, with a pointwise 95% percentile-bootstrap CI (rliable's
    ``metrics.aggregate_mean`` and ``library.get_interval_estimates``).

    :param values: ``(n_seeds, n_points)``
    :param reps: bootstrap resamples
    :param seed: seed of the bootstrap
    :return: ``(mean, low, high)``, one value per point
    """
    from rliable import metrics

    # rliable's layout for curves: (runs, tasks, points); aggregate_mean averages the runs, then the one task
    return _interval_estimates(np.asarray(values, dtype=float)[:, None, :], metrics.aggregate_mean, reps, seed)


def steps_to_threshold(curve: dict[str, np.ndarray], threshold: float) -> float:
    """
    First evaluated env step with mean return >= threshold (inf if never). The evaluation of the untrained policy
    (step 0) does not count: a lucky initialization is not learning.
    """
    hits = np.flatnonzero((curve["mean_return"] >= threshold) & (curve["timesteps"] > 0))
    return float(curve["timesteps"][hits[0]]) if len(hits) else math.inf


def summarize(
    curves: dict[str, list[dict[str, np.ndarray]]], threshold: float, env_id: str = "", reps: int = 2000
) -> tuple[str, list[dict[str, Any]]]:
    """
    The ``summary.md`` table.

    :param curves: ``{label: [curve per seed]}`` (:func:`read_curve`)
    :param threshold: return threshold for "steps to threshold"
    :return: (markdown, one dict of numbers per label)
    """
    rows = []
    for label, runs in curves.items():
        final = np.array([run["mean_return"][-1] for run in runs])
        estimates = interval_estimates(final, reps=reps)
        to_threshold = np.array([steps_to_threshold(run, threshold) for run in runs])
        wall = np.array([run["wall_s"][-1] for run in runs])
        steps = np.array([run["timesteps"][-1] for run in runs])
        rows.append(
            dict(
                label=label,
                n_seeds=len(runs),
                iqm=estimates["iqm"],
                mean=estimates["mean"],
                median_steps_to_threshold=float(np.median(to_threshold)),
                reached=int(np.isfinite(to_threshold).sum()),
                at_threshold_end=int((final >= threshold).sum()),
                wall_s=float(np.mean(wall)),
                fps=float(np.mean(steps / np.maximum(wall, 1e-9))),
            )
        )

    def ci(value: tuple[float, float, float]) -> str:
        return f"{value[0]:.1f} [{value[1]:.1f}, {value[2]:.1f}]"

    lines = [
        f"# {env_id} comparison" if env_id else "# Comparison",
        "",
        f"Final evaluation return over seeds (IQM and mean with 95% bootstrap CI); threshold = {threshold:g}.",
        "",
        "| algo | seeds | final IQM [95% CI] | final mean [95% CI] | median steps to threshold (seeds reached) "
        "| seeds at threshold at end | train wall time (s, mean) | train fps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        median = row["median_steps_to_threshold"]
        median_text = f"{median:,.0f}" if math.isfinite(median) else "not reached"
        lines.append(
            f"| {row['label']} | {row['n_seeds']} | {ci(row['iqm'])} | {ci(row['mean'])} | {median_text} "
            f"({row['reached']}/{row['n_seeds']}) | {row['at_threshold_end']}/{row['n_seeds']} | {row['wall_s']:.1f} "
            f"| {row['fps']:,.0f} |"
        )
    return "\n".join(lines) + "\n", rows


def plot_curves(
    curves: dict[str, list[dict[str, np.ndarray]]], out: str | os.PathLike[str], threshold: float | None
) -> list[Path]:
    """
    Plot mean eval return (95% bootstrap CI band over seeds) vs env steps and vs training wall-clock time.

    :return: the two PNG paths
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for x_key, x_label, name in (
        ("timesteps", "env steps", "returns_vs_steps.png"),
        ("wall_s", "training wall-clock time (s)", "returns_vs_wall.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, runs in curves.items():
            end = float(np.median([run[x_key][-1] for run in runs]))
            grid = np.linspace(0.0, end, 100)
            values = np.stack([np.interp(grid, run[x_key], run["mean_return"]) for run in runs])
            mean, low, high = mean_band(values)
            ax.plot(grid, mean, label=label)
            ax.fill_between(grid, low, high, alpha=0.2)
        if threshold is not None and math.isfinite(threshold):
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel(x_label)
        ax.set_ylabel("eval return (deterministic)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(out) / name
        with atomic_write(path) as file:
            fig.savefig(file, format="png", dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def default_threshold(env_id: str) -> float:
    """The env's ``reward_threshold`` (inf when it has none)."""
    import gymnasium as gym

    value = gym.spec(env_id).reward_threshold
    return math.inf if value is None else float(value)


def _one_or_all(values: dict[str, list[str]], fmt: Any = str) -> str:
    """``value`` when every run has the same one, else each value with the runs that have it."""
    if len(values) == 1:
        return fmt(next(iter(values)))
    return "differs between runs: " + "; ".join(f"{fmt(value)} ({', '.join(runs)})" for value, runs in values.items())


def protocol_markdown(records: dict[str, list[dict[str, Any]]], left_out: Sequence[str] = ()) -> str:
    """
    The ``summary.md`` section stating the protocol the runs were made with (read from their sidecars): env,
    timesteps, evaluation, seeds, package versions and, per algo, the hyperparameter file and entry hash. A field
    that differs between runs lists every value with its runs.

    :param records: ``{label: [sidecar record per run]}`` (:func:`load_run`)
    :param left_out: one message per run that was left out of the report (damaged or unfinished)
    :return: markdown
    """
    fields: dict[str, dict[Any, list[str]]] = {}
    for label, runs in records.items():
        for record in runs:
            protocol = record["protocol"]
            name = f"{label} seed {protocol['seed']}"
            versions = ", ".join(f"{key} {value}" for key, value in sorted((record.get("versions") or {}).items()))
            for key, value in (
                ("env", protocol["env_id"]),
                ("timesteps", protocol["timesteps"]),
                ("evaluation", (protocol["eval_freq"], protocol["eval_episodes"])),
                ("versions", versions or "not recorded"),
            ):
                fields.setdefault(key, {}).setdefault(value, []).append(name)
    lines = ["## Protocol", ""]
    if fields:
        seeds = sorted({record["protocol"]["seed"] for runs in records.values() for record in runs})
        lines += [
            f"- env: {_one_or_all(fields['env'])}",
            f"- env steps per run: {_one_or_all(fields['timesteps'], lambda value: f'{value:,}')}",
            "- evaluation (separate env, deterministic policy): "
            + _one_or_all(fields["evaluation"], lambda value: f"every {value[0]:,} env steps, {value[1]} episode(s)"),
            f"- seeds: {', '.join(str(seed) for seed in seeds)}",
            f"- versions: {_one_or_all(fields['versions'])}",
            "",
            "| algo | seeds | hyperparameter file | entry sha256 (canonical JSON, overrides applied) |",
            "|---|---|---|---|",
        ]
        for label, runs in records.items():
            if not runs:
                continue
            entries: dict[tuple[str, str], list[str]] = {}
            for record in runs:
                key = (record.get("hyperparams_path", "?"), record["protocol"]["hyperparams_sha256"])
                entries.setdefault(key, []).append(f"seed {record['protocol']['seed']}")
            run_seeds = ", ".join(str(record["protocol"]["seed"]) for record in runs)
            if len(entries) == 1:
                ((path, digest),) = entries
                lines.append(f"| {label} | {run_seeds} | {path} | {digest} |")
            else:
                text = "; ".join(f"{digest} ({path}; {', '.join(names)})" for (path, digest), names in entries.items())
                lines.append(f"| {label} | {run_seeds} | differs between runs | {text} |")
    else:
        lines.append("No finished run.")
    if left_out:
        lines += ["", "Runs left out (damaged or unfinished, not counted):", ""]
        lines += [f"- {message}" for message in left_out]
    return "\n".join(lines) + "\n"


def write_report(
    env_id: str, results: dict[str, list[Path]], out: str | os.PathLike[str], threshold: float | None = None
) -> tuple[str, list[Path]]:
    """
    Write ``summary.md`` (table and protocol) and the plots from the finished runs; return the markdown and the
    plot paths. A run that is not finished (:func:`load_run` fails: damaged CSV, missing or mismatched sidecar) is
    named on stderr and in ``summary.md``, and left out.
    """
    threshold = default_threshold(env_id) if threshold is None else threshold
    curves: dict[str, list[dict[str, np.ndarray]]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    left_out = []
    for label, paths in results.items():
        for path in paths:
            try:
                curve, record = load_run(path)
            except RunFileError as error:
                print(f"left out of the report: {error}", file=sys.stderr)
                left_out.append(str(error))
                continue
            curves.setdefault(label, []).append(curve)
            records.setdefault(label, []).append(record)
    if curves:
        markdown, _ = summarize(curves, threshold, env_id)
    else:
        markdown = f"# {env_id} comparison\n\nNo finished run to summarize.\n"
    markdown += "\n" + protocol_markdown(records, left_out)
    with atomic_write(Path(out) / "summary.md") as file:
        file.write(markdown.encode())
    return markdown, plot_curves(curves, out, threshold) if curves else []
