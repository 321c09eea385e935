"""The estimator registry: exact weights of the time-dependent baseline, and the registry's own contracts."""

import numpy as np
import pytest

from sb3_reinforce.common.estimators import (
    BASELINES,
    RETURN_MODES,
    get_baseline,
    get_return_mode,
    leave_one_episode_out_time_mean,
    policy_gradient_weights,
)
from tests.test_returns import starts_of


def test_time_baseline_exact_weights():
    # episodes [1, 2] | [4] | [0, 0, 5]: returns-to-go [3, 2 | 4 | 5, 5, 5] (gamma 1)
    rewards = np.array([1.0, 2.0, 4.0, 0.0, 0.0, 5.0])
    weights, _ = policy_gradient_weights(rewards, starts_of(2, 1, 3), gamma=1.0, baseline="time")
    # index 0: others' returns (4, 5), (3, 5), (3, 4); index 1: only the other episode reaching it; index 2: none
    np.testing.assert_allclose(weights, [3 - 4.5, 2 - 5, 4 - 4, 5 - 3.5, 5 - 2, 5 - 0], rtol=0, atol=1e-12)


def test_time_baseline_total_mode_and_discount():
    rewards = np.array([1.0, 1.0, 2.0, 0.0])
    # gamma 0.5: R(tau) = 1 + 0.5 = 1.5 and 2 + 0 = 2, the same for every step of an episode
    weights, _ = policy_gradient_weights(rewards, starts_of(2, 2), gamma=0.5, return_mode="total", baseline="time")
    np.testing.assert_allclose(weights, [1.5 - 2, 1.5 - 2, 2 - 1.5, 2 - 1.5], rtol=0, atol=1e-12)


def test_time_baseline_indexes_points_with_reset_on_reward():
    # one episode of two points [0, 1] [0, -1] and one of one point [1]: index in the point, own points excluded
    rewards = np.array([0.0, 1.0, 0.0, -1.0, 1.0])
    weights, _ = policy_gradient_weights(rewards, starts_of(4, 1), gamma=1.0, baseline="time", reset_on_reward=True)
    # returns [1, 1, -1, -1 | 1]; index 0 of episode 0 sees only episode 1's index 0 (1); index 1: no other episode
    np.testing.assert_allclose(weights, [1 - 1, 1 - 0, -1 - 1, -1 - 0, 1 - 0], rtol=0, atol=1e-12)


def test_time_baseline_importance_weighted():
    rewards = np.array([1.0, 1.0, 2.0, 2.0])
    c = np.array([2.0, 3.0, 1.0, 1.0])
    weights, _ = policy_gradient_weights(rewards, starts_of(2, 2), gamma=1.0, baseline="time", is_weights=c)
    # weighted reward-to-go of episode 0: [2*1 + 3*1, 3*1]; plain returns [2, 1 | 4, 2]; baseline times c_t
    np.testing.assert_allclose(weights, [5 - 2 * 4, 3 - 3 * 2, 4 - 2, 2 - 1], rtol=0, atol=1e-12)


def test_leave_one_episode_out_time_mean_single_episode_is_zero():
    np.testing.assert_array_equal(leave_one_episode_out_time_mean(np.ones(3), np.zeros(3, int), np.arange(3)), np.zeros(3))


def test_registry_contracts():
    assert set(RETURN_MODES) == {"reward_to_go", "total"}
    assert {"none", "mean", "optimal", "time", "value"} <= set(BASELINES)
    assert get_baseline(None) is get_baseline("none") is BASELINES["none"]
    assert BASELINES["none"].value is None
    # only the value baseline needs a critic, only the optimal one the score norms
    assert [name for name, b in BASELINES.items() if b.needs_values] == ["value"]
    assert [name for name, b in BASELINES.items() if b.needs_score_norms] == ["optimal"]


@pytest.mark.parametrize("baseline", list(BASELINES))
@pytest.mark.parametrize("return_mode", list(RETURN_MODES))
def test_every_estimator_computes_finite_weights(return_mode, baseline):
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=9)
    weights, targets = policy_gradient_weights(
        rewards,
        starts_of(4, 2, 3),
        gamma=0.9,
        return_mode=return_mode,
        baseline=get_baseline(baseline).value,
        values=rng.normal(size=9),
        score_sq_norms=rng.random(9),
        is_weights=np.exp(rng.normal(size=9) * 0.1),
    )
    assert weights.shape == targets.shape == (9,) and np.isfinite(weights).all()


@pytest.mark.parametrize(
    ("getter", "value", "names"),
    [(get_return_mode, "sum", "'reward_to_go', 'total'"), (get_baseline, "meen", "None, 'mean', 'optimal', 'time', 'value'")],
)
def test_unknown_names_list_the_registry(getter, value, names):
    with pytest.raises(ValueError, match=f"{value!r} is not allowed: use one of {names}"):
        getter(value)
