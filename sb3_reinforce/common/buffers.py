"""
Rollout storage for Monte-Carlo policy gradient: whole episodes, nothing thrown away.

A step is usable only once its episode has ended. When an update happens, the steps of episodes still
running stay in the buffer and are used by a later update, importance-weighted for having been collected
by an older policy (each step keeps the log-probability it was sampled with and the policy version).
"""

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape

from sb3_reinforce.common.checks import check_number

ObsArray = Any  # np.ndarray, dict[str, np.ndarray], PackedTernaryObservations or SparseTernaryObservations


class EpisodeBatch(NamedTuple):
    """Complete episodes taken from the buffer, flat and episode-major (all steps of episode 0, then 1, ...)."""

    observations: ObsArray
    actions: np.ndarray
    rewards: np.ndarray
    log_probs: np.ndarray
    policy_versions: np.ndarray
    episode_starts: np.ndarray
    episode_lengths: np.ndarray

    @property
    def n_steps(self) -> int:
        return len(self.rewards)

    @property
    def n_episodes(self) -> int:
        return len(self.episode_lengths)


class EpisodeRolloutBuffer(BaseBuffer):
    """
    Per-environment growing storage of steps, from which complete episodes are taken for an update.

    Memory: one row per stored step and env, ``obs_bytes + 4 * action_dim + 4 + 4 + 8`` bytes;
    observations keep the observation space's dtype (an int8 difference frame costs 1 byte per value).
    Storage grows by doubling when an environment runs out of rows; an episode longer than
    ``max_episode_steps`` raises an error instead of filling the memory (wrap such an env in
    ``gymnasium.wrappers.TimeLimit``).

    :param buffer_size: initial number of rows per environment (grows as needed)
    :param observation_space: observation space
    :param action_space: action space
    :param device: PyTorch device (kept for SB3 compatibility, data stays in numpy until training)
    :param n_envs: number of parallel environments
    :param max_episode_steps: longest episode the buffer accepts before raising
    """

    observations: ObsArray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: str = "auto",
        n_envs: int = 1,
        max_episode_steps: int = 100_000,
    ):
        super().__init__(buffer_size, observation_space, action_space, device=device, n_envs=n_envs)
        check_number("max_episode_steps", max_episode_steps, 1, math.inf, integer=True)
        self.max_episode_steps = int(max_episode_steps)
        self.capacity = max(int(buffer_size), 2)
        self.reset()

    # storage helpers ------------------------------------------------------------------------------------

    def _obs_layout(self) -> dict[str | None, tuple[tuple[int, ...], np.dtype]]:
        if isinstance(self.observation_space, spaces.Dict):
            return {
                key: (get_obs_shape(space), space.dtype)  # type: ignore[misc]
                for key, space in self.observation_space.spaces.items()
            }
        return {None: (self.obs_shape, self.observation_space.dtype)}  # type: ignore[dict-item]

    def _allocate(self, capacity: int) -> dict[str, ObsArray]:
        layout = self._obs_layout().items()
        obs = {key: np.zeros((self.n_envs, capacity, *shape), dtype=dtype) for key, (shape, dtype) in layout}
        return {
            "observations": obs if isinstance(self.observation_space, spaces.Dict) else obs[None],
            "actions": np.zeros((self.n_envs, capacity, self.action_dim), dtype=np.float32),
            "rewards": np.zeros((self.n_envs, capacity), dtype=np.float32),
            "log_probs": np.zeros((self.n_envs, capacity), dtype=np.float32),
            "policy_versions": np.zeros((self.n_envs, capacity), dtype=np.int64),
        }

    _fields = ("observations", "actions", "rewards", "log_probs", "policy_versions")

    def reset(self) -> None:
        """Drop everything."""
        for name, array in self._allocate(self.capacity).items():
            setattr(self, name, array)
        self.positions = np.zeros(self.n_envs, dtype=np.int64)
        # Per env: row index just after the last step of each complete episode, and the global step count at
        # which it ended (to take episodes in the order they finished).
        self.episode_ends: list[list[int]] = [[] for _ in range(self.n_envs)]
        self.episode_end_times: list[list[int]] = [[] for _ in range(self.n_envs)]
        self.n_adds = 0
        self.action_dim = get_action_dim(self.action_space)
        self.pos = 0
        self.full = False

    def _grow(self) -> None:
        new_capacity = self.capacity * 2
        new = self._allocate(new_capacity)
        for name in self._fields:
            old, fresh = getattr(self, name), new[name]
            if isinstance(old, dict):
                for key in old:
                    fresh[key][:, : self.capacity] = old[key]
            else:
                fresh[:, : self.capacity] = old
            setattr(self, name, fresh)
        self.capacity = new_capacity

    def size(self) -> int:
        """Number of stored steps, all envs together."""
        return int(self.positions.sum())

    @property
    def nbytes(self) -> int:
        """Bytes allocated for the storage."""
        total = 0
        for name in self._fields:
            array = getattr(self, name)
            total += sum(a.nbytes for a in array.values()) if isinstance(array, dict) else array.nbytes
        return total

    @property
    def bytes_per_step(self) -> int:
        """Bytes of storage per step (one env, one row)."""
        return self.nbytes // (self.capacity * self.n_envs)

    def incomplete_lengths(self) -> np.ndarray:
        """Number of stored steps of the episode in progress in each env."""
        last_end = np.array([ends[-1] if ends else 0 for ends in self.episode_ends], dtype=np.int64)
        return self.positions - last_end

    @property
    def n_complete_episodes(self) -> int:
        return sum(len(ends) for ends in self.episode_ends)

    def _encode_observations(self, obs: np.ndarray) -> np.ndarray:
        """Observations of every env (one step) -> the rows stored (subclasses store them compactly)."""
        return obs.reshape((self.n_envs, *self.obs_shape))  # type: ignore[misc]

    def _store_observations(self, envs: np.ndarray, rows: np.ndarray, encoded: Any) -> None:
        """Write what :meth:`_encode_observations` returned (a dict of arrays for Dict spaces) at ``rows``."""
        if isinstance(self.observations, dict):
            for key, storage in self.observations.items():
                storage[envs, rows] = encoded[key]
        else:
            self.observations[envs, rows] = encoded

    def _decode_observations(self, stored: np.ndarray) -> ObsArray:
        """Stored rows of a batch -> what ``EpisodeBatch.observations`` holds (anything indexable by step)."""
        return stored

    def _take_observations(self, cutoffs: np.ndarray) -> ObsArray:
        """The observations of rows ``[0, cutoffs[e])`` of every env ``e``, env-major (before they are shifted out)."""

        def gather(array: np.ndarray) -> np.ndarray:
            return np.concatenate([array[env_idx, :cut] for env_idx, cut in enumerate(cutoffs)])

        if isinstance(self.observations, dict):
            return {key: gather(value) for key, value in self.observations.items()}
        return self._decode_observations(gather(self.observations))

    @property
    def stored_bytes_per_step(self) -> float:
        """Bytes that the stored steps occupy, per stored step (allocated but unused rows not counted)."""
        return self.nbytes / (self.capacity * self.n_envs)

    # adding -----------------------------------------------------------------------------------------------

    def add(  # type: ignore[override]
        self,
        obs: ObsArray,
        action: np.ndarray,
        reward: np.ndarray,
        log_prob: np.ndarray,
        done: np.ndarray,
        policy_version: int,
    ) -> None:
        """
        Store one step of every env.

        :param obs: observations the actions were taken in
        :param action: actions taken
        :param reward: rewards received
        :param log_prob: log-probability of the actions under the policy that sampled them
        :param done: whether the episode ended with this step (terminated or truncated)
        :param policy_version: number of updates of the policy that sampled the actions
        """
        if (self.positions >= self.capacity).any():
            lengths = self.incomplete_lengths()
            if lengths.max() >= self.max_episode_steps:
                env_idx = int(lengths.argmax())
                raise RuntimeError(
                    f"The episode running in env {env_idx} has lasted {int(lengths[env_idx])} steps without ending "
                    f"(max_episode_steps={self.max_episode_steps}). REINFORCE learns from complete episodes: wrap the "
                    "env in gymnasium.wrappers.TimeLimit, or raise max_episode_steps through rollout_buffer_kwargs."
                )
            self._grow()
        rows = self.positions
        envs = np.arange(self.n_envs)
        # Everything is converted (and may raise) before anything is written: a bad step leaves the buffer as it was
        if isinstance(self.observations, dict):
            assert isinstance(obs, dict)
            encoded: Any = {
                key: np.asarray(obs[key]).reshape((self.n_envs, *storage.shape[2:]))
                for key, storage in self.observations.items()
            }
        else:
            encoded = self._encode_observations(np.asarray(obs))
        actions = np.asarray(action).reshape((self.n_envs, self.action_dim))
        rewards = np.asarray(reward, dtype=np.float32)
        if rewards.shape != (self.n_envs,):
            rewards = np.broadcast_to(rewards, (self.n_envs,))  # a scalar, or the error of a wrong shape
        log_probs = np.asarray(log_prob).reshape(self.n_envs)
        self._store_observations(envs, rows, encoded)
        self.actions[envs, rows] = actions
        self.rewards[envs, rows] = rewards
        self.log_probs[envs, rows] = log_probs
        self.policy_versions[envs, rows] = policy_version
        self.positions += 1
        self.n_adds += 1
        for env_idx in np.flatnonzero(done):
            self.episode_ends[env_idx].append(int(self.positions[env_idx]))
            self.episode_end_times[env_idx].append(self.n_adds)

    # taking episodes out ----------------------------------------------------------------------------------

    def _cutoffs(self, n_episodes: int | None) -> np.ndarray:
        """Rows [0, cutoff[e]) of each env hold the episodes to train on."""
        if n_episodes is None:
            return np.array([ends[-1] if ends else 0 for ends in self.episode_ends], dtype=np.int64)
        finished = sorted(
            (time, env_idx, end)
            for env_idx, (ends, times) in enumerate(zip(self.episode_ends, self.episode_end_times, strict=True))
            for end, time in zip(ends, times, strict=True)
        )
        cutoffs = np.zeros(self.n_envs, dtype=np.int64)
        # Episodes of one env end in row order, so a global prefix in time is a prefix in every env
        for _, env_idx, end in finished[:n_episodes]:
            cutoffs[env_idx] = end
        return cutoffs

    def pop_episodes(self, n_episodes: int | None = None) -> EpisodeBatch:
        """
        Remove complete episodes from the buffer and return them.

        :param n_episodes: take the first ``n_episodes`` episodes to finish (None: every complete episode);
            episodes still running, and complete ones beyond ``n_episodes``, stay for a later update.
        :return: the episodes, flat and episode-major
        """
        cutoffs = self._cutoffs(n_episodes)

        def gather(array: np.ndarray) -> np.ndarray:
            return np.concatenate([array[env_idx, :cut] for env_idx, cut in enumerate(cutoffs)])

        observations = self._take_observations(cutoffs)
        lengths = []
        for env_idx, cut in enumerate(cutoffs):
            previous = 0
            for end in self.episode_ends[env_idx]:
                if end > cut:
                    break
                lengths.append(end - previous)
                previous = end
        episode_lengths = np.array(lengths, dtype=np.int64)
        episode_starts = np.zeros(int(episode_lengths.sum()), dtype=bool)
        episode_starts[np.cumsum(episode_lengths) - episode_lengths] = True
        batch = EpisodeBatch(
            observations=observations,
            actions=gather(self.actions),
            rewards=gather(self.rewards),
            log_probs=gather(self.log_probs),
            policy_versions=gather(self.policy_versions),
            episode_starts=episode_starts,
            episode_lengths=episode_lengths,
        )
        self._shift(cutoffs)
        return batch

    def _shift(self, cutoffs: np.ndarray) -> None:
        """Move what stays after ``cutoffs`` to the front of each env's rows."""
        for env_idx, cut in enumerate(cutoffs):
            cut = int(cut)
            if cut == 0:
                continue
            keep = int(self.positions[env_idx]) - cut
            for name in self._fields:
                array = getattr(self, name)
                for sub in array.values() if isinstance(array, dict) else (array,):
                    # copy(): source and destination overlap
                    sub[env_idx, :keep] = sub[env_idx, cut : cut + keep].copy()
            self.positions[env_idx] = keep
            ends, times = self.episode_ends[env_idx], self.episode_end_times[env_idx]
            kept = [(end - cut, time) for end, time in zip(ends, times, strict=True) if end > cut]
            self.episode_ends[env_idx] = [end for end, _ in kept]
            self.episode_end_times[env_idx] = [time for _, time in kept]

    def drop_incomplete(self) -> int:
        """
        Forget the steps of episodes still running (their env was reset, they will never end).

        :return: number of steps dropped
        """
        dropped = self.incomplete_lengths()
        self.positions -= dropped
        return int(dropped.sum())

    def _get_samples(self, batch_inds: np.ndarray, env=None):  # pragma: no cover - episodes are taken whole
        raise NotImplementedError("EpisodeRolloutBuffer hands out whole episodes: use pop_episodes()")


