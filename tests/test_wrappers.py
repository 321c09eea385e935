"""Tests of the Karpathy Pong wrappers: preprocessing, difference frames, UP/DOWN actions, VecDifferenceFrame."""

import ale_py
import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce.pong.wrappers import (
    DifferenceFrame,
    KarpathyPreprocess,
    PongUpDown,
    VecDifferenceFrame,
    karpathy_preprocess,
    karpathy_preprocess_batch,
    make_karpathy_pong_env,
    wrap_karpathy_pong,
)

gym.register_envs(ale_py)

PONG_KWARGS = dict(frameskip=4, repeat_action_probability=0.0)


def literal_prepro(frame: np.ndarray) -> np.ndarray:
    """The preprocessing exactly as Karpathy's pg-pong.py writes it (on a copy, his version mutates the frame)."""
    image = frame[35:195]
    image = image[::2, ::2, 0].copy()
    image[image == 144] = 0
    image[image == 109] = 0
    image[image != 0] = 1
    return image.astype(np.float64).ravel()


@pytest.fixture(scope="module")
def pong_frames() -> np.ndarray:
    """Frames of a real ALE/Pong-v5 game with random UP/DOWN actions (several points scored)."""
    env = gym.make("ALE/Pong-v5", **PONG_KWARGS)
    frame, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    frames = [frame]
    for _ in range(400):
        frame, *_ = env.step(int(rng.integers(2, 4)))
        frames.append(frame)
    env.close()
    return np.stack(frames)


def test_preprocess_equals_definition_on_real_frames(pong_frames):
    expected = np.stack([literal_prepro(frame) for frame in pong_frames])
    # the frames show paddles and the ball (not only background)
    assert expected.sum(axis=1).min() > 0
    assert len({row.tobytes() for row in expected}) > 100

    single = np.stack([karpathy_preprocess(frame) for frame in pong_frames])
    assert single.dtype == np.int8 and single.shape == (len(pong_frames), 6400)
    np.testing.assert_array_equal(single, expected)

    batch = karpathy_preprocess_batch(pong_frames)
    assert batch.dtype == np.int8
    np.testing.assert_array_equal(batch, expected)
    # red channel alone gives the same result
    np.testing.assert_array_equal(karpathy_preprocess_batch(np.ascontiguousarray(pong_frames[..., 0])), expected)
    # into a given buffer
    out = np.full((len(pong_frames), 6400), 7, dtype=np.int8)
    assert karpathy_preprocess_batch(pong_frames, out=out) is out
    np.testing.assert_array_equal(out, expected)
    # the input is not modified (Karpathy's version writes into the frame)
    assert pong_frames[:, 35:195:2, ::2, 0].max() > 1


def test_preprocess_equals_definition_on_all_values():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(6, 210, 160, 3), dtype=np.uint8)
    # plenty of background values
    frames[frames < 60] = 144
    frames[frames > 200] = 109
    frames[0, 35:195:2, ::2, 0] = np.arange(6400).reshape(80, 80) % 256
    expected = np.stack([literal_prepro(frame) for frame in frames])
    np.testing.assert_array_equal(karpathy_preprocess_batch(frames), expected)
    np.testing.assert_array_equal(np.stack([karpathy_preprocess(f) for f in frames]), expected)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((210, 160, 3), dtype=np.float32),
        np.zeros((84, 84, 3), dtype=np.uint8),
        np.zeros((210, 160), dtype=np.uint8),
    ],
)
def test_preprocess_rejects_bad_frames(bad):
    with pytest.raises(ValueError, match="frame"):
        karpathy_preprocess(bad)


