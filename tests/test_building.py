"""
The one path from a hyperparameter entry to envs and a model (``sb3_reinforce.hyperparams.building``): the zoo's
wrappers in the zoo's order, the fast Pong env, and every tool that builds a model going through it.
"""

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
import yaml
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecEnv, VecEnvWrapper, VecFrameStack, VecNormalize

import sb3_reinforce.hyperparams.building as building
import sb3_reinforce.zoo.experiment
from sb3_reinforce import REINFORCE
from sb3_reinforce.hyperparams import HyperparamsError, build_model_kwargs, make_model_from_entry, make_vec_env_from_entry
from sb3_reinforce.pong import KARPATHY_PONG_ID, PongVecEnv
from sb3_reinforce.zoo import ReinforceExperimentManager
from tests.scripts import load_script

th.set_num_threads(1)

ENV_ID = "CartPole-v1"
#: Every rl-zoo env setting at once: normalize (with a training flag an evaluation env must override), frame_stack,
#: a vec_env_wrapper, env_kwargs, monitor_kwargs
ENTRY: dict[str, Any] = {
    "n_timesteps": 1000,
    "policy": "MlpPolicy",
    "n_envs": 2,
    "n_episodes": 1,
    "gamma": 0.9,
    "normalize": "dict(norm_obs=True, norm_reward=True, clip_obs=5.0, training=True)",
    "frame_stack": 3,
    "vec_env_wrapper": {"stable_baselines3.common.vec_env.VecCheckNan": {"raise_exception": True}},
    "env_kwargs": {"sutton_barto_reward": True},
    "monitor_kwargs": {"info_keywords": []},
}
PONG_ENTRY: dict[str, Any] = {
    "n_timesteps": 1000,
    "policy": "sb3_reinforce.pong.karpathy.KarpathyPolicy",
    "n_envs": 2,
    "n_episodes": 1,
    "rollout_buffer_class": "sb3_reinforce.common.buffers.TernaryPackedRolloutBuffer",
    "env_kwargs": {"frameskip": 3, "repeat_action_probability": 0.125},
    "frame_stack": 2,
}


def chain(env: VecEnv) -> list[type]:
    """The wrapper classes from the outside in, down to the base vec env."""
    classes = [type(env)]
    while isinstance(env, VecEnvWrapper):
        env = env.venv
        classes.append(type(env))
    return classes


def find(env: VecEnv, cls: type) -> Any:
    while not isinstance(env, cls):
        env = env.venv  # type: ignore[attr-defined]
    return env


def zoo_envs(tmp_path: Path, env_id: str, entry: dict[str, Any], n_envs: int) -> tuple[VecEnv, VecEnv]:
    """The training and evaluation envs rl_zoo3's ExperimentManager (the zoo's subclass) builds for ``entry``."""
    config = tmp_path / "zoo.yml"
    config.write_text(yaml.safe_dump({env_id: entry}))
    manager = ReinforceExperimentManager(
        argparse.Namespace(), "reinforce", env_id, str(tmp_path / "logs"), seed=0, verbose=0, config=str(config)
    )
    hyperparams, _ = manager.read_hyperparameters()
    _, manager.env_wrapper, _, manager.vec_env_wrapper = manager._preprocess_hyperparams(hyperparams)
    return manager.create_envs(n_envs, no_log=True), manager.create_envs(1, eval_env=True)


def normalize_settings(env: VecEnv) -> dict[str, Any]:
    normalize = find(env, VecNormalize)
    return {key: getattr(normalize, key) for key in ("training", "norm_obs", "norm_reward", "clip_obs", "gamma")}


# ---------------------------------------------------------------------------------------------------------------------
# The envs of an entry: the zoo's wrappers, in the zoo's order
# ---------------------------------------------------------------------------------------------------------------------


