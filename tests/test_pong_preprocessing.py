"""Tests of the one preprocessing kernel and the one frame difference (sb3_reinforce.pong.preprocessing)."""

import ale_py
import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce.pong import preprocessing, wrappers
from sb3_reinforce.pong.preprocessing import BACKGROUND_VALUES, FRAME_SHAPE, N_PIXELS, difference_frames, difference_step
from sb3_reinforce.pong.vec_env import make_pong_vec_env
from sb3_reinforce.pong.wrappers import DifferenceFrame, KarpathyPreprocess, VecDifferenceFrame

gym.register_envs(ale_py)


def hand_made_frame() -> tuple[np.ndarray, np.ndarray]:
    """A background frame with chosen pixels, and its preprocessed frame worked out by hand."""
    frame = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    frame[..., 0] = 144  # Pong's background
    frame[..., 1] = 255  # green and blue are never read
    frame[..., 2] = 7
    # (row, column, red value): kept rows are 35, 37, ..., 193, kept columns 0, 2, ..., 158
    kept = {
        (35, 0, 92): 1,  # output pixel 0
        (35, 2, 109): 0,  # the other background colour
        (35, 4, 0): 0,  # black
        (35, 6, 145): 1,  # neighbours of the background values are not background
        (35, 8, 143): 1,
        (35, 10, 108): 1,
        (35, 12, 110): 1,
        (35, 14, 255): 1,
        (37, 2, 1): 1,  # second output row: pixel 80 + 1
        (193, 158, 236): 1,  # the last output pixel, 6399
    }
    dropped = [(34, 0), (195, 0), (209, 4), (36, 2), (194, 158), (37, 3), (35, 159)]  # cropped or skipped
    expected = np.zeros(N_PIXELS, dtype=np.int8)
    for (row, column, red), value in kept.items():
        frame[row, column, 0] = red
        expected[(row - 35) // 2 * 80 + column // 2] = value
    for row, column in dropped:
        frame[row, column, 0] = 200
    assert np.flatnonzero(expected).tolist() == [0, 3, 4, 5, 6, 7, 81, 6399]
    return frame, expected


def test_exact_values_on_a_hand_made_frame():
    frame, expected = hand_made_frame()
    original = frame.copy()
    single = preprocessing.karpathy_preprocess(frame)
    assert single.dtype == np.int8 and single.shape == (N_PIXELS,)
    np.testing.assert_array_equal(single, expected)
    np.testing.assert_array_equal(preprocessing.karpathy_preprocess_batch(frame[np.newaxis])[0], expected)
    red = np.ascontiguousarray(frame[np.newaxis, ..., 0])
    np.testing.assert_array_equal(preprocessing.karpathy_preprocess_batch(red)[0], expected)
    np.testing.assert_array_equal(frame, original)  # the frame is not modified
    assert BACKGROUND_VALUES == (0, 109, 144)


def test_single_frame_is_a_batch_of_one():
    env = gym.make("ALE/Pong-v5", frameskip=4, repeat_action_probability=0.0)
    frame, _ = env.reset(seed=0)
    frames = [frame]
    for step in range(60):
        frame, *_ = env.step(2 + step // 10 % 2)
        frames.append(frame)
    frames.append(hand_made_frame()[0])
    batch = preprocessing.karpathy_preprocess_batch(np.stack(frames))
    wrapper = KarpathyPreprocess(env)
    for k, frame in enumerate(frames):
        np.testing.assert_array_equal(preprocessing.karpathy_preprocess(frame), batch[k])
        np.testing.assert_array_equal(preprocessing.karpathy_preprocess_batch(frame[np.newaxis])[0], batch[k])
        np.testing.assert_array_equal(wrapper.observation(frame), batch[k])
    assert len({row.tobytes() for row in batch}) > 30  # the frames differ
    env.close()


def test_wrappers_reexport_the_one_kernel():
    # one definition, importable from the wrappers module as before
    assert wrappers.karpathy_preprocess is preprocessing.karpathy_preprocess
    assert wrappers.karpathy_preprocess_batch is preprocessing.karpathy_preprocess_batch
    assert (wrappers.FRAME_SHAPE, wrappers.N_PIXELS) == (FRAME_SHAPE, N_PIXELS)


def test_preprocess_wrapper_rejects_a_bad_frame_clearly():
    wrapper = KarpathyPreprocess(gym.make("ALE/Pong-v5"))
    # a careless caller giving a float frame (or a grayscale one) gets an error naming the frame, not an IndexError
    with pytest.raises(ValueError, match=r"frame must be an RGB Atari frame of shape \(210, 160, 3\) and dtype uint8"):
        wrapper.observation(np.zeros(FRAME_SHAPE, dtype=np.float32))
    with pytest.raises(ValueError, match="frame must be"):
        wrapper.observation(np.zeros(FRAME_SHAPE[:2], dtype=np.uint8))


def test_difference_frames_exact_values():
    current = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 0, 1]], dtype=np.uint8)
    previous = np.array([[0, 1, 1, 0], [0, 0, 1, 1], [1, 1, 1, 1]], dtype=np.uint8)
    difference = difference_frames(current, previous)
    # int8, so that 0 - 1 is -1 and not 255 as in uint8
    assert difference.dtype == np.int8
    np.testing.assert_array_equal(difference, [[1, -1, 0, 0], [1, 1, -1, -1], [-1, 0, -1, 0]])
    new_episode = np.array([False, True, False])
    np.testing.assert_array_equal(difference_frames(current, previous, new_episode), [[1, -1, 0, 0], [0] * 4, [-1, 0, -1, 0]])
    # a new array: writing into it changes neither input
    difference[:] = 5
    assert current.max() == 1 and previous.max() == 1
    np.testing.assert_array_equal(difference_frames(current[0], previous[0]), [1, -1, 0, 0])  # one frame


