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
    "BAND_LABEL",
    "MIN_SEEDS_FOR_BAND",
    "budget_text",
    "curve_figures",
    "default_threshold",
    "interval_estimates",
    "mean_band",
    "plot_curves",
    "protocol_markdown",
    "steps_to_threshold",
    "summarize",
    "wall_unit",
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


#: Fewer seeds than this: the curve is drawn without a confidence band (a bootstrap over 1 or 2 runs means nothing).
MIN_SEEDS_FOR_BAND = 3
#: What the shaded band of the plots is, as its legend entry says.
BAND_LABEL = "shaded: 95% percentile-bootstrap CI of the mean over seeds (rliable, pointwise)"


def wall_unit(curves: dict[str, list[dict[str, np.ndarray]]], minutes_budget: bool = False) -> tuple[str, float]:
    """
    The unit of training wall time in the summary table and the wall-time plot (the same for both): minutes when
    the runs had a wall-clock budget or the longest lasted 2 minutes or more, else seconds.

    :return: ``(name, seconds per unit)``: ``("s", 1.0)`` or ``("min", 60.0)``
    """
    longest = max((float(run["wall_s"][-1]) for runs in curves.values() for run in runs), default=0.0)
    return ("min", 60.0) if minutes_budget or longest >= 120.0 else ("s", 1.0)


