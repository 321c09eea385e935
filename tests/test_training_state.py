"""
Training state under bad input: learning-rate schedules that turn NaN/inf/negative, a failed update followed by a
retry, and bad ``policy_kwargs``. Each failure must leave the weights finite and unchanged, and a bad argument must
be refused before the env is stepped.
"""

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from sb3_reinforce.common.arguments import allowed_policy_kwargs, policy_kwargs_problems
from sb3_reinforce.pong.karpathy import KarpathyPolicy
from sb3_reinforce.reinforce.policies import POLICY_KWARGS, REINFORCEPolicy
from sb3_reinforce.reinforce.reinforce import REINFORCE
from tests.test_validation import CountingEnv


def params_of(model: REINFORCE) -> list[th.Tensor]:
    return [param.detach().clone() for param in model.policy.parameters()]


def all_finite(model: REINFORCE) -> bool:
    return all(bool(th.isfinite(param).all()) for param in model.policy.parameters())


class SnapshotAtRolloutEnd(BaseCallback):
    """Copies the weights, the optimizer state and the buffer's contents just before every ``train()``."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model: REINFORCE = self.model  # type: ignore[assignment]
        self.params = params_of(model)
        self.optimizer_state = {
            index: {key: value.clone() for key, value in state.items()}
            for index, state in model.policy.optimizer.state_dict()["state"].items()
        }
        self.buffer_size = model.rollout_buffer.size()
        self.complete_episodes = model.rollout_buffer.n_complete_episodes
        self.incomplete_steps = int(model.rollout_buffer.incomplete_lengths().sum())
        self.episode_lengths = [np.diff([0, *ends]).tolist() for ends in model.rollout_buffer.episode_ends]


# learning rate ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), -1e-3, np.float32("nan")], ids=["nan", "inf", "negative", "np-nan"]
)
def test_schedule_bad_from_the_start_is_refused_before_any_env_step(bad: float) -> None:
    CountingEnv.calls = 0
    with pytest.raises(ValueError) as info:
        REINFORCE("MlpPolicy", CountingEnv(gym.make("CartPole-v1")), learning_rate=lambda _: bad)
    message = str(info.value)
    assert "learning_rate" in message and "progress_remaining=1.0" in message and repr(bad) in message, message
    assert CountingEnv.calls == 0


@pytest.mark.parametrize(
    ("bad", "error"),
    [(float("nan"), ValueError), (float("inf"), ValueError), (-1e-3, ValueError), ("1e-3", TypeError), (True, TypeError)],
    ids=["nan", "inf", "negative", "str", "bool"],
)
def test_schedule_turning_bad_raises_at_that_update_with_the_weights_untouched(bad: Any, error: type[Exception]) -> None:
    """Valid at the start, bad from half-way: the update where it turns bad raises, nothing of it is applied."""
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, seed=0, learning_rate=lambda p: 1e-3 if p > 0.5 else bad)
    initial = params_of(model)
    snapshot = SnapshotAtRolloutEnd()
    with pytest.raises(error) as info:
        model.learn(1024, callback=snapshot)
    message = str(info.value)
    # 16 rollouts of 64 steps: the 8th one ends at progress_remaining 1 - 512/1024
    assert "learning_rate" in message and "progress_remaining=0.5" in message and repr(bad) in message, message
    assert model.num_timesteps == 512
    assert model._n_updates > 0
    assert any(not th.equal(a, b) for a, b in zip(initial, params_of(model), strict=True))  # the good updates happened
    assert all_finite(model)
    for before, after in zip(snapshot.params, params_of(model), strict=True):
        assert th.equal(before, after)
    state = model.policy.optimizer.state_dict()["state"]
    for index, values in snapshot.optimizer_state.items():
        for key, value in values.items():
            assert th.equal(state[index][key], value), key
    assert all(group["lr"] == 1e-3 for group in model.policy.optimizer.param_groups)
    # The batch was not taken out of the buffer: nothing collected is lost
    assert model.rollout_buffer.size() == snapshot.buffer_size
    assert model.rollout_buffer.n_complete_episodes == snapshot.complete_episodes > 0


@pytest.mark.parametrize(
    "schedule", [lambda p: 1e-3 * p, LinearSchedule(1e-3, 0.0, 1.0)], ids=["lambda-linear", "sb3-LinearSchedule"]
)
def test_linear_schedule_reaching_zero_at_the_end_trains(schedule: Any) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, seed=0, learning_rate=schedule)
    initial = params_of(model)
    model.learn(512)  # the last update is at progress_remaining 0: learning rate 0
    assert model._current_progress_remaining == 0.0
    assert all(group["lr"] == 0.0 for group in model.policy.optimizer.param_groups)
    assert any(not th.equal(a, b) for a, b in zip(initial, params_of(model), strict=True))
    assert all_finite(model)


@pytest.mark.parametrize("n_envs", [1, 8])
@pytest.mark.parametrize(
    ("n_steps", "n_episodes"), [(64, None), (200, None), (64, 4)], ids=["n_steps=64", "n_steps=200", "n_episodes=4"]
)
def test_linear_schedule_never_goes_negative_when_the_last_rollout_overshoots(
    n_steps: int, n_episodes: int | None, n_envs: int
) -> None:
    """Collection stops at total_timesteps (300 is no multiple of 64 or 200; episodes end anywhere), but the last
    vector step of 8 envs ends at 304: the progress stays in [0, 1], so a linear decay (the zoo's lin_<value>) ends
    at 0 instead of a negative rate."""
    seen: list[float] = []

    def schedule(progress_remaining: float) -> float:
        seen.append(progress_remaining)
        return 1e-3 * progress_remaining

    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    model = REINFORCE("MlpPolicy", env, n_steps=n_steps, n_episodes=n_episodes, seed=0, learning_rate=schedule)
    model.learn(300)
    assert model.num_timesteps == (300 if n_envs == 1 else 304)
    assert min(seen) >= 0.0 and max(seen) <= 1.0
    assert all(group["lr"] >= 0.0 for group in model.policy.optimizer.param_groups)
    assert all_finite(model)
    # The last update (the one that reaches the budget) gets the schedule's final value
    assert model._current_progress_remaining == 0.0 and seen[-1] == 0.0
    assert all(group["lr"] == 0.0 for group in model.policy.optimizer.param_groups)


@pytest.mark.parametrize(
    "lr", [np.float32(1e-3), np.float64(1e-3), np.int64(1), np.int32(1)], ids=lambda lr: type(lr).__name__
)
def test_numpy_scalar_learning_rates_train(lr: Any) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, seed=0, learning_rate=lr)
    assert type(model.learning_rate) is float and model.learning_rate == float(lr)
    initial = params_of(model)
    model.learn(256)
    assert all(group["lr"] == float(lr) for group in model.policy.optimizer.param_groups)
    assert any(not th.equal(a, b) for a, b in zip(initial, params_of(model), strict=True))
    assert all_finite(model)


@pytest.mark.parametrize(
    ("lr", "error"),
    [
        (True, TypeError),
        (np.bool_(True), TypeError),
        ("lin_1e-3", TypeError),
        (np.float32("nan"), ValueError),
        (np.float64("inf"), ValueError),
        (np.float64(-1e-3), ValueError),
        (np.int64(0), ValueError),
        (0, ValueError),
    ],
    ids=["bool", "np-bool", "str", "np-nan", "np-inf", "np-negative", "np-zero", "zero"],
)
def test_bad_constant_learning_rates_are_refused_before_any_env_step(lr: Any, error: type[Exception]) -> None:
    CountingEnv.calls = 0
    with pytest.raises(error, match="learning_rate"):
        REINFORCE("MlpPolicy", CountingEnv(gym.make("CartPole-v1")), learning_rate=lr)
    assert CountingEnv.calls == 0


# a failed update, then a retry --------------------------------------------------------------------------


class HugeRewardOnce(gym.Wrapper):
    """Gives one reward of 3e38 (the float32 range ends at 3.4e38, where the VecEnv stores rewards), at the 5th
    step of the first episode: finite, so it reaches the buffer, but its returns overflow the loss to inf."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.steps = 0

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, 3e38 if self.steps == 5 else reward, terminated, truncated, info


@pytest.mark.parametrize("reset_num_timesteps", [False, True])
def test_learn_succeeds_after_a_floating_point_error(reset_num_timesteps: bool) -> None:
    model = REINFORCE("MlpPolicy", HugeRewardOnce(gym.make("CartPole-v1")), n_steps=64, seed=0, normalize_advantage=False)
    initial = params_of(model)
    snapshot = SnapshotAtRolloutEnd()
    with pytest.raises(FloatingPointError, match="non-finite"):
        model.learn(64, callback=snapshot)
    assert model._n_updates == 0
    for before, after in zip(initial, params_of(model), strict=True):
        assert th.equal(before, after)
    # The failed batch is out of the buffer; the steps of the episode still running are kept
    assert snapshot.complete_episodes > 0 and snapshot.incomplete_steps > 0
    assert model.rollout_buffer.n_complete_episodes == 0
    assert model.rollout_buffer.size() == snapshot.incomplete_steps
    model.learn(512, reset_num_timesteps=reset_num_timesteps)
    assert model._n_updates > 0
    assert any(not th.equal(a, b) for a, b in zip(initial, params_of(model), strict=True))
    assert all_finite(model)


class InfRewardOnce(gym.Wrapper):
    """Gives one reward of 1e308 at the 5th step (inf once stored as float32 by the VecEnv: refused at collection)
    and records the length of every episode that really ends."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.steps = 0
        self.episode_steps = 0
        self.lengths: list[int] = []

    def reset(self, **kwargs: Any):
        self.episode_steps = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self.episode_steps += 1
        if terminated or truncated:
            self.lengths.append(self.episode_steps)
        return obs, 1e308 if self.steps == 5 else reward, terminated, truncated, info


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # DummyVecEnv's float32 rewards
def test_episode_interrupted_by_a_bad_reward_is_not_spliced_into_the_next_learn() -> None:
    """The env was stepped past the last stored step when the reward was refused: continuing the stored episode
    with the env's later steps would give the buffer an episode that never happened (one step short)."""
    env = InfRewardOnce(gym.make("CartPole-v1"))
    model = REINFORCE("MlpPolicy", env, n_steps=64, seed=0)
    with pytest.raises(ValueError, match="non-finite reward"):
        model.learn(64)
    assert env.lengths == []  # the episode of the refused step is still running in the env
    snapshot = SnapshotAtRolloutEnd()
    model.learn(64, reset_num_timesteps=False, callback=snapshot)
    assert model.num_timesteps == 5 + 64  # counting continues: 4 stored steps, the refused one, 64 new ones
    # The envs were reset: the episodes the update saw are exactly those the env played (the first one would be
    # one step short if the 4 stored steps had been continued by the env's later steps)
    assert snapshot.complete_episodes > 0
    assert snapshot.episode_lengths[0] == env.lengths[: snapshot.complete_episodes]
    assert model._n_updates == 1
    assert all_finite(model)


# policy_kwargs ------------------------------------------------------------------------------------------


class WidthPolicy(REINFORCEPolicy):
    """A custom policy with an argument of its own (must be accepted in ``policy_kwargs``)."""

    def __init__(self, *args: Any, width: int = 8, **kwargs: Any):
        self.width = width
        kwargs["net_arch"] = [width]
        super().__init__(*args, **kwargs)


# (id, policy, policy_kwargs, error type, what the message must name besides "policy_kwargs")
POLICY_KWARGS_CASES: list[tuple[str, Any, dict[str, Any], type[Exception], list[str]]] = [
    ("net_arch-negative", "MlpPolicy", dict(net_arch=[64, -1]), ValueError, ["net_arch", "-1", "positive"]),
    ("net_arch-zero", "MlpPolicy", dict(net_arch=[0]), ValueError, ["net_arch", "positive"]),
    ("net_arch-dict-pi-negative", "MlpPolicy", dict(net_arch=dict(pi=[-8], vf=[8])), ValueError, ["net_arch['pi']", "-8"]),
    ("net_arch-dict-vf-zero", "MlpPolicy", dict(net_arch=dict(pi=[8], vf=[0])), ValueError, ["net_arch['vf']", "positive"]),
    ("net_arch-str", "MlpPolicy", dict(net_arch="64"), TypeError, ["net_arch", "'64'", "list"]),
    ("net_arch-float-size", "MlpPolicy", dict(net_arch=[64.0]), TypeError, ["net_arch", "64.0", "ints"]),
    ("net_arch-bool-size", "MlpPolicy", dict(net_arch=[True]), TypeError, ["net_arch", "True", "ints"]),
    ("net_arch-dict-key", "MlpPolicy", dict(net_arch=dict(pi=[8], qf=[8])), ValueError, ["net_arch", "'qf'", "'pi'"]),
    # one dict in a list is SB3's deprecated form (accepted with its warning, tests/test_conventions.py); more are refused
    ("net_arch-list-of-dicts", "MlpPolicy", dict(net_arch=[dict(pi=[8]), dict(pi=[4])]), TypeError, ["net_arch", "dict(pi="]),
    ("activation_fn-str", "MlpPolicy", dict(activation_fn="relu"), TypeError, ["activation_fn", "'relu'", "nn.ReLU"]),
    ("activation_fn-instance", "MlpPolicy", dict(activation_fn=nn.ReLU()), TypeError, ["activation_fn", "class"]),
    ("activation_fn-not-module", "MlpPolicy", dict(activation_fn=th.optim.Adam), TypeError, ["activation_fn", "nn.Module"]),
    ("optimizer_class-module", "MlpPolicy", dict(optimizer_class=nn.ReLU), TypeError, ["optimizer_class", "Optimizer"]),
    ("optimizer_class-str", "MlpPolicy", dict(optimizer_class="Adam"), TypeError, ["optimizer_class", "th.optim.Adam"]),
    ("optimizer_kwargs-list", "MlpPolicy", dict(optimizer_kwargs=[("eps", 1e-5)]), TypeError, ["optimizer_kwargs", "dict"]),
    ("optimizer_kwargs-str", "MlpPolicy", dict(optimizer_kwargs="eps=1e-5"), TypeError, ["optimizer_kwargs", "dict"]),
    # torch raised these at construction with messages naming neither policy_kwargs nor the key's place
    (
        "optimizer_kwargs-lr",
        "MlpPolicy",
        dict(optimizer_kwargs=dict(lr=0.5)),
        ValueError,
        ["['optimizer_kwargs']['lr']", "learning_rate"],
    ),
    (
        "optimizer_kwargs-typo",
        "MlpPolicy",
        dict(optimizer_kwargs=dict(bettas=(0.9, 0.9))),
        ValueError,
        ["['optimizer_kwargs']['bettas']", "Adam has no argument", "did you mean 'betas'"],
    ),
    (
        "optimizer_kwargs-other-class",
        "MlpPolicy",
        dict(optimizer_class=th.optim.SGD, optimizer_kwargs=dict(betas=(0.9, 0.9))),
        ValueError,
        ["['optimizer_kwargs']['betas']", "SGD has no argument", "momentum"],
    ),
    (
        "karpathy-optimizer_kwargs",
        KarpathyPolicy,
        dict(optimizer_kwargs=dict(betas=(0.9, 0.9))),
        ValueError,
        ["['optimizer_kwargs']['betas']", "RMSprop has no argument"],
    ),
    (
        "features_extractor_class",
        "MlpPolicy",
        dict(features_extractor_class=nn.Linear),
        TypeError,
        ["features_extractor_class"],
    ),
    ("features_extractor_kwargs", "MlpPolicy", dict(features_extractor_kwargs=3), TypeError, ["features_extractor_kwargs"]),
    ("ortho_init-str", "MlpPolicy", dict(ortho_init="yes"), TypeError, ["ortho_init", "bool"]),
    ("log_std_init-nan", "MlpPolicy", dict(log_std_init=float("nan")), ValueError, ["log_std_init", "finite"]),
    ("squash_output", "MlpPolicy", dict(squash_output=True), ValueError, ["squash_output", "gSDE"]),
    ("unknown-typo", "MlpPolicy", dict(net_arhc=[64]), ValueError, ["'net_arhc'", "did you mean 'net_arch'", "ortho_init"]),
    ("unknown-lr", "MlpPolicy", dict(learning_rate=1e-3), ValueError, ["'learning_rate'", "accepts net_arch"]),
    ("unknown-int-key", "MlpPolicy", {1: 2}, ValueError, ["1", "accepts net_arch"]),
    ("algorithm-value_baseline", "MlpPolicy", dict(value_baseline=True), ValueError, ["'value_baseline'", "baseline"]),
    ("algorithm-use_sde", "MlpPolicy", dict(use_sde=True), ValueError, ["'use_sde'", "gSDE"]),
    ("algorithm-lr_schedule", "MlpPolicy", dict(lr_schedule=lambda _: 1e-3), ValueError, ["'lr_schedule'", "learning_rate"]),
    ("algorithm-spaces", "MlpPolicy", dict(observation_space=None), ValueError, ["'observation_space'", "env"]),
    ("cnn-typo", "CnnPolicy", dict(features_extractor_kwarg={}), ValueError, ["did you mean 'features_extractor_kwargs'"]),
    ("karpathy-n_hidden-zero", KarpathyPolicy, dict(n_hidden=0), ValueError, ["n_hidden", "positive"]),
    ("karpathy-n_hidden-str", KarpathyPolicy, dict(n_hidden="200"), TypeError, ["n_hidden", "int"]),
    ("karpathy-single_logit-str", KarpathyPolicy, dict(single_logit="no"), TypeError, ["single_logit", "bool"]),
    ("karpathy-net_arch", KarpathyPolicy, dict(net_arch=[64]), ValueError, ["'net_arch'", "KarpathyPolicy sets it itself"]),
    ("karpathy-typo", KarpathyPolicy, dict(n_hiden=16), ValueError, ["did you mean 'n_hidden'", "single_logit"]),
    ("custom-typo", WidthPolicy, dict(widht=16), ValueError, ["did you mean 'width'", "WidthPolicy accepts"]),
]


@pytest.mark.parametrize(
    ("policy", "policy_kwargs", "error", "named"),
    [case[1:] for case in POLICY_KWARGS_CASES],
    ids=[case[0] for case in POLICY_KWARGS_CASES],
)
def test_bad_policy_kwargs_are_refused_before_any_env_step(
    policy: Any, policy_kwargs: dict[str, Any], error: type[Exception], named: list[str]
) -> None:
    CountingEnv.calls = 0
    with pytest.raises(error) as info:
        REINFORCE(policy, CountingEnv(gym.make("CartPole-v1")), policy_kwargs=policy_kwargs)
    message = str(info.value)
    assert "policy_kwargs" in message, message
    for part in named:
        assert part in message, (part, message)
    assert CountingEnv.calls == 0


def test_every_problem_is_reported() -> None:
    problems = policy_kwargs_problems(dict(net_arch=[-1], activation_fn="relu", net_arhc=[8]), REINFORCEPolicy)
    assert [problem.key for problem in problems] == ["net_arch", "activation_fn", "net_arhc"]
    assert [problem.error for problem in problems] == [ValueError, TypeError, ValueError]
    with pytest.raises(ValueError) as info:
        REINFORCE("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[-1], activation_fn="relu", net_arhc=[8]))
    for problem in problems:
        assert problem.message in str(info.value)


def test_valid_policy_kwargs_of_every_kind_are_accepted() -> None:
    """Every SB3 key with a valid value, and the keys of KarpathyPolicy and of a custom policy (from signatures)."""
    env = CountingEnv(gym.make("CartPole-v1"))
    CountingEnv.calls = 0
    sb3_kwargs = dict(
        net_arch=dict(pi=[16], vf=[np.int64(16)]),
        activation_fn=nn.ReLU,
        ortho_init=False,
        log_std_init=-0.5,
        full_std=True,
        use_expln=False,
        squash_output=False,
        features_extractor_class=FlattenExtractor,
        features_extractor_kwargs={},
        share_features_extractor=False,
        normalize_images=True,
        optimizer_class=th.optim.RMSprop,
        optimizer_kwargs=dict(alpha=0.9),
    )
    assert set(sb3_kwargs) == set(POLICY_KWARGS)
    model = REINFORCE("MlpPolicy", env, baseline="value", policy_kwargs=sb3_kwargs)
    assert isinstance(model.policy.optimizer, th.optim.RMSprop)
    REINFORCE("MlpPolicy", env, policy_kwargs=dict(net_arch=[]))  # no hidden layer: a linear policy
    karpathy = REINFORCE(KarpathyPolicy, env, policy_kwargs=dict(n_hidden=16, single_logit=False))
    assert karpathy.policy.n_hidden == 16
    custom = REINFORCE(WidthPolicy, env, policy_kwargs=dict(width=4))
    assert custom.policy.mlp_extractor.latent_dim_pi == 4
    assert "width" in allowed_policy_kwargs(WidthPolicy) and "width" not in POLICY_KWARGS
    assert CountingEnv.calls == 0
