"""
Compare REINFORCE (and variants of it) with PPO, A2C, ... under one evaluation protocol.

Every algorithm x seed is trained with its zoo hyperparameters (REINFORCE: this package's
``hyperparams/reinforce.yml``; other algorithms: rl_zoo3's own files, loaded safely by
:func:`sb3_reinforce.hyperparams.load_hyperparams`) and evaluated on a separate env, deterministically,
every ``--eval-freq`` env steps for ``--eval-episodes`` episodes. Evaluation time is not counted as training time.

Usage::

    python -m sb3_reinforce.compare --env CartPole-v1 --algos reinforce ppo a2c --seeds 5 --timesteps 100000 \\
        --out runs/cartpole --n-jobs 2
    python -m sb3_reinforce.compare variance --env CartPole-v1 --variants total reward_to_go reward_to_go+value

Algorithm syntax (``--algos``)::

    <algo>                                   an rl_zoo3 algorithm (ppo, a2c, ...) or reinforce, zoo settings
    reinforce[:<return_mode>][+<baseline>][+norm|+nonorm]

``return_mode`` is ``total`` or ``reward_to_go``; ``baseline`` is ``none``, ``mean``, ``optimal`` or ``value``;
``norm``/``nonorm`` switch ``normalize_advantage`` on/off. Parts left out keep the zoo entry's value, e.g.
``reinforce:total``, ``reinforce:reward_to_go+value``, ``reinforce:total+mean+norm``, ``reinforce+nonorm``.

Output (in ``--out``): one CSV per run (``<label>__seed<k>.csv``: timesteps, wall seconds of training,
mean and std of the evaluation return), ``summary.md`` and the plots ``returns_vs_steps.png`` and
``returns_vs_wall.png``. A finished run's CSV is written under a temporary name and renamed at the end, so a
run whose CSV exists is done and is skipped when the command is run again; a killed run restarts from scratch.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

RETURN_MODES = ("total", "reward_to_go")
BASELINE_NAMES = ("none", "mean", "optimal", "value")
NORM_FLAGS = ("norm", "nonorm")
CSV_FIELDS = ("timesteps", "wall_s", "mean_return", "std_return")


class AlgoSpecError(ValueError):
    """A ``--algos`` token that does not follow the syntax."""


@dataclasses.dataclass(frozen=True)
class AlgoSpec:
    """
    One row of the comparison: an algorithm and the hyperparameters that override its zoo entry.

    :param label: the token as given (used in file names and tables)
    :param algo: ``"reinforce"`` or an rl_zoo3 algorithm name
    :param overrides: hyperparameters replacing the zoo entry's (``return_mode``, ``baseline``,
        ``normalize_advantage``)
    """

    label: str
    algo: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def file_label(self) -> str:
        return self.label.replace(":", "-").replace("+", "_")


def parse_algo_spec(token: str) -> AlgoSpec:
    """
    Parse ``reinforce[:<return_mode>][+<baseline>][+norm|+nonorm]`` or a plain algorithm name.

    :param token: the ``--algos`` token
    :return: the spec
    :raises AlgoSpecError: naming the bad part and the allowed values
    """
    from rl_zoo3 import ALGOS

    text = token.strip()
    head, *mods = text.split("+")
    algo, sep, mode = head.partition(":")
    algo = algo.lower()
    if algo != "reinforce":
        if sep or mods:
            raise AlgoSpecError(
                f"{token!r}: only reinforce takes ':<return_mode>' and '+<option>' parts; "
                f"{algo!r} is used with its zoo settings"
            )
        if algo not in ALGOS:
            raise AlgoSpecError(f"{token!r}: unknown algorithm {algo!r}; use reinforce or one of {', '.join(sorted(ALGOS))}")
        return AlgoSpec(label=algo, algo=algo)
    overrides: dict[str, Any] = {}
    if sep:
        if mode not in RETURN_MODES:
            raise AlgoSpecError(f"{token!r}: return mode {mode!r} is not allowed; use one of {', '.join(RETURN_MODES)}")
        overrides["return_mode"] = mode
    for mod in mods:
        if mod in BASELINE_NAMES:
            key, value = "baseline", (None if mod == "none" else mod)
        elif mod in NORM_FLAGS:
            key, value = "normalize_advantage", mod == "norm"
        else:
            raise AlgoSpecError(
                f"{token!r}: option {mod!r} is not allowed; use a baseline ({', '.join(BASELINE_NAMES)}) "
                f"or {' / '.join(NORM_FLAGS)}"
            )
        if key in overrides:
            raise AlgoSpecError(f"{token!r}: {key} is given twice")
        overrides[key] = value
    return AlgoSpec(label=text, algo="reinforce", overrides=overrides)


def run_csv_path(out: str | os.PathLike[str], spec: AlgoSpec, seed: int) -> Path:
    """Where the evaluation curve of one run is written (its existence marks the run as done)."""
    return Path(out) / f"{spec.file_label}__seed{seed}.csv"


def _make_model(spec: AlgoSpec, env_id: str, seed: int, hyperparams_path: str | None = None) -> tuple[Any, Any, Any]:
    """Build (model, train env, eval env) from the zoo entry plus the spec's overrides."""
    from rl_zoo3 import ALGOS
    from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

    from sb3_reinforce import REINFORCE
    from sb3_reinforce.envs import make_zoo_vec_env
    from sb3_reinforce.hyperparams import build_model_kwargs, load_hyperparams

    entry = load_hyperparams(spec.algo, env_id, path=hyperparams_path if spec.algo == "reinforce" else None)
    entry.update(spec.overrides)
    if spec.algo == "reinforce" and entry.get("baseline") != "value":
        entry.pop("gae_lambda", None)  # GAE needs the value baseline
    kwargs, zoo = build_model_kwargs(entry)
    if zoo["vec_env_wrapper"] is not None:
        raise NotImplementedError("vec_env_wrapper entries are not supported by the comparison tool")

    def make(n_envs: int, env_seed: int) -> Any:
        env = make_zoo_vec_env(
            env_id,
            n_envs=n_envs,
            seed=env_seed,
            wrapper_class=zoo["env_wrapper"],
            env_kwargs=zoo["env_kwargs"],
            monitor_kwargs=zoo["monitor_kwargs"],
        )
        if zoo["frame_stack"]:
            env = VecFrameStack(env, int(zoo["frame_stack"]))
        return env

    env = make(zoo["n_envs"], seed)
    eval_env = make(1, seed + 10_000)
    if zoo["normalize"] is not None:
        env = VecNormalize(env, **zoo["normalize"])
        eval_env = VecNormalize(eval_env, training=False, **{**zoo["normalize"], "norm_reward": False})
    algo_class = REINFORCE if spec.algo == "reinforce" else ALGOS[spec.algo]
    model = algo_class(env=env, seed=seed, verbose=0, device="cpu", **kwargs)
    return model, env, eval_env


