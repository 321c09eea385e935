"""
Pong throughput, in env steps per second, measured in one run on the same machine, sticky actions 0.25 in all:

(a) ale-py's ``AtariVectorEnv`` alone with random UP/DOWN actions, same number of envs: the limit. Its
    configuration is the cheapest that gives what the preprocessing reads: full 210x160 RGB frames (the red
    channel), frameskip 4, one frame, no max-pooling, no resizing (see ``karpathy_reference._make_raw_vector_env``);
    ``--grayscale-limit`` also measures grayscale frames, for comparison;
(b) a numpy re-implementation of Karpathy's single-env training loop (the reference), with numpy's default BLAS
    threading (as a user runs it) and with one BLAS thread;
(c) full REINFORCE training, :func:`sb3_reinforce.pong.karpathy.karpathy_pong` ``.learn()``: collection, policy
    forward passes and updates all included, and the bytes its rollout buffer uses per stored step.

The last line printed is ``ratio_vs_reference=<c/b default threads> ratio_vs_reference_1thread=<c/b one thread>
ratio_vs_limit=<c/a> bytes_per_step=<buffer bytes per stored step>``. On a busy machine the absolute figures move
together; compare the ratios of one run, and use ``--rounds`` to see their spread.

.. code-block:: bash

    python benchmarks/pong_throughput.py --n-envs 16 --steps 48000
"""

import argparse
import pathlib
import statistics
import sys
import time
from typing import Any

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from karpathy_reference import STICKY_ACTIONS, raw_vector_env_throughput, run_reference

from sb3_reinforce.common.buffers import EpisodeRolloutBuffer, SparseTernaryRolloutBuffer, TernaryPackedRolloutBuffer
from sb3_reinforce.pong.karpathy import karpathy_pong

#: ``--buffer`` choices: the zoo entry's rollout buffer, or one given explicitly
BUFFERS: dict[str, type[EpisodeRolloutBuffer] | None] = {
    "entry": None,
    "sparse": SparseTernaryRolloutBuffer,
    "packed": TernaryPackedRolloutBuffer,
}


class _BufferBytes(BaseCallback):
    """Records the rollout buffer's bytes per stored step at the end of each collection (the buffer at its fullest)."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[float] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.samples.append(float(self.model.rollout_buffer.stored_bytes_per_step))


def reinforce_throughput(
    n_envs: int, n_steps: int, n_episodes: int | None, torch_threads: int, buffer: str = "entry", seed: int = 0
) -> tuple[float, float, str]:
    """
    Env steps per second of REINFORCE training with the Karpathy configuration, every cost included.

    :param n_envs: number of Pong games
    :param n_steps: env steps to train for (all envs together)
    :param n_episodes: episodes per update (None: the zoo entry's)
    :param torch_threads: torch intra-op threads
    :param buffer: a key of :data:`BUFFERS` (``"entry"``: the zoo entry's rollout buffer)
    :param seed: seed
    :return: env steps per second, mean bytes per stored step of the rollout buffer, the buffer's class name
    """
    if buffer not in BUFFERS:
        raise ValueError(f"buffer must be one of {sorted(BUFFERS)}, got {buffer!r}")
    th.set_num_threads(torch_threads)
    overrides: dict[str, Any] = {} if n_episodes is None else {"n_episodes": n_episodes}
    if BUFFERS[buffer] is not None:
        overrides["rollout_buffer_class"] = BUFFERS[buffer]
    model = karpathy_pong(
        n_envs=n_envs, seed=seed, env_kwargs=dict(repeat_action_probability=STICKY_ACTIONS), **overrides
    )
    callback = _BufferBytes()
    start = time.perf_counter()
    model.learn(n_steps, callback=callback)
    elapsed = time.perf_counter() - start
    samples = callback.samples or [float(model.rollout_buffer.stored_bytes_per_step)]
    return model.num_timesteps / elapsed, statistics.mean(samples), type(model.rollout_buffer).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=48_000, help="env steps per measurement (all envs together)")
    parser.add_argument("--reference-steps", type=int, default=10_000, help="env steps of the single-env reference loop")
    parser.add_argument("--n-episodes", type=int, default=None, help="episodes per update for (c) (default: the zoo entry's)")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--buffer", choices=sorted(BUFFERS), default="entry", help="rollout buffer of (c)")
    parser.add_argument("--grayscale-limit", action="store_true", help="also time the emulator with grayscale frames")
    parser.add_argument("--rounds", type=int, default=1, help="measure everything this many times, in turn")
    args = parser.parse_args()

    ratios: dict[str, list[float]] = {"reference": [], "reference_1thread": [], "limit": []}
    for round_index in range(args.rounds):
        prefix = f"[round {round_index + 1}/{args.rounds}] " if args.rounds > 1 else ""
        limit = raw_vector_env_throughput(args.n_envs, args.steps // args.n_envs)
        print(f"{prefix}(a) raw AtariVectorEnv, RGB, {args.n_envs} envs, random actions: {limit:,.0f} steps/s", flush=True)
        if args.grayscale_limit:
            gray = raw_vector_env_throughput(args.n_envs, args.steps // args.n_envs, grayscale=True)
            print(f"{prefix}    for comparison, grayscale frames: {gray:,.0f} steps/s", flush=True)
        reference = run_reference(args.reference_steps, seed=0, blas_threads=None)
        print(f"{prefix}(b) Karpathy numpy loop, 1 env, default BLAS threading: {reference:,.0f} steps/s", flush=True)
        reference_1 = run_reference(args.reference_steps, seed=0, blas_threads=1)
        print(f"{prefix}(b1) Karpathy numpy loop, 1 env, one BLAS thread: {reference_1:,.0f} steps/s", flush=True)
        training, bytes_per_step, buffer_name = reinforce_throughput(
            args.n_envs, args.steps, args.n_episodes, args.torch_threads, args.buffer
        )
        print(
            f"{prefix}(c) REINFORCE Karpathy training, {args.n_envs} envs, {args.n_episodes or 'zoo'} episodes/update, "
            f"{args.torch_threads} torch thread(s), {buffer_name}: {training:,.0f} steps/s, "
            f"{bytes_per_step:,.0f} buffer bytes per stored step",
            flush=True,
        )
        ratios["reference"].append(training / reference)
        ratios["reference_1thread"].append(training / reference_1)
        ratios["limit"].append(training / limit)
        print(
            f"{prefix}ratio_vs_reference={training / reference:.3f} ratio_vs_reference_1thread={training / reference_1:.3f} "
            f"ratio_vs_limit={training / limit:.3f} bytes_per_step={bytes_per_step:.1f}",
            flush=True,
        )
    if args.rounds > 1:
        summary = " ".join(
            f"{name}: {min(v):.2f}-{max(v):.2f} (median {statistics.median(v):.2f})" for name, v in ratios.items()
        )
        print(f"ratios over {args.rounds} rounds, {summary}")


if __name__ == "__main__":
    main()
