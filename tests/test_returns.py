"""Exact policy-gradient weights on small hand-made episodes."""

import numpy as np
import pytest

from sb3_reinforce.common.estimators import policy_gradient_weights
from sb3_reinforce.common.returns import (
    gae_advantages,
    leave_one_episode_out_mean,
    per_decision_is_weights,
    standardize,
)


def starts_of(*lengths: int) -> np.ndarray:
    starts = np.zeros(sum(lengths), dtype=bool)
    starts[np.cumsum(lengths) - np.array(lengths)] = True
    return starts


def karpathy_discount_rewards(r: np.ndarray, gamma: float) -> np.ndarray:
    """Literal port of the seed's discount_rewards (Pong: reset at every non-zero reward)."""
    discounted = np.zeros_like(r, dtype=np.float64)
    running_add = 0.0
    for t in reversed(range(r.size)):
        if r[t] != 0:
            running_add = 0.0
        running_add = running_add * gamma + r[t]
        discounted[t] = running_add
    return discounted


# rewards [1, 0, 2] then a second episode [3]: (return_mode, reset_on_reward, gamma) -> expected Psi
REWARDS = np.array([1.0, 0.0, 2.0, 3.0])
STARTS = starts_of(3, 1)
EXPECTED = {
    ("reward_to_go", False, 0.5): [1.5, 1.0, 2.0, 3.0],
    ("reward_to_go", False, 1.0): [3.0, 2.0, 2.0, 3.0],
    ("reward_to_go", False, 0.0): [1.0, 0.0, 2.0, 3.0],
    ("reward_to_go", True, 0.5): [1.0, 1.0, 2.0, 3.0],
    ("reward_to_go", True, 1.0): [1.0, 2.0, 2.0, 3.0],
    ("reward_to_go", True, 0.0): [1.0, 0.0, 2.0, 3.0],
    ("total", False, 0.5): [1.5, 1.5, 1.5, 3.0],
    ("total", False, 1.0): [3.0, 3.0, 3.0, 3.0],
    ("total", False, 0.0): [1.0, 1.0, 1.0, 3.0],
    # the point ends with the reward 1: segments [1] and [0, 2]
    ("total", True, 0.5): [1.0, 1.0, 1.0, 3.0],
    ("total", True, 1.0): [1.0, 2.0, 2.0, 3.0],
    ("total", True, 0.0): [1.0, 0.0, 0.0, 3.0],
}


@pytest.mark.parametrize(("return_mode", "reset_on_reward", "gamma"), list(EXPECTED))
def test_exact_weights(return_mode, reset_on_reward, gamma):
    weights, _ = policy_gradient_weights(
        REWARDS, STARTS, gamma=gamma, return_mode=return_mode, reset_on_reward=reset_on_reward
    )
    np.testing.assert_allclose(weights, EXPECTED[(return_mode, reset_on_reward, gamma)], rtol=0, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99, 1.0])
def test_value_targets_are_reward_to_go(gamma):
    _, targets = policy_gradient_weights(REWARDS, STARTS, gamma=gamma, return_mode="total")
    expected, _ = policy_gradient_weights(REWARDS, STARTS, gamma=gamma, return_mode="reward_to_go")
    np.testing.assert_allclose(targets, expected, atol=1e-12)


def test_reset_on_reward_matches_karpathy_on_pong_like_rewards():
    rng = np.random.default_rng(0)
    rewards = rng.choice([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], size=500)
    weights, _ = policy_gradient_weights(rewards, starts_of(500), gamma=0.99, reset_on_reward=True)
    np.testing.assert_allclose(weights, karpathy_discount_rewards(rewards, 0.99), atol=1e-12)


def test_per_decision_importance_weights():
    log_ratio = np.log([2.0, 1.0, 3.0, 5.0, 1.0])
    np.testing.assert_allclose(per_decision_is_weights(log_ratio, starts_of(3, 2)), [2, 2, 6, 5, 5])


