"""
One run of a comparison: build the model from its zoo entry, train it (to a step budget, a wall-clock budget or
both), evaluate it, checkpoint it every few minutes of training, resume it from its checkpoint, write its files.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sb3_reinforce.compare.checkpoints import (
    CheckpointError,
    RunProgress,
    checkpoint_dir,
    read_checkpoint,
    remove_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from sb3_reinforce.compare.records import resolve_entry, run_csv_path, run_protocol, run_record_path, write_curve, write_record
from sb3_reinforce.compare.specs import AlgoSpec

__all__ = ["DEFAULT_CHECKPOINT_MINUTES", "RESUME_SEED_STRIDE", "train_and_evaluate"]

#: Training minutes between two checkpoints of a run.
DEFAULT_CHECKPOINT_MINUTES = 5.0
#: A resumed run reseeds its model and envs with ``seed + RESUME_SEED_STRIDE * resumes``: the games after a restart
#: are not a replay of the first ones.
RESUME_SEED_STRIDE = 1_000_003


def _make_model(
    spec: AlgoSpec, env_id: str, seed: int, hyperparams_path: str | None = None, evaluation_env: bool = True
) -> tuple[Any, Any, Any]:
    """Build (model, train env, eval env) from the zoo entry plus the spec's overrides (:func:`resolve_entry`)."""
    from sb3_reinforce.hyperparams.building import make_model_from_entry

    entry, _ = resolve_entry(spec, env_id, hyperparams_path)
    return make_model_from_entry(
        spec.algo, spec.train_env_id(env_id), entry, seed=seed, verbose=0, device="cpu", evaluation_env=evaluation_env
    )


