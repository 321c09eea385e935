"""Reliability: NaN/inf from the env or the loss, atomic saving, loading bad files, determinism, endless episodes."""

import os
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common import save_util
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce.common.estimators import baseline_values
from sb3_reinforce.common.safety import atomic_write
from sb3_reinforce.reinforce.reinforce import REINFORCE


def params_of(model: REINFORCE) -> dict[str, th.Tensor]:
    return {name: value.detach().clone() for name, value in model.policy.state_dict().items()}


def assert_same_params(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert th.equal(a[name], b[name]), name


class NonFiniteAt(gym.Wrapper):
    """Emits ``value`` as the reward (or in the observation) at step ``at_step`` of the env's life (1-based)."""

    def __init__(self, env: gym.Env, at_step: int, value: float = float("nan"), where: str = "reward") -> None:
        super().__init__(env)
        self.at_step, self.value, self.where = at_step, value, where
        self.steps = 0

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == self.at_step:
            if self.where == "reward":
                reward = self.value
            else:
                obs = np.array(obs, dtype=np.float32)
                obs[1] = self.value
        return obs, reward, terminated, truncated, info


class SnapshotAtRolloutStart(BaseCallback):
    """Keeps the parameters as they were at the start of the current rollout."""

    def _on_rollout_start(self) -> None:
        self.params = params_of(self.model)  # type: ignore[arg-type]
        self.updates = self.model._n_updates

    def _on_step(self) -> bool:
        return True


def nan_venv(bad_env: int, at_step: int, value: float, where: str, n_envs: int = 3) -> DummyVecEnv:
    def make(index: int):
        def thunk() -> gym.Env:
            env = gym.make("CartPole-v1")
            return NonFiniteAt(env, at_step, value, where) if index == bad_env else env

        return thunk

    return DummyVecEnv([make(i) for i in range(n_envs)])


@pytest.mark.parametrize(
    ("where", "value", "at_step", "bad_env"),
    [("reward", float("nan"), 37, 1), ("reward", float("-inf"), 5, 0), ("observation", float("nan"), 70, 2)],
)
def test_non_finite_env_output_raises_before_the_weights_change(where: str, value: float, at_step: int, bad_env: int) -> None:
    model = REINFORCE("MlpPolicy", nan_venv(bad_env, at_step, value, where), n_steps=16, seed=0)
    initial = params_of(model)
    snapshot = SnapshotAtRolloutStart()
    with pytest.raises(ValueError, match=rf"env {bad_env} returned a non-finite {where} .* at step {at_step} ") as info:
        model.learn(10_000, callback=snapshot)
    assert ("nan" if np.isnan(value) else "inf") in str(info.value)
    # Updates happened before the bad step (they must have), none after: the weights are those of the last good update
    assert model._n_updates == snapshot.updates
    if at_step > 32:
        assert model._n_updates > 0
        assert not all(th.equal(initial[name], snapshot.params[name]) for name in initial)
    assert_same_params(params_of(model), snapshot.params)
    assert all(bool(th.isfinite(value).all()) for value in params_of(model).values())


def test_non_finite_gradient_is_not_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, seed=0, learning_rate=1e-2)
    model.learn(128)
    before = params_of(model)
    optimizer_state = {key: value.clone() for key, value in model.policy.optimizer.state_dict()["state"][0].items()}
    compute = model.compute_policy_gradient

    def poisoned(batch: Any) -> dict[str, float]:
        stats = compute(batch)
        next(model.policy.parameters()).grad[0, 0] = float("nan")  # type: ignore[index]
        return stats

    monkeypatch.setattr(model, "compute_policy_gradient", poisoned)
    with pytest.raises(FloatingPointError, match=r"non-finite gradient .* weights are unchanged"):
        model.learn(256, reset_num_timesteps=False)
    assert_same_params(params_of(model), before)
    state = model.policy.optimizer.state_dict()["state"][0]
    for key, value in optimizer_state.items():
        assert th.equal(state[key], value), key


def test_overflowing_returns_are_not_applied() -> None:
    """Finite but huge rewards whose returns overflow float32: the loss is inf, the update is refused."""

    class Huge(gym.RewardWrapper):
        def reward(self, reward: float) -> float:
            return 3e38

    model = REINFORCE("MlpPolicy", Huge(gym.make("CartPole-v1")), n_steps=64, seed=0, normalize_advantage=False)
    before = params_of(model)
    with pytest.raises(FloatingPointError, match="non-finite"):
        model.learn(1_000)
    assert_same_params(params_of(model), before)


# saving -------------------------------------------------------------------------------------------------


