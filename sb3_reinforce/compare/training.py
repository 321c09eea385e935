"""One run of a comparison: build the model from its zoo entry, train it, evaluate it, write its files."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sb3_reinforce.compare.records import resolve_entry, run_csv_path, run_protocol, run_record_path, write_curve, write_record
from sb3_reinforce.compare.specs import AlgoSpec

__all__ = ["train_and_evaluate"]


def _make_model(spec: AlgoSpec, env_id: str, seed: int, hyperparams_path: str | None = None) -> tuple[Any, Any, Any]:
    """Build (model, train env, eval env) from the zoo entry plus the spec's overrides (:func:`resolve_entry`)."""
    from sb3_reinforce.hyperparams.building import make_model_from_entry

    entry, _ = resolve_entry(spec, env_id, hyperparams_path)
    return make_model_from_entry(spec.algo, env_id, entry, seed=seed, verbose=0, device="cpu")


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
    Train one algorithm x seed and write its evaluation curve to :func:`run_csv_path` and its protocol to the
    sidecar :func:`run_record_path` (both atomically: the CSV first, then the sidecar saying ``complete``).

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
    record = run_protocol(env_id, spec, seed, timesteps, eval_freq, eval_episodes, hyperparams_path)
    # Until the end, the sidecar says the run is not finished (whatever an earlier run left there)
    write_record(run_record_path(final), dict(record, status="running", pid=os.getpid()))
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
    result = write_curve(final, rows)
    write_record(run_record_path(final), dict(record, status="complete", result=result))
    return final