def pack_ternary(values: np.ndarray) -> np.ndarray:
    """
    Pack values in {-1, 0, 1} along the last axis into two bit-planes (``== 1`` then ``== -1``), 2 bits per value.

    :param values: integer array of values in {-1, 0, 1}, shape ``(..., n)``
    :return: uint8 array of shape ``(..., 2 * ceil(n / 8))``
    """
    return np.concatenate([np.packbits(values == 1, axis=-1), np.packbits(values == -1, axis=-1)], axis=-1)


def unpack_ternary(packed: np.ndarray, n_values: int) -> np.ndarray:
    """
    Inverse of :func:`pack_ternary`.

    :param packed: uint8 array of shape ``(..., 2 * ceil(n_values / 8))``
    :param n_values: number of values per row
    :return: int8 array of shape ``(..., n_values)``
    """
    half = packed.shape[-1] // 2
    positive = np.unpackbits(packed[..., :half], axis=-1, count=n_values).view(np.int8)
    negative = np.unpackbits(packed[..., half:], axis=-1, count=n_values).view(np.int8)
    return positive - negative


def _check_ternary_space(observation_space: spaces.Space, buffer_name: str) -> None:
    """The ternary buffers store values in {-1, 0, 1}: their space must be a ``Box`` within [-1, 1]."""
    if not isinstance(observation_space, spaces.Box) or observation_space.low.min() < -1 or observation_space.high.max() > 1:
        raise ValueError(f"{buffer_name} needs a Box observation space within [-1, 1], got {observation_space}")