@pytest.mark.parametrize(
    ("return_mode", "expected"),
    [
        # H_t = c_t r_t + H_{t+1}
        ("reward_to_go", [10.0, 8.0, 6.0]),
        # sum_j r_j c_max(t, j): t=0: 2+2+6, t=1: 2+2+6, t=2: 6+6+6
        ("total", [10.0, 10.0, 18.0]),
    ],
)
def test_importance_weighted_returns(return_mode, expected):
    weights, _ = policy_gradient_weights(
        np.ones(3), starts_of(3), gamma=1.0, return_mode=return_mode, is_weights=np.array([2.0, 2.0, 6.0])
    )
    np.testing.assert_allclose(weights, expected)


def test_mean_baseline_leaves_own_episode_out():
    rewards = np.array([1.0, 2.0, 4.0, 0.0, 0.0])
    weights, _ = policy_gradient_weights(rewards, starts_of(2, 1, 2), gamma=1.0, baseline="mean")
    # returns-to-go [3, 2 | 4 | 0, 0]; baselines 4/3, 5/4, 3
    np.testing.assert_allclose(weights, [3 - 4 / 3, 2 - 4 / 3, 4 - 5 / 4, -3, -3])


def test_mean_baseline_single_episode_is_zero():
    weights, _ = policy_gradient_weights(np.array([1.0, 1.0]), starts_of(2), gamma=1.0, baseline="mean")
    np.testing.assert_allclose(weights, [2.0, 1.0])


def test_optimal_baseline_weights_by_score_norm():
    rewards = np.array([1.0, 2.0, 4.0, 0.0, 0.0])
    score_sq = np.array([1.0, 3.0, 2.0, 1.0, 1.0])
    weights, _ = policy_gradient_weights(rewards, starts_of(2, 1, 2), gamma=1.0, baseline="optimal", score_sq_norms=score_sq)
    b0 = (2 * 4 + 0 + 0) / (2 + 1 + 1)
    b1 = (1 * 3 + 3 * 2 + 0 + 0) / (1 + 3 + 1 + 1)
    b2 = (1 * 3 + 3 * 2 + 2 * 4) / (1 + 3 + 2)
    np.testing.assert_allclose(weights, [3 - b0, 2 - b0, 4 - b1, -b2, -b2])
    np.testing.assert_allclose(
        leave_one_episode_out_mean(np.array([3.0, 2, 4, 0, 0]), np.array([0, 0, 1, 2, 2]), score_sq)[0], b0
    )


def test_value_baseline_and_gae():
    rewards = np.array([1.0, 1.0, 1.0])
    values = np.array([0.5, 2.0, 0.25])
    gamma = 0.5
    weights, targets = policy_gradient_weights(rewards, starts_of(3), gamma=gamma, baseline="value", values=values)
    np.testing.assert_allclose(targets, [1.75, 1.5, 1.0])
    np.testing.assert_allclose(weights, targets - values)
    # lambda = 0: one-step TD errors, the value after the last step is 0
    td, _ = policy_gradient_weights(rewards, starts_of(3), gamma=gamma, baseline="value", values=values, gae_lambda=0.0)
    np.testing.assert_allclose(td, [1 + 0.5 * 2.0 - 0.5, 1 + 0.5 * 0.25 - 2.0, 1 - 0.25])
    np.testing.assert_allclose(gae_advantages(rewards, values, starts_of(3), gamma, 1.0), targets - values)
    # total mode with a value baseline: gamma^t (G_t - V(s_t))
    total, _ = policy_gradient_weights(
        rewards, starts_of(3), gamma=gamma, return_mode="total", baseline="value", values=values
    )
    np.testing.assert_allclose(total, (targets - values) * gamma ** np.arange(3))


def test_standardize_guards_constant_batch():
    np.testing.assert_array_equal(standardize(np.full(5, 3.0)), np.zeros(5))
    out = standardize(np.array([1.0, 2.0, 3.0, 10.0]))
    assert abs(out.mean()) < 1e-12 and abs(out.std() - 1) < 1e-12
    weights, _ = policy_gradient_weights(np.ones(4), starts_of(4), gamma=1.0, return_mode="total", normalize=True)
    np.testing.assert_array_equal(weights, np.zeros(4))


@pytest.mark.parametrize(("kwargs", "message"), [({"return_mode": "sum"}, "return_mode"), ({"baseline": "meen"}, "baseline")])
def test_bad_mode_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        policy_gradient_weights(np.ones(2), starts_of(2), gamma=1.0, **kwargs)