def _run_callback(
    progress: RunProgress,
    eval_freq: int,
    evaluate: Callable[[int, float], None],
    checkpoint: Callable[[], None],
    budget_s: float | None,
    checkpoint_s: float,
) -> Any:
    """
    The callback of a run: counts episodes, evaluates every ``eval_freq`` env steps, checkpoints every
    ``checkpoint_s`` seconds of training and stops training once ``budget_s`` seconds of it have passed. Its clock
    counts training only: evaluations and checkpoints pause it. It is checked at every env step, so a run stops
    within one env step (or one update, which runs between steps) of its budget.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    class RunCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.started: float | None = None

        def train_s(self) -> float:
            return progress.train_s + (time.perf_counter() - self.started if self.started is not None else 0.0)

        def pause(self) -> None:
            progress.train_s = self.train_s()
            self.started = None

        def _on_training_start(self) -> None:
            self.started = time.perf_counter()

        def _on_step(self) -> bool:
            # SB3's Monitor / VecMonitor put "episode" in the info of an episode's last step
            progress.episodes += sum(1 for info in self.locals.get("infos", ()) if "episode" in info)
            if self.num_timesteps >= progress.next_eval:
                self.pause()
                evaluate(self.num_timesteps, progress.train_s)
                while progress.next_eval <= self.num_timesteps:
                    progress.next_eval += eval_freq
                self.started = time.perf_counter()
            train_s = self.train_s()
            if budget_s is not None and train_s >= budget_s:
                self.pause()
                return False
            if train_s - progress.checkpoint_s >= checkpoint_s:
                self.pause()
                checkpoint()
                progress.checkpoint_s = progress.train_s
                self.started = time.perf_counter()
            return True

        def _on_training_end(self) -> None:
            if self.started is not None:
                self.pause()

    return RunCallback()


def train_and_evaluate(
    env_id: str,
    spec: AlgoSpec,
    seed: int,
    timesteps: int | None,
    out: str | os.PathLike[str],
    eval_freq: int = 5000,
    eval_episodes: int = 10,
    hyperparams_path: str | None = None,
    minutes: float | None = None,
    checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES,
) -> Path:
    """
    Train one algorithm x seed and write its evaluation curve to :func:`run_csv_path` and its protocol to the
    sidecar :func:`run_record_path` (both atomically: the CSV first, then the sidecar saying ``complete``).

    The curve has a first point at 0 steps, then one every ``eval_freq`` env steps (at the first callback step at
    or after it) and one at the end. ``wall_s`` is training time only: evaluations and checkpoints pause the clock.
    Training stops at ``timesteps`` env steps or, with ``minutes``, once that much training time has passed,
    whichever comes first. On ``KarpathyPong-v0`` every evaluation is the Pong protocol
    (:func:`sb3_reinforce.compare.pong.pong_evaluation`: ``eval_episodes`` >= 10 games on held-out seeds, sticky
    actions 0.25, greedy and stochastic): the curve holds the greedy score, the sidecar's ``result["pong"]`` the
    whole final evaluation.

    Every ``checkpoint_minutes`` of training the run writes a checkpoint (:mod:`sb3_reinforce.compare.checkpoints`).
    A run started again with the same protocol after a kill continues from it: the model, its ``num_timesteps``,
    the env's ``VecNormalize`` statistics, the training time, episodes and evaluation rows so far; the steps after
    the checkpoint are redone, so each step of the curve is counted once. The checkpoint is removed once the run is
    complete.

    :param timesteps: step budget (None: the entry's ``n_timesteps``)
    :param minutes: wall-clock budget of training, in minutes (None: none)
    :param checkpoint_minutes: training minutes between checkpoints
    :return: the CSV path
    """
    import torch as th
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    from sb3_reinforce.compare.pong import is_pong, pong_evaluation

    th.set_num_threads(1)
    final = run_csv_path(out, spec, seed)
    record = run_protocol(env_id, spec, seed, timesteps, eval_freq, eval_episodes, hyperparams_path, minutes)
    protocol = record["protocol"]
    pong, train_env_id = is_pong(env_id), spec.train_env_id(env_id)
    directory = checkpoint_dir(final)
    model, env, eval_env = _make_model(spec, env_id, seed, hyperparams_path, evaluation_env=not pong)
    progress, paths = RunProgress(next_eval=eval_freq), None
    if directory.exists():
        try:
            progress, paths = read_checkpoint(directory, protocol)
        except CheckpointError as error:
            print(f"{final}: checkpoint not used, the run starts from 0: {error}", file=sys.stderr)
            remove_checkpoint(directory)
    # Until the end, the sidecar says the run is not finished (whatever an earlier run left there)
    write_record(run_record_path(final), dict(record, status="running", pid=os.getpid()))
    if paths is not None:
        try:
            model = restore_checkpoint(model, env, paths)
        except CheckpointError as error:
            # Its files check out but do not load (crafted, or from another version): named, and the run redone
            print(f"{final}: checkpoint not used, the run starts from 0: {error}", file=sys.stderr)
            remove_checkpoint(directory)
            for built in (env, eval_env):
                if built is not None:
                    built.close()
            model, env, eval_env = _make_model(spec, env_id, seed, hyperparams_path, evaluation_env=not pong)
            progress, paths = RunProgress(next_eval=eval_freq), None
        else:
            progress.resumes += 1
            model.set_random_seed(seed + RESUME_SEED_STRIDE * progress.resumes)

    pong_results: list[Any] = []

    def evaluate(steps: int, wall: float) -> None:
        if pong:
            # The Pong protocol, greedy and stochastic; the curve shows the greedy score, the sidecar the last one whole
            resume_seeds = [seed + RESUME_SEED_STRIDE * k for k in range(1, progress.resumes + 1)]
            pong_results[:] = [pong_evaluation(model, train_env_id, eval_episodes, resume_seeds)]
            mean, std = pong_results[0].greedy_mean, pong_results[0].greedy_std
        else:
            if isinstance(env, VecNormalize):
                sync_envs_normalization(env, eval_env)
            mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
        progress.rows.append((int(steps), float(wall), float(mean), float(std)))

    def checkpoint() -> None:
        save_checkpoint(directory, protocol, model, env, progress)

    budget_s = None if minutes is None else 60.0 * minutes
    if not progress.rows:
        evaluate(0, 0.0)
    remaining = protocol["timesteps"] - model.num_timesteps
    if remaining > 0 and (budget_s is None or progress.train_s < budget_s):
        callback = _run_callback(progress, eval_freq, evaluate, checkpoint, budget_s, 60.0 * checkpoint_minutes)
        model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=paths is None)
    if progress.rows[-1][0] != model.num_timesteps or (pong and not pong_results):
        if progress.rows[-1][0] == model.num_timesteps:
            progress.rows.pop()  # resumed at the end: that evaluation again, with its whole Pong result
        evaluate(model.num_timesteps, progress.train_s)
    result_extra: dict[str, Any] = dict(
        steps=int(model.num_timesteps),
        episodes=int(progress.episodes),
        wall_s=float(progress.train_s),
        stopped_by="minutes" if budget_s is not None and progress.train_s >= budget_s else "timesteps",
        resumes=int(progress.resumes),
    )
    if pong:
        result_extra["pong"] = pong_results[0].to_dict()
    env.close()
    if eval_env is not None:
        eval_env.close()
    result = write_curve(final, progress.rows)
    write_record(run_record_path(final), dict(record, status="complete", result={**result, **result_extra}))
    remove_checkpoint(directory)
    return final
