"""
REINFORCE vs SB3 PPO and A2C on CartPole-v1, in one run, under one protocol: that of the comparison tool
(:func:`sb3_reinforce.compare.train_and_evaluate`).

Each algorithm uses its zoo hyperparameters (REINFORCE: zoo_hyperparams/reinforce.yml; PPO, A2C: rl_zoo3's own
files; 8 envs each). Every 5,000 env steps the model is evaluated on a separate env for 10 deterministic
episodes; evaluation time is excluded from the training fps. Runs go seed by seed, algorithms interleaved, so
that machine noise hits them alike; their curves are kept in ``--out`` (a rerun skips the runs already there).

    python benchmarks/cartpole_vs_ppo.py [--seeds 5] [--timesteps 100000] [--out runs/cartpole_vs_ppo]

Prints, per algorithm: training fps, median env steps to the first evaluation >= 475 (the evaluation of the
untrained policy at step 0 is not counted), seeds at >= 475 at the end, and as last line the fps ratio
REINFORCE / PPO.
"""

import argparse
import math

import numpy as np

from sb3_reinforce.compare import parse_algo_spec, read_curve, run_comparison, steps_to_threshold

ENV_ID = "CartPole-v1"
THRESHOLD = 475


def curve_figures(path: str) -> dict:
    """fps, first trained evaluation >= THRESHOLD (None if never) and final evaluation of one run's CSV."""
    curve = read_curve(path)
    first = steps_to_threshold(curve, THRESHOLD)
    return {
        "fps": curve["timesteps"][-1] / curve["wall_s"][-1],
        "first": None if math.isinf(first) else int(first),
        "final": float(curve["mean_return"][-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["reinforce", "ppo", "a2c"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--eval-freq", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", default="runs/cartpole_vs_ppo", help="folder of the per-run evaluation curves")
    parser.add_argument("--hyperparams", default=None, help="REINFORCE hyperparameter file (default: the packaged one)")
    args = parser.parse_args()
    specs = [parse_algo_spec(token) for token in args.algos]

    results: dict[str, list[dict]] = {spec.label: [] for spec in specs}
    for seed in range(args.seeds):
        paths = run_comparison(
            ENV_ID,
            specs,
            [seed],
            args.timesteps,
            args.out,
            eval_freq=args.eval_freq,
            eval_episodes=args.eval_episodes,
            hyperparams_path=args.hyperparams,
            progress=False,
        )
        for label, (path,) in paths.items():
            result = curve_figures(path)
            results[label].append(result)
            first, final = result["first"], result["final"]
            print(f"{label:10s} seed {seed}: fps {result['fps']:7.0f}  first>={THRESHOLD} {first}  final {final:.1f}")

    print(f"\n| algorithm | training fps | median steps to first eval >= {THRESHOLD} | seeds >= {THRESHOLD} at end |")
    print("|---|---|---|---|")
    for label, runs in results.items():
        firsts = [r["first"] for r in runs if r["first"] is not None]
        median = f"{np.median(firsts):,.0f} ({len(firsts)}/{len(runs)} seeds reached)" if firsts else "never"
        at_end = sum(r["final"] >= THRESHOLD for r in runs)
        finals = ", ".join(f"{r['final']:.0f}" for r in runs)
        print(f"| {label} | {np.mean([r['fps'] for r in runs]):,.0f} | {median} | {at_end}/{len(runs)} (finals: {finals}) |")
    if "reinforce" in results and "ppo" in results:
        ratio = np.mean([r["fps"] for r in results["reinforce"]]) / np.mean([r["fps"] for r in results["ppo"]])
        print(f"fps_ratio_reinforce_vs_ppo={ratio:.2f}")


if __name__ == "__main__":
    main()