def test_cartpole_entry_is_wrapped_as_the_zoo_wraps_it(tmp_path):
    _, zoo = build_model_kwargs(ENTRY)
    env = make_vec_env_from_entry(ENV_ID, zoo, seed=0)
    eval_env = make_vec_env_from_entry(ENV_ID, zoo, n_envs=1, seed=0, evaluation=True)
    zoo_env, zoo_eval_env = zoo_envs(tmp_path, ENV_ID, ENTRY, n_envs=2)

    # rl_zoo3's create_envs: vec_env_wrapper, then VecNormalize, then VecFrameStack (frames normalized, then stacked)
    assert chain(env) == chain(zoo_env) == [VecFrameStack, VecNormalize, VecCheckNan, DummyVecEnv]
    assert chain(eval_env) == chain(zoo_eval_env) == chain(env)
    assert env.num_envs == 2 and eval_env.num_envs == 1
    assert env.observation_space == zoo_env.observation_space and env.observation_space.shape == (12,)
    assert find(env, VecCheckNan).raise_exception is True
    # the entry's normalize, with its gamma; an evaluation env never updates its statistics nor scales rewards
    assert normalize_settings(env) == normalize_settings(zoo_env)
    assert normalize_settings(env) == dict(training=True, norm_obs=True, norm_reward=True, clip_obs=5.0, gamma=0.9)
    assert normalize_settings(eval_env) == normalize_settings(zoo_eval_env)
    assert normalize_settings(eval_env) == dict(training=False, norm_obs=True, norm_reward=False, clip_obs=5.0, gamma=0.9)
    # env_kwargs reach every environment
    for vec_env in (env, eval_env):
        assert all(sub_env.unwrapped._sutton_barto_reward for sub_env in find(vec_env, DummyVecEnv).envs)


def test_an_evaluation_env_does_not_learn_the_statistics_even_if_the_entry_says_training(tmp_path):
    _, zoo = build_model_kwargs(ENTRY)
    eval_env = make_vec_env_from_entry(ENV_ID, zoo, n_envs=1, seed=0, evaluation=True)
    statistics = find(eval_env, VecNormalize).obs_rms
    count, mean = statistics.count, statistics.mean.copy()
    eval_env.reset()
    for _ in range(5):
        _, rewards, _, _ = eval_env.step(np.array([1]))
    assert statistics.count == count and np.array_equal(statistics.mean, mean)
    assert rewards.tolist() == [0.0]  # sutton_barto_reward, not normalized: 0 while the pole is up


def test_the_entry_n_envs_is_the_default():
    _, zoo = build_model_kwargs({**ENTRY, "n_envs": 3})
    assert make_vec_env_from_entry(ENV_ID, zoo).num_envs == 3
    assert make_vec_env_from_entry(ENV_ID, zoo, n_envs=1).num_envs == 1


def test_karpathy_pong_entry_gives_the_fast_env_with_the_entry_env_kwargs(tmp_path):
    _, zoo = build_model_kwargs(PONG_ENTRY)
    env = make_vec_env_from_entry(KARPATHY_PONG_ID, zoo, seed=0)
    pong = env.unwrapped
    assert isinstance(pong, PongVecEnv) and pong.num_envs == 2
    assert (pong.frameskip, pong.repeat_action_probability) == (3, 0.125)
    assert isinstance(env, VecFrameStack) and env.observation_space.shape == (2 * 6400,)
    env.close()
    # the zoo builds the same env for the same entry
    zoo_env, zoo_eval_env = zoo_envs(tmp_path, KARPATHY_PONG_ID, PONG_ENTRY, n_envs=2)
    assert chain(zoo_env)[0] is VecFrameStack and chain(zoo_env)[-1] is PongVecEnv
    assert chain(zoo_env) == chain(env)
    assert (zoo_env.unwrapped.frameskip, zoo_env.unwrapped.repeat_action_probability) == (3, 0.125)
    zoo_env.close()
    zoo_eval_env.close()


def test_karpathy_pong_refuses_a_gymnasium_wrapper():
    _, zoo = build_model_kwargs({**PONG_ENTRY, "env_wrapper": "sb3_reinforce.pong.wrappers.PongUpDown"})
    with pytest.raises(ValueError, match="env_wrapper cannot be used with KarpathyPong-v0"):
        make_vec_env_from_entry(KARPATHY_PONG_ID, zoo, n_envs=1)


