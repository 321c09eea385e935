"""
Pong throughput, in env steps per second, measured in one run on the same machine, sticky actions 0.25 in all:

(a) ale-py's ``AtariVectorEnv`` alone with random UP/DOWN actions, same number of envs: the limit. Its
    configuration is the cheapest that gives what the preprocessing reads: full 210x160 RGB frames (the red
    channel), frameskip 4, one frame, no max-pooling, no resizing (see ``karpathy_reference._make_raw_vector_env``);
    ``--grayscale-limit`` also measures grayscale frames, for comparison;
(b) a numpy re-implementation of Karpathy's single-env training loop (the reference), with numpy's default BLAS
    threading (as a user runs it) and with one BLAS thread;
(c) full REINFORCE training, :func:`sb3_reinforce.pong.karpathy.karpathy_pong` ``.learn()``: collection, policy
    forward passes and updates all included, and the bytes its rollout buffer uses per stored step; with
    ``--profile`` also where the time of (c) goes (see :class:`TrainingProfile`).

The last line printed is ``ratio_vs_reference=<c/b default threads> ratio_vs_reference_1thread=<c/b one thread>
ratio_vs_limit=<c/a> bytes_per_step=<buffer bytes per stored step>``. On a busy machine the absolute figures move
together; compare the ratios of one run, and use ``--rounds`` to see their spread.

.. code-block:: bash

    python benchmarks/pong_throughput.py --n-envs 16 --steps 48000
    python benchmarks/pong_throughput.py --n-envs 16 --steps 48000 --profile  # and where the time of (c) goes
"""

import argparse
import os
import pathlib
import statistics
import sys
import time
from typing import Any, NamedTuple

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from karpathy_reference import STICKY_ACTIONS, raw_vector_env_throughput, run_reference

from sb3_reinforce.common.buffers import EpisodeRolloutBuffer, SparseTernaryRolloutBuffer, TernaryPackedRolloutBuffer
from sb3_reinforce.compare import machine_description
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


class TrainingProfile(NamedTuple):
    """
    Where the wall time and CPU of a training run go, per env step. CPU times (``time.thread_time`` of the main
    thread, ``time.process_time`` minus it for the others) move much less with the load of the machine than wall
    times (on the shared 2-core machine, by about 20% between runs), so compare them within one run.

    :param outside_emulator: fraction of the wall time the main thread spends outside the emulator's ``send`` and
        ``recv`` (policy, preprocessing, buffer, callbacks, updates): what overlapping could hide, at most
    :param main_cpu_us: CPU of the main thread outside ``send``/``recv``, microseconds per env step
    :param emulator_cpu_us: CPU of the other threads (ale-py's emulator threads; torch runs on the main thread
        with one torch thread), microseconds per env step; it includes the emulator threads' spin-waiting
    :param overlap_bound: speed-up of a perfect overlap of the main thread's work with emulation on this machine's
        cores, from the CPU times: ``(main + emulator / cores) / max(main, (main + emulator) / cores)``; an upper
        bound, reached only if splitting the work costs nothing and no step has to wait for a callback
    """

    outside_emulator: float
    main_cpu_us: float
    emulator_cpu_us: float
    overlap_bound: float


class TrainingThroughput(NamedTuple):
    """
    Result of :func:`reinforce_throughput`.

    :param steps_per_second: env steps per second, every cost included
    :param bytes_per_step: mean bytes per stored step of the rollout buffer
    :param buffer_name: the rollout buffer's class name
    :param profile: where the time goes (None unless asked for)
    """

    steps_per_second: float
    bytes_per_step: float
    buffer_name: str
    profile: TrainingProfile | None


