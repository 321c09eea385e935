"""
The numpy side of Karpathy's observations, written once: the preprocessing of Atari frames and the frame differences.

- :func:`karpathy_preprocess_batch`: the one preprocessing kernel (``n`` frames at once);
  :func:`karpathy_preprocess` is the same kernel on a batch of one frame;
- :func:`difference_frames`: the one frame difference, ``current - previous``;
- :func:`difference_step`: the difference frames of a step of a ``VecEnv`` of preprocessed frames, with SB3's
  auto-reset convention (``terminal_observation``).

The gymnasium wrappers (:mod:`sb3_reinforce.pong.wrappers`) and the fast vectorized Pong
(:mod:`sb3_reinforce.pong.vec_env`) all call these functions.
"""

from typing import Any

import numpy as np

__all__ = [
    "BACKGROUND_VALUES",
    "FRAME_SHAPE",
    "N_PIXELS",
    "PREPROCESSED_SHAPE",
    "difference_frames",
    "difference_step",
    "karpathy_preprocess",
    "karpathy_preprocess_batch",
]

#: Shape of a raw Atari frame (height, width, RGB)
FRAME_SHAPE = (210, 160, 3)
#: Rows of a raw frame that are kept (between the score and the bottom border), every second one
_ROWS = slice(35, 195, 2)
#: Every second column
_COLUMNS = slice(None, None, 2)
#: Shape of a preprocessed frame before flattening
PREPROCESSED_SHAPE = (80, 80)
#: Number of values of a preprocessed frame (80 x 80)
N_PIXELS = PREPROCESSED_SHAPE[0] * PREPROCESSED_SHAPE[1]
#: Red-channel values that become 0: black and Pong's two background colours; every other value becomes 1
BACKGROUND_VALUES = (0, 109, 144)


def karpathy_preprocess_batch(frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """
    Karpathy's ``prepro`` on a batch of Atari frames: rows 35 to 194 are kept (``frame[35:195]``), then every
    second row and column of the red channel (``[::2, ::2, 0]``, 80x80); the background values 144 and 109 (and 0)
    become 0, every other value 1. The frames are not modified (Karpathy's version writes into them).

    Frames are either RGB, shape ``(n, 210, 160, 3)``, or the red channel alone, shape ``(n, 210, 160)``.
    A single-channel frame must be the red channel (``frame[..., 0]``): ALE's grayscale frames are a
    luminance, not the red channel, and give a different result.

    :param frames: uint8 frames, ``(n, 210, 160, 3)`` (RGB) or ``(n, 210, 160)`` (red channel)
    :param out: optional ``int8`` array of shape ``(n, 6400)`` to write the result into (C-contiguous)
    :return: ``int8`` array of shape ``(n, 6400)`` with values in {0, 1} (``out`` when given)
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must have dtype uint8, got {frames.dtype}")
    if frames.ndim == 4 and frames.shape[1:] == FRAME_SHAPE:
        red = frames[:, _ROWS, _COLUMNS, 0]
    elif frames.ndim == 3 and frames.shape[1:] == FRAME_SHAPE[:2]:
        red = frames[:, _ROWS, _COLUMNS]
    else:
        raise ValueError(f"frames must have shape (n, 210, 160, 3) (RGB) or (n, 210, 160) (red channel), got {frames.shape}")
    n = frames.shape[0]
    if out is None:
        out = np.empty((n, N_PIXELS), dtype=np.int8)
    elif out.shape != (n, N_PIXELS) or out.dtype != np.int8 or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous int8 array of shape {(n, N_PIXELS)}, got shape {out.shape} and dtype {out.dtype}"
        )
    # Fastest way found: gather the strided red values into a contiguous buffer, then compare; a 256-entry lookup
    # table (``table[red]`` or ``np.take``) is 2 to 4 times slower on a batch. A bool array is 0/1 bytes, so the
    # results are written through a bool view of ``out``.
    gathered = np.empty((n, *PREPROCESSED_SHAPE), dtype=np.uint8)
    np.copyto(gathered, red)
    result = out.reshape(n, *PREPROCESSED_SHAPE).view(np.bool_)
    scratch = np.empty((n, *PREPROCESSED_SHAPE), dtype=np.bool_)
    np.not_equal(gathered, BACKGROUND_VALUES[0], out=result)
    for value in BACKGROUND_VALUES[1:]:
        np.not_equal(gathered, value, out=scratch)
        result &= scratch
    return out


def karpathy_preprocess(frame: np.ndarray) -> np.ndarray:
    """
    Preprocess one 210x160x3 uint8 Atari frame as Karpathy's ``prepro``: :func:`karpathy_preprocess_batch` on a
    batch of one frame.

    :param frame: RGB frame of shape ``(210, 160, 3)`` and dtype ``uint8``
    :return: flat ``int8`` array of 6400 values in {0, 1}
    """
    frame = np.asarray(frame)
    if frame.shape != FRAME_SHAPE or frame.dtype != np.uint8:
        raise ValueError(
            f"frame must be an RGB Atari frame of shape {FRAME_SHAPE} and dtype uint8, "
            f"got shape {frame.shape} and dtype {frame.dtype}"
        )
    return karpathy_preprocess_batch(frame[np.newaxis])[0]


def difference_frames(current: np.ndarray, previous: np.ndarray, new_episode: np.ndarray | None = None) -> np.ndarray:
    """
    The input of Karpathy's network: the current preprocessed frame(s) minus the previous one(s). A still picture
    carries no motion, the difference shows where the ball and the paddles move.

    :param current: preprocessed frames (integer values in {0, 1}), one frame or a batch
    :param previous: the frames of the step before, same shape
    :param new_episode: for a batch, the frames that start a new episode (a bool per frame): their difference is
        all zeros, they have no previous frame
    :return: a new ``int8`` array (callers may keep it) with values in {-1, 0, 1}
    """
    difference = np.subtract(current, previous, dtype=np.int8)
    if new_episode is not None and new_episode.any():
        difference[new_episode] = 0
    return difference


def difference_step(current: np.ndarray, previous: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
    """
    The difference frames of one step of a ``VecEnv`` whose observations are preprocessed frames, with SB3's
    auto-reset convention: a done environment's observation is the first frame of its new episode, so its
    difference frame is all zeros, and its ``infos[i]["terminal_observation"]`` (the last preprocessed frame of the
    episode, when given) is replaced, in place, by the difference frame of that last step.

    :param current: the step's preprocessed frames, shape ``(n_envs, n)``
    :param previous: the preprocessed frames of the step before, same shape
    :param dones: the step's done flags
    :param infos: the step's info dicts (modified in place)
    :return: the difference frames, a new ``int8`` array
    """
    for i in np.flatnonzero(dones).tolist():
        terminal = infos[i].get("terminal_observation")
        if terminal is not None:
            infos[i]["terminal_observation"] = difference_frames(terminal, previous[i])
    return difference_frames(current, previous, dones)
