"""REINFORCE behaves like SB3's own algorithms: spaces, vec envs, wrappers, callbacks, logging, save/load."""

import csv
import os

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack, VecNormalize

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.buffers import EpisodeRolloutBuffer


class RewardAction0(gym.Wrapper):
    """FakeImageEnv pays nothing: reward action 0 so that a gradient exists, and end episodes after 10 steps."""

    def reset(self, **kwargs):
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, _, terminated, _, info = self.env.step(action)
        self.steps += 1
        return obs, float(action == 0), terminated, self.steps >= 10, info


@pytest.mark.parametrize(
    ("policy", "make_env"),
    [
        ("MlpPolicy", lambda: IdentityEnv(4, ep_length=10)),  # Discrete obs and actions
        ("MlpPolicy", lambda: IdentityEnvBox(ep_length=10)),  # Box actions (Gaussian)
        ("MlpPolicy", lambda: IdentityEnvMultiDiscrete(3, ep_length=10)),
        ("MlpPolicy", lambda: IdentityEnvMultiBinary(3, ep_length=10)),
        ("MultiInputPolicy", lambda: gym.wrappers.TimeLimit(SimpleMultiObsEnv(random_start=True), 20)),  # Dict obs
        ("CnnPolicy", lambda: RewardAction0(FakeImageEnv(screen_height=36, screen_width=36, n_channels=1))),  # images
    ],
)
@pytest.mark.parametrize("baseline", [None, "value"])
def test_every_space(policy, make_env, baseline, tmp_path):
    policy_kwargs = dict(features_extractor_kwargs=dict(features_dim=16)) if policy == "CnnPolicy" else None
    env = make_vec_env(make_env, n_envs=2, seed=0)
    model = REINFORCE(policy, env, n_steps=32, baseline=baseline, policy_kwargs=policy_kwargs, seed=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert model._n_updates > 0
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    obs = env.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(actions[0])
    model.save(tmp_path / "model")
    loaded = REINFORCE.load(tmp_path / "model", env=env)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)


def test_no_value_network_without_value_baseline():
    model = REINFORCE("MlpPolicy", "CartPole-v1", baseline="mean")
    assert model.policy.value_net is None
    assert not any("value" in name or "mlp_extractor.value" in name for name, _ in model.policy.named_parameters())
    with pytest.raises(RuntimeError, match="no value network"):
        model.policy.predict_values(th.zeros(1, 4))
    n_params = sum(p.numel() for p in model.policy.parameters())
    # 4 -> 64 -> 64 -> 2 with biases
    assert n_params == (4 * 64 + 64) + (64 * 64 + 64) + (64 * 2 + 2)
    with_value = REINFORCE("MlpPolicy", "CartPole-v1", baseline="value")
    assert with_value.policy.value_net is not None


def test_save_load_round_trip_and_continue(tmp_path):
    env = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = REINFORCE("MlpPolicy", env, n_steps=32, baseline="value", gae_lambda=0.95, seed=0).learn(1000)
    model.save(tmp_path / "reinforce_cartpole")
    loaded = REINFORCE.load(tmp_path / "reinforce_cartpole", env=env)
    assert (loaded.return_mode, loaded.baseline, loaded.gae_lambda, loaded.n_steps) == ("reward_to_go", "value", 0.95, 32)
    obs = env.reset()
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)
    steps = loaded.num_timesteps
    loaded.learn(500, reset_num_timesteps=False)
    # learn() stops at its budget: 1000 and 500 are multiples of the 4 envs
    assert (steps, loaded.num_timesteps) == (1000, 1500)


def test_vec_env_classes_and_wrappers():
    for vec_env_cls in (DummyVecEnv, SubprocVecEnv):
        kwargs = dict(start_method="fork") if vec_env_cls is SubprocVecEnv else {}
        env = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=vec_env_cls, vec_env_kwargs=kwargs)
        REINFORCE("MlpPolicy", env, n_steps=64, seed=0).learn(512)
        env.close()
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0))
    model = REINFORCE("MlpPolicy", env, n_steps=100, seed=0).learn(800)
    assert model.get_vec_normalize_env() is env
    env = VecFrameStack(make_vec_env("CartPole-v1", n_envs=2, seed=0), n_stack=3)
    model = REINFORCE("MlpPolicy", env, n_steps=64, seed=0).learn(512)
    assert model.observation_space.shape == (12,)


