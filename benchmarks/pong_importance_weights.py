"""
How much of a Pong batch the importance weights of the carried steps leave: train a saved model on for a few
updates with each ``importance_weights`` mode and print, per mode, the means over updates of what
``compute_policy_gradient`` reports (``train/carried_steps``, ``train/is_weight_*``).

A step is carried when its game was still running at an update: it was sampled by an older policy and is
reweighted once its game ends. With 16 games, 4 episodes per update and games of about 2,200 steps, most of a
batch is carried, and the ``"episode"`` correction multiplies the ratios of every step since the game started.

.. code-block:: bash

    python benchmarks/pong_importance_weights.py runs/pong/latest.zip              # episode and segment
    python benchmarks/pong_importance_weights.py runs/pong/latest.zip --updates 14 --modes episode segment none

Each mode starts from the same saved model, games and seeds; its first ``--skip`` updates are left out (the buffer
starts empty, so they carry few steps).
"""

import argparse
import statistics
from typing import Any

import torch as th

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.estimators import IMPORTANCE_WEIGHTS
from sb3_reinforce.pong import make_pong_vec_env
from sb3_reinforce.pong.registration import STICKY_ACTION_PROBABILITY

#: Statistics of compute_policy_gradient printed, with what they are
REPORTED = {
    "carried_share": "carried share of the batch",
    "is_weight_median": "median weight of a carried step",
    "is_weight_mean": "mean weight of a carried step",
    "is_weight_max": "largest weight",
    "is_weight_ess": "effective sample size / carried steps",
}


class _RecordingREINFORCE(REINFORCE):
    """REINFORCE that keeps the statistics of every policy-gradient pass."""

    def compute_policy_gradient(self, batch: Any, **overrides: Any) -> dict[str, float]:
        stats = super().compute_policy_gradient(batch, **overrides)
        self.recorded.append({**stats, "carried_share": stats["carried_steps"] / batch.n_steps})
        return stats


def importance_weight_statistics(
    model_path: str, mode: str, n_updates: int, skip: int, n_envs: int, seed: int
) -> dict[str, float]:
    """
    :param model_path: a saved REINFORCE Pong model
    :param mode: an ``importance_weights`` value
    :param n_updates: updates to train for
    :param skip: first updates left out of the means
    :param n_envs: Pong games
    :param seed: seed of the games and of torch
    :return: the mean over the updates with carried steps of each :data:`REPORTED` statistic
    """
    env = make_pong_vec_env(n_envs=n_envs, seed=seed, repeat_action_probability=STICKY_ACTION_PROBABILITY)
    model = _RecordingREINFORCE.load(model_path, env=env, device="cpu")
    model.importance_weights = mode
    model.recorded = []
    model.set_random_seed(seed)
    last_update = model._n_updates + n_updates
    model.learn(10**9, callback=lambda _locals, _globals: model._n_updates < last_update, reset_num_timesteps=False)
    env.close()
    kept = [stats for stats in model.recorded[skip:] if stats["carried_steps"] > 0]
    if not kept:
        raise RuntimeError(f"no update with carried steps after the first {skip}: raise --updates")
    found = {key: statistics.mean(stats.get(key, 1.0) for stats in kept) for key in REPORTED}
    found["updates"] = len(kept)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a saved REINFORCE Pong model (e.g. runs/pong/latest.zip)")
    parser.add_argument("--modes", nargs="+", choices=list(IMPORTANCE_WEIGHTS), default=["episode", "segment"])
    parser.add_argument("--updates", type=int, default=10, help="updates per mode")
    parser.add_argument("--skip", type=int, default=2, help="first updates left out")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    th.set_num_threads(1)
    for mode in args.modes:
        found = importance_weight_statistics(args.model, mode, args.updates, args.skip, args.n_envs, args.seed)
        print(f"importance_weights={mode!r} ({found['updates']} updates with carried steps):")
        for key, text in REPORTED.items():
            print(f"  {text:40s} {found[key]:.3g}")


if __name__ == "__main__":
    main()