class PackedTernaryObservations:
    """
    Observations of a batch kept packed (:func:`pack_ternary`); indexing by step (slice, int array) unpacks only
    the steps asked for, so a training pass unpacks one chunk at a time.

    :param packed: packed rows, shape ``(n_steps, n_bytes)``
    :param shape: shape of one unpacked observation
    :param dtype: dtype of the unpacked observations
    """

    def __init__(self, packed: np.ndarray, shape: tuple[int, ...], dtype: np.dtype):
        self.packed = packed
        self.obs_shape = shape
        self.dtype = np.dtype(dtype)
        self.n_values = int(np.prod(shape))

    def __len__(self) -> int:
        return len(self.packed)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.packed), *self.obs_shape)

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = self.packed[index]
        values = unpack_ternary(rows, self.n_values).astype(self.dtype, copy=False)
        return values.reshape((*rows.shape[:-1], *self.obs_shape))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[:]
        return values if dtype is None else values.astype(dtype)


class TernaryPackedRolloutBuffer(EpisodeRolloutBuffer):
    """
    :class:`EpisodeRolloutBuffer` for observations whose values are all in {-1, 0, 1} (Karpathy's Pong
    difference frames): each observation is stored as two bit-planes, 2 bits per value (6400 values: 1,600 bytes
    instead of 6,400 as int8 or 25,600 as float32). ``pop_episodes`` returns the observations still packed
    (:class:`PackedTernaryObservations`); they are unpacked exactly, one training chunk at a time.

    Same parameters as :class:`EpisodeRolloutBuffer`; the observation space must be a ``Box`` with bounds in
    [-1, 1] and an integer or float dtype. Adding a value outside {-1, 0, 1} raises a ``ValueError``.
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space, **kwargs: Any):
        _check_ternary_space(observation_space, "TernaryPackedRolloutBuffer")
        self.n_values = int(np.prod(observation_space.shape))
        self.n_packed_bytes = 2 * ((self.n_values + 7) // 8)
        super().__init__(buffer_size, observation_space, action_space, **kwargs)

    def _obs_layout(self) -> dict[str | None, tuple[tuple[int, ...], np.dtype]]:
        return {None: ((self.n_packed_bytes,), np.dtype(np.uint8))}

    def _encode_observations(self, obs: np.ndarray) -> np.ndarray:
        obs = obs.reshape((self.n_envs, self.n_values))
        packed = pack_ternary(obs)
        # Anything but -1, 0, 1 would be lost: a cheap exact check (packed values are a subset of the inputs)
        if np.count_nonzero(obs) != np.count_nonzero(np.unpackbits(packed)):
            raise ValueError("TernaryPackedRolloutBuffer: observation values must be in {-1, 0, 1}")
        return packed

    def _decode_observations(self, stored: np.ndarray) -> ObsArray:
        return PackedTernaryObservations(stored, self.obs_shape, self.observation_space.dtype)  # type: ignore[arg-type]


def flat_nonzero(values: np.ndarray) -> np.ndarray:
    """
    Flat indices (C order, ascending) of the non-zero entries of ``values``, as ``np.flatnonzero``. For arrays of
    1-byte integers (``int8`` difference frames) that are mostly zeros, 8 values are tested at once through a
    ``uint64`` view, then only the non-zero words are looked into: about 20 times faster than ``np.flatnonzero``
    and 10 times faster than ``torch.nonzero`` on 16 Pong difference frames (0.4% non-zero).

    :param values: array of any shape
    :return: ``int64`` flat indices of the non-zero entries
    """
    values = np.ascontiguousarray(values)
    # numpy's nonzero is several times faster on a bool array than on any other dtype: compare first
    if values.dtype.itemsize != 1 or values.dtype.kind not in "iub" or values.size % 8:
        return np.flatnonzero(values != 0)
    words = values.reshape(-1).view(np.uint64)
    nonzero_words = np.flatnonzero(words != 0)
    # The bytes of the non-zero words, one after the other: position p is byte p % 8 of word p // 8
    positions = np.flatnonzero(words[nonzero_words].view(np.uint8) != 0)
    return nonzero_words[positions >> 3] * 8 + (positions & 7)


class SparseTernaryObservations:
    """
    Observations of a batch kept sparse, as :class:`SparseTernaryRolloutBuffer` stores them: for each step, the flat
    indices of its non-zero values and their signs, in one code per non-zero value, ``sign * (index + 1)``
    (``codes[offsets[t]:offsets[t + 1]]`` are step ``t``'s, indices ascending). Indexing by step (int, slice, int or
    bool array) gives dense observations of the steps asked for, for any policy; :meth:`sparse_tensor` gives a
    torch sparse CSR tensor without making a dense array, for a policy that reads one
    (``policy.sparse_observations``, e.g. :class:`sb3_reinforce.pong.karpathy.KarpathyPolicy`).

    :param codes: ``sign * (flat index + 1)`` of every non-zero value, step after step (``int16`` or ``int32``)
    :param offsets: ``int64`` array of ``n_steps + 1`` positions in ``codes``: step ``t`` is ``[offsets[t], offsets[t+1])``
    :param shape: shape of one observation
    :param dtype: dtype of the dense observations
    """

    def __init__(self, codes: np.ndarray, offsets: np.ndarray, shape: tuple[int, ...], dtype: np.dtype):
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(codes):
            raise ValueError(f"offsets must start at 0 and end at len(codes)={len(codes)}, got {offsets!r}")
        self.codes = codes
        self.offsets = offsets
        self.obs_shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.n_values = int(np.prod(shape))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.obs_shape)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.offsets.nbytes

    def rows(self, index: Any) -> tuple[np.ndarray, np.ndarray]:
        """
        The codes of some steps and their offsets (rebased to start at 0).

        :param index: a slice, or an int or bool array of steps
        :return: ``(codes, offsets)`` of the steps, in the order asked for
        """
        if isinstance(index, slice) and index.step in (None, 1):
            start, stop, _ = index.indices(len(self))
            stop = max(start, stop)
            begin = self.offsets[start]
            return self.codes[begin : self.offsets[stop]], self.offsets[start : stop + 1] - begin
        steps = np.arange(len(self))[index]  # numpy's indexing rules and errors (negative steps, bool masks)
        starts = self.offsets[steps]
        counts = self.offsets[steps + 1] - starts
        offsets = np.zeros(len(steps) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        take = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        return self.codes[take], offsets

    def __getitem__(self, index: Any) -> np.ndarray:
        single = isinstance(index, int | np.integer)
        if single:
            index = np.array([np.arange(len(self))[index]])  # IndexError out of range, as numpy
        codes, offsets = self.rows(index)
        n_rows = len(offsets) - 1
        dense = np.zeros((n_rows, self.n_values), dtype=self.dtype)
        row_of = np.repeat(np.arange(n_rows), np.diff(offsets))
        dense[row_of, np.abs(codes.astype(np.int64)) - 1] = np.sign(codes)
        dense = dense.reshape((n_rows, *self.obs_shape))
        return dense[0] if single else dense

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[:]
        return values if dtype is None else values.astype(dtype)

    def sparse_tensor(self, index: Any, device: th.device | str = "cpu") -> th.Tensor:
        """
        Some steps as a torch sparse CSR tensor of shape ``(n_rows, n_values)`` (observations flattened) and the
        observations' dtype: ``crow_indices`` are the offsets, ``col_indices`` the flat indices, ``values`` the signs.
        Its ``to_dense()`` is the flattened ``self[index]``.

        :param index: a slice, or an int or bool array of steps
        :param device: PyTorch device
        :return: the sparse tensor
        """
        codes, offsets = self.rows(index)
        codes_t = th.from_numpy(codes.astype(np.int64))
        values = th.sign(codes_t).to(th.from_numpy(np.zeros(0, dtype=self.dtype)).dtype)
        with warnings.catch_warnings():
            # torch warns once that sparse CSR support is "in beta": only construction and read-out are used here
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            return th.sparse_csr_tensor(
                th.from_numpy(offsets),
                codes_t.abs_() - 1,
                values,
                size=(len(offsets) - 1, self.n_values),
                device=device,
                check_invariants=False,  # built valid: offsets from counts, indices ascending within each row
            )


class SparseTernaryRolloutBuffer(EpisodeRolloutBuffer):
    """
    :class:`EpisodeRolloutBuffer` for observations whose values are all in {-1, 0, 1} and mostly 0 (Karpathy's Pong
    difference frames: about 0.4% of the 6400 values are non-zero). Each step's observation is stored as the list
    of its non-zero values, one ``sign * (flat index + 1)`` code each (``int16`` up to 32,766 values per
    observation, else ``int32``), in a growing stream per env, and a per-step count: about 80 bytes per stored step
    on Pong (all fields; :attr:`stored_bytes_per_step`) instead of 1,620 with :class:`TernaryPackedRolloutBuffer`.
    ``pop_episodes`` returns the observations still sparse (:class:`SparseTernaryObservations`), which a policy
    with ``sparse_observations = True`` reads as a sparse tensor, never as a dense array.

    :param buffer_size: initial number of rows per environment (grows as needed)
    :param observation_space: a ``Box`` with bounds within [-1, 1] (integer or float dtype)
    :param action_space: action space
    :param device: PyTorch device (kept for SB3 compatibility, data stays in numpy until training)
    :param n_envs: number of parallel environments
    :param max_episode_steps: longest episode the buffer accepts before raising
    :param nonzeros_per_step: initial room for non-zero values per row (the streams grow as needed, by doubling)
    :raises ValueError: at ``add``, a value outside {-1, 0, 1} (NaN included)
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        nonzeros_per_step: int = 32,
        **kwargs: Any,
    ):
        _check_ternary_space(observation_space, "SparseTernaryRolloutBuffer")
        check_number("nonzeros_per_step", nonzeros_per_step, 1, math.inf, integer=True)
        self.n_values = int(np.prod(observation_space.shape))
        self.nonzeros_per_step = int(nonzeros_per_step)
        self.code_dtype = np.dtype(np.int16 if self.n_values < 2**15 - 1 else np.int32)
        # device, n_envs and max_episode_steps as for EpisodeRolloutBuffer
        super().__init__(buffer_size, observation_space, action_space, **kwargs)

    def _obs_layout(self) -> dict[str | None, tuple[tuple[int, ...], np.dtype]]:
        # One number per row: how many non-zero values the step has (its codes are in the env's stream)
        return {None: ((), self.code_dtype)}

    def reset(self) -> None:
        super().reset()
        self.code_capacity = self.capacity * self.nonzeros_per_step
        self.codes = np.zeros((self.n_envs, self.code_capacity), dtype=self.code_dtype)
        self.code_positions = np.zeros(self.n_envs, dtype=np.int64)

    def _encode_observations(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        flat = obs.reshape((self.n_envs, self.n_values))
        index = flat_nonzero(flat)
        values = flat.reshape(-1)[index]
        if np.any(np.abs(values) != 1):  # an int8 -128 stays -128, a NaN is != 1
            bad = values[np.abs(values) != 1][0]
            raise ValueError(f"SparseTernaryRolloutBuffer: observation values must be in {{-1, 0, 1}}, got {bad!r}")
        env_of = index // self.n_values
        codes = (index % self.n_values + 1).astype(self.code_dtype)  # flat index within the step, + 1 ...
        codes *= values.astype(self.code_dtype)  # ... times the sign
        return np.bincount(env_of, minlength=self.n_envs), env_of, codes

    def _store_observations(self, envs: np.ndarray, rows: np.ndarray, encoded: Any) -> None:
        counts, env_of, codes = encoded
        starts = self.code_positions
        needed = int((starts + counts).max())
        if needed > self.code_capacity:
            self._grow_codes(needed)
        if len(codes):
            # Codes come sorted by env: the k-th code of env e this step goes to starts[e] + k
            shift = starts - (np.cumsum(counts) - counts)
            self.codes[env_of, np.arange(len(codes)) + shift[env_of]] = codes
        self.code_positions += counts
        self.observations[envs, rows] = counts

    def _grow_codes(self, needed: int) -> None:
        capacity = max(2 * self.code_capacity, needed)
        codes = np.zeros((self.n_envs, capacity), dtype=self.code_dtype)
        codes[:, : self.code_capacity] = self.codes
        self.codes, self.code_capacity = codes, capacity

    def _code_ends(self, rows: np.ndarray) -> np.ndarray:
        """Per env, the position in its stream just after the codes of its first ``rows[e]`` rows."""
        return np.array([self.observations[e, :row].sum(dtype=np.int64) for e, row in enumerate(rows)], dtype=np.int64)

    def _take_observations(self, cutoffs: np.ndarray) -> SparseTernaryObservations:
        counts = np.concatenate([self.observations[e, :cut] for e, cut in enumerate(cutoffs)])
        ends = self._code_ends(cutoffs)
        codes = np.concatenate([self.codes[e, :end] for e, end in enumerate(ends)])
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return SparseTernaryObservations(codes, offsets, self.obs_shape, self.observation_space.dtype)  # type: ignore[arg-type]

    def _shift(self, cutoffs: np.ndarray) -> None:
        begins = self._code_ends(cutoffs)
        for e, (cut, begin) in enumerate(zip(cutoffs, begins, strict=True)):
            if cut == 0:
                continue
            end = int(self.code_positions[e])
            self.codes[e, : end - begin] = self.codes[e, begin:end].copy()  # copy(): the ranges overlap
            self.code_positions[e] = end - begin
        super()._shift(cutoffs)

    def drop_incomplete(self) -> int:
        dropped = super().drop_incomplete()
        self.code_positions = self._code_ends(self.positions)
        return dropped

    @property
    def nbytes(self) -> int:
        """Bytes allocated for the storage (rows and code streams)."""
        return super().nbytes + self.codes.nbytes + self.code_positions.nbytes

    @property
    def stored_bytes_per_step(self) -> float:
        """Bytes that the stored steps occupy, per stored step: their rows and their codes."""
        row_bytes = (super().nbytes) / (self.capacity * self.n_envs)
        n_steps = self.size()
        return row_bytes + (self.codes.itemsize * float(self.code_positions.sum()) / n_steps if n_steps else 0.0)
