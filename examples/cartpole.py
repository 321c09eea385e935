"""
Train REINFORCE on CartPole-v1 with its tuned zoo hyperparameters, then evaluate it like any SB3 model.

    python examples/cartpole.py [--timesteps 100000] [--seed 0]
"""

import argparse

import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import sync_envs_normalization

from sb3_reinforce import REINFORCE
from sb3_reinforce.hyperparams import build_model_kwargs, load_hyperparams, make_vec_env_from_entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=None, help="training budget (default: the zoo entry's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default="reinforce_cartpole", help="where to save the model (.zip added)")
    args = parser.parse_args()
    # A small MLP gains nothing from several threads, and oversubscribed cores slow it down 10x
    th.set_num_threads(1)

    # The tuned entry of zoo_hyperparams/reinforce.yml, loaded safely (no eval), schedules built; its envs built as
    # the zoo builds them (env_kwargs, wrappers, normalize, frame_stack)
    kwargs, zoo = build_model_kwargs(load_hyperparams("reinforce", "CartPole-v1"))
    env = make_vec_env_from_entry("CartPole-v1", zoo, seed=args.seed)
    model = REINFORCE(env=env, seed=args.seed, **kwargs)
    model.learn(total_timesteps=args.timesteps or zoo["n_timesteps"], progress_bar=True)
    model.save(args.save)

    model = REINFORCE.load(args.save)
    eval_env = make_vec_env_from_entry("CartPole-v1", zoo, n_envs=1, seed=args.seed + 1000, evaluation=True)
    sync_envs_normalization(env, eval_env)  # the training statistics, if the entry normalizes
    mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(f"CartPole-v1, REINFORCE, {model.num_timesteps} steps: evaluation {mean_reward:.1f} +- {std_reward:.1f}")


if __name__ == "__main__":
    main()