def summarize(
    curves: dict[str, list[dict[str, np.ndarray]]],
    threshold: float,
    env_id: str = "",
    reps: int = 2000,
    records: dict[str, list[dict[str, Any]]] | None = None,
    unit: tuple[str, float] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """
    The ``summary.md`` table.

    :param curves: ``{label: [curve per seed]}`` (:func:`read_curve`)
    :param threshold: return threshold for "steps to threshold"
    :param env_id: the comparison's env (title)
    :param reps: bootstrap resamples
    :param records: ``{label: [sidecar record per seed]}``, same order as ``curves`` (episodes, Pong scores)
    :param unit: wall-time unit (:func:`wall_unit`)
    :return: (markdown, one dict of numbers per label)
    """
    unit_name, unit_s = unit or wall_unit(curves)
    pong = any("pong" in (record.get("result") or {}) for runs in (records or {}).values() for record in runs)
    rows = []
    for label, runs in curves.items():
        results = [record.get("result") or {} for record in (records or {}).get(label, [])]
        final = np.array([run["mean_return"][-1] for run in runs])
        estimates = interval_estimates(final, reps=reps)
        to_threshold = np.array([steps_to_threshold(run, threshold) for run in runs])
        wall = np.array([run["wall_s"][-1] for run in runs])
        steps = np.array([run["timesteps"][-1] for run in runs])
        episodes = [result["episodes"] for result in results if "episodes" in result]
        row = dict(
            label=label,
            n_seeds=len(runs),
            iqm=estimates["iqm"],
            mean=estimates["mean"],
            median_steps_to_threshold=float(np.median(to_threshold)),
            reached=int(np.isfinite(to_threshold).sum()),
            at_threshold_end=int((final >= threshold).sum()),
            steps=float(np.mean(steps)),
            episodes=float(np.mean(episodes)) if len(episodes) == len(runs) else None,
            wall=float(np.mean(wall)) / unit_s,
            fps=float(np.mean(steps / np.maximum(wall, 1e-9))),
        )
        for mode in ("greedy", "stochastic"):
            scores = [result["pong"][f"{mode}_mean"] for result in results if "pong" in result]
            row[f"pong_{mode}"] = float(np.mean(scores)) if scores and len(scores) == len(runs) else None
        rows.append(row)

    def ci(value: tuple[float, float, float]) -> str:
        return f"{value[0]:.1f} [{value[1]:.1f}, {value[2]:.1f}]"

    def number(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    what = "evaluation return (deterministic)"
    if pong:
        games = sorted({record["result"]["pong"]["n_games"] for runs in records.values() for record in runs})  # type: ignore[union-attr]
        what = (
            f"Pong score (points won - lost; Pong protocol: {', '.join(map(str, games))} games per policy on held-out "
            "seeds, sticky actions 0.25; the IQM/mean columns are the greedy policy's)"
        )
    lines = [
        f"# {env_id} comparison" if env_id else "# Comparison",
        "",
        f"Final {what} over seeds (IQM and mean with 95% percentile-bootstrap CIs from rliable); "
        f"threshold = {threshold:g}. Wall time is training time only, in {unit_name}, as in returns_vs_wall.png.",
        "",
        "| algo | seeds | final IQM [95% CI] | final mean [95% CI] | median steps to threshold (seeds reached) "
        f"| seeds at threshold at end | env steps (mean) | episodes (mean) | train wall time ({unit_name}, mean) | train fps |"
        + (" final greedy score (mean) | final stochastic score (mean) |" if pong else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if pong else ""),
    ]
    for row in rows:
        median = row["median_steps_to_threshold"]
        median_text = f"{median:,.0f}" if math.isfinite(median) else "not reached"
        line = (
            f"| {row['label']} | {row['n_seeds']} | {ci(row['iqm'])} | {ci(row['mean'])} | {median_text} "
            f"({row['reached']}/{row['n_seeds']}) | {row['at_threshold_end']}/{row['n_seeds']} | {row['steps']:,.0f} "
            f"| {number(row['episodes'], ',.0f')} | {row['wall']:.2f} | {row['fps']:,.0f} |"
        )
        if pong:
            line += f" {number(row['pong_greedy'], '+.1f')} | {number(row['pong_stochastic'], '+.1f')} |"
        lines.append(line)
    return "\n".join(lines) + "\n", rows


def budget_text(records: dict[str, list[dict[str, Any]]]) -> str:
    """
    The budget of the runs, as the plot titles state it: ``"100,000 env steps"``, ``"60 min of training"`` or
    ``"60 min of training or 1e+07 env steps"`` (``"budgets differ"`` when the runs do not share one).
    """
    budgets = set()
    for runs in records.values():
        for record in runs:
            protocol = record["protocol"]
            steps = f"{protocol['timesteps']:,} env steps"
            minutes = protocol.get("minutes")
            budgets.add(steps if minutes is None else f"{minutes:g} min of training (at most {protocol['timesteps']:,} steps)")
    if len(budgets) == 1:
        return next(iter(budgets))
    if budgets and all("min of training" in budget for budget in budgets):
        minutes = {record["protocol"]["minutes"] for runs in records.values() for record in runs}
        if len(minutes) == 1:
            return f"{next(iter(minutes)):g} min of training"
    return "budgets differ between runs (see summary.md)"


def curve_figures(
    curves: dict[str, list[dict[str, np.ndarray]]],
    threshold: float | None,
    env_id: str = "",
    budget: str | None = None,
    unit: tuple[str, float] | None = None,
    y_label: str = "eval return (deterministic)",
) -> dict[str, Any]:
    """
    The figures of :func:`plot_curves`, ``{file name: matplotlib Figure}`` (close them with ``plt.close``).

    Mean eval return over seeds vs env steps and vs training wall-clock time, each with its pointwise 95%
    percentile-bootstrap CI of the mean over seeds (rliable) as a shaded band; a row with fewer than
    :data:`MIN_SEEDS_FOR_BAND` seeds gets no band. The title names the env, the budget and the seeds; the legend
    the seeds of each row and what the band is (:data:`BAND_LABEL`).

    The curves of the seeds are put on a common grid from 0 to the last point of the longest run, a run that ended
    keeping its final value, so that every line ends at the mean of the final values (the ``final mean`` of
    ``summary.md``) and the wall-time axis is in the unit of the table (:func:`wall_unit`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    unit_name, unit_s = unit or wall_unit(curves)
    counts = sorted({len(runs) for runs in curves.values()})
    if len(counts) == 1:
        seeds = f"{counts[0]} seed{'s' if counts[0] != 1 else ''}"
    else:
        seeds = f"{counts[0]}-{counts[-1]} seeds per algo"
    title = ", ".join(part for part in (env_id or None, budget, seeds) if part)
    figures = {}
    for x_key, x_label, scale, name in (
        ("timesteps", "env steps", 1.0, "returns_vs_steps.png"),
        ("wall_s", f"training wall-clock time ({unit_name})", unit_s, "returns_vs_wall.png"),
    ):
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        banded = False
        for label, runs in curves.items():
            end = max(float(run[x_key][-1]) for run in runs) / scale
            grid = np.linspace(0.0, end, 100)
            # np.interp holds a run's last value after its end: the line ends at the mean of the final values
            values = np.stack([np.interp(grid, run[x_key] / scale, run["mean_return"]) for run in runs])
            if len(runs) >= MIN_SEEDS_FOR_BAND:
                mean, low, high = mean_band(values)
                (line,) = ax.plot(grid, mean, label=f"{label} (mean of {len(runs)} seeds)")
                ax.fill_between(grid, low, high, alpha=0.2, color=line.get_color(), linewidth=0)
                banded = True
            else:
                plural = "s" if len(runs) > 1 else ""
                ax.plot(grid, values.mean(axis=0), label=f"{label} (mean of {len(runs)} seed{plural}, too few for a CI)")
        if threshold is not None and math.isfinite(threshold):
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        handles, _ = ax.get_legend_handles_labels()
        if banded:
            handles.append(Patch(facecolor="gray", alpha=0.2, label=BAND_LABEL))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.legend(handles=handles, fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        figures[name] = fig
    return figures


def plot_curves(
    curves: dict[str, list[dict[str, np.ndarray]]],
    out: str | os.PathLike[str],
    threshold: float | None,
    env_id: str = "",
    budget: str | None = None,
    unit: tuple[str, float] | None = None,
    y_label: str = "eval return (deterministic)",
) -> list[Path]:
    """
    Write ``returns_vs_steps.png`` and ``returns_vs_wall.png`` (:func:`curve_figures`) to ``out``, atomically.

    :param curves: ``{label: [curve per seed]}``
    :param out: folder of the PNGs
    :param threshold: drawn as a dashed line (None or inf: not drawn)
    :param env_id: the comparison's env (title)
    :param budget: the budget, as :func:`budget_text` gives it (title)
    :param unit: wall-time unit (:func:`wall_unit`)
    :param y_label: the y axis label
    :return: the two PNG paths
    """
    import matplotlib.pyplot as plt

    paths = []
    for name, fig in curve_figures(curves, threshold, env_id, budget, unit, y_label).items():
        path = Path(out) / name
        try:
            with atomic_write(path) as file:
                fig.savefig(file, format="png", dpi=110)
        finally:
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


def _evaluation_text(value: tuple[int, int, str | None]) -> str:
    every, episodes, kind = value
    if kind == "pong":
        return (
            f"every {every:,} env steps, the Pong protocol (sb3_reinforce.pong.evaluation): {episodes} whole games per "
            "policy, greedy and stochastic, on held-out seeds, sticky actions 0.25"
        )
    return f"every {every:,} env steps, {episodes} episode(s) on a separate env, deterministic policy"


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
                ("train env", protocol.get("train_env_id", protocol["env_id"])),
                ("timesteps", protocol["timesteps"]),
                ("minutes", protocol.get("minutes")),
                ("resumes", (record.get("result") or {}).get("resumes", 0)),
                ("evaluation", (protocol["eval_freq"], protocol["eval_episodes"], protocol.get("evaluation"))),
                ("versions", versions or "not recorded"),
                ("machine", record.get("machine") or "not recorded"),
            ):
                fields.setdefault(key, {}).setdefault(value, []).append(name)
    lines = ["## Protocol", ""]
    if fields:
        seeds = sorted({record["protocol"]["seed"] for runs in records.values() for record in runs})
        lines += [
            f"- env: {_one_or_all(fields['env'])}",
            f"- trained on: {_one_or_all(fields['train env'])}",
            f"- env steps per run: {_one_or_all(fields['timesteps'], lambda value: f'{value:,}')}"
            + (" at most (the wall-clock budget may stop a run first)" if any(fields["minutes"]) else ""),
            "- wall-clock budget per run: "
            + _one_or_all(fields["minutes"], lambda value: "none" if value is None else f"{value:g} min of training time"),
            "- resumed from a checkpoint: "
            + _one_or_all(fields["resumes"], lambda value: "never" if not value else f"{value} time(s)"),
            "- evaluation: " + _one_or_all(fields["evaluation"], _evaluation_text),
            f"- seeds: {', '.join(str(seed) for seed in seeds)}",
            f"- versions: {_one_or_all(fields['versions'])}",
            f"- machine: {_one_or_all(fields['machine'])}",
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
    env_id: str,
    results: dict[str, list[Path]],
    out: str | os.PathLike[str],
    threshold: float | None = None,
    extra_sections: str = "",
) -> tuple[str, list[Path]]:
    """
    Write ``summary.md`` (table and protocol) and the plots from the finished runs; return the markdown and the
    plot paths. A run that is not finished (:func:`load_run` fails: damaged CSV, missing or mismatched sidecar) is
    named on stderr and in ``summary.md``, and left out.

    :param extra_sections: markdown appended to ``summary.md`` (e.g. where the runs of a Ray cluster ran)
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
    minutes_budget = any(record["protocol"].get("minutes") is not None for runs in records.values() for record in runs)
    unit = wall_unit(curves, minutes_budget)
    pong = any(record["protocol"].get("evaluation") == "pong" for runs in records.values() for record in runs)
    if curves:
        markdown, _ = summarize(curves, threshold, env_id, records=records, unit=unit)
    else:
        markdown = f"# {env_id} comparison\n\nNo finished run to summarize.\n"
    markdown += "\n" + protocol_markdown(records, left_out)
    if extra_sections:
        markdown += "\n" + extra_sections
    with atomic_write(Path(out) / "summary.md") as file:
        file.write(markdown.encode())
    if not curves:
        return markdown, []
    y_label = "Pong score, greedy (Pong protocol)" if pong else "eval return (deterministic)"
    return markdown, plot_curves(curves, out, threshold, env_id, budget_text(records), unit, y_label)
