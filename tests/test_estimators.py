"""The estimator registry: exact weights of the time-dependent baseline, and the registry's own contracts."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sb3_reinforce.common.estimators import (
    BASELINES,
    IMPORTANCE_WEIGHTS,
    RETURN_MODES,
    Baseline,
    carried_importance_weights,
    get_baseline,
    get_return_mode,
    leave_one_episode_out_time_mean,
    policy_gradient_weights,
)
from tests.scripts import load_script
from tests.test_returns import starts_of

ROOT = Path(__file__).resolve().parents[1]


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


# ---------------------------------------------------------------------------------------------------------------------
# What a baseline needs is read from its registry entry by every tool (no list of names, no string comparison)
# ---------------------------------------------------------------------------------------------------------------------


def _add_baseline(monkeypatch, name: str, **needs: bool) -> Baseline:
    """Register one more baseline (the registry is the only place a baseline is declared)."""
    added = Baseline(name, f"{name}: a baseline added for the test", BASELINES["mean"].weights, **needs)
    monkeypatch.setitem(BASELINES, name, added)
    return added


def test_the_leave_one_out_flag_is_declared_by_the_baselines_that_need_other_episodes():
    assert [name for name, b in BASELINES.items() if b.needs_other_episodes] == ["mean", "optimal", "time"]
    # With one episode, each of them subtracts 0: the weights are those of no baseline
    rewards = np.array([1.0, 2.0, 3.0])
    plain, _ = policy_gradient_weights(rewards, starts_of(3), gamma=0.9)
    for name, baseline in BASELINES.items():
        if baseline.needs_other_episodes:
            weights, _ = policy_gradient_weights(rewards, starts_of(3), gamma=0.9, baseline=name, score_sq_norms=np.ones(3))
            np.testing.assert_array_equal(weights, plain)


def test_optuna_draws_a_new_leave_one_out_baseline_only_for_batches_of_several_episodes(monkeypatch):
    from sb3_reinforce.tuning import reinforce_search_space

    _add_baseline(monkeypatch, "median", needs_other_episodes=True)
    _add_baseline(monkeypatch, "critic2", needs_values=True)
    space = reinforce_search_space()
    assert "median" in space["baseline"].choices and "critic2" in space["baseline"].choices
    # the tuning module used to keep its own list {"mean", "optimal", "time"}: "median" was drawn for one episode
    assert "median" not in space["baseline_one_episode"].choices
    assert set(space["baseline_one_episode"].choices) == {"none", "value", "critic2"}


@pytest.mark.parametrize(
    ("baseline", "keeps_gae_lambda"), [("value", True), ("critic2", True), ("mean", False), (None, False)]
)
def test_compare_keeps_gae_lambda_for_every_baseline_with_a_critic(monkeypatch, baseline, keeps_gae_lambda):
    from sb3_reinforce.compare.records import resolve_entry
    from sb3_reinforce.compare.specs import AlgoSpec

    _add_baseline(monkeypatch, "critic2", needs_values=True)
    spec = AlgoSpec(label="reinforce", algo="reinforce", overrides={"baseline": baseline, "gae_lambda": 0.9})
    entry, _ = resolve_entry(spec, "CartPole-v1")
    # compare used to compare the name with "value": a new critic baseline lost its gae_lambda
    assert entry["baseline"] == baseline and ("gae_lambda" in entry) == keeps_gae_lambda


def _pong_example() -> Any:
    return load_script("examples/pong_karpathy.py")


def test_the_pong_example_offers_and_describes_the_registry_baselines(monkeypatch, capsys):
    _add_baseline(monkeypatch, "median", needs_other_episodes=True)
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: the help text is read unwrapped
    example = _pong_example()
    with pytest.raises(SystemExit):
        example.parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--baseline {none,mean,optimal,time,value,median}" in help_text
    # every baseline's description comes from its registry entry (the help used to be written by hand)
    for name, baseline in BASELINES.items():
        assert f"{name}: {baseline.description}" in help_text
    assert example.parse_args(["--baseline", "median"]).baseline == "median"


def test_importance_weights_exact_values():
    # Two episodes: [a b c d e] with points ending at b and e (rewards 1, -1), then [f g]
    log_ratio = np.log([2.0, 2.0, 3.0, 1.0, 5.0, 7.0, 0.5])
    starts = starts_of(5, 2)
    rewards = np.array([0.0, 1.0, 0.0, 0.0, -1.0, 0.0, 1.0])
    episode = carried_importance_weights("episode", log_ratio, starts, rewards, reset_on_reward=True)
    np.testing.assert_allclose(episode, [2, 4, 12, 12, 60, 7, 3.5], rtol=1e-12)
    # "segment" restarts the product after every point: c is the first step of the second point
    segment = carried_importance_weights("segment", log_ratio, starts, rewards, reset_on_reward=True)
    np.testing.assert_allclose(segment, [2, 4, 3, 3, 15, 7, 3.5], rtol=1e-12)
    # without reset_on_reward a segment is the episode
    same = carried_importance_weights("segment", log_ratio, starts, rewards, reset_on_reward=False)
    np.testing.assert_allclose(same, episode, rtol=1e-12)
    assert carried_importance_weights("none", log_ratio, starts, rewards, reset_on_reward=True) is None
    with pytest.raises(ValueError, match=r"importance_weights='Segment' is not allowed: use one of 'episode', 'segment'"):
        carried_importance_weights("Segment", log_ratio, starts, rewards, reset_on_reward=True)


@pytest.mark.parametrize("mode", list(IMPORTANCE_WEIGHTS))
def test_importance_weights_of_carried_steps_in_training(mode):
    """The weights the algorithm gives steps collected by an older policy, on a real CartPole batch."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_reinforce import REINFORCE

    env = make_vec_env("CartPole-v1", n_envs=3, seed=0)
    # CartPole's reward is 1 at every step: with reset_on_reward every step is its own point
    model = REINFORCE("MlpPolicy", env, n_episodes=3, reset_on_reward=True, importance_weights=mode, seed=0, device="cpu")
    batch = next(model.collect_batches(make_vec_env("CartPole-v1", n_envs=3, seed=1), n_episodes=3, n_batches=1))
    obs, actions = th.as_tensor(batch.observations), th.as_tensor(batch.actions).flatten()
    with th.no_grad():
        old = model.policy.evaluate_actions(obs, actions)[1].numpy()
        for parameter in model.policy.parameters():
            parameter.add_(0.05 * th.randn_like(parameter))  # the policy moved on since the batch was collected
        log_ratio = model.policy.evaluate_actions(obs, actions)[1].numpy() - old
    model._n_updates = 1  # every step of the batch is carried
    stats = model.compute_policy_gradient(batch)
    assert stats["carried_steps"] == batch.n_steps
    if mode == "none":
        assert "is_weight_mean" not in stats
        return
    if mode == "segment":
        expected = np.exp(log_ratio)  # one step per point: its own ratio only
    else:
        episode = np.cumsum(batch.episode_starts) - 1
        expected = np.concatenate([np.exp(np.cumsum(log_ratio[episode == e])) for e in range(batch.n_episodes)])
    assert stats["is_weight_mean"] == pytest.approx(expected.mean(), rel=1e-5)
    assert stats["is_weight_max"] == pytest.approx(expected.max(), rel=1e-5)
    assert stats["is_weight_median"] == pytest.approx(np.median(expected), rel=1e-5)
    assert stats["is_weight_ess"] == pytest.approx(expected.sum() ** 2 / (expected**2).sum() / len(expected), rel=1e-5)
    assert 0 < stats["is_weight_ess"] < 1


def test_importance_weights_argument_errors_and_save_load(tmp_path):
    from sb3_reinforce import REINFORCE

    with pytest.raises(ValueError, match=r"importance_weights='segment' is not allowed: 'segment' needs reset_on_reward=True"):
        REINFORCE("MlpPolicy", "CartPole-v1", importance_weights="segment")
    with pytest.raises(ValueError, match=r"importance_weights=None is not allowed: expected one of 'episode', 'segment'"):
        REINFORCE("MlpPolicy", "CartPole-v1", importance_weights=None)
    # reset_on_reward may be a numpy bool, as everywhere else (BoolRule)
    REINFORCE("MlpPolicy", "CartPole-v1", importance_weights="segment", reset_on_reward=np.True_, device="cpu")
    with pytest.raises(ValueError, match=r"'segment' needs reset_on_reward=True"):
        REINFORCE("MlpPolicy", "CartPole-v1", importance_weights="segment", reset_on_reward=np.False_)
    model = REINFORCE("MlpPolicy", "CartPole-v1", importance_weights="segment", reset_on_reward=True, device="cpu")
    model.save(tmp_path / "model")
    assert REINFORCE.load(tmp_path / "model", device="cpu").importance_weights == "segment"
