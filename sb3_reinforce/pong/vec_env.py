"""
Fast vectorized Pong with the observations and actions of Karpathy's "Pong from Pixels" agent.

Use the factory :func:`make_pong_vec_env`::

    from sb3_reinforce.pong.vec_env import make_pong_vec_env
    venv = make_pong_vec_env(n_envs=16, seed=0)

It returns a :class:`PongVecEnv`, a Stable-Baselines3 ``VecEnv`` running N Atari Pong games in native threads
with ale-py's C++ vector environment (``ale_py.vector_env.AtariVectorEnv``); Karpathy's preprocessing and the
difference frames are computed batched in numpy. Observations are ``int8`` difference frames
(``Box(-1, 1, (6400,), int8)``), actions ``Discrete(2)`` (0 = UP, 1 = DOWN). The observations are identical to
those of the gymnasium chain :func:`sb3_reinforce.pong.wrappers.make_karpathy_pong_env` (``ALE/Pong-v5`` +
``KarpathyPreprocess`` + ``DifferenceFrame`` + ``PongUpDown``) with the same emulator settings and actions.
"""

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from sb3_reinforce.pong.wrappers import (
    FRAME_SHAPE,
    N_PIXELS,
    DifferenceFrame,
    KarpathyPreprocess,
    PongUpDown,
    karpathy_preprocess,
    karpathy_preprocess_batch,
)

__all__ = ["PongVecEnv", "make_pong_vec_env"]

# ALE seeds are 32-bit signed integers (-1 means "do not reseed")
_MAX_SEED = 2**31 - 1


