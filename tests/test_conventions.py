"""Where SB3 has a convention, REINFORCE follows it: nested Dict spaces, the deprecated net_arch form, other files."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import A2C, PPO

from sb3_reinforce import REINFORCE


class NestedDictEnv(gym.Env):
    observation_space = spaces.Dict({"a": spaces.Dict({"b": spaces.Box(-1, 1, (2,))})})
    action_space = spaces.Discrete(2)


def test_nested_dict_observations_raise_not_implemented_as_in_sb3():
    with pytest.raises(NotImplementedError, match="Nested observation spaces are not supported"):
        REINFORCE("MultiInputPolicy", NestedDictEnv())


def test_deprecated_shared_net_arch_warns_and_is_used_as_sb3_does():
    with pytest.warns(UserWarning, match="shared layers in the mlp_extractor are removed"):
        model = REINFORCE("MlpPolicy", "CartPole-v1", baseline="value", policy_kwargs=dict(net_arch=[dict(pi=[32], vf=[16])]))
    assert [layer.out_features for layer in model.policy.mlp_extractor.policy_net if hasattr(layer, "out_features")] == [32]
    assert [layer.out_features for layer in model.policy.mlp_extractor.value_net if hasattr(layer, "out_features")] == [16]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        REINFORCE("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[64, 64]))  # the list form: no warning in SB3


@pytest.mark.parametrize("algo_class", [PPO, A2C])
def test_loading_another_algorithms_file_names_it(tmp_path, algo_class):
    path = tmp_path / "other.zip"
    algo_class("MlpPolicy", "CartPole-v1", n_steps=8, **({"batch_size": 8} if algo_class is PPO else {})).save(path)
    name = algo_class.__name__
    with pytest.raises(ValueError, match=f"this file holds an? {name} model.*stable_baselines3.{name}.load"):
        REINFORCE.load(path)
    with pytest.raises(ValueError, match=f"this file holds an? {name} model"):
        REINFORCE.load(path, trusted=True)


def test_reinforce_files_still_load(tmp_path):
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=8, seed=0)
    model.save(tmp_path / "r.zip")
    loaded = REINFORCE.load(tmp_path / "r.zip")
    obs = np.zeros((1, 4), dtype=np.float32)
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