# ---------------------------------------------------------------------------------------------------------------------
# The model of an entry
# ---------------------------------------------------------------------------------------------------------------------


def test_make_model_from_entry_trains_on_the_entry_envs():
    model, env, eval_env = make_model_from_entry("reinforce", ENV_ID, ENTRY, seed=3, device="cpu", learning_rate=5e-4)
    assert isinstance(model, REINFORCE) and model.get_env() is env
    assert model.seed == 3 and model.gamma == 0.9 and model.n_episodes == 1
    assert model.learning_rate == 5e-4  # an override replaces the entry's value
    assert chain(eval_env) == chain(env) and not find(eval_env, VecNormalize).training
    assert model.observation_space.shape == (12,)
    model.learn(64)


def test_make_model_from_entry_adds_env_kwargs_and_may_skip_the_evaluation_env():
    _, env, eval_env = make_model_from_entry(
        "reinforce", ENV_ID, ENTRY, seed=0, n_envs=1, env_kwargs={"sutton_barto_reward": False}, evaluation_env=False
    )
    assert eval_env is None and env.num_envs == 1
    assert not find(env, DummyVecEnv).envs[0].unwrapped._sutton_barto_reward


def test_make_model_from_entry_names_an_unknown_algorithm():
    with pytest.raises(ValueError, match=r"algo='reinforc' is not allowed: use 'reinforce' or one of .*ppo"):
        make_model_from_entry("reinforc", ENV_ID, ENTRY)


def test_make_model_from_entry_runs_the_code_check():
    entry = {**ENTRY, "vec_env_wrapper": "stable_baselines3.common.env_util.make_vec_env"}
    with pytest.raises(HyperparamsError, match=r"not a subclass of stable_baselines3\.common\.vec_env"):
        make_model_from_entry("reinforce", ENV_ID, entry)


# ---------------------------------------------------------------------------------------------------------------------
# Every tool builds through it
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch) -> list[tuple[tuple, dict]]:
    """Records every call of make_model_from_entry (which still runs)."""
    recorded: list[tuple[tuple, dict]] = []
    real = building.make_model_from_entry

    def spy(*args: Any, **kwargs: Any) -> Any:
        recorded.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(building, "make_model_from_entry", spy)
    return recorded


def test_compare_builds_through_it_with_every_env_setting(tmp_path, calls):
    from sb3_reinforce.compare.specs import parse_algo_spec
    from sb3_reinforce.compare.training import _make_model

    path = tmp_path / "reinforce.yml"
    path.write_text(yaml.safe_dump({ENV_ID: ENTRY}))
    model, env, eval_env = _make_model(parse_algo_spec("reinforce"), ENV_ID, seed=4, hyperparams_path=str(path))
    assert [args[:2] for args, _ in calls] == [("reinforce", ENV_ID)]
    assert calls[0][1]["seed"] == 4
    # normalize + frame_stack + vec_env_wrapper, as the zoo (the tool used to stack first, and refused the wrapper)
    assert chain(env) == [VecFrameStack, VecNormalize, VecCheckNan, DummyVecEnv]
    assert not find(eval_env, VecNormalize).training and model.seed == 4


def test_variance_builds_through_it(tmp_path, calls, capsys):
    from sb3_reinforce.variance import main

    sizes = ["--n-batches", "2", "--n-episodes", "1", "--seed", "5", "--out", str(tmp_path)]
    assert main(["--env", ENV_ID, "--variants", "total", *sizes]) == 0
    assert [args[:2] for args, _ in calls] == [("reinforce", ENV_ID)]
    assert calls[0][1]["seed"] == 5
    capsys.readouterr()