class PongVecEnv(VecEnv):
    """
    N Atari Pong games as an SB3 ``VecEnv``, with Karpathy's difference-frame observations and UP/DOWN actions.

    Prefer the factory :func:`make_pong_vec_env`, which documents the emulator settings.

    SB3 semantics:

    - auto-reset: when a game is done, the observation returned is the first one of the next game (all
      zeros), ``infos[i]["terminal_observation"]`` holds the difference frame of the last step and
      ``infos[i]["TimeLimit.truncated"]`` tells whether the episode was truncated (frame limit) rather than
      terminated (21 points);
    - episode statistics: ``infos[i]["episode"] = {"r": return, "l": length, "t": seconds since creation}`` at
      the end of each episode, exactly as SB3's ``Monitor`` writes them, so ``rollout/ep_rew_mean``,
      ``EvalCallback`` and ``evaluate_policy`` work without another wrapper (``env_is_wrapped(Monitor)`` is
      ``True``); the ``Monitor`` methods ``get_episode_rewards``, ``get_episode_lengths``,
      ``get_episode_times`` and ``get_total_steps`` are available through ``env_method``;
    - ``seed(seed)`` seeds sub-environment ``i`` with ``seed + i`` at the next ``reset()``.

    Known limitation (ale-py 0.12.1): the C++ vector environment does not refresh the screen on the step that
    ends an episode, so its last frame is the one of the step before and ``terminal_observation`` is an
    all-zero difference frame. Rewards, ``done`` flags and every other observation are exact. Monte-Carlo
    returns never use the terminal observation; only bootstrapping a value on truncation would.

    :param n_envs: number of Pong games
    :param frameskip: emulator frames per step (the action is repeated)
    :param repeat_action_probability: probability, at each emulator frame, of repeating the previous action
        instead of the chosen one (sticky actions)
    :param max_num_frames_per_episode: emulator frames after which an episode is truncated
    :param num_threads: native threads stepping the emulators (0: ale-py's default)
    :param thread_affinity_offset: first CPU core to pin the threads to (-1: no pinning)
    """

    #: Classes whose behaviour every sub-environment already has (see :meth:`env_is_wrapped`)
    EQUIVALENT_WRAPPERS: tuple[type[gym.Wrapper], ...] = (Monitor, KarpathyPreprocess, DifferenceFrame, PongUpDown)
    #: Sub-environment attributes fixed at construction
    READ_ONLY_ATTRIBUTES = (
        "render_mode",
        "observation_space",
        "action_space",
        "frameskip",
        "repeat_action_probability",
        "max_num_frames_per_episode",
    )

    def __init__(
        self,
        n_envs: int = 8,
        frameskip: int = 4,
        repeat_action_probability: float = 0.0,
        max_num_frames_per_episode: int = 108_000,
        num_threads: int = 0,
        thread_affinity_offset: int = -1,
    ) -> None:
        from ale_py import Action
        from ale_py.vector_env import AtariVectorEnv

        _check_int("n_envs", n_envs, 1)
        _check_int("frameskip", frameskip, 1)
        _check_int("max_num_frames_per_episode", max_num_frames_per_episode, 1)
        _check_int("num_threads", num_threads, 0)
        _check_int("thread_affinity_offset", thread_affinity_offset, -1)
        if isinstance(repeat_action_probability, bool) or not isinstance(repeat_action_probability, int | float):
            raise TypeError(f"repeat_action_probability must be a float, got {repeat_action_probability!r}")
        if not 0.0 <= repeat_action_probability <= 1.0:
            raise ValueError(f"repeat_action_probability must be in [0, 1], got {repeat_action_probability!r}")

        self.frameskip = frameskip
        self.repeat_action_probability = float(repeat_action_probability)
        self.max_num_frames_per_episode = max_num_frames_per_episode
        self.num_threads = num_threads

        # Raw 210x160 RGB frames, no resize, no grayscale (a luminance, not the red channel Karpathy reads),
        # one frame (no stacking, no max-pooling), no random no-ops or FIRE on reset, rewards unclipped:
        # the same emulator as gymnasium's ALE/Pong-v5 with the given settings.
        self._ale_env: Any = AtariVectorEnv(
            "pong",
            n_envs,
            num_threads=num_threads,
            thread_affinity_offset=thread_affinity_offset,
            max_num_frames_per_episode=max_num_frames_per_episode,
            repeat_action_probability=self.repeat_action_probability,
            full_action_space=False,
            autoreset_mode="SameStep",
            img_height=FRAME_SHAPE[0],
            img_width=FRAME_SHAPE[1],
            grayscale=False,
            stack_num=1,
            frameskip=frameskip,
            maxpool=False,
            noop_max=0,
            episodic_life=False,
            reward_clipping=False,
            use_fire_reset=False,
        )
        # Action 0 is UP (joystick RIGHT moves Pong's paddle up), 1 is DOWN (LEFT), as in PongUpDown
        action_set = list(self._ale_env.ale.get_action_set())
        self._ale_actions = np.array([action_set.index(Action.RIGHT), action_set.index(Action.LEFT)], dtype=np.int32)

        single_observation_space = spaces.Box(low=-1, high=1, shape=(N_PIXELS,), dtype=np.int8)
        single_action_space = spaces.Discrete(2)
        self._env_attributes: list[dict[str, Any]] = [
            {
                "render_mode": None,
                "observation_space": single_observation_space,
                "action_space": single_action_space,
                "frameskip": frameskip,
                "repeat_action_probability": self.repeat_action_probability,
                "max_num_frames_per_episode": max_num_frames_per_episode,
            }
            for _ in range(n_envs)
        ]
        super().__init__(n_envs, single_observation_space, single_action_space)

        self._env_ids = np.arange(n_envs)
        # Two buffers of preprocessed frames used in turn: current and previous
        self._frames = [np.zeros((n_envs, N_PIXELS), dtype=np.int8) for _ in range(2)]
        self._current = 0
        self._needs_reset = True
        self._closed = False
        self._actions: np.ndarray | None = None
        # Monitor-like statistics
        self.t_start = time.time()
        self._episode_returns = np.zeros(n_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(n_envs, dtype=np.int64)
        self._total_steps = np.zeros(n_envs, dtype=np.int64)
        self._finished_returns: list[list[float]] = [[] for _ in range(n_envs)]
        self._finished_lengths: list[list[int]] = [[] for _ in range(n_envs)]
        self._finished_times: list[list[float]] = [[] for _ in range(n_envs)]

    # ------------------------------------------------------------------ stepping

    def reset(self) -> VecEnvObs:
        self._check_open()
        if all(seed is None for seed in self._seeds):
            seed = None
        else:
            seed = np.array([-1 if s is None else int(s) % _MAX_SEED for s in self._seeds], dtype=np.int64)
        frames, info = self._ale_env.reset(seed=seed)
        if not np.array_equal(info["env_id"], self._env_ids):
            frames = frames[np.argsort(info["env_id"])]
        self._current = 0
        karpathy_preprocess_batch(frames.reshape(self.num_envs, *FRAME_SHAPE), out=self._frames[0])
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        self._needs_reset = False
        return np.zeros((self.num_envs, N_PIXELS), dtype=np.int8)

    def step_async(self, actions: np.ndarray) -> None:
        self._check_open()
        if self._needs_reset:
            raise RuntimeError("PongVecEnv: call reset() before step()")
        actions = np.asarray(actions)
        if actions.size != self.num_envs:
            raise ValueError(f"actions must hold one action per env ({self.num_envs}), got shape {actions.shape}")
        actions = actions.reshape(self.num_envs)
        if actions.dtype.kind not in "iu" or actions.min() < 0 or actions.max() > 1:
            raise ValueError(f"actions must be integers in {{0, 1}} (0 = UP, 1 = DOWN), got {actions!r}")
        self._ale_env.send(self._ale_actions[actions])
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("PongVecEnv: step_wait() called without step_async()")
        self._actions = None
        frames, rewards, terminated, truncated, info = self._ale_env.recv()
        if not np.array_equal(info["env_id"], self._env_ids):
            order = np.argsort(info["env_id"])
            frames, rewards, terminated, truncated = frames[order], rewards[order], terminated[order], truncated[order]
            if "final_obs" in info:
                info = {**info, "final_obs": info["final_obs"][order]}

        previous = self._frames[self._current]
        self._current = 1 - self._current
        current = karpathy_preprocess_batch(frames.reshape(self.num_envs, *FRAME_SHAPE), out=self._frames[self._current])
        observations = current - previous  # a new array: callers may keep it

        rewards = rewards.astype(np.float32)
        dones = terminated | truncated
        self._episode_returns += rewards
        self._episode_lengths += 1
        self._total_steps += 1
        timeouts = truncated & ~terminated
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": timeout} for timeout in timeouts.tolist()]
        if dones.any():
            # With SAME_STEP auto-reset, ``frames`` holds the first frame of the new game for done envs and
            # info["final_obs"] the last frame of the old one.
            final_frames = info.get("final_obs")
            for i in np.flatnonzero(dones).tolist():
                # ale-py always gives final_obs in SAME_STEP mode; fall back on the previous frame otherwise
                last = previous[i] if final_frames is None else karpathy_preprocess(final_frames[i].reshape(FRAME_SHAPE))
                infos[i]["terminal_observation"] = last - previous[i]
                observations[i] = 0
                self._end_episode(i, infos[i])
        return observations, rewards, dones, infos

    def _end_episode(self, i: int, info: dict[str, Any]) -> None:
        """Write the Monitor-style episode statistics of env ``i`` into ``info`` and start a new episode."""
        episode_return = round(float(self._episode_returns[i]), 6)
        episode_length = int(self._episode_lengths[i])
        elapsed = round(time.time() - self.t_start, 6)
        info["episode"] = {"r": episode_return, "l": episode_length, "t": elapsed}
        self._finished_returns[i].append(episode_return)
        self._finished_lengths[i].append(episode_length)
        self._finished_times[i].append(elapsed)
        self._episode_returns[i] = 0.0
        self._episode_lengths[i] = 0

    def close(self) -> None:
        # AtariVectorEnv has no explicit close: dropping it stops and frees the native threads
        if not self._closed:
            self._ale_env.close()
            self._ale_env = None
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("PongVecEnv: the environment is closed")

    # ------------------------------------------------------------------ sub-environment access

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """
        Attribute of the sub-environments: the read-only settings ``render_mode``, ``observation_space``,
        ``action_space``, ``frameskip``, ``repeat_action_probability``, ``max_num_frames_per_episode``, or
        any attribute set before with :meth:`set_attr`.

        :param attr_name: attribute name
        :param indices: sub-environments (all by default)
        :return: one value per sub-environment
        """
        values = []
        for i in self._get_indices(indices):
            if attr_name not in self._env_attributes[i]:
                raise AttributeError(f"PongVecEnv sub-environment {i} has no attribute {attr_name!r}")
            values.append(self._env_attributes[i][attr_name])
        return values

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """
        Set an attribute on sub-environments (stored, readable with :meth:`get_attr`). The emulator settings
        (``READ_ONLY_ATTRIBUTES``) are fixed at construction and raise ``AttributeError``.

        :param attr_name: attribute name
        :param value: new value
        :param indices: sub-environments (all by default)
        """
        if attr_name in self.READ_ONLY_ATTRIBUTES:
            raise AttributeError(
                f"PongVecEnv: {attr_name!r} is fixed at construction, make a new env with make_pong_vec_env(...) instead"
            )
        for i in self._get_indices(indices):
            self._env_attributes[i][attr_name] = value

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """
        Call a method of the sub-environments. Available: ``get_action_meanings`` (``["UP", "DOWN"]``) and
        the ``Monitor`` methods ``get_episode_rewards``, ``get_episode_lengths``, ``get_episode_times``,
        ``get_total_steps``.

        :param method_name: method name
        :param method_args: positional arguments (none of the methods takes any)
        :param indices: sub-environments (all by default)
        :param method_kwargs: keyword arguments (none of the methods takes any)
        :return: one result per sub-environment
        """
        methods = {
            "get_action_meanings": lambda i: list(PongUpDown.ACTION_NAMES),
            "get_episode_rewards": lambda i: list(self._finished_returns[i]),
            "get_episode_lengths": lambda i: list(self._finished_lengths[i]),
            "get_episode_times": lambda i: list(self._finished_times[i]),
            "get_total_steps": lambda i: int(self._total_steps[i]),
        }
        if method_name not in methods:
            raise AttributeError(f"PongVecEnv sub-environments have no method {method_name!r}; available: {sorted(methods)}")
        if method_args or method_kwargs:
            raise TypeError(f"PongVecEnv: {method_name}() takes no arguments")
        return [methods[method_name](i) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """
        Whether the sub-environments behave as if wrapped with ``wrapper_class``: ``True`` for ``Monitor``
        (episode statistics), ``KarpathyPreprocess``, ``DifferenceFrame``, ``PongUpDown`` and their base classes.

        :param wrapper_class: wrapper class
        :param indices: sub-environments (all by default)
        :return: one bool per sub-environment
        """
        wrapped = any(issubclass(cls, wrapper_class) for cls in self.EQUIVALENT_WRAPPERS)
        return [wrapped for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError("PongVecEnv does not render; watch games with gymnasium.make(\"KarpathyPong-v0\")")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def make_pong_vec_env(
    n_envs: int = 8,
    seed: int | None = None,
    frameskip: int | None = None,
    repeat_action_probability: float | None = None,
    karpathy_original: bool = False,
    max_num_frames_per_episode: int = 108_000,
    num_threads: int = 0,
    thread_affinity_offset: int = -1,
) -> PongVecEnv:
    """
    Make ``n_envs`` fast Pong games with Karpathy's observations (int8 difference frames of 6400 values in
    {-1, 0, 1}) and actions (0 = UP, 1 = DOWN), as a Stable-Baselines3 ``VecEnv`` (see :class:`PongVecEnv`).

    Emulator settings (those of gymnasium's ``ALE/Pong-v5`` unless noted):

    - ``frameskip=4``: each action is repeated for 4 emulator frames;
    - ``repeat_action_probability=0.0``: no sticky actions. ``ALE/Pong-v5`` uses 0.25 (at each frame the
      previous action is repeated with probability 0.25) to make the game stochastic; without it the agent
      controls its paddle exactly and learns faster, like Karpathy's agent did before sticky actions existed;
    - full episodes: a game ends when one player reaches 21 points (about 1,000 steps for a random agent at
      frameskip 4, several times more for a good one), no episodic life, no reward clipping (rewards are
      -1, 0 or +1), no random no-ops or FIRE at reset (Pong is then deterministic without sticky actions);
    - ``max_num_frames_per_episode=108_000``: an episode is truncated after 108,000 emulator frames (30 minutes
      of play, 27,000 steps at frameskip 4), as in ``ALE/Pong-v5``;
    - minimal action set, of which only RIGHT (paddle up) and LEFT (paddle down) are used.

    ``karpathy_original=True`` gets as close as ale-py's vector environment allows to the 2016 ``Pong-v0``
    Karpathy trained on: sticky actions 0.25 and a frameskip of 3. ``Pong-v0`` draws a random frameskip of
    2, 3 or 4 at every step, which ``AtariVectorEnv`` does not support (its frameskip is a fixed int for all
    environments); 3 is the mean of that draw. For the exact ``Pong-v0`` emulator use the slower gymnasium chain
    ``sb3_reinforce.pong.wrappers.make_karpathy_pong_env(karpathy_original=True)``. Explicit ``frameskip`` or
    ``repeat_action_probability`` values take precedence.

    :param n_envs: number of Pong games played in parallel
    :param seed: seed of the first game (game ``i`` gets ``seed + i``), used at the first ``reset()``;
        it matters only with sticky actions
    :param frameskip: emulator frames per step; default 4 (3 with ``karpathy_original``)
    :param repeat_action_probability: sticky-action probability; default 0.0 (0.25 with ``karpathy_original``)
    :param karpathy_original: use the ``Pong-v0``-like settings described above
    :param max_num_frames_per_episode: emulator frames after which an episode is truncated
    :param num_threads: native threads stepping the emulators (0: ale-py's default)
    :param thread_affinity_offset: first CPU core to pin the threads to (-1: no pinning)
    :return: the vectorized environment
    """
    if not isinstance(karpathy_original, bool):
        raise TypeError(f"karpathy_original must be a bool, got {karpathy_original!r}")
    if seed is not None:
        _check_int("seed", seed, 0)
    if frameskip is None:
        frameskip = 3 if karpathy_original else 4
    if repeat_action_probability is None:
        repeat_action_probability = 0.25 if karpathy_original else 0.0
    venv = PongVecEnv(
        n_envs=n_envs,
        frameskip=frameskip,
        repeat_action_probability=repeat_action_probability,
        max_num_frames_per_episode=max_num_frames_per_episode,
        num_threads=num_threads,
        thread_affinity_offset=thread_affinity_offset,
    )
    if seed is not None:
        venv.seed(seed)
    return venv
