"""
REINFORCE vs SB3 PPO and A2C on CartPole-v1, in one run, under one protocol.

Each algorithm uses its zoo hyperparameters (REINFORCE: zoo_hyperparams/reinforce.yml; PPO, A2C: rl_zoo3's own
files; 8 envs each). Every 5,000 env steps the model is evaluated on a separate env for 10 deterministic
episodes; evaluation time is excluded from the training fps.

    python benchmarks/cartpole_vs_ppo.py [--seeds 5] [--timesteps 100000]

Prints, per algorithm: training fps, median env steps to the first evaluation >= 475, seeds at >= 475 at the
end, and as last line the fps ratio REINFORCE / PPO.
"""

import argparse
import time

import numpy as np
import torch as th
from rl_zoo3.utils import ALGOS
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_reinforce import REINFORCE
from sb3_reinforce.hyperparams import build_model_kwargs, load_hyperparams

ENV_ID = "CartPole-v1"
THRESHOLD = 475


class TimedEvaluation(BaseCallback):
    """Evaluate every ``eval_freq`` env steps; keep the time spent evaluating to exclude it from the fps."""

    def __init__(self, eval_env, eval_freq: int, n_eval_episodes: int):
        super().__init__()
        self.eval_env, self.eval_freq, self.n_eval_episodes = eval_env, eval_freq, n_eval_episodes
        self.next_eval = eval_freq
        self.curve: list[tuple[int, float]] = []
        self.eval_seconds = 0.0

    def evaluate(self) -> None:
        start = time.perf_counter()
        mean, _ = evaluate_policy(self.model, self.eval_env, self.n_eval_episodes, deterministic=True)
        self.curve.append((self.num_timesteps, float(mean)))
        self.eval_seconds += time.perf_counter() - start

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.eval_freq
            self.evaluate()
        return True


def run(algo: str, seed: int, timesteps: int, eval_freq: int, n_eval_episodes: int) -> dict:
    kwargs, zoo = build_model_kwargs(load_hyperparams(algo, ENV_ID))
    algo_class = REINFORCE if algo == "reinforce" else ALGOS[algo]
    env = make_vec_env(ENV_ID, n_envs=zoo["n_envs"], seed=seed)
    eval_env = make_vec_env(ENV_ID, n_envs=1, seed=seed + 10_000)
    model = algo_class(env=env, seed=seed, **kwargs)
    callback = TimedEvaluation(eval_env, eval_freq, n_eval_episodes)
    start = time.perf_counter()
    model.learn(timesteps, callback=callback)
    train_seconds = time.perf_counter() - start - callback.eval_seconds
    if not callback.curve or callback.curve[-1][0] != model.num_timesteps:
        callback.evaluate()
    first = next((steps for steps, mean in callback.curve if mean >= THRESHOLD), None)
    return {"fps": model.num_timesteps / train_seconds, "first": first, "final": callback.curve[-1][1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["reinforce", "ppo", "a2c"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--eval-freq", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    # Same threading for every algorithm: small MLPs, and oversubscribed cores make torch 10x slower
    th.set_num_threads(1)

    results: dict[str, list[dict]] = {}
    # Interleave algorithms seed by seed so that machine noise hits them alike
    for seed in range(args.seeds):
        for algo in args.algos:
            result = run(algo, seed, args.timesteps, args.eval_freq, args.eval_episodes)
            results.setdefault(algo, []).append(result)
            first, final = result["first"], result["final"]
            print(f"{algo:10s} seed {seed}: fps {result['fps']:7.0f}  first>={THRESHOLD} {first}  final {final:.1f}")

    print(f"\n| algorithm | training fps | median steps to first eval >= {THRESHOLD} | seeds >= {THRESHOLD} at end |")
    print("|---|---|---|---|")
    for algo, runs in results.items():
        firsts = [r["first"] for r in runs if r["first"] is not None]
        median = f"{np.median(firsts):,.0f} ({len(firsts)}/{len(runs)} seeds reached)" if firsts else "never"
        at_end = sum(r["final"] >= THRESHOLD for r in runs)
        finals = ", ".join(f"{r['final']:.0f}" for r in runs)
        print(f"| {algo} | {np.mean([r['fps'] for r in runs]):,.0f} | {median} | {at_end}/{len(runs)} (finals: {finals}) |")
    if "reinforce" in results and "ppo" in results:
        ratio = np.mean([r["fps"] for r in results["reinforce"]]) / np.mean([r["fps"] for r in results["ppo"]])
        print(f"fps_ratio_reinforce_vs_ppo={ratio:.2f}")


if __name__ == "__main__":
    main()