def test_save_is_atomic_when_the_writer_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, seed=0)
    model.learn(64)
    path = tmp_path / "model.zip"
    model.save(path)
    good = path.read_bytes()
    model.learn(128, reset_num_timesteps=False)
    original = save_util.save_to_zip_file

    def crash_midway(file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(good[: len(good) // 2])
        raise OSError("disk full")

    monkeypatch.setattr("stable_baselines3.common.base_class.save_to_zip_file", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "model")  # the suffix is added as SB3 does
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.zip"]  # no temporary file left behind
    assert REINFORCE.load(path).num_timesteps == 64
    monkeypatch.setattr("stable_baselines3.common.base_class.save_to_zip_file", original)
    model.save(path)
    assert REINFORCE.load(path).num_timesteps == model.num_timesteps


def test_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.bin"
    with atomic_write(path) as file:
        file.write(b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as file:
        file.write(b"half")
        raise RuntimeError("crash")
    assert path.read_bytes() == b"old"
    assert os.listdir(path.parent) == ["file.bin"]


def test_checkpoint_callback_writes_complete_checkpoints(tmp_path: Path) -> None:
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=32, seed=0)
    model.learn(400, callback=CheckpointCallback(save_freq=25, save_path=str(tmp_path)))
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 8 and all(name.startswith("rl_model_") and name.endswith("_steps.zip") for name in names)
    for name in names:
        steps = int(name.split("_")[2])
        assert REINFORCE.load(tmp_path / name).num_timesteps == steps


# loading bad files ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "cartpole.zip"
    REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, seed=0).save(path)
    return path


def test_load_rejects_files_that_are_not_models(tmp_path: Path, saved_model: Path) -> None:
    rng = np.random.default_rng(0)
    random_bytes = tmp_path / "random.zip"
    random_bytes.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(saved_model.read_bytes()[: saved_model.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.zip"
    data = bytearray(saved_model.read_bytes())
    with zipfile.ZipFile(saved_model) as archive:
        info = archive.getinfo("policy.pth")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    ppo = tmp_path / "ppo.zip"
    PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, device="cpu").save(ppo)

    for path, reason in [
        (random_bytes, "not a zip archive"),
        (text, "not a zip archive"),
        (truncated, "not a zip archive|truncated"),
        (corrupt, "corrupt"),
        (other_zip, "not a complete Stable-Baselines3 model file"),
        (ppo, "this file holds a PPO model"),
    ]:
        with pytest.raises(ValueError, match=reason) as info:
            REINFORCE.load(path)
        assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing"):
        REINFORCE.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a file"):
        REINFORCE.load(tmp_path)


def test_load_with_an_env_of_other_spaces(saved_model: Path) -> None:
    with pytest.raises(ValueError, match=r"Observation spaces do not match: Box\(.*\(4,\).*\(6,\)") as info:
        REINFORCE.load(saved_model, env=gym.make("Acrobot-v1"))
    assert str(saved_model) in str(info.value)
    with pytest.raises(ValueError, match=r"Action spaces do not match: Discrete\(2\) != Discrete\(3\)") as info:
        REINFORCE.load(saved_model, env=_cartpole_3_actions())
    assert str(saved_model) in str(info.value)
    # The right env loads, given as an env or an id
    assert REINFORCE.load(saved_model, env="CartPole-v1").n_envs == 1


def _cartpole_3_actions() -> gym.Env:
    env = gym.make("CartPole-v1")
    env.action_space = gym.spaces.Discrete(3)
    return env


# determinism ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", baseline_values())
@pytest.mark.parametrize("n_envs", [1, 3])
def test_same_seed_gives_bit_identical_parameters(baseline: str | None, n_envs: int) -> None:
    def run() -> tuple[dict[str, th.Tensor], int]:
        env = make_vec_env("CartPole-v1", n_envs=n_envs)
        model = REINFORCE("MlpPolicy", env, n_steps=48 // n_envs, baseline=baseline, seed=3, device="cpu")
        model.learn(300)
        return params_of(model), model._n_updates

    (first, updates), (second, _) = run(), run()
    assert updates >= 5
    assert_same_params(first, second)


# endless episodes ----------------------------------------------------------------------------------------


class Endless(gym.Env):
    """Never terminates nor truncates."""

    observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action: Any):
        return np.zeros(4, np.float32), 1.0, False, False, {}


@pytest.mark.parametrize("n_episodes", [None, 1])
def test_never_ending_episode_raises_with_bounded_memory(n_episodes: int | None) -> None:
    # env 1 never ends, the others are CartPole (which do end)
    venv = DummyVecEnv([lambda: gym.make("CartPole-v1"), Endless, lambda: gym.make("CartPole-v1")])
    model = REINFORCE(
        "MlpPolicy", venv, n_steps=64, n_episodes=n_episodes, rollout_buffer_kwargs=dict(max_episode_steps=1_000), seed=0
    )
    with pytest.raises(RuntimeError, match=r"env 1 has lasted 1\d{3} steps without ending.*TimeLimit.*max_episode_steps"):
        model.learn(100_000)
    buffer = model.rollout_buffer
    # Storage stays within a doubling of max_episode_steps rows per env
    assert buffer.capacity <= 2 * 1_000 * 2
    assert buffer.nbytes <= 4 * 1_000 * 3 * buffer.bytes_per_step
    assert model.num_timesteps < 3 * 4_000