def test_karpathy_pong_builds_through_it(calls):
    from sb3_reinforce.pong.karpathy import karpathy_pong

    model = karpathy_pong(n_envs=1, seed=0, env_kwargs={"frameskip": 2}, n_episodes=3)
    assert [args[:2] for args, _ in calls] == [("reinforce", KARPATHY_PONG_ID)]
    assert isinstance(model, REINFORCE) and model.n_episodes == 3 and model.device.type == "cpu"
    pong = model.get_env().unwrapped
    assert isinstance(pong, PongVecEnv) and pong.num_envs == 1 and pong.frameskip == 2
    pong.close()


def test_the_zoo_builds_karpathy_pong_through_it(tmp_path, monkeypatch):
    recorded = []
    # The zoo's experiment manager module (sb3_reinforce.zoo was one module before the split)
    manager_module = sb3_reinforce.zoo.experiment
    real = manager_module.make_vec_env_from_entry
    monkeypatch.setattr(
        manager_module, "make_vec_env_from_entry", lambda *args, **kwargs: recorded.append(args) or real(*args, **kwargs)
    )
    env, eval_env = zoo_envs(tmp_path, KARPATHY_PONG_ID, PONG_ENTRY, n_envs=1)
    assert [args[0] for args in recorded] == [KARPATHY_PONG_ID, KARPATHY_PONG_ID]
    assert isinstance(env.unwrapped, PongVecEnv)
    env.close()
    eval_env.close()


# ---------------------------------------------------------------------------------------------------------------------
# A saved policy is studied, and a Pong run resumed, on the envs of its entry
# ---------------------------------------------------------------------------------------------------------------------

#: An entry of the shipped file that normalizes (normalize: true)
NORMALIZED_ENV_ID = "Acrobot-v1"


@pytest.fixture
def acrobot_snapshot(tmp_path) -> tuple[Path, Path]:
    """A REINFORCE snapshot of the Acrobot-v1 entry and its VecNormalize statistics (far from the identity)."""
    from sb3_reinforce.hyperparams import load_hyperparams

    entry = load_hyperparams("reinforce", NORMALIZED_ENV_ID)
    model, env, _ = make_model_from_entry(
        "reinforce", NORMALIZED_ENV_ID, entry, seed=0, n_envs=1, evaluation_env=False, device="cpu"
    )
    normalization = find(env, VecNormalize)
    normalization.obs_rms.mean[:] = 0.5
    normalization.obs_rms.var[:] = 4.0
    model.save(tmp_path / "snapshot.zip")
    normalization.save(str(tmp_path / "vecnormalize.pkl"))
    env.close()
    return tmp_path / "snapshot.zip", tmp_path / "vecnormalize.pkl"


