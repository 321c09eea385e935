"""
Table-driven test of argument validation: every constructor argument of REINFORCE, the env's spaces, and the
public wrapper/factory arguments are checked before any env step, with an error naming the argument, the
value and what is allowed.
"""

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce.pong import wrappers
from sb3_reinforce.pong.vec_env import make_pong_vec_env
from sb3_reinforce.reinforce.reinforce import REINFORCE


class CountingEnv(gym.Wrapper):
    """Counts the env's resets and steps (the validation must happen before any)."""

    calls = 0

    def reset(self, **kwargs: Any):
        CountingEnv.calls += 1
        return super().reset(**kwargs)

    def step(self, action: Any):
        CountingEnv.calls += 1
        return super().step(action)


class SpaceEnv(gym.Env):
    """An env with the given spaces (never stepped by the tests)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # pragma: no cover
        CountingEnv.calls += 1
        raise AssertionError("reset before validation")

    def step(self, action: Any):  # pragma: no cover
        CountingEnv.calls += 1
        raise AssertionError("step before validation")


BOX = spaces.Box(-1, 1, (3,), np.float32)
DISCRETE = spaces.Discrete(2)


def reinforce(**kwargs: Any) -> Callable[[], Any]:
    def make() -> Any:
        kwargs.setdefault("policy", "MlpPolicy")
        kwargs.setdefault("env", CountingEnv(gym.make("CartPole-v1")))
        return REINFORCE(**kwargs)

    return make


def with_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> Callable[[], Any]:
    return reinforce(env=SpaceEnv(observation_space, action_space))


def call(function: Callable, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: function(*args, **kwargs)


# (id, callable, error type, what the message must name: the argument, and the allowed values)
CASES: list[tuple[str, Callable[[], Any], type[Exception], str, str]] = [
    # REINFORCE: the policy
    ("policy-unknown-name", reinforce(policy="LstmPolicy"), ValueError, "policy", "MlpPolicy"),
    ("policy-not-a-class", reinforce(policy=3), TypeError, "policy", "REINFORCEPolicy subclass"),
    ("policy-other-class", reinforce(policy=ActorCriticPolicy), TypeError, "policy", "REINFORCEPolicy subclass"),
    ("policy_kwargs-list", reinforce(policy_kwargs=[64, 64]), TypeError, "policy_kwargs", "dict"),
    ("policy_kwargs-str", reinforce(policy_kwargs="net_arch"), TypeError, "policy_kwargs", "dict"),
    # learning rate and batch size
    ("learning_rate-zero", reinforce(learning_rate=0.0), ValueError, "learning_rate", "(0.0, inf)"),
    ("learning_rate-negative", reinforce(learning_rate=-1e-3), ValueError, "learning_rate", "(0.0, inf)"),
    ("learning_rate-nan", reinforce(learning_rate=float("nan")), ValueError, "learning_rate", "(0.0, inf)"),
    ("learning_rate-inf", reinforce(learning_rate=float("inf")), ValueError, "learning_rate", "(0.0, inf)"),
    ("learning_rate-str", reinforce(learning_rate="1e-3"), TypeError, "learning_rate", "a number"),
    ("n_steps-zero", reinforce(n_steps=0), ValueError, "n_steps", "[1, inf)"),
    ("n_steps-negative", reinforce(n_steps=-8), ValueError, "n_steps", "[1, inf)"),
    ("n_steps-float", reinforce(n_steps=64.0), TypeError, "n_steps", "an int"),
    ("n_steps-bool", reinforce(n_steps=True), TypeError, "n_steps", "an int"),
    ("n_episodes-zero", reinforce(n_episodes=0), ValueError, "n_episodes", "[1, inf)"),
    ("n_episodes-negative", reinforce(n_episodes=-1), ValueError, "n_episodes", "[1, inf)"),
    ("n_episodes-float", reinforce(n_episodes=2.5), TypeError, "n_episodes", "an int"),
    # estimator
    ("gamma-negative", reinforce(gamma=-0.1), ValueError, "gamma", "[0.0, 1.0]"),
    ("gamma-above-one", reinforce(gamma=1.01), ValueError, "gamma", "[0.0, 1.0]"),
    ("gamma-nan", reinforce(gamma=float("nan")), ValueError, "gamma", "[0.0, 1.0]"),
    ("gamma-str", reinforce(gamma="0.99"), TypeError, "gamma", "a number"),
    ("return_mode-unknown", reinforce(return_mode="gae"), ValueError, "return_mode", "reward_to_go"),
    ("return_mode-none", reinforce(return_mode=None), ValueError, "return_mode", "total"),
    ("baseline-unknown", reinforce(baseline="median"), ValueError, "baseline", "optimal"),
    ("baseline-int", reinforce(baseline=0), ValueError, "baseline", "value"),
    ("gae_lambda-without-value", reinforce(gae_lambda=0.95), ValueError, "gae_lambda", "baseline='value'"),
    ("gae_lambda-with-mean", reinforce(gae_lambda=0.9, baseline="mean"), ValueError, "gae_lambda", "baseline='value'"),
    ("gae_lambda-above-one", reinforce(gae_lambda=1.5, baseline="value"), ValueError, "gae_lambda", "[0.0, 1.0]"),
    ("gae_lambda-negative", reinforce(gae_lambda=-0.1, baseline="value"), ValueError, "gae_lambda", "[0.0, 1.0]"),
    ("normalize_advantage-str", reinforce(normalize_advantage="yes"), TypeError, "normalize_advantage", "a bool"),
    ("reset_on_reward-int", reinforce(reset_on_reward=1), TypeError, "reset_on_reward", "a bool"),
    # loss terms
    ("ent_coef-str", reinforce(ent_coef="0.01"), TypeError, "ent_coef", "a number"),
    ("ent_coef-nan", reinforce(ent_coef=float("nan")), ValueError, "ent_coef", "finite"),
    ("vf_coef-negative", reinforce(vf_coef=-0.5), ValueError, "vf_coef", "[0.0, inf)"),
    ("max_grad_norm-zero", reinforce(max_grad_norm=0.0), ValueError, "max_grad_norm", "(0.0, inf)"),
    ("max_grad_norm-negative", reinforce(max_grad_norm=-1.0), ValueError, "max_grad_norm", "(0.0, inf)"),
    # buffer
    ("rollout_buffer_class-sb3", reinforce(rollout_buffer_class=RolloutBuffer), TypeError, "rollout_buffer_class", "Episode"),
    ("rollout_buffer_kwargs-list", reinforce(rollout_buffer_kwargs=[]), TypeError, "rollout_buffer_kwargs", "a dict"),
    (
        "max_episode_steps-zero",
        reinforce(rollout_buffer_kwargs=dict(max_episode_steps=0)),
        ValueError,
        "max_episode_steps",
        "[1, inf)",
    ),
    # bookkeeping
    ("stats_window_size-zero", reinforce(stats_window_size=0), ValueError, "stats_window_size", "[1, inf)"),
    ("verbose-negative", reinforce(verbose=-1), ValueError, "verbose", "[0, 2]"),
    ("verbose-too-big", reinforce(verbose=3), ValueError, "verbose", "[0, 2]"),
    ("verbose-str", reinforce(verbose="1"), TypeError, "verbose", "an int"),
    ("seed-negative", reinforce(seed=-1), ValueError, "seed", "[0, 4294967295]"),
    ("seed-float", reinforce(seed=1.5), TypeError, "seed", "an int"),
    ("device-int", reinforce(device=0), TypeError, "device", "torch.device"),
    ("tensorboard_log-int", reinforce(tensorboard_log=1), TypeError, "tensorboard_log", "str path or None"),
    # the env's spaces
    ("obs-sequence", with_spaces(spaces.Sequence(BOX), DISCRETE), ValueError, "observation_space", "Box, Discrete"),
    ("obs-graph", with_spaces(spaces.Graph(BOX, None), DISCRETE), ValueError, "observation_space", "Box, Discrete"),
    ("obs-tuple", with_spaces(spaces.Tuple((BOX, DISCRETE)), DISCRETE), ValueError, "observation_space", "Dict of those"),
    ("obs-text", with_spaces(spaces.Text(8), DISCRETE), ValueError, "observation_space", "MultiBinary"),
    (
        "obs-nested-dict",
        with_spaces(spaces.Dict(a=spaces.Dict(b=BOX)), DISCRETE),
        NotImplementedError,  # as SB3's algorithms (check_for_nested_spaces), naming the key
        "observation_space['a']",
        "Nested observation spaces are not supported",
    ),
    ("obs-dict-sequence", with_spaces(spaces.Dict(a=spaces.Sequence(BOX)), DISCRETE), ValueError, "observation_space", "Box"),
    ("action-tuple", with_spaces(BOX, spaces.Tuple((DISCRETE, DISCRETE))), ValueError, "action_space", "MultiDiscrete"),
    ("action-dict", with_spaces(BOX, spaces.Dict(a=DISCRETE)), ValueError, "action_space", "MultiBinary"),
    ("action-text", with_spaces(BOX, spaces.Text(4)), ValueError, "action_space", "Box, Discrete"),
    # sb3_reinforce.pong
    ("pong-n_envs", call(make_pong_vec_env, n_envs=0), ValueError, "n_envs", "[1, inf)"),
    ("pong-n_envs-float", call(make_pong_vec_env, n_envs=2.0), TypeError, "n_envs", "an int"),
    ("pong-seed", call(make_pong_vec_env, seed=-1), ValueError, "seed", "[0, inf)"),
    ("pong-frameskip", call(make_pong_vec_env, frameskip=0), ValueError, "frameskip", "[1, inf)"),
    ("pong-sticky", call(make_pong_vec_env, repeat_action_probability=1.5), ValueError, "repeat_action_probability", "[0, 1]"),
    (
        "pong-sticky-str",
        call(make_pong_vec_env, repeat_action_probability="0.2"),
        TypeError,
        "repeat_action_probability",
        "a number in [0, 1]",
    ),
    ("pong-karpathy_original", call(make_pong_vec_env, karpathy_original=1), TypeError, "karpathy_original", "bool"),
    (
        "pong-max-frames",
        call(make_pong_vec_env, max_num_frames_per_episode=0),
        ValueError,
        "max_num_frames_per_episode",
        "[1, inf)",
    ),
    ("pong-num_threads", call(make_pong_vec_env, num_threads=-1), ValueError, "num_threads", "[0, inf)"),
    ("pong-affinity", call(make_pong_vec_env, thread_affinity_offset=-2), ValueError, "thread_affinity_offset", "[-1, inf)"),
    ("pong-info_keywords", call(make_pong_vec_env, info_keywords=("r",)), ValueError, "info_keywords", "TimeLimit.truncated"),
    # sb3_reinforce.pong.wrappers
    ("ale-frameskip", call(wrappers.make_karpathy_pong_env, frameskip=0), ValueError, "frameskip", "[1, inf)"),
    ("ale-frameskip-str", call(wrappers.make_karpathy_pong_env, frameskip="4"), TypeError, "frameskip", "(low, high) tuple"),
    (
        "ale-frameskip-range",
        call(wrappers.make_karpathy_pong_env, frameskip=(4, 2)),
        ValueError,
        "frameskip",
        "1 <= low < high",
    ),
    (
        "ale-sticky",
        call(wrappers.make_karpathy_pong_env, repeat_action_probability=-0.1),
        ValueError,
        "repeat_action_probability",
        "[0, 1]",
    ),
    (
        "ale-karpathy_original",
        call(wrappers.make_karpathy_pong_env, karpathy_original="yes"),
        TypeError,
        "karpathy_original",
        "bool",
    ),
    (
        "ale-max-frames",
        call(wrappers.make_karpathy_pong_env, max_num_frames_per_episode=0),
        ValueError,
        "max_num_frames",
        "an integer in [1, inf)",
    ),
    (
        "ale-sticky-str",
        call(wrappers.make_karpathy_pong_env, repeat_action_probability="0.25"),
        TypeError,
        "repeat_action_probability",
        "a number in [0, 1]",
    ),
    ("ale-obs_type", call(wrappers.make_karpathy_pong_env, obs_type="grayscale"), ValueError, "obs_type", "'rgb'"),
    ("preprocess-env", call(wrappers.KarpathyPreprocess, "Pong"), TypeError, "env", "gymnasium.Env"),
    (
        "preprocess-space",
        call(wrappers.KarpathyPreprocess, gym.make("CartPole-v1")),
        ValueError,
        "observation space",
        "(210, 160, 3)",
    ),
    ("difference-env", call(wrappers.DifferenceFrame, None), TypeError, "env", "gymnasium.Env"),
    ("updown-env", call(wrappers.PongUpDown, 3), TypeError, "env", "gymnasium.Env"),
    ("updown-space", call(wrappers.PongUpDown, gym.make("Pendulum-v1")), ValueError, "action space", "Discrete"),
    ("vec-difference-venv", call(wrappers.VecDifferenceFrame, gym.make("CartPole-v1")), TypeError, "venv", "VecEnv"),
    (
        "vec-difference-space",
        call(wrappers.VecDifferenceFrame, DummyVecEnv([lambda: gym.make("CartPole-v1")])),
        ValueError,
        "observation space",
        "{0, 1}",
    ),
    (
        "preprocess-frame",
        call(wrappers.karpathy_preprocess, np.zeros((80, 80), np.uint8)),
        ValueError,
        "frame",
        "(210, 160, 3)",
    ),
    (
        "preprocess-batch-dtype",
        call(wrappers.karpathy_preprocess_batch, np.zeros((2, 210, 160, 3))),
        ValueError,
        "frames",
        "uint8",
    ),
]


def test_table_is_large() -> None:
    assert len(CASES) >= 80
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("make", "error", "argument", "allowed"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_argument_is_rejected_with_a_clear_error(
    make: Callable[[], Any], error: type[Exception], argument: str, allowed: str
) -> None:
    CountingEnv.calls = 0
    with pytest.raises(error) as info:
        make()
    message = str(info.value)
    assert argument in message, message
    assert allowed in message, message
    # Validation happens before the env is reset or stepped
    assert CountingEnv.calls == 0


def test_valid_arguments_are_accepted() -> None:
    """The boundaries of the allowed ranges are accepted."""
    env = CountingEnv(gym.make("CartPole-v1"))
    REINFORCE("MlpPolicy", env, gamma=0.0, n_steps=1, n_episodes=1, learning_rate=lambda _: 1e-3, seed=0)
    REINFORCE("MlpPolicy", env, gamma=1.0, baseline="value", gae_lambda=0.0, vf_coef=0.0, max_grad_norm=None, verbose=2)
    REINFORCE("MultiInputPolicy", SpaceEnv(spaces.Dict(a=BOX, b=spaces.MultiBinary(3)), spaces.MultiDiscrete([2, 3])))
    REINFORCE("MlpPolicy", SpaceEnv(spaces.MultiDiscrete([3, 4]), spaces.MultiBinary(2)), n_steps=np.int64(8))
    assert CountingEnv.calls == 0