def test_preprocess_batch_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        karpathy_preprocess_batch(np.zeros((2, 84, 84), dtype=np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        karpathy_preprocess_batch(np.zeros((2, 210, 160, 3), dtype=np.int16))
    with pytest.raises(ValueError, match="out"):
        karpathy_preprocess_batch(np.zeros((2, 210, 160, 3), dtype=np.uint8), out=np.zeros((3, 6400), dtype=np.int8))


def test_karpathy_preprocess_wrapper():
    env = KarpathyPreprocess(gym.make("ALE/Pong-v5", **PONG_KWARGS))
    assert env.observation_space == gym.spaces.Box(0, 1, (6400,), np.int8)
    raw = env.unwrapped
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.int8 and obs in env.observation_space
    np.testing.assert_array_equal(obs, literal_prepro(raw.ale.getScreenRGB()))
    for _ in range(30):
        obs, *_ = env.step(2)
        np.testing.assert_array_equal(obs, literal_prepro(raw.ale.getScreenRGB()))
    env.close()


def test_karpathy_preprocess_rejects_other_observations():
    with pytest.raises(ValueError, match=r"\(210, 160, 3\)"):
        KarpathyPreprocess(gym.make("ALE/Pong-v5", obs_type="grayscale"))
    with pytest.raises(ValueError, match="observation space"):
        KarpathyPreprocess(gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match="env"):
        KarpathyPreprocess("ALE/Pong-v5")  # type: ignore[arg-type]


def test_difference_frame():
    frames = KarpathyPreprocess(gym.make("ALE/Pong-v5", **PONG_KWARGS))
    differences = DifferenceFrame(KarpathyPreprocess(gym.make("ALE/Pong-v5", **PONG_KWARGS)))
    assert differences.observation_space == gym.spaces.Box(-1, 1, (6400,), np.int8)
    rng = np.random.default_rng(0)
    for _ in range(2):  # the second reset restarts from zeros
        previous, _ = frames.reset(seed=0)
        diff, _ = differences.reset(seed=0)
        assert diff.dtype == np.int8 and not diff.any()
        for _ in range(60):
            action = int(rng.integers(2, 4))
            frame, *_ = frames.step(action)
            diff, *_ = differences.step(action)
            assert diff.dtype == np.int8 and diff in differences.observation_space
            np.testing.assert_array_equal(diff, frame.astype(np.int8) - previous)
            previous = frame
    # the ball and paddles move
    assert diff.min() == -1 and diff.max() == 1


def test_difference_frame_validation():
    with pytest.raises(ValueError, match="values in"):
        DifferenceFrame(gym.make("ALE/Pong-v5"))
    with pytest.raises(TypeError, match="Box"):
        DifferenceFrame(gym.make("FrozenLake-v1"))
    env = DifferenceFrame(KarpathyPreprocess(gym.make("ALE/Pong-v5")))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def _paddle_top(frame: np.ndarray) -> int:
    """Top row of the player's (green) paddle."""
    rows = np.flatnonzero((frame[34:194, 140:144] == [92, 186, 92]).all(axis=-1).any(axis=1))
    return int(rows.min()) + 34


@pytest.mark.parametrize("full_action_space", [False, True])
def test_pong_up_down(full_action_space):
    env = PongUpDown(gym.make("ALE/Pong-v5", full_action_space=full_action_space, **PONG_KWARGS))
    meanings = env.unwrapped.get_action_meanings()
    assert env.action_space == gym.spaces.Discrete(2)
    assert meanings[env.up_action] == "RIGHT" and meanings[env.down_action] == "LEFT"
    if not full_action_space:
        # Karpathy's action numbers
        assert (env.up_action, env.down_action) == (2, 3)
    assert env.get_action_meanings() == ["UP", "DOWN"]
    positions = {}
    for action in (0, 1):
        env.reset(seed=0)
        for _ in range(12):
            frame, *_ = env.step(action)
        positions[action] = _paddle_top(frame)
    # 0 moves the paddle up (to the top rows), 1 down
    assert positions[0] < 60 and positions[1] > 150


def test_pong_up_down_validation():
    with pytest.raises(ValueError, match="get_action_meanings"):
        PongUpDown(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="Discrete"):
        PongUpDown(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="RIGHT and LEFT"):
        PongUpDown(gym.make("ALE/Freeway-v5"))


def test_vec_difference_frame_matches_gym_chain():
    # 40 emulator frames per episode: 10 steps, so that auto-reset happens several times
    env_kwargs = dict(max_num_frames_per_episode=40, **PONG_KWARGS)
    n_envs = 2
    venv = VecDifferenceFrame(
        make_vec_env(
            "ALE/Pong-v5",
            n_envs=n_envs,
            wrapper_class=wrap_karpathy_pong,
            wrapper_kwargs=dict(difference=False),
            env_kwargs=env_kwargs,
        )
    )
    reference = DummyVecEnv([lambda: make_karpathy_pong_env(**env_kwargs) for _ in range(n_envs)])
    assert venv.observation_space == reference.observation_space == gym.spaces.Box(-1, 1, (6400,), np.int8)
    obs, expected = venv.reset(), reference.reset()
    np.testing.assert_array_equal(obs, expected)
    rng = np.random.default_rng(0)
    n_dones = 0
    for _ in range(35):
        actions = rng.integers(0, 2, size=n_envs)
        obs, rewards, dones, infos = venv.step(actions)
        expected, expected_rewards, expected_dones, expected_infos = reference.step(actions)
        assert obs.dtype == np.int8
        np.testing.assert_array_equal(obs, expected)
        np.testing.assert_array_equal(dones, expected_dones)
        np.testing.assert_array_equal(rewards, expected_rewards)
        for i in np.flatnonzero(dones):
            n_dones += 1
            assert not obs[i].any()
            terminal = infos[i]["terminal_observation"]
            assert terminal.dtype == np.int8
            np.testing.assert_array_equal(terminal, expected_infos[i]["terminal_observation"])
    assert n_dones >= 4


def test_vec_difference_frame_validation():
    with pytest.raises(TypeError, match="VecEnv"):
        VecDifferenceFrame(gym.make("CartPole-v1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="values in"):
        VecDifferenceFrame(DummyVecEnv([lambda: gym.make("CartPole-v1")]))


def test_make_karpathy_pong_env():
    env = make_karpathy_pong_env()
    assert env.observation_space == gym.spaces.Box(-1, 1, (6400,), np.int8)
    assert env.action_space == gym.spaces.Discrete(2)
    assert env.unwrapped._frameskip == 4
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)  # sticky, as ALE/Pong-v5
    original = make_karpathy_pong_env(karpathy_original=True)
    assert original.unwrapped._frameskip == (2, 5)
    assert original.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    # explicit values win
    assert make_karpathy_pong_env(frameskip=2, karpathy_original=True).unwrapped._frameskip == 2
    frames_only = make_karpathy_pong_env(difference=False, up_down=False)
    assert frames_only.observation_space == gym.spaces.Box(0, 1, (6400,), np.int8)
    assert frames_only.action_space == gym.spaces.Discrete(6)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(frameskip=0), ValueError, "frameskip"),
        (dict(frameskip="4"), TypeError, "frameskip"),
        (dict(frameskip=(4, 2)), ValueError, "frameskip"),
        (dict(repeat_action_probability=1.5), ValueError, "repeat_action_probability"),
        (dict(karpathy_original=1), TypeError, "karpathy_original"),
        (dict(max_num_frames_per_episode=0), ValueError, "max_num_frames_per_episode"),
        (dict(obs_type="grayscale"), ValueError, "obs_type"),
    ],
)
def test_make_karpathy_pong_env_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_karpathy_pong_env(**kwargs)
