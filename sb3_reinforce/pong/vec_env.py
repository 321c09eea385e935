"""
Fast vectorized Pong with the observations and actions of Karpathy's "Pong from Pixels" agent.

Use the factory :func:`make_pong_vec_env`::

    from sb3_reinforce.pong.vec_env import make_pong_vec_env
    venv = make_pong_vec_env(n_envs=16, seed=0)

It returns a :class:`PongVecEnv` wrapped in SB3's ``VecMonitor`` (the episode statistics). :class:`PongVecEnv` is a
Stable-Baselines3 ``VecEnv`` running N Atari Pong games in native threads with ale-py's C++ vector environment
(``ale_py.vector_env.AtariVectorEnv``); Karpathy's preprocessing and the difference frames are computed batched in
numpy, by the functions of :mod:`sb3_reinforce.pong.preprocessing` that the gymnasium wrappers use. Observations
are ``int8`` difference frames (``Box(-1, 1, (6400,), int8)``), actions ``Discrete(2)`` (0 = UP, 1 = DOWN). The
observations are identical to those of the gymnasium chain :func:`sb3_reinforce.pong.wrappers.make_karpathy_pong_env`
(``ALE/Pong-v5`` + ``KarpathyPreprocess`` + ``DifferenceFrame`` + ``PongUpDown``) with the same emulator settings
and actions. Both default to sticky actions (``repeat_action_probability=0.25``, the ``ALE/Pong-v5`` setting).
"""

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from sb3_reinforce.common.checks import check_number
from sb3_reinforce.pong.preprocessing import FRAME_SHAPE, N_PIXELS, difference_step, karpathy_preprocess_batch
from sb3_reinforce.pong.registration import STICKY_ACTION_PROBABILITY
from sb3_reinforce.pong.wrappers import DifferenceFrame, KarpathyPreprocess, PongUpDown

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
    - no episode statistics: wrap it in SB3's ``VecMonitor`` (as :func:`make_pong_vec_env` does) for
      ``infos[i]["episode"]``, ``rollout/ep_rew_mean``, ``EvalCallback`` and ``evaluate_policy``;
    - ``seed(seed)`` seeds sub-environment ``i`` with ``seed + i`` at the next ``reset()``.

    Known limitation (ale-py 0.12.1): the C++ vector environment does not refresh the screen on the step that
    ends an episode, so its last frame is the one of the step before and ``terminal_observation`` is an
    all-zero difference frame. Rewards, ``done`` flags and every other observation are exact. Monte-Carlo
    returns never use the terminal observation; only bootstrapping a value on truncation would.

    :param n_envs: number of Pong games
    :param frameskip: emulator frames per step (the action is repeated)
    :param repeat_action_probability: probability, at each emulator frame, of repeating the previous action
        instead of the chosen one (sticky actions; 0.25 as ``ALE/Pong-v5``, 0.0 for a deterministic emulator)
    :param max_num_frames_per_episode: emulator frames after which an episode is truncated
    :param num_threads: native threads stepping the emulators (0: ale-py's default)
    :param thread_affinity_offset: first CPU core to pin the threads to (-1: no pinning)
    """

    #: Classes whose behaviour every sub-environment already has (see :meth:`env_is_wrapped`)
    EQUIVALENT_WRAPPERS: tuple[type[gym.Wrapper], ...] = (KarpathyPreprocess, DifferenceFrame, PongUpDown)
    #: Keys of every ``infos[i]`` (what ``VecMonitor``'s ``info_keywords`` can log)
    INFO_KEYS = ("TimeLimit.truncated",)
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
        repeat_action_probability: float = STICKY_ACTION_PROBABILITY,
        max_num_frames_per_episode: int = 108_000,
        num_threads: int = 0,
        thread_affinity_offset: int = -1,
    ) -> None:
        from ale_py import Action
        from ale_py.vector_env import AtariVectorEnv

        check_number("n_envs", n_envs, 1, math.inf, integer=True)
        check_number("frameskip", frameskip, 1, math.inf, integer=True)
        check_number("max_num_frames_per_episode", max_num_frames_per_episode, 1, math.inf, integer=True)
        check_number("num_threads", num_threads, 0, math.inf, integer=True)
        check_number("thread_affinity_offset", thread_affinity_offset, -1, math.inf, integer=True)
        check_number("repeat_action_probability", repeat_action_probability, 0, 1)
        n_envs, frameskip, max_num_frames_per_episode = int(n_envs), int(frameskip), int(max_num_frames_per_episode)
        num_threads, thread_affinity_offset = int(num_threads), int(thread_affinity_offset)

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
        dones = terminated | truncated
        timeouts = truncated & ~terminated
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": timeout} for timeout in timeouts.tolist()]
        if dones.any():
            # With SAME_STEP auto-reset, ``frames`` holds the first frame of the new game for done envs and
            # info["final_obs"] the last frame of the old one; ale-py always gives final_obs in SAME_STEP mode,
            # fall back on the previous frame (a zero difference) otherwise
            done_envs = np.flatnonzero(dones)
            final_frames = info.get("final_obs")
            if final_frames is None:
                last = previous[done_envs]
            else:
                last = karpathy_preprocess_batch(final_frames[done_envs].reshape(len(done_envs), *FRAME_SHAPE))
            for i, frame in zip(done_envs.tolist(), last, strict=True):
                infos[i]["terminal_observation"] = frame
        observations = difference_step(current, previous, dones, infos)
        return observations, rewards.astype(np.float32), dones, infos

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
        Call a method of the sub-environments. Available: ``get_action_meanings`` (``["UP", "DOWN"]``). There is
        no ``Monitor`` in a sub-environment: the episode statistics are SB3's ``VecMonitor``'s,
        ``infos[i]["episode"]`` at the end of each episode.

        :param method_name: method name
        :param method_args: positional arguments (none of the methods takes any)
        :param indices: sub-environments (all by default)
        :param method_kwargs: keyword arguments (none of the methods takes any)
        :return: one result per sub-environment
        """
        methods = {"get_action_meanings": lambda i: list(PongUpDown.ACTION_NAMES)}
        if method_name not in methods:
            raise AttributeError(
                f"PongVecEnv sub-environments have no method {method_name!r}; available: {sorted(methods)} "
                "(episode statistics: infos[i]['episode'] of SB3's VecMonitor, which make_pong_vec_env adds)"
            )
        if method_args or method_kwargs:
            raise TypeError(f"PongVecEnv: {method_name}() takes no arguments")
        return [methods[method_name](i) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """
        Whether the sub-environments behave as if wrapped with ``wrapper_class``: ``True`` for
        ``KarpathyPreprocess``, ``DifferenceFrame``, ``PongUpDown`` and their base classes, ``False`` for
        ``Monitor`` (the episode statistics are ``VecMonitor``'s, around the ``VecEnv``).

        :param wrapper_class: wrapper class
        :param indices: sub-environments (all by default)
        :return: one bool per sub-environment
        """
        wrapped = any(issubclass(cls, wrapper_class) for cls in self.EQUIVALENT_WRAPPERS)
        return [wrapped for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError('PongVecEnv does not render; watch games with gymnasium.make("KarpathyPong-v0")')


def make_pong_vec_env(
    n_envs: int = 8,
    seed: int | None = None,
    frameskip: int | None = None,
    repeat_action_probability: float = STICKY_ACTION_PROBABILITY,
    karpathy_original: bool = False,
    max_num_frames_per_episode: int = 108_000,
    num_threads: int = 0,
    thread_affinity_offset: int = -1,
    monitor_filename: str | None = None,
    info_keywords: tuple[str, ...] = (),
) -> VecMonitor:
    """
    Make ``n_envs`` fast Pong games with Karpathy's observations (int8 difference frames of 6400 values in
    {-1, 0, 1}) and actions (0 = UP, 1 = DOWN), as a Stable-Baselines3 ``VecEnv``: a :class:`PongVecEnv` in SB3's
    ``VecMonitor``, which writes the episode statistics ``infos[i]["episode"] = {"r": return, "l": length,
    "t": seconds}`` at the end of each episode (``rollout/ep_rew_mean``, ``EvalCallback`` and ``evaluate_policy``
    read them) and, with ``monitor_filename``, a ``monitor.csv`` file. ``.unwrapped`` is the :class:`PongVecEnv`.

    Emulator settings (those of gymnasium's ``ALE/Pong-v5`` unless noted):

    - ``frameskip=4``: each action is repeated for 4 emulator frames;
    - ``repeat_action_probability=0.25``: sticky actions, as ``ALE/Pong-v5`` (Machado et al. 2018): at each
      emulator frame the previous action is repeated instead of the chosen one with probability 0.25, which
      makes the game stochastic. ``repeat_action_probability=0.0`` is the deterministic emulator: the same
      actions always give the same game, so an agent can learn a sequence of moves that beats this emulator
      (the emulator instead of the game) and lose under sticky actions; the README's Pong section measures it.
      Pong is scored under sticky actions either way (:func:`sb3_reinforce.pong.evaluate_pong`);
    - full episodes: a game ends when one player reaches 21 points (about 1,000 steps for a random agent at
      frameskip 4, several times more for a good one), no episodic life, no reward clipping (rewards are
      -1, 0 or +1), no random no-ops or FIRE at reset (the sticky actions are then the only randomness);
    - ``max_num_frames_per_episode=108_000``: an episode is truncated after 108,000 emulator frames (30 minutes
      of play, 27,000 steps at frameskip 4), as in ``ALE/Pong-v5``;
    - minimal action set, of which only RIGHT (paddle up) and LEFT (paddle down) are used.

    ``karpathy_original=True`` gets as close as ale-py's vector environment allows to the 2016 ``Pong-v0``
    Karpathy trained on: a frameskip of 3 (and sticky actions 0.25, the default). ``Pong-v0`` draws a random frameskip of
    2, 3 or 4 at every step, which ``AtariVectorEnv`` does not support (its frameskip is a fixed int for all
    environments); 3 is the mean of that draw. For the exact ``Pong-v0`` emulator use the slower gymnasium chain
    ``sb3_reinforce.pong.wrappers.make_karpathy_pong_env(karpathy_original=True)``. An explicit ``frameskip``
    takes precedence.

    :param n_envs: number of Pong games played in parallel
    :param seed: seed of the first game (game ``i`` gets ``seed + i``), used at the first ``reset()``;
        it draws the sticky actions (with ``repeat_action_probability=0`` the games do not depend on it). Seeds
        from ``PONG_EVAL_SEED_BASE = 2**30`` on are the held-out evaluation seeds of
        :func:`sb3_reinforce.pong.evaluate_pong`: train below them
    :param frameskip: emulator frames per step; default 4 (3 with ``karpathy_original``)
    :param repeat_action_probability: sticky-action probability: 0.25 (``ALE/Pong-v5``), or 0.0 for the
        deterministic emulator described above
    :param karpathy_original: use the ``Pong-v0``-like settings described above
    :param max_num_frames_per_episode: emulator frames after which an episode is truncated
    :param num_threads: native threads stepping the emulators (0: ale-py's default)
    :param thread_affinity_offset: first CPU core to pin the threads to (-1: no pinning)
    :param monitor_filename: ``VecMonitor``'s log file (``<monitor_filename>.monitor.csv``; None: none written)
    :param info_keywords: ``VecMonitor``'s extra ``info`` keys to log, from :attr:`PongVecEnv.INFO_KEYS`
    :return: the vectorized environment
    """
    if not isinstance(karpathy_original, bool):
        raise TypeError(f"karpathy_original must be a bool, got {karpathy_original!r}")
    if seed is not None:
        check_number("seed", seed, 0, math.inf, integer=True)
    if not isinstance(info_keywords, tuple | list) or not all(key in PongVecEnv.INFO_KEYS for key in info_keywords):
        # VecMonitor would raise a KeyError only at the end of the first episode
        raise ValueError(f"info_keywords must be a tuple of keys from {PongVecEnv.INFO_KEYS}, got {info_keywords!r}")
    if frameskip is None:
        frameskip = 3 if karpathy_original else 4
    # PongVecEnv's arguments, in its order
    emulator = (frameskip, repeat_action_probability, max_num_frames_per_episode)
    venv = PongVecEnv(n_envs, *emulator, num_threads, thread_affinity_offset)
    if seed is not None:
        venv.seed(seed)
    return VecMonitor(venv, monitor_filename, info_keywords=info_keywords)
