"""
A whole comparison: every algo spec x seed, the runs already done with the same protocol skipped, the others
trained in worker processes that die with the command.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sb3_reinforce.common.checks import check_number
from sb3_reinforce.compare.checkpoints import CheckpointError, checkpoint_dir, read_checkpoint, remove_checkpoint
from sb3_reinforce.compare.pool import run_in_workers
from sb3_reinforce.compare.records import check_run, run_csv_path, run_protocol, run_record_path
from sb3_reinforce.compare.specs import AlgoSpec
from sb3_reinforce.compare.training import DEFAULT_CHECKPOINT_MINUTES, train_and_evaluate

__all__ = ["ProtocolMismatchError", "run_comparison"]


class ProtocolMismatchError(ValueError):
    """Finished runs in ``--out`` were made with another protocol than the one asked for."""


def run_comparison(
    env_id: str,
    specs: Sequence[AlgoSpec],
    seeds: Sequence[int],
    timesteps: int | None,
    out: str | os.PathLike[str],
    eval_freq: int = 5000,
    eval_episodes: int = 10,
    n_jobs: int = 1,
    hyperparams_path: str | None = None,
    progress: bool = True,
    rerun_changed: bool = False,
    minutes: float | None = None,
    checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES,
    report_only: bool = False,
) -> dict[str, list[Path]]:
    """
    Train and evaluate every spec x seed in ``n_jobs`` processes, skipping the runs already done with the same
    protocol (:func:`check_run`). An unfinished run with a checkpoint of the same protocol is resumed from it
    (named on stderr); another damaged or unfinished run is named on stderr and redone. A finished run made
    with another protocol is never reused: :class:`ProtocolMismatchError` lists what differs, unless
    ``rerun_changed`` (then it is redone). A run whose protocol matches but whose package versions differ is reused,
    with a warning on stderr (``summary.md`` lists the versions of every run).

    :param timesteps: step budget of each run (None: with ``minutes``, each entry's ``n_timesteps``)
    :param rerun_changed: redo the finished runs whose protocol differs instead of refusing
    :param minutes: wall-clock budget of each run's training, in minutes (None: steps only)
    :param checkpoint_minutes: training minutes between two checkpoints of a run
    :param report_only: train nothing and touch no run in ``out``: return the paths of the runs as they are (the
        report leaves out the unfinished ones), e.g. once two commands sharing one ``out`` have both finished.
        Finished runs with another protocol are still refused.
    :return: ``{label: [CSV path per seed]}``
    :raises ProtocolMismatchError: finished runs with another protocol, and ``rerun_changed`` is False
    """
    if timesteps is None and minutes is None:
        raise ValueError("timesteps=None needs a wall-clock budget: give timesteps, minutes or both")
    check_number("timesteps", timesteps, 1, math.inf, integer=True, optional=True)
    check_number("minutes", minutes, 0, math.inf, low_open=True, optional=True)
    check_number("checkpoint_minutes", checkpoint_minutes, 0, math.inf, low_open=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs, changed = [], []
    # train_and_evaluate's arguments that every run of the comparison shares
    shared = {"env_id": env_id, "timesteps": timesteps, "out": out, "eval_freq": eval_freq, "eval_episodes": eval_episodes}
    shared.update(hyperparams_path=hyperparams_path, minutes=minutes, checkpoint_minutes=checkpoint_minutes)
    for spec in specs:
        for seed in seeds:
            path = run_csv_path(out, spec, seed)
            asked = run_protocol(env_id, spec, seed, timesteps, eval_freq, eval_episodes, hyperparams_path, minutes)
            status, details = check_run(path, asked)
            if status == "done":
                if report_only:
                    continue
                # killed after its record said complete, before its checkpoint was removed: nothing to resume
                remove_checkpoint(checkpoint_dir(path))
                if details:
                    print(f"warning: {path} reused, made with other package versions: {'; '.join(details)}", file=sys.stderr)
                continue
            if status == "changed":
                changed.append(f"{path}: {'; '.join(details)}")
                if report_only or not rerun_changed:
                    continue
                print(f"redoing {path} (--rerun-changed): {'; '.join(details)}", file=sys.stderr)
            elif report_only:
                continue  # unfinished: named in the report's left-out list
            elif status == "damaged":
                resumed = _resumable(path, asked["protocol"])
                if resumed:
                    print(f"resuming {path} from its checkpoint: {resumed}", file=sys.stderr)
                else:
                    print(f"redoing {path}: {details[0]}", file=sys.stderr)
            jobs.append({**shared, "spec": spec, "seed": seed})
    if changed and (report_only or not rerun_changed):
        raise ProtocolMismatchError(
            f"{len(changed)} finished run(s) in {out} were made with another protocol and would be mixed with new ones:\n  "
            + "\n  ".join(changed)
            + (
                "\nGive the options they were made with (--report-only trains nothing), or use a new --out."
                if report_only
                else "\nPass --rerun-changed to redo them with the protocol asked for, or use a new --out."
            )
        )
    if report_only:
        return {spec.label: [run_csv_path(out, spec, seed) for seed in seeds] for spec in specs}
    _remove_temporary_files(out, [run_csv_path(out, job["spec"], job["seed"]) for job in jobs])
    _run_jobs(jobs, n_jobs, len(specs) * len(seeds), progress)
    return {spec.label: [run_csv_path(out, spec, seed) for seed in seeds] for spec in specs}


def _resumable(path: Path, protocol: dict[str, Any]) -> str | None:
    """What a run's checkpoint holds (``"N env steps, M min of training"``), if it can be resumed from."""
    if not checkpoint_dir(path).exists():
        return None
    try:
        progress, _ = read_checkpoint(checkpoint_dir(path), protocol)
    except CheckpointError:
        return None  # the run says why when it starts (and starts from 0)
    return f"{progress.num_timesteps:,} env steps, {progress.train_s / 60:.2f} min of training, {progress.episodes:,} episodes"


def _remove_temporary_files(out: Path, csv_paths: Sequence[Path]) -> None:
    """
    Remove what killed runs about to be redone left behind: hidden ``.<name>.*.tmp`` files of interrupted writes,
    and the ``<name>.tmp*`` files of versions before ``atomic_write``. Only the files of the runs being redone are
    touched (two commands sharing one ``--out`` are not guarded against).
    """
    for csv_path in csv_paths:
        for name in (csv_path.name, run_record_path(csv_path).name):
            for stale in [*out.glob(f".{glob.escape(name)}.*.tmp"), *out.glob(f"{glob.escape(name)}.tmp*")]:
                with contextlib.suppress(OSError):
                    stale.unlink()


def _run_jobs(todo: list[dict[str, Any]], n_jobs: int, n_total: int, progress: bool) -> None:
    """:func:`train_and_evaluate` every job (in ``n_jobs`` workers), with a progress bar of all ``n_total`` runs."""
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

        def started(job: dict[str, Any]) -> None:
            bar.update(task, description=f"training {job['spec'].label} seed {job['seed']}")

        def done(job: dict[str, Any], _: Any) -> None:
            bar.update(task, advance=1, description=f"done {job['spec'].label} seed {job['seed']}")

        run_in_workers(train_and_evaluate, todo, n_jobs, on_start=started, on_done=done)