def test_difference_step_auto_reset_convention():
    previous = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.int8)
    current = np.array([[1, 1, 0], [0, 0, 1]], dtype=np.int8)  # env 1 was reset: its first frame
    terminal = np.array([1, 1, 0], dtype=np.int8)  # env 1's last frame
    infos = [{}, {"terminal_observation": terminal}]
    differences = difference_step(current, previous, np.array([False, True]), infos)
    np.testing.assert_array_equal(differences, [[1, 0, -1], [0, 0, 0]])
    np.testing.assert_array_equal(infos[1]["terminal_observation"], [0, 1, 0])
    assert infos[0] == {}
    # done without a terminal observation: nothing to difference, the observation is still zeros
    infos = [{}, {}]
    np.testing.assert_array_equal(difference_step(current, previous, np.array([False, True]), infos)[1], [0, 0, 0])
    assert infos == [{}, {}]


def test_the_three_differencers_agree():
    """DifferenceFrame, VecDifferenceFrame and PongVecEnv give the same difference frames for the same game."""
    kwargs = dict(frameskip=4, repeat_action_probability=0.0, max_num_frames_per_episode=80)
    single = DifferenceFrame(KarpathyPreprocess(gym.make("ALE/Pong-v5", **kwargs)))
    vec = VecDifferenceFrame(DummyVecEnv([lambda: KarpathyPreprocess(gym.make("ALE/Pong-v5", **kwargs))]))
    fast = make_pong_vec_env(n_envs=1, max_num_frames_per_episode=80, repeat_action_probability=0.0)
    obs, _ = single.reset(seed=0)
    vec.seed(0)
    np.testing.assert_array_equal(vec.reset()[0], obs)
    np.testing.assert_array_equal(fast.reset()[0], obs)
    n_moving = 0
    for step in range(19):  # 20 steps per episode: the last one is done
        action = step // 5 % 2
        obs, *_ = single.step(2 + action)  # RIGHT (up) or LEFT (down), the raw actions PongUpDown maps 0 and 1 to
        vec_obs, _, vec_dones, _ = vec.step(np.array([2 + action]))
        fast_obs, _, fast_dones, _ = fast.step(np.array([action]))
        np.testing.assert_array_equal(vec_obs[0], obs)
        np.testing.assert_array_equal(fast_obs[0], obs)
        assert not vec_dones[0] and not fast_dones[0]
        n_moving += int(obs.any())
    assert n_moving > 10
    single.close()
    vec.close()
    fast.close()
