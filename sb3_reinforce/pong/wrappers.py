"""
Wrappers that turn Atari Pong into the problem of Karpathy's "Pong from Pixels" agent.

The agent sees a binary 80x80 picture (paddles and ball set to 1, background to 0), flattened to 6400
values, as the difference between the current and the previous picture, and chooses between two actions,
UP and DOWN.

- :func:`karpathy_preprocess` / :func:`karpathy_preprocess_batch`: the preprocessing of a frame (or of many),
  from :mod:`sb3_reinforce.pong.preprocessing`, where it and the frame difference are written once;
- :class:`KarpathyPreprocess`: gymnasium observation wrapper applying it;
- :class:`DifferenceFrame`: gymnasium wrapper giving the current minus the previous preprocessed frame;
- :class:`PongUpDown`: gymnasium action wrapper restricting the actions to UP and DOWN;
- :class:`VecDifferenceFrame`: the difference frame as an SB3 ``VecEnvWrapper`` (handles auto-reset);
- :func:`wrap_karpathy_pong` and :func:`make_karpathy_pong_env`: the whole chain, as a ``wrapper_class``
  for SB3's ``make_vec_env`` or as a ready-made gymnasium env.

For a much faster vectorized version of the same environment see :func:`sb3_reinforce.pong.make_pong_vec_env`.
"""

import math
import numbers
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn, VecEnvWrapper

from sb3_reinforce.common.checks import check_number
from sb3_reinforce.pong.preprocessing import (
    FRAME_SHAPE,
    N_PIXELS,
    difference_frames,
    difference_step,
    karpathy_preprocess,
    karpathy_preprocess_batch,
)
from sb3_reinforce.pong.registration import STICKY_ACTION_PROBABILITY

__all__ = [
    "FRAME_SHAPE",
    "N_PIXELS",
    "DifferenceFrame",
    "KarpathyPreprocess",
    "PongUpDown",
    "VecDifferenceFrame",
    "karpathy_preprocess",
    "karpathy_preprocess_batch",
    "make_karpathy_pong_env",
    "wrap_karpathy_pong",
]


def _check_binary_frame_space(space: spaces.Space, what: str) -> None:
    """Raise if ``space`` is not a 1-D integer Box with values in {0, 1} (preprocessed frames)."""
    if not isinstance(space, spaces.Box):
        raise TypeError(f"{what} must be a gymnasium.spaces.Box of preprocessed frames, got {space!r}")
    if len(space.shape) != 1 or not np.issubdtype(space.dtype, np.integer) or space.low.min() < 0 or space.high.max() > 1:
        raise ValueError(
            f"{what} must be a 1-D integer Box with values in {{0, 1}} (e.g. the output of KarpathyPreprocess), got {space!r}"
        )