def train_and_evaluate(
    env_id: str,
    spec: AlgoSpec,
    seed: int,
    timesteps: int,
    out: str | os.PathLike[str],
    eval_freq: int = 5000,
    eval_episodes: int = 10,
    hyperparams_path: str | None = None,
) -> Path:
    """
    Train one algorithm x seed and write its evaluation curve (atomically) to :func:`run_csv_path`.

    The curve has a first point at 0 steps, then one every ``eval_freq`` env steps (at the first callback step at
    or after it) and one at the end. ``wall_s`` is training time only: evaluations pause the clock.

    :return: the CSV path
    """
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    th.set_num_threads(1)
    final = run_csv_path(out, spec, seed)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    model, env, eval_env = _make_model(spec, env_id, seed, hyperparams_path)
    rows: list[tuple[int, float, float, float]] = []

    def evaluate(steps: int, wall: float) -> None:
        if isinstance(env, VecNormalize):
            sync_envs_normalization(env, eval_env)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
        rows.append((steps, wall, float(mean), float(std)))

    class EvalCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.train_time = 0.0
            self.next_eval = eval_freq
            self.started = 0.0

        def _on_training_start(self) -> None:
            self.started = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.train_time += time.perf_counter() - self.started
                evaluate(self.num_timesteps, self.train_time)
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += eval_freq
                self.started = time.perf_counter()
            return True

        def _on_training_end(self) -> None:
            self.train_time += time.perf_counter() - self.started

    evaluate(0, 0.0)
    callback = EvalCallback()
    model.learn(total_timesteps=timesteps, callback=callback)
    if rows[-1][0] != model.num_timesteps:
        evaluate(model.num_timesteps, callback.train_time)
    env.close()
    eval_env.close()
    with open(tmp, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_FIELDS)
        writer.writerows(rows)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, final)
    return final


def _worker(kwargs: dict[str, Any]) -> str:
    return str(train_and_evaluate(**kwargs))


