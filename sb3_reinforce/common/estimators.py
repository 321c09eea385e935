"""
The registry of REINFORCE estimators: every return mode and every baseline, declared once.

``Psi_t``, the weight of ``grad log pi(a_t|s_t)``, is a return (:data:`RETURN_MODES`) minus a baseline
(:data:`BASELINES`). Each entry says what it needs from the network (a critic ``V(s)``, the per-step score
norms ``|g_t|^2``) and how it computes; the algorithm, the YAML validation, the compare and variance grammar, the
Optuna sampler, the help texts and the tests all read these tables. Adding an estimator is adding one entry.

Every baseline of a step is computed without the step's own episode (or, for ``"value"``, from ``V(s_t)`` only),
so every combination is unbiased; ``tests/test_unbiasedness.py`` checks each entry of the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from sb3_reinforce.common.returns import (
    gae_advantages,
    leave_one_episode_out_mean,
    per_decision_is_weights,
    reward_to_go,
    segment_starts,
    standardize,
    steps_in_segment,
    total_return,
)

__all__ = [
    "BASELINES",
    "IMPORTANCE_WEIGHTS",
    "NORMALIZE_FLAGS",
    "RETURN_MODES",
    "Baseline",
    "EstimatorInputs",
    "ReturnMode",
    "baseline_names",
    "baseline_values",
    "carried_importance_weights",
    "get_baseline",
    "get_importance_weights",
    "get_return_mode",
    "leave_one_episode_out_time_mean",
    "parse_estimator_variant",
    "policy_gradient_weights",
    "variant_grammar",
]

ReturnsFn = Callable[[np.ndarray, np.ndarray, float, "np.ndarray | None"], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ReturnMode:
    """
    How the rewards of a segment become the weight of one of its steps.

    :param name: the value of ``return_mode``
    :param formula: one line for help texts
    :param returns: ``(rewards, segment starts, gamma, importance weights or None) -> per-step returns``
    :param discounted_value_advantage: with a learned ``V(s)``, multiply the advantage by ``gamma^k`` (k: index in
        the segment), which gives the exact discounted policy gradient
    """

    name: str
    formula: str
    returns: ReturnsFn
    discounted_value_advantage: bool


@dataclasses.dataclass(frozen=True)
class EstimatorInputs:
    """
    One batch of complete episodes, flat and episode-major, as a baseline sees it.

    :param rewards: per-step rewards (float64)
    :param episode_starts: True on the first step of each episode
    :param segments: True on the first step of each segment (episode, or point with ``reset_on_reward``)
    :param gamma: discount factor
    :param return_mode: the return mode of the estimator
    :param is_weights: per-decision importance weights ``c_t`` (None: on-policy batch)
    :param values: ``V(s_t)`` when the baseline needs a critic
    :param score_sq_norms: ``|g_t|^2`` when the baseline needs score norms
    :param gae_lambda: GAE lambda (value baseline)
    """

    rewards: np.ndarray
    episode_starts: np.ndarray
    segments: np.ndarray
    gamma: float
    return_mode: ReturnMode
    is_weights: np.ndarray | None = None
    values: np.ndarray | None = None
    score_sq_norms: np.ndarray | None = None
    gae_lambda: float = 1.0

    @property
    def c(self) -> np.ndarray:
        """The importance weights, ones for an on-policy batch."""
        return np.ones_like(self.rewards) if self.is_weights is None else self.is_weights

    def weighted_returns(self) -> np.ndarray:
        """The return mode's returns with importance weights (what the baseline is subtracted from)."""
        return self.return_mode.returns(self.rewards, self.segments, self.gamma, self.is_weights)

    def plain_returns(self) -> np.ndarray:
        """The return mode's returns without importance weights (what a constant baseline averages)."""
        return self.return_mode.returns(self.rewards, self.segments, self.gamma, None)

    def episode_ids(self) -> np.ndarray:
        if self.episode_starts.size and not self.episode_starts[0]:
            raise ValueError("the batch must start with the first step of an episode")
        return np.cumsum(self.episode_starts) - 1