def test_callbacks_are_called_like_on_policy_algorithms(tmp_path):
    events = []

    class Recorder(BaseCallback):
        def _on_training_start(self):
            events.append("training_start")

        def _on_rollout_start(self):
            events.append("rollout_start")

        def _on_step(self):
            events.append("step")
            return True

        def _on_rollout_end(self):
            events.append("rollout_end")

        def _on_training_end(self):
            events.append("training_end")

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    eval_cb = EvalCallback(make_vec_env("CartPole-v1", n_envs=1, seed=1), eval_freq=100, n_eval_episodes=2, verbose=0)
    ckpt_cb = CheckpointCallback(save_freq=100, save_path=str(tmp_path / "ckpt"), name_prefix="reinforce")
    model = REINFORCE("MlpPolicy", env, n_steps=50, seed=0)
    model.learn(400, callback=[Recorder(), eval_cb, ckpt_cb])
    assert events[0] == "training_start" and events[-1] == "training_end"
    assert events[1] == "rollout_start"
    # every rollout: rollout_start, n_steps steps, rollout_end
    rollouts = "".join("s" if e == "step" else e[8] if e.startswith("rollout") else "" for e in events)
    assert rollouts == ("s" + "s" * 50 + "e") * 4
    assert eval_cb.last_mean_reward > 0
    assert eval_cb.n_calls == 200
    saved = sorted(os.listdir(tmp_path / "ckpt"))
    # save_freq counts vec-env steps: 200 of them with 2 envs
    assert len(saved) == 2 and all(name.endswith(".zip") for name in saved)
    REINFORCE.load(tmp_path / "ckpt" / saved[-1])

    class Stop(BaseCallback):
        def _on_step(self):
            return self.num_timesteps < 30

    model = REINFORCE("MlpPolicy", env, n_steps=50, seed=0).learn(1000, callback=Stop())
    assert model.num_timesteps == 30


def test_logger_keys(tmp_path):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = REINFORCE("MlpPolicy", env, n_steps=64, baseline="value", seed=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(1024)
    with open(tmp_path / "progress.csv") as file:
        header = next(csv.reader(file))
    for key in (
        "rollout/ep_rew_mean",
        "rollout/ep_len_mean",
        "time/fps",
        "train/policy_loss",
        "train/entropy_loss",
        "train/value_loss",
        "train/explained_variance",
        "train/n_updates",
        "train/batch_episodes",
        "train/batch_steps",
        "train/carried_steps",
    ):
        assert key in header, key


def test_tensorboard_and_progress_bar(tmp_path):
    pytest.importorskip("tensorboard")
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, tensorboard_log=str(tmp_path), seed=0)
    model.learn(300, progress_bar=True)
    assert (tmp_path / "REINFORCE_1").is_dir()
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "REINFORCE_1"))


def test_set_env_load_with_other_n_envs_and_evaluate_policy(tmp_path):
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=64, seed=0).learn(256)
    model.set_env(make_vec_env("CartPole-v1", n_envs=2, seed=1))
    model.learn(512, reset_num_timesteps=False)
    assert model.num_timesteps == 768
    model.save(tmp_path / "model")
    model = REINFORCE.load(tmp_path / "model", env=make_vec_env("CartPole-v1", n_envs=4, seed=1))
    model.learn(512, reset_num_timesteps=False)
    assert model.n_envs == 4 and model.rollout_buffer.n_envs == 4
    mean, std = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=2), n_eval_episodes=3)
    assert mean > 0 and std >= 0


def test_steps_of_running_episodes_are_carried_not_lost():
    env = make_vec_env("CartPole-v1", n_envs=3, seed=0)
    model = REINFORCE("MlpPolicy", env, n_steps=16, seed=0)
    trained = []
    original = model.rollout_buffer.pop_episodes

    def recording_pop(n_episodes=None):
        batch = original(n_episodes)
        trained.append(batch)
        return batch

    model.rollout_buffer.pop_episodes = recording_pop
    model.learn(16 * 3 * 20)
    used = sum(batch.n_steps for batch in trained)
    assert used + model.rollout_buffer.size() == model.num_timesteps
    assert any((batch.policy_versions < model._n_updates).any() for batch in trained[1:])
    lengths = np.concatenate([batch.episode_lengths for batch in trained])
    assert used == lengths.sum() and np.all(lengths >= 8)  # CartPole never ends in fewer than 8 steps


def test_n_episodes_takes_exactly_that_many_episodes():
    env = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = REINFORCE("MlpPolicy", env, n_episodes=3, seed=0)
    sizes = []
    original = model.rollout_buffer.pop_episodes
    model.rollout_buffer.pop_episodes = lambda n=None: sizes.append(original(n).n_episodes) or original(0)
    model.learn(2000)
    # Every batch but the one where learn()'s budget stopped the collection, which has the episodes complete then
    assert model.num_timesteps == 2000
    assert len(sizes) > 1 and set(sizes[:-1]) == {3} and 0 <= sizes[-1] <= 3


def test_never_ending_episode_raises_instead_of_eating_memory():
    class Endless(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            return np.zeros(2, dtype=np.float32), {}

        def step(self, action):
            return np.zeros(2, dtype=np.float32), 1.0, False, False, {}

    model = REINFORCE("MlpPolicy", Endless(), n_steps=64, rollout_buffer_kwargs=dict(max_episode_steps=500))
    with pytest.raises(RuntimeError, match=r"env 0 has lasted .*TimeLimit"):
        model.learn(10_000)
    assert model.num_timesteps < 2000
    assert isinstance(model.rollout_buffer, EpisodeRolloutBuffer)
