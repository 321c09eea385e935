"""
The arithmetic of Monte-Carlo returns on a batch of complete episodes: discounted sums, importance weights,
leave-one-episode-out averages, GAE, standardization. Which of them make an estimator is declared in
:mod:`sb3_reinforce.common.estimators`.

All functions work on a *flat, episode-major* batch: the steps of episode 0, then of episode 1, ...
``episode_starts[t]`` is True on the first step of every episode. Everything is numpy float64 so the
values are exact enough to be compared with hand computations in tests.

Notation (``c_t`` is the per-decision importance weight, 1 for steps collected by the current policy)::

    c_t = prod_{t' <= t} pi_theta(a_t' | s_t') / pi_behaviour(a_t' | s_t')   (t' runs from the episode start)

A *segment* is an episode, or, with ``reset_on_reward=True``, the run of steps up to and including a
non-zero reward (Karpathy's Pong: every point is its own game). ``s`` is the first step of the segment.

- ``"reward_to_go"``:  Psi_t = sum_{j >= t, j in seg} gamma^(j - t) c_j r_j
- ``"total"``:         Psi_t = c_t sum_{s <= j < t} gamma^(j - s) r_j + sum_{j >= t, j in seg} gamma^(j - s) c_j r_j

Each reward ``r_j`` is weighted by ``c_max(t, j)``, the product of ratios of every action it depends on,
which makes the estimate unbiased for the current policy even when early steps of an episode were
collected by an older one. With ``c = 1`` these are the usual G_t and R(tau).
"""

import numpy as np


def segment_starts(episode_starts: np.ndarray, rewards: np.ndarray, reset_on_reward: bool) -> np.ndarray:
    """
    First step of every segment (episode, or point when ``reset_on_reward``).

    :param episode_starts: bool array, True on the first step of each episode
    :param rewards: rewards of the steps
    :param reset_on_reward: start a new segment after every non-zero reward
    :return: bool array, True on the first step of each segment
    """
    starts = np.asarray(episode_starts, dtype=bool).copy()
    if len(starts) > 0:
        starts[0] = True
    if reset_on_reward and len(starts) > 1:
        starts[1:] |= np.asarray(rewards)[:-1] != 0
    return starts


def reward_to_go(
    rewards: np.ndarray, seg_starts: np.ndarray, gamma: float, is_weights: np.ndarray | None = None
) -> np.ndarray:
    """
    Discounted return from each step to the end of its segment: ``H_t = c_t r_t + gamma H_{t+1}``.

    :param rewards: rewards, flat episode-major
    :param seg_starts: True on the first step of each segment
    :param gamma: discount factor
    :param is_weights: per-decision importance weights ``c_t`` (None: all ones)
    :return: float64 array of the same length
    """
    weighted = np.asarray(rewards, dtype=np.float64)
    if is_weights is not None:
        weighted = weighted * is_weights
    n = len(weighted)
    out = np.empty(n, dtype=np.float64)
    # Python floats: this loop is ~20x faster than indexing numpy scalars
    values = weighted.tolist()
    restart = seg_starts.tolist()
    running = 0.0
    for t in range(n - 1, -1, -1):
        if t == n - 1 or restart[t + 1]:
            running = 0.0
        running = values[t] + gamma * running
        out[t] = running
    return out


def steps_in_segment(seg_starts: np.ndarray) -> np.ndarray:
    """Index of each step inside its segment (0 on the first step)."""
    n = len(seg_starts)
    idx = np.arange(n)
    last_start = np.maximum.accumulate(np.where(seg_starts, idx, 0))
    return idx - last_start