@dataclasses.dataclass(frozen=True)
class Baseline:
    """
    What is subtracted from the return of a step.

    :param name: the name in the compare/variance grammar, the Optuna space and help texts (``"none"`` for no
        baseline); the constructor and YAML value is :attr:`value`
    :param description: one line for help texts
    :param weights: ``EstimatorInputs -> Psi_t`` (return minus baseline, importance-weighted)
    :param needs_values: needs a learned ``V(s)``: the policy builds a critic, its loss is added with ``vf_coef``,
        time-limit truncations are bootstrapped with ``gamma * V(s_T)`` and ``gae_lambda`` may be below 1
    :param needs_score_norms: needs ``|g_t|^2``, the squared gradient of ``log pi(a_t|s_t)`` with respect to the
        action distribution's parameters
    :param needs_other_episodes: a statistic of the batch's *other* episodes: with one episode per batch it
        subtracts 0 (the Optuna space then does not draw it)
    """

    name: str
    description: str
    weights: Callable[[EstimatorInputs], np.ndarray]
    needs_values: bool = False
    needs_score_norms: bool = False
    needs_other_episodes: bool = False

    @property
    def value(self) -> str | None:
        """The ``baseline`` argument of ``REINFORCE`` (None for no baseline)."""
        return None if self.name == "none" else self.name


def leave_one_episode_out_time_mean(values: np.ndarray, episode_ids: np.ndarray, time_index: np.ndarray) -> np.ndarray:
    """
    For every step, the mean of ``values`` over the steps of all *other* episodes at the same time index (0 when no
    other episode reached that index).

    :param values: per-step values to average
    :param episode_ids: per-step episode index (0 .. n_episodes - 1)
    :param time_index: per-step time index (index in the segment)
    :return: float64 array, the baseline of every step
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return values
    n_times = int(time_index.max()) + 1
    total_sum = np.bincount(time_index, weights=values, minlength=n_times)[time_index]
    total_count = np.bincount(time_index, minlength=n_times)[time_index]
    # An episode can hold several steps of the same index (one per point with reset_on_reward): remove them all
    _, own = np.unique(episode_ids.astype(np.int64) * n_times + time_index, return_inverse=True)
    own_sum = np.bincount(own, weights=values)[own]
    own_count = np.bincount(own)[own]
    other_count = total_count - own_count
    return np.where(other_count > 0, (total_sum - own_sum) / np.maximum(other_count, 1), 0.0)


def _minus_constant(statistic: Callable[[np.ndarray, EstimatorInputs], np.ndarray]) -> Callable[[EstimatorInputs], np.ndarray]:
    """A baseline that is a statistic of the other episodes' (unweighted) returns, scaled by ``c_t`` like the score."""

    def weights(inputs: EstimatorInputs) -> np.ndarray:
        returns = inputs.weighted_returns()
        plain = returns if inputs.is_weights is None else inputs.plain_returns()
        return returns - inputs.c * statistic(plain, inputs)

    return weights


def _no_baseline(inputs: EstimatorInputs) -> np.ndarray:
    return inputs.weighted_returns()


def _mean(plain: np.ndarray, inputs: EstimatorInputs) -> np.ndarray:
    return leave_one_episode_out_mean(plain, inputs.episode_ids())


def _optimal(plain: np.ndarray, inputs: EstimatorInputs) -> np.ndarray:
    if inputs.score_sq_norms is None:
        raise ValueError("baseline='optimal' needs the squared score norms |g_t|^2")
    return leave_one_episode_out_mean(plain, inputs.episode_ids(), weights=inputs.score_sq_norms)


def _time(plain: np.ndarray, inputs: EstimatorInputs) -> np.ndarray:
    return leave_one_episode_out_time_mean(plain, inputs.episode_ids(), steps_in_segment(inputs.segments))


def _value(inputs: EstimatorInputs) -> np.ndarray:
    if inputs.values is None:
        raise ValueError("baseline='value' needs the values V(s_t)")
    values = np.asarray(inputs.values, dtype=np.float64)
    c, seg, gamma = inputs.c, inputs.segments, inputs.gamma
    if inputs.gae_lambda == 1.0:
        advantages = reward_to_go(inputs.rewards, seg, gamma, c) - c * values
    else:
        advantages = c * gae_advantages(inputs.rewards, values, seg, gamma, inputs.gae_lambda)
    if inputs.return_mode.discounted_value_advantage:
        advantages = advantages * gamma ** steps_in_segment(seg).astype(np.float64)
    return advantages


