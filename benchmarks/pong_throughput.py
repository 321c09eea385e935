"""
Pong throughput, in env steps per second, measured in one run on the same machine with the same number of envs:

(a) ale-py's ``AtariVectorEnv`` alone, random UP/DOWN actions (the limit);
(b) a numpy re-implementation of Karpathy's single-env training loop (the reference);
(c) full REINFORCE training with the Karpathy configuration (:func:`sb3_reinforce.pong.karpathy.karpathy_pong`) on
    the fast vectorized Pong: collection, policy forward passes and updates all included.

The last line printed is ``ratio_vs_reference=<c/b> ratio_vs_limit=<c/a>``.

.. code-block:: bash

    python benchmarks/pong_throughput.py --n-envs 16 --steps 48000
"""

import argparse
import pathlib
import sys
import time

import torch as th

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from karpathy_reference import raw_vector_env_throughput, run_reference

from sb3_reinforce.pong.karpathy import karpathy_pong


def reinforce_throughput(n_envs: int, n_steps: int, n_episodes: int | None, torch_threads: int, seed: int = 0) -> float:
    """
    Env steps per second of REINFORCE training with the Karpathy configuration, every cost included.

    :param n_envs: number of Pong games
    :param n_steps: env steps to train for (all envs together)
    :param n_episodes: episodes per update (None: the zoo entry's)
    :param torch_threads: torch intra-op threads
    :param seed: seed
    :return: env steps per second
    """
    th.set_num_threads(torch_threads)
    overrides = {} if n_episodes is None else {"n_episodes": n_episodes}
    model = karpathy_pong(n_envs=n_envs, seed=seed, **overrides)
    start = time.perf_counter()
    model.learn(n_steps)
    elapsed = time.perf_counter() - start
    return model.num_timesteps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=48_000, help="env steps per measurement (all envs together)")
    parser.add_argument("--reference-steps", type=int, default=10_000, help="env steps of the single-env reference loop")
    parser.add_argument("--n-episodes", type=int, default=None, help="episodes per update for (c) (default: the zoo entry's)")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()

    limit = raw_vector_env_throughput(args.n_envs, args.steps // args.n_envs)
    print(f"(a) raw AtariVectorEnv, {args.n_envs} envs, random actions: {limit:,.0f} steps/s", flush=True)
    reference = run_reference(args.reference_steps, seed=0, blas_threads=1)
    print(f"(b) Karpathy numpy loop, 1 env: {reference:,.0f} steps/s", flush=True)
    training = reinforce_throughput(args.n_envs, args.steps, args.n_episodes, args.torch_threads)
    print(
        f"(c) REINFORCE Karpathy training, {args.n_envs} envs, {args.n_episodes or 'zoo'} episodes/update, "
        f"{args.torch_threads} torch thread(s): {training:,.0f} steps/s",
        flush=True,
    )
    print(f"ratio_vs_reference={training / reference:.3f} ratio_vs_limit={training / limit:.3f}")


if __name__ == "__main__":
    main()
