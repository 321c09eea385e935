"""Sparse storage of ternary difference frames: exact round trips, the same gradients as dense storage, its size."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from sb3_reinforce.common.buffers import (
    EpisodeRolloutBuffer,
    SparseTernaryObservations,
    SparseTernaryRolloutBuffer,
    TernaryPackedRolloutBuffer,
    flat_nonzero,
)
from sb3_reinforce.pong.karpathy import SparseInputLinear, karpathy_pong
from sb3_reinforce.pong.vec_env import make_pong_vec_env

OBS_SPACE = spaces.Box(-1, 1, (6400,), np.int8)
ROW_FIELDS = ("actions", "rewards", "log_probs", "policy_versions", "episode_starts", "episode_lengths")


def _ternary(rng: np.random.Generator, shape: tuple[int, ...], density: float, dtype=np.int8) -> np.ndarray:
    signs = rng.choice(np.array([-1, 1]), shape)
    return np.where(rng.random(shape) < density, signs, 0).astype(dtype)


def _fill(buffers, frames: np.ndarray, dones: np.ndarray, seed: int = 0) -> None:
    """Add the same steps to every buffer: frames (T, n_envs, ...), dones (T, n_envs)."""
    rng = np.random.default_rng(seed)
    for obs, done in zip(frames, dones, strict=True):
        n_envs = len(done)
        args = (obs, rng.integers(0, 2, (n_envs, 1)), rng.normal(size=n_envs), rng.normal(size=n_envs), done, 3)
        for buffer in buffers:
            buffer.add(*args)


def _assert_same_batch(sparse_batch, plain_batch) -> None:
    assert isinstance(sparse_batch.observations, SparseTernaryObservations)
    assert sparse_batch.n_steps == plain_batch.n_steps
    np.testing.assert_array_equal(sparse_batch.observations[:], plain_batch.observations)
    for name in ROW_FIELDS:
        np.testing.assert_array_equal(getattr(sparse_batch, name), getattr(plain_batch, name))


def _random_frames(n_steps: int, n_envs: int, seed: int = 0) -> np.ndarray:
    """Ternary frames of every density: mostly Pong-like (0.4%), some all zero, some with every value non-zero."""
    rng = np.random.default_rng(seed)
    frames = _ternary(rng, (n_steps, n_envs, 6400), 0.004)
    frames[rng.random((n_steps, n_envs)) < 0.15] = 0
    dense = rng.random((n_steps, n_envs)) < 0.05
    frames[dense] = rng.choice(np.array([-1, 1], dtype=np.int8), (int(dense.sum()), 6400))
    frames[0, 0] = rng.choice(np.array([-1, 1], dtype=np.int8), 6400)  # first row: 6400 codes, room for 2
    frames[1, 0] = 0
    return frames


def test_round_trip_matches_dense_buffer_exactly() -> None:
    # Random ternary frames (all-zero ones, fully dense ones far beyond the preallocated room for non-zeros, which
    # must grow), episodes of several lengths in 3 envs, batches taken in the order episodes end, what stays in the
    # buffer carried to the next batch: every batch equals the dense buffer's, value for value.
    n_envs = 3
    frames = _random_frames(120, n_envs)
    dones = np.zeros((120, n_envs), dtype=bool)
    dones[::7, 0] = dones[::11, 1] = dones[::29, 2] = True
    kwargs = dict(observation_space=OBS_SPACE, action_space=spaces.Discrete(2), n_envs=n_envs)
    sparse = SparseTernaryRolloutBuffer(4, nonzeros_per_step=2, **kwargs)
    plain = EpisodeRolloutBuffer(4, **kwargs)
    initial_room = sparse.code_capacity
    _fill([sparse, plain], frames[:60], dones[:60])
    assert sparse.code_capacity > initial_room
    _assert_same_batch(sparse.pop_episodes(4), plain.pop_episodes(4))
    _fill([sparse, plain], frames[60:], dones[60:], seed=1)
    assert sparse.size() == plain.size()
    _assert_same_batch(sparse.pop_episodes(5), plain.pop_episodes(5))
    last_sparse, last_plain = sparse.pop_episodes(), plain.pop_episodes()
    _assert_same_batch(last_sparse, last_plain)
    # Indexing as numpy: int arrays (repeats, any order), negative ints, bool masks, strided slices
    observations, dense = last_sparse.observations, last_plain.observations
    rows = np.array([5, 0, 5, len(dense) - 1])
    np.testing.assert_array_equal(observations[rows], dense[rows])
    np.testing.assert_array_equal(observations[-1], dense[-1])
    np.testing.assert_array_equal(observations[3], dense[3])
    mask = np.arange(len(dense)) % 3 == 0
    np.testing.assert_array_equal(observations[mask], dense[mask])
    np.testing.assert_array_equal(observations[1:20:4], dense[1:20:4])
    np.testing.assert_array_equal(np.asarray(observations), dense)
    with pytest.raises(IndexError):
        observations[len(dense)]
    # The sparse tensor of a chunk is the chunk
    tensor = observations.sparse_tensor(slice(2, 40))
    assert tensor.layout == th.sparse_csr and tensor.dtype == th.int8
    assert th.equal(tensor.to_dense(), th.as_tensor(dense[2:40]))
    assert th.equal(observations.sparse_tensor(rows).to_dense(), th.as_tensor(dense[rows]))


def test_drop_incomplete_then_continue() -> None:
    # The envs were reset: the steps of the running episodes go, their codes too, and later steps line up again
    n_envs = 2
    frames = _random_frames(50, n_envs, seed=3)
    dones = np.zeros((50, n_envs), dtype=bool)
    dones[9, 0] = dones[30, 1] = dones[40, 0] = dones[49] = True
    kwargs = dict(observation_space=OBS_SPACE, action_space=spaces.Discrete(2), n_envs=n_envs)
    sparse, plain = SparseTernaryRolloutBuffer(8, **kwargs), EpisodeRolloutBuffer(8, **kwargs)
    _fill([sparse, plain], frames[:20], dones[:20])
    assert sparse.drop_incomplete() == plain.drop_incomplete() == 10 + 20
    assert sparse.code_positions[1] == 0 and sparse.code_positions[0] == np.count_nonzero(frames[:10, 0])
    _fill([sparse, plain], frames[20:], dones[20:], seed=2)
    _assert_same_batch(sparse.pop_episodes(), plain.pop_episodes())


@pytest.mark.parametrize(
    "space, bad",
    [
        (OBS_SPACE, 2),
        (OBS_SPACE, -128),  # abs(-128) overflows to -128 in int8
        (spaces.Box(-1, 1, (6400,), np.float32), np.nan),
        (spaces.Box(-1, 1, (6400,), np.float32), 0.5),
    ],
)
def test_non_ternary_value_raises_and_leaves_the_buffer_as_it_was(space: spaces.Box, bad: float) -> None:
    kwargs = dict(observation_space=space, action_space=spaces.Discrete(2), n_envs=2)
    sparse, plain = SparseTernaryRolloutBuffer(4, **kwargs), EpisodeRolloutBuffer(4, **kwargs)
    frames = _random_frames(6, 2, seed=5).astype(space.dtype)
    dones = np.zeros((6, 2), dtype=bool)
    dones[5] = True
    _fill([sparse, plain], frames[:3], dones[:3])
    wrong = frames[3].copy()
    wrong[1, 17] = bad
    before = (sparse.size(), sparse.code_positions.copy())
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}"):
        sparse.add(wrong, np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.zeros(2, dtype=bool), 0)
    # An action of the wrong shape is refused before anything is written, too
    with pytest.raises(ValueError):
        sparse.add(frames[3], np.zeros((3, 1)), np.zeros(2), np.zeros(2), np.zeros(2, dtype=bool), 0)
    assert sparse.size() == before[0] and np.array_equal(sparse.code_positions, before[1])
    _fill([sparse, plain], frames[3:], dones[3:], seed=9)
    batch_sparse, batch_plain = sparse.pop_episodes(), plain.pop_episodes()
    np.testing.assert_array_equal(batch_sparse.observations[:], batch_plain.observations)


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="within \\[-1, 1\\]"):
        SparseTernaryRolloutBuffer(4, spaces.Box(0, 255, (6400,), np.uint8), spaces.Discrete(2))
    with pytest.raises(ValueError, match="within \\[-1, 1\\]"):
        SparseTernaryRolloutBuffer(4, spaces.Discrete(3), spaces.Discrete(2))
    with pytest.raises(ValueError, match="nonzeros_per_step"):
        SparseTernaryRolloutBuffer(4, OBS_SPACE, spaces.Discrete(2), nonzeros_per_step=0)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.bool_, np.float32, np.int64])
@pytest.mark.parametrize("size", [6400, 13, 8])
def test_flat_nonzero_is_flatnonzero(dtype, size: int) -> None:
    rng = np.random.default_rng(size)
    values = np.abs(_ternary(rng, (3, size), 0.05, np.int64)).astype(dtype)
    values[1] = 0
    if dtype is np.float32:
        values[2, 0] = -0.0  # zero, though its bits are not
    np.testing.assert_array_equal(flat_nonzero(values), np.flatnonzero(values))
    np.testing.assert_array_equal(flat_nonzero(values[:, ::2]), np.flatnonzero(values[:, ::2]))  # not contiguous


def _real_frames(n_steps: int, n_envs: int) -> np.ndarray:
    env = make_pong_vec_env(n_envs=n_envs, seed=0)  # sticky actions 0.25
    frames = [env.reset()]
    rng = np.random.default_rng(0)
    for _ in range(n_steps - 1):
        frames.append(env.step(rng.integers(0, 2, n_envs))[0])
    env.close()
    return np.stack(frames)


@pytest.fixture(scope="module")
def real_frames() -> np.ndarray:
    return _real_frames(400, 2)


def test_bytes_per_stored_step_on_pong(real_frames: np.ndarray) -> None:
    # Row fields (4 action + 4 reward + 4 log-prob + 8 policy version + 2 count) and 2 bytes per non-zero value:
    # at most 100 bytes per stored step on real Pong difference frames, against 1,620 bit-packed
    n_steps, n_envs = real_frames.shape[:2]
    kwargs = dict(observation_space=OBS_SPACE, action_space=spaces.Discrete(2), n_envs=n_envs)
    sparse, packed = SparseTernaryRolloutBuffer(64, **kwargs), TernaryPackedRolloutBuffer(64, **kwargs)
    _fill([sparse, packed], real_frames, np.zeros((n_steps, n_envs), dtype=bool))
    non_zeros = np.count_nonzero(real_frames)
    assert sparse.stored_bytes_per_step == pytest.approx(22 + 2 * non_zeros / (n_steps * n_envs))
    assert packed.stored_bytes_per_step == 1620
    print(f"bytes per stored step: sparse {sparse.stored_bytes_per_step:.1f}, packed {packed.stored_bytes_per_step:.0f}")
    assert sparse.stored_bytes_per_step <= 100


def _gradients(model, batch) -> list[th.Tensor]:
    model.policy.optimizer.zero_grad()
    model.compute_policy_gradient(batch)
    return [p.grad.clone() for p in model.policy.parameters()]


def test_gradients_equal_dense_storage(real_frames: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same steps in the sparse, bit-packed and plain int8 buffers give bit-identical gradients (the same sums in
    # the same order), and the dense float product agrees within float32 rounding (rtol 1e-5, atol 1e-7). The
    # sparse batch reaches the network as a sparse tensor: it is never made dense.
    n_steps, n_envs = real_frames.shape[:2]
    dones = np.zeros((n_steps, n_envs), dtype=bool)
    dones[[150, 399], 0] = dones[[260, 399], 1] = True
    kwargs = dict(observation_space=OBS_SPACE, action_space=spaces.Discrete(2), n_envs=n_envs)
    buffers = [cls(64, **kwargs) for cls in (SparseTernaryRolloutBuffer, TernaryPackedRolloutBuffer, EpisodeRolloutBuffer)]
    _fill(buffers, real_frames, dones)
    batches = [buffer.pop_episodes() for buffer in buffers]
    model = karpathy_pong(n_envs=n_envs, seed=0, rollout_buffer_class=SparseTernaryRolloutBuffer)
    model._n_updates = 2  # the steps were collected by an older policy (version 3 != 2): importance weights too
    model._train_chunk_steps = 256  # several chunks

    def no_dense(self, index):
        raise AssertionError("the sparse batch was made dense")

    with monkeypatch.context() as patch:
        patch.setattr(SparseTernaryObservations, "__getitem__", no_dense)
        sparse_grads = _gradients(model, batches[0])
    for batch in batches[1:]:
        for sparse_grad, grad in zip(sparse_grads, _gradients(model, batch), strict=True):
            assert th.equal(sparse_grad, grad)
    model.policy.mlp_extractor.policy_net[0].max_density = -1.0  # dense product
    for sparse_grad, grad in zip(sparse_grads, _gradients(model, batches[2]), strict=True):
        th.testing.assert_close(sparse_grad, grad, rtol=1e-5, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in sparse_grads)


def test_sparse_input_linear_empty_rows_and_batches() -> None:
    layer = SparseInputLinear(6400, 200)
    with th.no_grad():
        layer.weight.normal_(0, 1 / 80)
    frames = np.zeros((4, 6400), dtype=np.int8)
    frames[2, [5, 6399]] = [1, -1]
    observations = SparseTernaryObservations(np.array([6, -6400], dtype=np.int16), np.array([0, 0, 0, 2, 2]), (6400,), np.int8)
    for inputs in (th.as_tensor(frames), observations.sparse_tensor(slice(None))):
        out = layer(inputs)
        assert th.equal(out[[0, 1, 3]], th.zeros(3, 200))
        th.testing.assert_close(out[2], layer.weight[5] - layer.weight[6399])
    empty = SparseTernaryObservations(np.zeros(0, dtype=np.int16), np.zeros(4, dtype=np.int64), (6400,), np.int8)
    assert th.equal(layer(empty.sparse_tensor(slice(None))), th.zeros(3, 200))
    assert layer(th.zeros((0, 6400), dtype=th.int8)).shape == (0, 200)