#: Return modes, by the value of ``return_mode``.
RETURN_MODES: dict[str, ReturnMode] = {
    mode.name: mode
    for mode in (
        ReturnMode("reward_to_go", "G_t = sum_{t'>=t} gamma^(t'-t) r_t' (causality: lower variance)", reward_to_go, False),
        ReturnMode("total", "R(tau) = sum_t' gamma^t' r_t' for every step of the episode", total_return, True),
    )
}

#: Baselines, by name (``"none"`` for no baseline).
BASELINES: dict[str, Baseline] = {
    baseline.name: baseline
    for baseline in (
        Baseline("none", "nothing subtracted", _no_baseline),
        Baseline("mean", "mean return of the batch's other episodes", _minus_constant(_mean), needs_other_episodes=True),
        Baseline(
            "optimal",
            "variance-minimizing constant sum |g|^2 R / sum |g|^2 over the other episodes",
            _minus_constant(_optimal),
            needs_score_norms=True,
            needs_other_episodes=True,
        ),
        Baseline(
            "time",
            "mean return at the same time index over the batch's other episodes",
            _minus_constant(_time),
            needs_other_episodes=True,
        ),
        Baseline("value", "learned V(s) regressed on the Monte-Carlo returns; advantage by GAE(gae_lambda)", _value, True),
    )
}


def baseline_names() -> tuple[str, ...]:
    """The names of the baselines (``"none"`` included), for grammars and search spaces."""
    return tuple(BASELINES)


def baseline_values() -> tuple[str | None, ...]:
    """The allowed values of the ``baseline`` argument (None for no baseline)."""
    return tuple(baseline.value for baseline in BASELINES.values())


def _allowed(values: tuple[Any, ...]) -> str:
    return ", ".join(repr(value) for value in values)


def get_return_mode(name: Any) -> ReturnMode:
    """
    :param name: a ``return_mode`` value
    :return: its registry entry
    :raises ValueError: naming ``return_mode`` and the allowed values
    """
    if not isinstance(name, str) or name not in RETURN_MODES:
        raise ValueError(f"return_mode={name!r} is not allowed: use one of {_allowed(tuple(RETURN_MODES))}")
    return RETURN_MODES[name]


def get_baseline(value: Any) -> Baseline:
    """
    :param value: a ``baseline`` value (None or a name; ``"none"`` is accepted for None)
    :return: its registry entry
    :raises ValueError: naming ``baseline`` and the allowed values
    """
    name = "none" if value is None else value
    if not isinstance(name, str) or name not in BASELINES:
        raise ValueError(f"baseline={value!r} is not allowed: use one of {_allowed(baseline_values())}")
    return BASELINES[name]


#: How the steps of an episode that was still running at an update (collected by an older policy, "carried") are
#: weighted when their episode ends: the allowed values of ``importance_weights``, with one line each for help texts.
IMPORTANCE_WEIGHTS: dict[str, str] = {
    "episode": "per-decision ratios pi/pi_old multiplied from the episode's first step (exact)",
    "segment": (
        "per-decision ratios multiplied from the segment's first step (with reset_on_reward: the point); "
        "leaves out how the older policy changed where the segment starts"
    ),
    "none": "no correction: carried steps count as on-policy",
}


def get_importance_weights(name: Any) -> str:
    """
    :param name: an ``importance_weights`` value
    :return: the name
    :raises ValueError: naming ``importance_weights`` and the allowed values
    """
    if not isinstance(name, str) or name not in IMPORTANCE_WEIGHTS:
        raise ValueError(f"importance_weights={name!r} is not allowed: use one of {_allowed(tuple(IMPORTANCE_WEIGHTS))}")
    return name


def carried_importance_weights(
    mode: str, log_ratio: np.ndarray, episode_starts: np.ndarray, rewards: np.ndarray, reset_on_reward: bool
) -> np.ndarray | None:
    """
    The importance weight of every step of a batch, as ``importance_weights`` says.

    :param mode: a key of :data:`IMPORTANCE_WEIGHTS`
    :param log_ratio: ``log pi(a_t|s_t) - log pi_old(a_t|s_t)`` per step (0 where the step is on-policy)
    :param episode_starts: True on the first step of each episode
    :param rewards: the rewards (the segments of ``reset_on_reward`` end at the non-zero ones)
    :param reset_on_reward: whether a segment ends at every non-zero reward
    :return: float64 weights, or None for ``"none"`` (every step weighs 1)
    """
    get_importance_weights(mode)
    if mode == "none":
        return None
    starts = episode_starts if mode == "episode" else segment_starts(episode_starts, rewards, reset_on_reward)
    return per_decision_is_weights(log_ratio, starts)