def test_variance_refuses_a_snapshot_of_a_normalizing_entry_without_its_statistics(tmp_path, acrobot_snapshot, capsys):
    from sb3_reinforce.variance import main

    snapshot, _ = acrobot_snapshot
    argv = ["--env", NORMALIZED_ENV_ID, "--model", str(snapshot), "--variants", "total", "--n-batches", "2"]
    # It used to sample the batches on the raw Acrobot-v1 observations, which the policy never saw
    assert main([*argv, "--n-episodes", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Acrobot-v1" in err and "normalizes" in err and "--vecnormalize" in err
    assert not (tmp_path / "out").exists()


def test_variance_samples_a_snapshot_on_its_entry_env_with_its_statistics(tmp_path, acrobot_snapshot, capsys):
    from sb3_reinforce.variance import gradient_variance, main, sampling_env

    snapshot, statistics = acrobot_snapshot
    env = sampling_env(NORMALIZED_ENV_ID, seed=3, statistics=statistics)
    normalization = find(env, VecNormalize)
    assert not normalization.training and normalization.obs_rms.mean.tolist() == [0.5] * 6
    model = REINFORCE.load(snapshot, env=env, device="cpu")
    (expected,) = gradient_variance(model, env, ["total"], n_batches=2, n_episodes=1, seed=3)
    env.close()

    argv = ["--env", NORMALIZED_ENV_ID, "--model", str(snapshot), "--vecnormalize", str(statistics), "--seed", "3"]
    assert main([*argv, "--variants", "total", "--n-batches", "2", "--n-episodes", "1", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    markdown = (tmp_path / "variance.md").read_text()
    assert f"| total | {expected.trace_cov:.4g} |" in markdown
    assert f"normalization statistics {statistics}" in markdown


def test_variance_samples_a_snapshot_trained_without_normalization_when_told(tmp_path, acrobot_snapshot, capsys):
    from sb3_reinforce.variance import main, sampling_env

    snapshot, _ = acrobot_snapshot
    env = sampling_env(NORMALIZED_ENV_ID, seed=0, statistics="none")
    assert VecNormalize not in chain(env)
    env.close()
    argv = ["--env", NORMALIZED_ENV_ID, "--model", str(snapshot), "--vecnormalize", "none", "--variants", "total"]
    assert main([*argv, "--n-batches", "2", "--n-episodes", "1", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert "no normalization (--vecnormalize none)" in (tmp_path / "variance.md").read_text()


def test_variance_refuses_statistics_for_a_fresh_policy(tmp_path, capsys):
    from sb3_reinforce.variance import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--env", ENV_ID, "--vecnormalize", str(tmp_path / "vecnormalize.pkl"), "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "--vecnormalize gives the statistics of a --model snapshot" in capsys.readouterr().err


def test_the_pong_example_resumes_on_the_envs_of_the_entry(monkeypatch):
    example = load_script("examples/pong_karpathy.py")
    entry = example.load_hyperparams("reinforce", KARPATHY_PONG_ID)
    entry.update(n_envs=3, env_kwargs={"frameskip": 2, "repeat_action_probability": 0.25})
    monkeypatch.setattr(example, "load_hyperparams", lambda algo, env_id: dict(entry))
    # The resume used to build make_pong_vec_env(n_envs, seed, sticky) by hand: the entry's other env_kwargs were lost
    env = example.training_env(None, seed=7, repeat_action_probability=0.0)
    pong = env.unwrapped
    assert isinstance(pong, PongVecEnv) and (pong.num_envs, pong.frameskip, pong.repeat_action_probability) == (3, 2, 0.0)
    env.close()


def test_the_pong_example_adds_its_critic_to_the_entry_policy_kwargs(tmp_path, monkeypatch):
    example = load_script("examples/pong_karpathy.py")
    entry = {**example.load_hyperparams("reinforce", KARPATHY_PONG_ID), "policy_kwargs": "dict(n_hidden=32, critic_hidden=8)"}
    monkeypatch.setattr(example, "load_hyperparams", lambda algo, env_id: dict(entry))
    argv = ["--run-dir", str(tmp_path / "run"), "--n-envs", "2", "--n-episodes", "1", "--timesteps", "600"]
    model = example.main([*argv, "--eval-games", "0", "--no-progress-bar", "--quiet", "--critic-hidden", "16"])
    # --critic-hidden used to replace the entry's policy_kwargs whole (n_hidden back to 200)
    assert (model.policy.n_hidden, model.policy.critic_hidden) == (32, 16)


def test_the_cartpole_example_trains_and_evaluates_on_the_envs_of_the_entry(tmp_path, monkeypatch, capsys):
    import sys

    example = load_script("examples/cartpole.py")
    entry = {**example.load_hyperparams("reinforce", ENV_ID), "frame_stack": 2, "n_envs": 2}
    monkeypatch.setattr(example, "load_hyperparams", lambda algo, env_id: dict(entry))
    evaluated = []
    real_evaluate = example.evaluate_policy

    def evaluate(model, env, **kwargs):
        evaluated.append((model.observation_space.shape, chain(env)))
        return real_evaluate(model, env, **kwargs)

    monkeypatch.setattr(example, "evaluate_policy", evaluate)
    monkeypatch.setattr(sys, "argv", ["cartpole.py", "--timesteps", "64", "--save", str(tmp_path / "model")])
    example.main()
    # The example used to build make_vec_env("CartPole-v1") by hand: the entry's frame_stack was lost
    assert evaluated == [((8,), [VecFrameStack, DummyVecEnv])]
    assert "CartPole-v1, REINFORCE" in capsys.readouterr().out