def read_curve(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read one run's CSV as ``{column: array}``."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return {key: np.array([float(row[key]) for row in rows]) for key in CSV_FIELDS}


def run_comparison(
    env_id: str,
    specs: Sequence[AlgoSpec],
    seeds: Sequence[int],
    timesteps: int,
    out: str | os.PathLike[str],
    eval_freq: int = 5000,
    eval_episodes: int = 10,
    n_jobs: int = 1,
    hyperparams_path: str | None = None,
    progress: bool = True,
) -> dict[str, list[Path]]:
    """
    Train and evaluate every spec x seed (skipping runs already done), in ``n_jobs`` processes.

    :return: ``{label: [CSV path per seed]}``
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.csv.tmp*"):
        stale.unlink()  # left by a killed run: it restarts from scratch
    todo = []
    for spec in specs:
        for seed in seeds:
            if not run_csv_path(out, spec, seed).exists():
                todo.append(
                    dict(
                        env_id=env_id,
                        spec=spec,
                        seed=seed,
                        timesteps=timesteps,
                        out=out,
                        eval_freq=eval_freq,
                        eval_episodes=eval_episodes,
                        hyperparams_path=hyperparams_path,
                    )
                )
    n_total = len(specs) * len(seeds)
    _run_jobs(todo, n_jobs, n_total, progress)
    return {spec.label: [run_csv_path(out, spec, seed) for seed in seeds] for spec in specs}


def _run_jobs(todo: list[dict[str, Any]], n_jobs: int, n_total: int, progress: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        disable=not progress,
    ) as bar:
        task = bar.add_task("", total=n_total, completed=n_total - len(todo))

        def done(job: dict[str, Any]) -> None:
            bar.update(task, advance=1, description=f"done {job['spec'].label} seed {job['seed']}")

        if n_jobs <= 1:
            for job in todo:
                bar.update(task, description=f"training {job['spec'].label} seed {job['seed']}")
                _worker(job)
                done(job)
            return
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures: dict[Future, dict[str, Any]] = {pool.submit(_worker, job): job for job in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                    done(futures[future])


# summary ----------------------------------------------------------------------------------------------


def _iqm(scores: np.ndarray) -> float:
    from scipy.stats import trim_mean

    return float(trim_mean(scores, 0.25))


def interval_estimates(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """
    IQM and mean of final scores across seeds with 95% percentile-bootstrap CIs (rliable's
    ``get_interval_estimates``).

    :param scores: one final score per seed
    :param reps: bootstrap resamples
    :param seed: seed of the bootstrap
    :return: ``{"iqm": (point, low, high), "mean": (...)}``
    """
    from rliable import library as rly

    scores = np.asarray(scores, dtype=float)
    names = ("iqm", "mean")
    # rliable draws its resamples from numpy's global generator: seed it for reproducible CIs, then restore it
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        points, cis = rly.get_interval_estimates(
            {"x": scores[:, None]}, lambda x: np.array([_iqm(x.ravel()), np.mean(x)]), reps=reps
        )
    finally:
        np.random.set_state(state)
    return {name: (float(points["x"][i]), float(cis["x"][0, i]), float(cis["x"][1, i])) for i, name in enumerate(names)}


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


def _band(values: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and 95% bootstrap CI, per column."""
    rng = np.random.default_rng(seed)
    boot = values[rng.integers(0, len(values), size=(reps, len(values)))].mean(axis=1)
    return values.mean(axis=0), np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)


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
            mean, low, high = _band(values)
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
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def default_threshold(env_id: str) -> float:
    """The env's ``reward_threshold`` (inf when it has none)."""
    import gymnasium as gym

    value = gym.spec(env_id).reward_threshold
    return math.inf if value is None else float(value)


def write_report(
    env_id: str, results: dict[str, list[Path]], out: str | os.PathLike[str], threshold: float | None = None
) -> tuple[str, list[Path]]:
    """Write ``summary.md`` and the plots from the run CSVs; return the markdown and the plot paths."""
    threshold = default_threshold(env_id) if threshold is None else threshold
    curves = {label: [read_curve(path) for path in paths] for label, paths in results.items()}
    markdown, _ = summarize(curves, threshold, env_id)
    (Path(out) / "summary.md").write_text(markdown)
    return markdown, plot_curves(curves, out, threshold)


# CLI --------------------------------------------------------------------------------------------------


def _algo_type(token: str) -> AlgoSpec:
    try:
        return parse_algo_spec(token)
    except AlgoSpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sb3-reinforce-compare",
        description=__doc__.split("\n\n")[0].strip() + " Sub-command 'variance': gradient-variance diagnostic.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "--algos syntax: <algo> (rl_zoo3 name or reinforce, zoo settings) or "
            "reinforce[:<return_mode>][+<baseline>][+norm|+nonorm] with return_mode in {total, reward_to_go}, "
            "baseline in {none, mean, optimal, value}; e.g. reinforce:total reinforce:reward_to_go+value "
            "reinforce:total+mean+norm ppo a2c"
        ),
    )
    parser.add_argument("--env", default="CartPole-v1", help="environment id")
    parser.add_argument("--algos", nargs="+", type=_algo_type, default=["reinforce", "ppo", "a2c"], help="rows")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    parser.add_argument("--timesteps", type=int, default=100_000, help="env steps per run")
    parser.add_argument("--out", default="runs/compare", help="output folder")
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel processes")
    parser.add_argument("--eval-freq", type=int, default=5000, help="evaluate every that many env steps")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation")
    parser.add_argument("--threshold", type=float, default=None, help="return threshold (default: env's)")
    parser.add_argument("--conf-file", default=None, help="REINFORCE hyperparameter file (default: the package's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "variance":
        from sb3_reinforce.variance import main as variance_main

        return variance_main(argv[1:])
    args = build_parser().parse_args(argv)
    specs = [spec if isinstance(spec, AlgoSpec) else parse_algo_spec(spec) for spec in args.algos]
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"--algos: duplicate rows {labels}")
    results = run_comparison(
        args.env,
        specs,
        list(range(args.seeds)),
        args.timesteps,
        args.out,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        n_jobs=args.n_jobs,
        hyperparams_path=args.conf_file,
        progress=not args.no_progress,
    )
    markdown, _ = write_report(args.env, results, args.out, args.threshold)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
