"""Learning on a real env with the shipped CartPole-v1 hyperparameters: a broken gradient never gets there."""

from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE
from sb3_reinforce.hyperparams import build_model_kwargs, load_hyperparams

THRESHOLD = 475


def test_cartpole_reaches_475_deterministic():
    kwargs, zoo = build_model_kwargs(load_hyperparams("reinforce", "CartPole-v1"))
    env = make_vec_env("CartPole-v1", n_envs=zoo["n_envs"], seed=0)
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=1000)
    stop = StopTrainingOnRewardThreshold(reward_threshold=THRESHOLD)
    # every 5,000 env steps, 10 deterministic episodes on a separate env
    evaluation = EvalCallback(
        eval_env, eval_freq=5_000 // zoo["n_envs"], n_eval_episodes=10, callback_on_new_best=stop, deterministic=True
    )
    model = REINFORCE(env=env, seed=0, **kwargs)
    # the zoo budget (100k) sets the learning-rate decay; training stops at the first evaluation >= 475
    model.learn(zoo["n_timesteps"], callback=evaluation)
    assert model.num_timesteps <= 50_000
    assert evaluation.best_mean_reward >= THRESHOLD, (evaluation.best_mean_reward, model.num_timesteps)


def test_broken_gradient_does_not_learn():
    """Control: the same budget with the sign of the policy gradient flipped stays far below the threshold."""
    kwargs, zoo = build_model_kwargs(load_hyperparams("reinforce", "CartPole-v1"))
    env = make_vec_env("CartPole-v1", n_envs=zoo["n_envs"], seed=0)

    class GradientAscent(REINFORCE):
        # A negative learning rate would do the same, but REINFORCE refuses one
        def compute_policy_gradient(self, batch):
            stats = super().compute_policy_gradient(batch)
            for param in self.policy.parameters():
                if param.grad is not None:
                    param.grad.neg_()
            return stats

    model = GradientAscent(env=env, seed=0, **kwargs)
    model.learn(20_000)
    assert model.ep_info_buffer and sum(info["r"] for info in model.ep_info_buffer) / len(model.ep_info_buffer) < 100
