"""
Final evaluation of zoo entries: REINFORCE (zoo_hyperparams/reinforce.yml) next to rl-zoo's PPO, same env, same
budget, same seeds, same evaluation.

For every algorithm x seed, ``python -m sb3_reinforce.zoo train --algo ALGO --env ENV --seed S`` (rl_zoo3's own
training, the zoo entry's ``n_timesteps`` unless ``--n-timesteps`` is given) in a separate process, then
``--eval-episodes`` episodes on a fresh test env built like ``enjoy`` builds it (saved VecNormalize statistics
included) and seeded ``1000 + S``, so that evaluation episodes are never the training seed's, with the
deterministic (argmax/mean) and the stochastic policy. Prints one markdown row per algorithm:
mean +- std over the seeds of the per-seed mean returns. Finished runs are reused: rerunning the same command after
an interruption trains only the runs without a saved model (a killed run's folder is removed and trained again).
``--conf-file`` trains REINFORCE from another hyperparameter file (a tuning candidate) with the same protocol.

    python benchmarks/zoo_entries.py --env LunarLander-v3 --algos reinforce ppo --seeds 1 2 3 --n-timesteps 1000000
"""

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def run_dir(log_folder: Path, algo: str, env_id: str, seed: int) -> Path:
    return log_folder / f"seed{seed}" / algo / f"{env_id.replace('/', '-')}_1"


def train(algo: str, env_id: str, seed: int, n_timesteps: int | None, log_folder: Path, conf_file: str | None) -> Path:
    """
    Train one run with the zoo (skipped when its model exists); return its folder.

    :param algo: the zoo algorithm
    :param env_id: the env
    :param seed: training seed
    :param n_timesteps: budget, or None for the entry's
    :param log_folder: folder of all runs of the env
    :param conf_file: REINFORCE hyperparameter file, or None for the zoo's
    :return: the run folder (``<env>_1``), holding the saved model
    """
    folder = run_dir(log_folder, algo, env_id, seed)
    model_path = folder / f"{env_id.replace('/', '-')}.zip"
    if model_path.exists():
        return folder
    # A run killed before saving: the zoo would train into <env>_2 and the evaluation would read <env>_1
    if folder.exists():
        shutil.rmtree(folder)
    command = [sys.executable, "-m", "sb3_reinforce.zoo", "train", "--algo", algo, "--env", env_id, "--seed", str(seed)]
    command += ["-f", str(log_folder / f"seed{seed}"), "--eval-freq", "-1", "--num-threads", "1", "--log-interval", "-1"]
    if n_timesteps is not None:
        command += ["-n", str(n_timesteps)]
    if conf_file is not None and algo == "reinforce":
        command += ["--conf-file", conf_file]
    log = folder.parent / f"{env_id.replace('/', '-')}_train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as file:
        result = subprocess.run(command, stdout=file, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not model_path.exists():
        raise RuntimeError(f"{algo} seed {seed} on {env_id}: training failed (exit status {result.returncode}), see {log}")
    return folder


def evaluate(algo: str, env_id: str, seed: int, folder: Path, n_episodes: int) -> tuple[float, float]:
    """
    Mean return of ``n_episodes`` deterministic and stochastic episodes on a fresh test env seeded ``1000 + seed``.
    """
    import torch as th
    from rl_zoo3 import ALGOS
    from rl_zoo3.utils import create_test_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_reinforce.zoo import register_reinforce, safe_get_saved_hyperparams, zoo_patches

    th.set_num_threads(1)
    register_reinforce()
    name = env_id.replace("/", "-")
    hyperparams, stats_path = safe_get_saved_hyperparams(str(folder / name), test_mode=True)
    results = []
    for deterministic in (True, False):
        # zoo_patches: the saved vecnormalize.pkl is unpickled as enjoy does, running none of its code
        with zoo_patches():
            env = create_test_env(
                env_id, n_envs=1, stats_path=stats_path, seed=1000 + seed, should_render=False, hyperparams=dict(hyperparams)
            )
        # Loaded without the env: load(..., env=env) would reseed it with the training seed (set_random_seed)
        model = ALGOS[algo].load(folder / f"{name}.zip", device="cpu")
        mean, _ = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=deterministic)
        env.close()
        results.append(float(mean))
    return results[0], results[1]


def one_run(args: tuple[str, str, int, int | None, Path, int, str | None]) -> tuple[str, int, float, float]:
    algo, env_id, seed, n_timesteps, log_folder, n_episodes, conf_file = args
    folder = train(algo, env_id, seed, n_timesteps, log_folder, conf_file)
    deterministic, stochastic = evaluate(algo, env_id, seed, folder, n_episodes)
    return algo, seed, deterministic, stochastic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True)
    parser.add_argument("--algos", nargs="+", default=["reinforce", "ppo"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--n-timesteps", type=int, default=None, help="budget (default: each zoo entry's n_timesteps)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=1, help="runs trained in parallel")
    parser.add_argument("--log-folder", default="runs/zoo_entries")
    parser.add_argument("--conf-file", default=None, help="REINFORCE hyperparameter file (default: the zoo's reinforce.yml)")
    args = parser.parse_args()
    log_folder = Path(args.log_folder) / args.env.replace("/", "-")
    os.makedirs(log_folder, exist_ok=True)
    jobs = [
        (algo, args.env, seed, args.n_timesteps, log_folder, args.eval_episodes, args.conf_file)
        for seed in args.seeds
        for algo in args.algos
    ]
    with ProcessPoolExecutor(args.n_jobs) as pool:
        runs = list(pool.map(one_run, jobs))
    for algo, seed, deterministic, stochastic in runs:
        print(f"{algo} seed {seed}: deterministic {deterministic:.1f}, stochastic {stochastic:.1f}")
    budget = "zoo n_timesteps" if args.n_timesteps is None else f"{args.n_timesteps:.0e}"
    print("\n| env | algo | steps | deterministic policy | stochastic policy | per seed (deterministic) |")
    print("|---|---|---|---|---|---|")
    for algo in args.algos:
        rows = [(d, s) for a, _, d, s in runs if a == algo]
        det, sto = np.array([d for d, _ in rows]), np.array([s for _, s in rows])
        per_seed = ", ".join(f"{value:.0f}" for value in det)
        print(
            f"| {args.env} | {algo} | {budget} | {det.mean():.1f} +- {det.std():.1f} | {sto.mean():.1f} +- {sto.std():.1f} "
            f"| {per_seed} |"
        )


if __name__ == "__main__":
    main()