def total_return(
    rewards: np.ndarray, seg_starts: np.ndarray, gamma: float, is_weights: np.ndarray | None = None
) -> np.ndarray:
    """
    The whole discounted segment return as the weight of every step of the segment (see module docstring
    for the importance-weighted form).

    :param rewards: rewards, flat episode-major
    :param seg_starts: True on the first step of each segment
    :param gamma: discount factor
    :param is_weights: per-decision importance weights ``c_t`` (None: all ones)
    :return: float64 array of the same length
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    k = steps_in_segment(seg_starts)
    discount = gamma ** k.astype(np.float64)
    future = discount * reward_to_go(rewards, seg_starts, gamma, is_weights)
    # past_t = sum_{s <= j < t} gamma^(j - s) r_j, an exclusive cumulative sum restarted at each segment
    discounted = discount * rewards
    cumsum = np.cumsum(discounted)
    seg_id = np.cumsum(seg_starts) - 1
    seg_first = np.flatnonzero(seg_starts)
    offset = np.where(seg_first > 0, cumsum[seg_first - 1], 0.0) if len(seg_first) else np.zeros(0)
    past = cumsum - discounted - offset[seg_id]
    if is_weights is not None:
        past = past * is_weights
    return past + future


def per_decision_is_weights(log_ratio: np.ndarray, episode_starts: np.ndarray, max_log: float = 50.0) -> np.ndarray:
    """
    ``c_t = exp(sum_{t' <= t} log_ratio_t')`` with the sum restarted at each episode start.

    :param log_ratio: ``log pi_theta(a_t|s_t) - log pi_behaviour(a_t|s_t)`` per step (0 for on-policy steps)
    :param episode_starts: True on the first step of each episode
    :param max_log: clip of the cumulative log-ratio, only to keep ``exp`` finite
    :return: float64 array of importance weights
    """
    log_ratio = np.asarray(log_ratio, dtype=np.float64)
    cumsum = np.cumsum(log_ratio)
    starts = np.flatnonzero(episode_starts)
    ep_id = np.cumsum(episode_starts) - 1
    offset = np.where(starts > 0, cumsum[starts - 1], 0.0) if len(starts) else np.zeros(0)
    return np.exp(np.clip(cumsum - offset[ep_id], -max_log, max_log))


def leave_one_episode_out_mean(values: np.ndarray, episode_ids: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """
    For every step, the (weighted) mean of ``values`` over the steps of all *other* episodes of the batch.

    Excluding the step's own episode keeps the baseline independent of the step's action, so the gradient
    estimate stays exactly unbiased (the plain batch mean shrinks it by a factor (N - 1) / N).
    With a single episode in the batch there is nothing to average: the baseline is 0.

    :param values: per-step values to average
    :param episode_ids: per-step episode index (0 .. n_episodes - 1)
    :param weights: per-step weights of the average (None: uniform)
    :return: float64 array, the baseline of every step
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    n_episodes = int(episode_ids.max()) + 1 if len(episode_ids) else 0
    num = np.bincount(episode_ids, weights=weights * values, minlength=n_episodes)
    den = np.bincount(episode_ids, weights=weights, minlength=n_episodes)
    other_num = num.sum() - num
    other_den = den.sum() - den
    safe = other_den > 1e-12 * max(den.sum(), 1e-300)
    per_episode = np.where(safe, other_num / np.where(safe, other_den, 1.0), 0.0)
    return per_episode[episode_ids]


def gae_advantages(
    rewards: np.ndarray, values: np.ndarray, seg_starts: np.ndarray, gamma: float, gae_lambda: float
) -> np.ndarray:
    """
    GAE(lambda) inside each segment; the value after the last step of a segment is 0 (episodes are complete,
    a time-limit truncation is already folded into the last reward as ``gamma * V(s_T)``).
    ``gae_lambda = 1`` gives ``G_t - V(s_t)``.

    :param rewards: rewards, flat episode-major
    :param values: V(s_t) per step
    :param seg_starts: True on the first step of each segment
    :param gamma: discount factor
    :param gae_lambda: GAE lambda
    :return: float64 advantages
    """
    values = np.asarray(values, dtype=np.float64)
    next_values = np.append(values[1:], 0.0)
    seg_end = np.append(seg_starts[1:], True)
    next_values[seg_end] = 0.0
    deltas = np.asarray(rewards, dtype=np.float64) + gamma * next_values - values
    return reward_to_go(deltas, seg_starts, gamma * gae_lambda)


def standardize(weights: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Subtract the mean and divide by the std; a constant batch (std = 0) gives all zeros."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) == 0:
        return weights
    centered = weights - weights.mean()
    std = centered.std()
    if std < eps:
        return np.zeros_like(centered)
    return centered / std