class KarpathyPreprocess(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """
    Observation wrapper applying :func:`karpathy_preprocess` to Atari frames.

    The observation space becomes ``Box(0, 1, (6400,), int8)``: one byte per value keeps rollout buffers
    small (SB3 stores observations in the observation space's dtype; the policy converts them to float).

    :param env: environment with RGB observations, ``Box`` of shape ``(210, 160, 3)`` and dtype ``uint8``
        (the default ``obs_type="rgb"`` of ``ALE/Pong-v5``)
    """

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        space = env.observation_space
        if not isinstance(space, spaces.Box) or space.shape != FRAME_SHAPE or space.dtype != np.uint8:
            raise ValueError(
                f"KarpathyPreprocess needs an env with RGB Atari frames, Box of shape {FRAME_SHAPE} and dtype uint8 "
                f"(make the env with obs_type='rgb'), got observation space {space!r}"
            )
        super().__init__(env)
        self.observation_space = spaces.Box(low=0, high=1, shape=(N_PIXELS,), dtype=np.int8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """
        :param observation: RGB frame
        :return: preprocessed frame, 6400 values in {0, 1}
        """
        return karpathy_preprocess(observation)


class DifferenceFrame(gym.Wrapper[np.ndarray, Any, np.ndarray, Any]):
    """
    Observation = current preprocessed frame minus the previous one (all zeros right after a reset).

    This is the input of Karpathy's network: a still picture carries no motion, the difference shows
    where the ball and the paddles move. Values are in {-1, 0, 1}, observation space
    ``Box(-1, 1, (n,), int8)``.

    :param env: environment whose observations are preprocessed frames: a 1-D integer ``Box`` with values
        in {0, 1}, for example :class:`KarpathyPreprocess`
    """

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        _check_binary_frame_space(env.observation_space, "DifferenceFrame: the env's observation space")
        super().__init__(env)
        self.observation_space = spaces.Box(low=-1, high=1, shape=env.observation_space.shape, dtype=np.int8)
        self._previous: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        self._previous = observation
        # the first frame has no previous one
        return np.zeros(self.observation_space.shape, dtype=np.int8), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._previous is None:
            raise RuntimeError("DifferenceFrame: call reset() before step()")
        observation, reward, terminated, truncated, info = self.env.step(action)
        difference = difference_frames(observation, self._previous)
        self._previous = observation
        return difference, reward, terminated, truncated, info


class PongUpDown(gym.ActionWrapper[Any, int, Any]):
    """
    Restrict Pong's actions to two, as Karpathy's agent: ``0`` is UP and ``1`` is DOWN.

    In Atari Pong the joystick's RIGHT moves the player's paddle (the green one, on the right) up and LEFT
    moves it down; they are actions 2 (RIGHT) and 3 (LEFT) of the minimal action set
    ``[NOOP, FIRE, RIGHT, LEFT, RIGHTFIRE, LEFTFIRE]`` that Karpathy used. The indices are looked up by
    name in ``env.unwrapped.get_action_meanings()``, so the full 18-action set (where RIGHT is 3 and
    LEFT is 4) works too.

    :param env: an ALE Pong environment with a ``Discrete`` action space
    """

    #: Meaning of the wrapped actions 0 and 1
    ACTION_NAMES = ("UP", "DOWN")

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        if not isinstance(env.action_space, spaces.Discrete):
            raise ValueError(f"PongUpDown needs an env with a Discrete action space, got {env.action_space!r}")
        get_meanings = getattr(env.unwrapped, "get_action_meanings", None)
        if get_meanings is None:
            raise ValueError(
                f"PongUpDown needs an ALE env (env.unwrapped.get_action_meanings()), got {type(env.unwrapped).__name__}"
            )
        meanings = list(get_meanings())
        if "RIGHT" not in meanings or "LEFT" not in meanings:
            raise ValueError(f"PongUpDown needs the actions RIGHT and LEFT, the env has {meanings}")
        super().__init__(env)
        #: ALE action index moving the paddle up (RIGHT) and down (LEFT)
        self.up_action = meanings.index("RIGHT")
        self.down_action = meanings.index("LEFT")
        self._actions = np.array([self.up_action, self.down_action])
        self.action_space = spaces.Discrete(2)

    def action(self, action: Any) -> int:
        """
        :param action: 0 (UP) or 1 (DOWN)
        :return: the wrapped env's action index
        """
        return int(self._actions[int(action)])

    def get_action_meanings(self) -> list[str]:
        """:return: ``["UP", "DOWN"]``"""
        return list(self.ACTION_NAMES)


class VecDifferenceFrame(VecEnvWrapper):
    """
    Difference frames on an SB3 ``VecEnv`` of preprocessed frames (the vectorized :class:`DifferenceFrame`).

    Auto-reset is handled as SB3 does it: when a sub-environment is done, the returned observation is the
    first one of its new episode, all zeros, and ``infos[i]["terminal_observation"]`` (the last preprocessed
    frame of the episode) is replaced by the difference frame of the terminal step.

    :param venv: vectorized environment whose observations are preprocessed frames, a 1-D integer ``Box``
        with values in {0, 1} (for example ``make_vec_env(..., wrapper_class=KarpathyPreprocess)``)
    """

    def __init__(self, venv: VecEnv) -> None:
        if not isinstance(venv, VecEnv):
            raise TypeError(f"venv must be a stable_baselines3 VecEnv, got {type(venv).__name__}")
        _check_binary_frame_space(venv.observation_space, "VecDifferenceFrame: the venv's observation space")
        observation_space = spaces.Box(low=-1, high=1, shape=venv.observation_space.shape, dtype=np.int8)
        super().__init__(venv, observation_space=observation_space)
        self._previous = np.zeros((self.num_envs, *observation_space.shape), dtype=np.int8)

    def reset(self) -> VecEnvObs:
        np.copyto(self._previous, self.venv.reset())
        return np.zeros_like(self._previous)

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, dones, infos = self.venv.step_wait()
        differences = difference_step(observations, self._previous, dones, infos)
        # a copy: vectorized envs (DummyVecEnv) write the next step's observations into the same buffer
        np.copyto(self._previous, observations)
        return differences, rewards, dones, infos


def wrap_karpathy_pong(env: gym.Env, difference: bool = True, up_down: bool = True) -> gym.Env:
    """
    Wrap an ALE Pong env with :class:`KarpathyPreprocess`, :class:`DifferenceFrame` and :class:`PongUpDown`.

    Usable as ``wrapper_class`` of SB3's ``make_vec_env``::

        from stable_baselines3.common.env_util import make_vec_env
        venv = make_vec_env("ALE/Pong-v5", n_envs=4, wrapper_class=wrap_karpathy_pong,
                            env_kwargs=dict(frameskip=4, repeat_action_probability=0.25))

    :param env: ALE Pong env with RGB observations
    :param difference: give difference frames (:class:`DifferenceFrame`); ``False`` leaves preprocessed frames,
        for example to difference them afterwards with :class:`VecDifferenceFrame`
    :param up_down: restrict actions to UP/DOWN (:class:`PongUpDown`)
    :return: the wrapped env
    """
    env = KarpathyPreprocess(env)
    if difference:
        env = DifferenceFrame(env)
    if up_down:
        env = PongUpDown(env)
    return env


def make_karpathy_pong_env(
    frameskip: int | tuple[int, int] | None = None,
    repeat_action_probability: float = STICKY_ACTION_PROBABILITY,
    karpathy_original: bool = False,
    max_num_frames_per_episode: int = 108_000,
    render_mode: str | None = None,
    difference: bool = True,
    up_down: bool = True,
    **kwargs: Any,
) -> gym.Env:
    """
    Make ``ALE/Pong-v5`` wrapped as the environment of Karpathy's agent (see :func:`wrap_karpathy_pong`).

    Defaults: those of ``ALE/Pong-v5``, frameskip 4 and sticky actions (``repeat_action_probability=0.25``: at
    each emulator frame the previous action is repeated with probability 0.25, Machado et al. 2018).
    ``repeat_action_probability=0.0`` is the deterministic emulator, where the same actions always give the same
    game and an agent can learn the emulator instead of the game. ``karpathy_original=True`` gives the 2016
    ``Pong-v0`` emulator: a random frameskip of 2, 3 or 4 at each step (``frameskip=(2, 5)``), with the sticky
    actions 0.25 of the default. An explicit ``frameskip`` takes precedence.
    ``gymnasium.make("KarpathyPong-v0", **kwargs)`` calls this function.

    This is a single gymnasium env; for many envs in parallel prefer
    :func:`sb3_reinforce.pong.make_pong_vec_env` (same observations, several times faster).

    :param frameskip: emulator frames per step: an int, or ``(low, high)`` for a random frameskip in
        ``[low, high)``; default 4 (``(2, 5)`` with ``karpathy_original``)
    :param repeat_action_probability: probability of repeating the previous action at each frame (sticky
        actions): 0.25 (``ALE/Pong-v5``), or 0.0 for the deterministic emulator
    :param karpathy_original: use the ``Pong-v0`` settings described above
    :param max_num_frames_per_episode: emulator frames after which an episode is truncated
    :param render_mode: gymnasium render mode (``None``, ``"rgb_array"`` or ``"human"``)
    :param difference: give difference frames (see :func:`wrap_karpathy_pong`)
    :param up_down: restrict actions to UP/DOWN (see :func:`wrap_karpathy_pong`)
    :param kwargs: further keyword arguments for ``gymnasium.make("ALE/Pong-v5", ...)``
    :return: the wrapped env
    """
    import ale_py

    if not isinstance(karpathy_original, bool):
        raise TypeError(f"karpathy_original must be a bool, got {karpathy_original!r}")
    if frameskip is None:
        frameskip = (2, 5) if karpathy_original else 4
    if isinstance(frameskip, tuple):
        if not (len(frameskip) == 2 and all(isinstance(f, int) for f in frameskip) and 1 <= frameskip[0] < frameskip[1]):
            raise ValueError(f"a random frameskip must be a tuple (low, high) of ints with 1 <= low < high, got {frameskip!r}")
    elif isinstance(frameskip, bool) or not isinstance(frameskip, numbers.Integral):
        raise TypeError(f"frameskip must be an int or a (low, high) tuple, got {frameskip!r}")
    else:
        check_number("frameskip", frameskip, 1, math.inf, integer=True)
        frameskip = int(frameskip)  # ALE wants a Python int, not a numpy one
    check_number("repeat_action_probability", repeat_action_probability, 0, 1)
    check_number("max_num_frames_per_episode", max_num_frames_per_episode, 1, math.inf, integer=True)
    if kwargs.get("obs_type", "rgb") != "rgb":
        raise ValueError(f"obs_type must be 'rgb' (the preprocessing reads the red channel), got {kwargs['obs_type']!r}")

    gym.register_envs(ale_py)
    env = gym.make(
        "ALE/Pong-v5",
        frameskip=frameskip,
        repeat_action_probability=float(repeat_action_probability),
        max_num_frames_per_episode=int(max_num_frames_per_episode),
        render_mode=render_mode,
        **kwargs,
    )
    return wrap_karpathy_pong(env, difference=difference, up_down=up_down)