class _EmulatorTimer:
    """
    Wall time and main-thread CPU spent in the emulator's ``send``/``recv``, by wrapping the methods of one
    ``AtariVectorEnv`` instance (the benchmark's own; nothing else is patched).

    :param ale_env: the ``AtariVectorEnv`` to time
    """

    def __init__(self, ale_env: Any) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        for name in ("send", "recv"):
            setattr(ale_env, name, self._timed(getattr(ale_env, name)))

    def _timed(self, method: Any) -> Any:
        def timed(*args: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return method(*args)
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.thread_time() - cpu

        return timed


def reinforce_throughput(
    n_envs: int,
    n_steps: int,
    n_episodes: int | None,
    torch_threads: int,
    buffer: str = "entry",
    seed: int = 0,
    profile: bool = False,
    emulator_threads: int = 0,
) -> TrainingThroughput:
    """
    Env steps per second of REINFORCE training with the Karpathy configuration, every cost included.

    :param n_envs: number of Pong games
    :param n_steps: env steps to train for (all envs together)
    :param n_episodes: episodes per update (None: the zoo entry's)
    :param torch_threads: torch intra-op threads
    :param buffer: a key of :data:`BUFFERS` (``"entry"``: the zoo entry's rollout buffer)
    :param seed: seed
    :param profile: also measure where the time goes (:class:`TrainingProfile`; timing ``send``/``recv`` adds a few
        microseconds per vector step)
    :param emulator_threads: the emulator's worker threads (``PongVecEnv(num_threads=...)``; 0: ale-py's choice)
    :return: the speed, the buffer's bytes per stored step and class name, and the profile if asked for
    """
    if buffer not in BUFFERS:
        raise ValueError(f"buffer must be one of {sorted(BUFFERS)}, got {buffer!r}")
    th.set_num_threads(torch_threads)
    overrides: dict[str, Any] = {} if n_episodes is None else {"n_episodes": n_episodes}
    if BUFFERS[buffer] is not None:
        overrides["rollout_buffer_class"] = BUFFERS[buffer]
    env_kwargs = dict(repeat_action_probability=STICKY_ACTIONS, num_threads=emulator_threads)
    model = karpathy_pong(n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, **overrides)
    callback = _BufferBytes()
    timer = _EmulatorTimer(model.get_env().unwrapped._ale_env) if profile else None  # type: ignore[union-attr]
    start, main_cpu, process_cpu = time.perf_counter(), time.thread_time(), time.process_time()
    model.learn(n_steps, callback=callback)
    elapsed = time.perf_counter() - start
    main_cpu, process_cpu = time.thread_time() - main_cpu, time.process_time() - process_cpu
    samples = callback.samples or [float(model.rollout_buffer.stored_bytes_per_step)]
    found = None
    if timer is not None:
        per_step = 1e6 / model.num_timesteps
        main_us, emulator_us = (main_cpu - timer.cpu) * per_step, (process_cpu - main_cpu) * per_step
        cores = os.cpu_count() or 1
        bound = (main_us + emulator_us / cores) / max(main_us, (main_us + emulator_us) / cores)
        found = TrainingProfile(1.0 - timer.wall / elapsed, main_us, emulator_us, bound)
    return TrainingThroughput(
        model.num_timesteps / elapsed, statistics.mean(samples), type(model.rollout_buffer).__name__, found
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=48_000, help="env steps per measurement (all envs together)")
    parser.add_argument("--reference-steps", type=int, default=10_000, help="env steps of the single-env reference loop")
    parser.add_argument("--n-episodes", type=int, default=None, help="episodes per update for (c) (default: the zoo entry's)")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--buffer", choices=sorted(BUFFERS), default="entry", help="rollout buffer of (c)")
    parser.add_argument(
        "--emulator-threads", type=int, default=0, help="the emulator's worker threads for (a) and (c) (0: ale-py's choice)"
    )
    parser.add_argument("--grayscale-limit", action="store_true", help="also time the emulator with grayscale frames")
    parser.add_argument("--rounds", type=int, default=1, help="measure everything this many times, in turn")
    parser.add_argument("--profile", action="store_true", help="also print where the time of (c) goes")
    args = parser.parse_args()

    print(f"machine: {machine_description()}, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    ratios: dict[str, list[float]] = {"reference": [], "reference_1thread": [], "limit": []}
    for round_index in range(args.rounds):
        prefix = f"[round {round_index + 1}/{args.rounds}] " if args.rounds > 1 else ""
        limit = raw_vector_env_throughput(args.n_envs, args.steps // args.n_envs, num_threads=args.emulator_threads)
        print(f"{prefix}(a) raw AtariVectorEnv, RGB, {args.n_envs} envs, random actions: {limit:,.0f} steps/s", flush=True)
        if args.grayscale_limit:
            gray = raw_vector_env_throughput(
                args.n_envs, args.steps // args.n_envs, grayscale=True, num_threads=args.emulator_threads
            )
            print(f"{prefix}    for comparison, grayscale frames: {gray:,.0f} steps/s", flush=True)
        reference = run_reference(args.reference_steps, seed=0, blas_threads=None)
        print(f"{prefix}(b) Karpathy numpy loop, 1 env, default BLAS threading: {reference:,.0f} steps/s", flush=True)
        reference_1 = run_reference(args.reference_steps, seed=0, blas_threads=1)
        print(f"{prefix}(b1) Karpathy numpy loop, 1 env, one BLAS thread: {reference_1:,.0f} steps/s", flush=True)
        training, bytes_per_step, buffer_name, profile = reinforce_throughput(
            args.n_envs,
            args.steps,
            args.n_episodes,
            args.torch_threads,
            args.buffer,
            profile=args.profile,
            emulator_threads=args.emulator_threads,
        )
        print(
            f"{prefix}(c) REINFORCE Karpathy training, {args.n_envs} envs, {args.n_episodes or 'zoo'} episodes/update, "
            f"{args.torch_threads} torch thread(s), {buffer_name}: {training:,.0f} steps/s, "
            f"{bytes_per_step:,.0f} buffer bytes per stored step",
            flush=True,
        )
        if profile is not None:
            print(
                f"{prefix}    profile of (c): main thread outside the emulator's send/recv {profile.outside_emulator:.1%} "
                f"of the wall time; CPU per env step: main thread {profile.main_cpu_us:.0f} us, emulator threads "
                f"{profile.emulator_cpu_us:.0f} us; perfect-overlap bound on {os.cpu_count()} cores "
                f"x{profile.overlap_bound:.2f}",
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