def policy_gradient_weights(
    rewards: np.ndarray,
    episode_starts: np.ndarray,
    gamma: float,
    return_mode: str = "reward_to_go",
    baseline: str | None = None,
    reset_on_reward: bool = False,
    is_weights: np.ndarray | None = None,
    values: np.ndarray | None = None,
    score_sq_norms: np.ndarray | None = None,
    gae_lambda: float = 1.0,
    normalize: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """
    The weights ``Psi_t`` multiplying ``grad log pi(a_t|s_t)`` in the REINFORCE estimator, and the regression
    targets ``G_t`` of a value baseline. The one estimator function: the algorithm's update and the variance study
    both call it.

    :param rewards: rewards, flat episode-major
    :param episode_starts: True on the first step of each episode
    :param gamma: discount factor
    :param return_mode: a key of :data:`RETURN_MODES`
    :param baseline: None or a key of :data:`BASELINES`
    :param reset_on_reward: restart the discounted sum after each non-zero reward
    :param is_weights: per-decision importance weights (None: on-policy batch)
    :param values: V(s_t), for a baseline that ``needs_values``
    :param score_sq_norms: ``|g_t|^2`` per step, for a baseline that ``needs_score_norms``
    :param gae_lambda: GAE lambda for the value baseline
    :param normalize: standardize the weights over the batch
    :return: (weights Psi_t, value targets G_t) as float64 arrays
    """
    mode, base = get_return_mode(return_mode), get_baseline(baseline)
    rewards = np.asarray(rewards, dtype=np.float64)
    episode_starts = np.asarray(episode_starts, dtype=bool)
    segments = segment_starts(episode_starts, rewards, reset_on_reward)
    inputs = EstimatorInputs(
        rewards=rewards,
        episode_starts=episode_starts,
        segments=segments,
        gamma=gamma,
        return_mode=mode,
        is_weights=None if is_weights is None else np.asarray(is_weights, dtype=np.float64),
        values=values,
        score_sq_norms=score_sq_norms,
        gae_lambda=gae_lambda,
    )
    weights = base.weights(inputs)
    if normalize:
        weights = standardize(weights)
    return weights, reward_to_go(rewards, segments, gamma)


#: The ``+norm`` / ``+nonorm`` flags of the variant grammar, as ``normalize_advantage`` values.
NORMALIZE_FLAGS: dict[str, bool] = {"norm": True, "nonorm": False}


def variant_grammar() -> str:
    """The variant syntax, with the registry's names, for error messages and help texts."""
    return (
        f"[<return_mode>][+<baseline>][+norm|+nonorm], return_mode in {{{', '.join(RETURN_MODES)}}}, "
        f"baseline in {{{', '.join(BASELINES)}}}"
    )


def parse_estimator_variant(text: str) -> dict[str, Any]:
    """
    Parse an estimator variant, ``[<return_mode>][+<baseline>][+norm|+nonorm]`` (e.g. ``"total+mean"``,
    ``"+value"``, ``"reward_to_go+time+nonorm"``), into the REINFORCE arguments it sets. Parts left out are not
    set, so that the caller keeps its own defaults.

    :param text: the variant
    :return: a subset of ``{"return_mode": ..., "baseline": ..., "normalize_advantage": ...}``
    :raises ValueError: naming the bad part and the allowed values
    """
    head, *options = text.strip().split("+")
    settings: dict[str, Any] = {}
    if head:
        if head not in RETURN_MODES:
            raise ValueError(f"{text!r}: return mode {head!r} is not allowed; use one of {', '.join(RETURN_MODES)}")
        settings["return_mode"] = head
    for option in options:
        if option in BASELINES:
            key, value = "baseline", BASELINES[option].value
        elif option in NORMALIZE_FLAGS:
            key, value = "normalize_advantage", NORMALIZE_FLAGS[option]
        else:
            raise ValueError(
                f"{text!r}: option {option!r} is not allowed; use a baseline ({', '.join(BASELINES)}) "
                f"or {' / '.join(NORMALIZE_FLAGS)}"
            )
        if key in settings:
            raise ValueError(f"{text!r}: {key} is given twice")
        settings[key] = value
    return settings
