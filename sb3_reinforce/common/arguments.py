"""
The allowed values of every REINFORCE argument, declared once (:data:`REINFORCE_ARGUMENTS`).

The REINFORCE constructor raises on the first argument that breaks its rule (:meth:`ArgumentRule.check`, a
``TypeError`` for a wrong type, a ``ValueError`` otherwise); the hyperparameter-file validator collects the
problem of every key (:meth:`ArgumentRule.problem`). Numeric ranges are checked by
:func:`sb3_reinforce.common.checks.number_problem`, return modes and baselines come from the estimator registry
(:mod:`sb3_reinforce.common.estimators`). ``policy`` is the algorithm's own (its ``policy_aliases``):
:class:`PolicyRule` is given them.

``policy_kwargs``: the keys a policy class accepts are read from the ``__init__`` signatures along its MRO
(following ``**kwargs`` to the parent class, up to SB3's ``ActorCriticPolicy``), so a custom policy's own
arguments (e.g. ``KarpathyPolicy``'s ``n_hidden``) are accepted without being listed here. From those are removed
the keys the algorithm passes itself (:data:`ALGORITHM_POLICY_KWARGS`) and those the policy class fixes itself
(its ``policy_set_kwargs``). The values of SB3's keys are checked (layer sizes, classes, dicts, flags); the values
of other keys are left to the policy.
"""

import abc
import inspect
import math
import numbers
import pathlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sb3_reinforce.common.buffers import EpisodeRolloutBuffer
from sb3_reinforce.common.checks import check_number, did_you_mean, number_problem
from sb3_reinforce.common.estimators import (
    IMPORTANCE_WEIGHTS,
    RETURN_MODES,
    baseline_values,
    get_baseline,
    get_importance_weights,
    get_return_mode,
)

#: Policy arguments REINFORCE sets itself, with why: they are rejected in ``policy_kwargs``.
ALGORITHM_POLICY_KWARGS: dict[str, str] = {
    "observation_space": "taken from the env",
    "action_space": "taken from the env",
    "lr_schedule": "built from the learning_rate argument",
    "value_baseline": "set from the baseline argument (baseline='value' builds the value network)",
    "use_sde": "set from REINFORCE's use_sde argument (gSDE)",
}


class PolicyKwargsProblem(NamedTuple):
    """One problem of a ``policy_kwargs`` dict: the key, a message naming ``policy_kwargs`` and the key, the
    exception class to raise for it (``TypeError`` for a wrong type, ``ValueError`` otherwise) and the same problem
    as a file's validation reports it, after ``policy_kwargs: <value> is not allowed:``."""

    key: Any
    message: str
    error: type[Exception]
    detail: str


def allowed_policy_kwargs(policy_class: type) -> tuple[str, ...]:
    """
    The ``policy_kwargs`` keys ``policy_class`` accepts, in signature order.

    :param policy_class: a ``REINFORCEPolicy`` subclass
    :return: the keys
    """
    names: list[str] = []
    for cls in inspect.getmro(policy_class):
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        parameters = list(inspect.signature(init).parameters.values())[1:]  # without self
        for parameter in parameters:
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY) and parameter.name not in names:
                names.append(parameter.name)
        if not any(parameter.kind == parameter.VAR_KEYWORD for parameter in parameters):
            break  # the MRO above does not receive the keyword arguments
    fixed = set(ALGORITHM_POLICY_KWARGS) | set(getattr(policy_class, "policy_set_kwargs", ()))
    return tuple(name for name in names if name not in fixed)


_FLAGS = (
    "ortho_init",
    "full_std",
    "use_expln",
    "squash_output",
    "share_features_extractor",
    "normalize_images",
    "single_logit",
)
# gSDE-only flags: SB3's _get_constructor_parameters gives None for them without gSDE
_GSDE_FLAGS = ("full_std", "use_expln", "squash_output")
_NET_ARCH_HELP = "a list of positive ints (layer sizes) such as [64, 64] (or []) or dict(pi=[64, 64], vf=[64, 64])"


#: What the argument rules accept as a bool (numpy's from arrays and configs too), and never as a number
_BOOL_TYPES = (bool, np.bool_)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, _BOOL_TYPES)


def _net_arch_problem(value: Any) -> tuple[type[Exception], str] | None:
    def layers_problem(layers: Any, where: str) -> tuple[type[Exception], str] | None:
        if not isinstance(layers, (list, tuple)):
            return (
                TypeError,
                f"{where}={layers!r} ({type(layers).__name__}) is not a list of layer sizes: use {_NET_ARCH_HELP}",
            )
        for size in layers:
            if not _is_int(size):
                return (
                    TypeError,
                    f"{where} holds {size!r} ({type(size).__name__}): layer sizes must be ints; use {_NET_ARCH_HELP}",
                )
            if size <= 0:
                return ValueError, f"{where} holds {size!r}: layer sizes must be positive; use {_NET_ARCH_HELP}"
        return None

    if value is None:
        return None
    if isinstance(value, dict):
        unknown = [key for key in value if key not in ("pi", "vf")]
        if unknown:
            return ValueError, f"net_arch has unknown key(s) {unknown}: allowed 'pi' (actor) and 'vf' (value network)"
        for key, layers in value.items():
            problem = layers_problem(layers, f"net_arch[{key!r}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        # SB3 < 1.8 form: ActorCriticPolicy warns and uses the dict, so does REINFORCEPolicy
        return _net_arch_problem(value[0])
    if isinstance(value, (list, tuple)) and any(isinstance(item, dict) for item in value):
        return TypeError, f"net_arch={value!r}: pass dict(pi=[...], vf=[...]) directly, not inside a list (SB3 < 1.8 form)"
    return layers_problem(value, "net_arch")


def _value_problem(key: str, value: Any) -> tuple[type[Exception], str] | None:
    """Problem of the value of a known key, as (exception class, message without the ``policy_kwargs`` prefix)."""
    if key == "net_arch":
        return _net_arch_problem(value)
    if key == "activation_fn" and not (isinstance(value, type) and issubclass(value, th.nn.Module)):
        return TypeError, f"activation_fn={value!r} must be a torch.nn.Module class such as nn.ReLU (the class itself)"
    if key == "optimizer_class" and not (isinstance(value, type) and issubclass(value, th.optim.Optimizer)):
        return TypeError, f"optimizer_class={value!r} must be a torch.optim.Optimizer subclass such as th.optim.Adam"
    if key == "features_extractor_class" and not (isinstance(value, type) and issubclass(value, BaseFeaturesExtractor)):
        return TypeError, f"features_extractor_class={value!r} must be a stable_baselines3 BaseFeaturesExtractor subclass"
    if key in ("optimizer_kwargs", "features_extractor_kwargs") and not (value is None or isinstance(value, dict)):
        return TypeError, f"{key}={value!r} must be a dict or None"
    if key in _FLAGS and not isinstance(value, _BOOL_TYPES) and not (value is None and key in _GSDE_FLAGS):
        return TypeError, f"{key}={value!r} must be a bool"
    if key == "squash_output" and value:
        return ValueError, (
            "squash_output=True (tanh-squashed gSDE actions) is not supported by REINFORCE: its Gaussian and gSDE "
            "actions are clipped to the action space's bounds"
        )
    if key == "log_std_init":
        if isinstance(value, _BOOL_TYPES) or not isinstance(value, numbers.Real):
            return TypeError, f"log_std_init={value!r} must be a number"
        if not np.isfinite(value):
            return ValueError, f"log_std_init={value!r} must be finite"
    if key == "n_hidden":
        if not _is_int(value):
            return TypeError, f"n_hidden={value!r} must be an int"
        if value <= 0:
            return ValueError, f"n_hidden={value!r} must be positive"
    return None


#: ``optimizer_kwargs`` keys SB3 passes to the optimizer itself
_OPTIMIZER_SET_KWARGS = {"params": "the policy's parameters", "lr": "set from the learning_rate argument (and its schedule)"}


def _default_optimizer_class(policy_class: type) -> type | None:
    """
    The ``optimizer_class`` default of ``policy_class``: its ``default_optimizer_class`` attribute if it sets one
    (``KarpathyPolicy``), else the default of the first ``__init__`` along the MRO that declares the argument.
    """
    if isinstance(getattr(policy_class, "default_optimizer_class", None), type):
        return policy_class.default_optimizer_class
    for cls in inspect.getmro(policy_class):
        init = cls.__dict__.get("__init__")
        parameter = None if init is None else inspect.signature(init).parameters.get("optimizer_class")
        if parameter is not None:
            return parameter.default if isinstance(parameter.default, type) else None
    return None


def _optimizer_kwargs_problems(policy_kwargs: dict, policy_class: type) -> list[PolicyKwargsProblem]:
    """
    Keys of ``policy_kwargs["optimizer_kwargs"]`` the optimizer does not take (checked against its ``__init__``
    signature), or that SB3 sets itself: torch would raise at construction with a message naming neither.
    """
    kwargs = policy_kwargs.get("optimizer_kwargs")
    optimizer_class = policy_kwargs.get("optimizer_class", _default_optimizer_class(policy_class))
    is_optimizer = isinstance(optimizer_class, type) and issubclass(optimizer_class, th.optim.Optimizer)
    if not isinstance(kwargs, dict) or not is_optimizer:
        return []  # a wrong type is reported by _value_problem
    parameters = list(inspect.signature(optimizer_class.__init__).parameters.values())[1:]  # without self
    if any(parameter.kind == inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return []  # takes any keyword: left to the optimizer
    allowed = [parameter.name for parameter in parameters if parameter.name not in _OPTIMIZER_SET_KWARGS]
    problems = []
    for key in kwargs:
        if key in _OPTIMIZER_SET_KWARGS:
            reason = f"cannot be set: {_OPTIMIZER_SET_KWARGS[key]}"
        elif key not in allowed:
            hint = did_you_mean(str(key), allowed)
            reason = f"{optimizer_class.__name__} has no argument {key!r}{hint}; it takes {', '.join(allowed)}"
        else:
            continue
        message = f"policy_kwargs['optimizer_kwargs'][{key!r}]: {reason}"
        problems.append(PolicyKwargsProblem("optimizer_kwargs", message, ValueError, f"optimizer_kwargs[{key!r}]: {reason}"))
    return problems


def policy_kwargs_problems(policy_kwargs: Any, policy_class: type) -> list[PolicyKwargsProblem]:
    """
    Everything wrong with ``policy_kwargs`` for ``policy_class`` (empty list: nothing). Each message names
    ``policy_kwargs`` and the key; an unknown key gets a did-you-mean and the list of allowed keys.

    :param policy_kwargs: the ``policy_kwargs`` argument (None or a dict)
    :param policy_class: the policy class they are for (``REINFORCE.policy_aliases`` maps the names to classes)
    :return: the problems, in the order of the keys
    """
    if policy_kwargs is None:
        return []
    if not isinstance(policy_kwargs, dict):
        message = f"policy_kwargs must be a dict or None, got {policy_kwargs!r}"
        return [PolicyKwargsProblem(None, message, TypeError, "expected a dict or null")]
    allowed = allowed_policy_kwargs(policy_class)
    policy_set = getattr(policy_class, "policy_set_kwargs", ())
    problems = []
    for key, value in policy_kwargs.items():
        if key in ALGORITHM_POLICY_KWARGS or key in policy_set:
            reason = ALGORITHM_POLICY_KWARGS.get(key) or f"{policy_class.__name__} sets it itself (it would be ignored)"
            message = f"policy_kwargs[{key!r}] is not allowed: {reason}"
            problems.append(PolicyKwargsProblem(key, message, ValueError, f"{key!r} cannot be set: {reason}"))
        elif key not in allowed:
            hint = did_you_mean(str(key), allowed)
            keys = ", ".join(allowed)
            message = f"policy_kwargs has an unknown key {key!r}{hint}: {policy_class.__name__} accepts {keys}"
            problems.append(PolicyKwargsProblem(key, message, ValueError, f"unknown key {key!r}{hint}; allowed: {keys}"))
        else:
            problem = _value_problem(key, value)
            if problem is not None:
                error, text = problem
                problems.append(PolicyKwargsProblem(key, f"policy_kwargs[{key!r}]: {text}", error, text))
    return problems + _optimizer_kwargs_problems(policy_kwargs, policy_class)


def check_policy_kwargs(policy_kwargs: Any, policy_class: type) -> None:
    """
    Raise for bad ``policy_kwargs`` (see :func:`policy_kwargs_problems`): ``TypeError`` if the first problem is
    a wrong type, ``ValueError`` otherwise; the message lists every problem.

    :param policy_kwargs: the ``policy_kwargs`` argument (None or a dict)
    :param policy_class: the policy class they are for
    """
    _raise_problems(policy_kwargs_problems(policy_kwargs, policy_class))


def _raise_problems(problems: list[PolicyKwargsProblem]) -> None:
    if problems:
        # The messages name policy_kwargs and the key already
        raise problems[0].error("; ".join(problem.message for problem in problems))


# ---------------------------------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------------------------------


def _literal(value: Any, python: bool) -> str:
    """``value`` as its user writes it: a Python literal, or YAML (``null``, ``true``, ``false``)."""
    if python or not (value is None or isinstance(value, bool)):
        return repr(value)
    return "null" if value is None else str(value).lower()


class ArgumentRule(abc.ABC):
    """The allowed values of one argument."""

    @abc.abstractmethod
    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        """
        What is wrong with ``value``.

        :param value: the argument's value
        :param all_values: the values of all the arguments, ``policy`` as a class (resolved from its name), for the
            rules that depend on another argument
        :param python: phrase it for a Python caller (``None``, ``True``, bounds as declared) rather than for a
            file (``null``, ``true``)
        :return: None when the value is allowed, else what is allowed (e.g. ``"expected a number in [0, 1]"``)
        """

    def error(self, value: Any) -> type[Exception]:
        """
        :param value: a value that is not allowed
        :return: the exception class for it: ``TypeError`` for a wrong type, ``ValueError`` otherwise
        """
        return ValueError

    def resolve(self, value: Any) -> Any:
        """
        :param value: an allowed value
        :return: the value as the rules of the other arguments see it in ``all_values`` (the value itself, but the
            class for a policy name)
        """
        return value

    def check(self, name: str, value: Any, all_values: Mapping[str, Any]) -> None:
        """
        Raise :meth:`error` naming the argument, the value and what is allowed, when the value is not allowed.

        :param name: the argument's name
        :param value: its value
        :param all_values: as for :meth:`problem`
        """
        problem = self.problem(value, all_values, python=True)
        if problem is not None:
            raise self.error(value)(f"{name}={value!r} is not allowed: {problem}")


class NumberRule(ArgumentRule):
    """
    A finite number in an interval (:func:`sb3_reinforce.common.checks.number_problem`).

    :param low: lower bound (included unless ``low_open``; ``-math.inf`` for none)
    :param high: upper bound (included; ``math.inf`` for none)
    :param low_open: exclude ``low`` itself
    :param integer: require an integer
    :param optional: also accept None
    """

    def __init__(self, low: float, high: float, low_open: bool = False, integer: bool = False, optional: bool = False):
        self.bounds = dict(low=low, high=high, low_open=low_open, integer=integer, optional=optional)

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        return number_problem(value, **self.bounds, python=python)

    def check(self, name: str, value: Any, all_values: Mapping[str, Any]) -> None:
        check_number(name, value, **self.bounds)


class CriticSettingRule(NumberRule):
    """
    A number that only a baseline which ``needs_values`` (a learned V(s)) uses: in its interval, and away from
    ``neutral`` (the value that means "no critic involved") only with such a baseline.

    :param low: lower bound (included)
    :param high: upper bound (included)
    :param neutral: the value allowed with every baseline
    :param away: how a value away from ``neutral`` is described, e.g. ``"< 1"``
    :param why: what the setting does with the critic, for the message
    :param integer: require an integer
    """

    def __init__(self, low: float, high: float, neutral: float, away: str, why: str, integer: bool = False) -> None:
        super().__init__(low, high, integer=integer)
        self.neutral, self.away, self.why = neutral, away, why

    def _baseline_problem(self, value: Any, all_values: Mapping[str, Any], python: bool) -> str | None:
        try:
            baseline = get_baseline(all_values.get("baseline"))
        except ValueError:
            return None  # the baseline's own problem is reported
        if value == self.neutral or baseline.needs_values:
            return None
        needs = "baseline='value'" if python else "baseline: value"
        current = f"baseline={baseline.value!r}" if python else f"baseline: {baseline.value or 'null'}"
        return f"a value {self.away} needs {needs} ({self.why}); with {current} leave it at {self.neutral!r}"

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        return super().problem(value, all_values, python) or self._baseline_problem(value, all_values, python)

    def check(self, name: str, value: Any, all_values: Mapping[str, Any]) -> None:
        super().check(name, value, all_values)
        problem = self._baseline_problem(value, all_values, python=True)
        if problem is not None:
            raise ValueError(f"{name}={value!r} is not allowed: {problem}")


class SdeSampleFreqRule(NumberRule):
    """
    ``sde_sample_freq``: an int; with ``use_sde`` True, at least 1 (steps per exploration matrix, counted from the
    episode start). Its upper bound, the policy's ``latent_sde_dim``, is known once the policy is built:
    :func:`check_gsde` checks it then, before any env step.
    """

    def __init__(self) -> None:
        super().__init__(-math.inf, math.inf, integer=True)

    def _sde_problem(self, value: Any, all_values: Mapping[str, Any], python: bool) -> str | None:
        use_sde = all_values.get("use_sde")
        if not isinstance(use_sde, _BOOL_TYPES) or not use_sde or not _is_int(value) or value >= 1:
            return None
        setting = "use_sde=True" if python else "use_sde: true"
        return (
            f"with {setting} it must be an int in [1, latent_sde_dim] (steps that share one exploration matrix, counted "
            f"from the episode start; latent_sde_dim is the size of the policy's last layer, 64 by default): the "
            f"likelihood of more steps than that is singular, and SB3's -1 (one matrix per rollout) has no fixed length"
        )

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        return super().problem(value, all_values, python) or self._sde_problem(value, all_values, python)

    def check(self, name: str, value: Any, all_values: Mapping[str, Any]) -> None:
        super().check(name, value, all_values)
        problem = self._sde_problem(value, all_values, python=True)
        if problem is not None:
            raise ValueError(f"{name}={value!r} is not allowed: {problem}")


def critic_settings() -> tuple[str, ...]:
    """The arguments that only a baseline with a learned V(s) uses (the :class:`CriticSettingRule` ones)."""
    return tuple(name for name, rule in REINFORCE_ARGUMENTS.items() if isinstance(rule, CriticSettingRule))


#: ``policy_kwargs`` keys that only build a critic (``KarpathyPolicy(critic_hidden=...)``): refused by the policy
#: without a learned V(s), like :func:`critic_settings`
CRITIC_POLICY_KWARGS = ("critic_hidden",)


def check_gsde(use_sde: bool, sde_sample_freq: int, action_space: Any = None, latent_sde_dim: int | None = None) -> None:
    """
    The checks of ``use_sde`` / ``sde_sample_freq`` that need the env or the policy (the others are the rules of
    :data:`REINFORCE_ARGUMENTS`): gSDE needs a ``Box`` action space (as SB3 says), and at most ``latent_sde_dim``
    steps may share one exploration matrix (beyond that their joint Gaussian likelihood is singular: the actions of
    the later steps are functions of the earlier ones, and no score-function estimator is unbiased).

    :param use_sde: the ``use_sde`` argument
    :param sde_sample_freq: the ``sde_sample_freq`` argument
    :param action_space: the env's action space (None: not checked)
    :param latent_sde_dim: the policy's gSDE feature size (None: not checked)
    :raises ValueError: naming the argument, the value and what is allowed
    """
    if not use_sde:
        return
    if action_space is not None and not isinstance(action_space, spaces.Box):
        raise ValueError(
            f"use_sde=True is not allowed with the action space {action_space}: generalized State-Dependent Exploration "
            "(gSDE) can only be used with continuous actions (a gymnasium.spaces.Box)"
        )
    if latent_sde_dim is not None and sde_sample_freq > latent_sde_dim:
        raise ValueError(
            f"sde_sample_freq={sde_sample_freq!r} is not allowed: with use_sde=True it must be an int in [1, "
            f"{latent_sde_dim}] (1 to latent_sde_dim, the size of the policy's last layer): {sde_sample_freq} steps "
            f"sharing one exploration matrix of {latent_sde_dim} rows have a singular likelihood; lower "
            "sde_sample_freq or widen the last layer of net_arch"
        )


class RegistryRule(ArgumentRule):
    """
    A name of the estimator registry (:mod:`sb3_reinforce.common.estimators`), accepted by its lookup function.

    :param lookup: e.g. ``get_return_mode``; raises ``ValueError`` for a value that is not allowed
    :param values: the allowed values, for the message
    """

    def __init__(self, lookup: Callable[[Any], Any], values: Callable[[], tuple[Any, ...]]):
        self.lookup, self.values = lookup, values

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        try:
            self.lookup(value)
        except ValueError:
            return f"expected one of {', '.join(_literal(item, python) for item in self.values())}"
        return None


class ImportanceWeightsRule(RegistryRule):
    """``importance_weights``: a key of :data:`IMPORTANCE_WEIGHTS`; ``"segment"`` only with ``reset_on_reward``
    (without it a segment is the whole episode, and ``"segment"`` would silently mean ``"episode"``)."""

    def __init__(self) -> None:
        super().__init__(get_importance_weights, lambda: tuple(IMPORTANCE_WEIGHTS))

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        problem = super().problem(value, all_values, python)
        reset_on_reward = all_values.get("reset_on_reward")
        if problem is not None or value != "segment" or (isinstance(reset_on_reward, _BOOL_TYPES) and reset_on_reward):
            return problem
        needs = "reset_on_reward=True" if python else "reset_on_reward: true"
        episode = "'episode'" if python else "episode"
        return f"'segment' needs {needs} (a segment is then a point); without it the segment is the episode: use {episode}"


class BoolRule(ArgumentRule):
    """A Python or numpy bool."""

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        if isinstance(value, _BOOL_TYPES):
            return None
        return "expected a bool (True or False)" if python else "expected true or false"

    def error(self, value: Any) -> type[Exception]:
        return TypeError


class TypeRule(ArgumentRule):
    """
    An instance of one of ``types``.

    :param types: the allowed types
    :param expected: what they are, for the message (e.g. ``"a dict"``)
    :param optional: also accept None
    """

    def __init__(self, types: tuple[type, ...], expected: str, optional: bool = False):
        self.types, self.expected, self.optional = types, expected, optional

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        if isinstance(value, self.types) or (self.optional and value is None):
            return None
        return f"expected {self.expected}" + (f" or {_literal(None, python)}" if self.optional else "")

    def error(self, value: Any) -> type[Exception]:
        return TypeError


class SubclassRule(TypeRule):
    """
    A subclass of ``base`` (the class itself).

    :param base: the base class
    :param why: why it must be one, for the message
    :param optional: also accept None
    """

    def __init__(self, base: type, why: str, optional: bool = False):
        article = "an" if base.__name__[:1] in "AEIOU" else "a"
        super().__init__((), f"{article} {base.__name__} subclass ({why})", optional)
        self.base = base

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        if isinstance(value, type) and issubclass(value, self.base):
            return None
        return super().problem(value, all_values, python)


class PolicyRule(ArgumentRule):
    """
    ``policy``: a name the algorithm knows or a subclass of its policy class. The algorithm declares both
    (``REINFORCE.argument_rules()``): this module does not depend on the algorithm.

    :param aliases: the policy names and their classes (``REINFORCE.policy_aliases``)
    :param base: the class every policy must derive from
    """

    def __init__(self, aliases: Mapping[str, type], base: type):
        self.aliases, self.base = aliases, base

    def resolve(self, value: Any) -> type | None:
        """
        :param value: a ``policy`` value
        :return: the policy class it names (None if it is not allowed)
        """
        if isinstance(value, str):
            return self.aliases.get(value)
        return value if isinstance(value, type) and issubclass(value, self.base) else None

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        if self.resolve(value) is not None:
            return None
        subclass = f"a {self.base.__name__} subclass" if python else f"the dotted path of a {self.base.__name__} subclass"
        return f"expected one of {', '.join(self.aliases)} or {subclass}"

    def error(self, value: Any) -> type[Exception]:
        return ValueError if isinstance(value, str) else TypeError


class PolicyKwargsRule(ArgumentRule):
    """``policy_kwargs`` for the policy class given as ``all_values["policy"]`` (:func:`policy_kwargs_problems`)."""

    @staticmethod
    def _problems(value: Any, all_values: Mapping[str, Any]) -> list[PolicyKwargsProblem]:
        policy = all_values.get("policy")
        if isinstance(policy, type):
            return policy_kwargs_problems(value, policy)
        # Without a valid policy (its own problem is reported) the keys are unknown: only the type is checked
        return [] if value is None or isinstance(value, dict) else policy_kwargs_problems(value, object)

    def problem(self, value: Any, all_values: Mapping[str, Any], python: bool = False) -> str | None:
        problems = self._problems(value, all_values)
        return "; ".join(problem.message if python else problem.detail for problem in problems) or None

    def check(self, name: str, value: Any, all_values: Mapping[str, Any]) -> None:
        _raise_problems(self._problems(value, all_values))


#: The allowed values of REINFORCE's constructor arguments, in the order they are checked (``policy``, the
#: algorithm's own, is added by ``REINFORCE.argument_rules()``). The constructor raises for the first bad one; the
#: hyperparameter-file validator reports every bad key (schedule strings such as ``lin_1e-3`` and the rl-zoo's own
#: keys are the file's, checked there).
REINFORCE_ARGUMENTS: dict[str, ArgumentRule] = {
    # A constant; a schedule (a callable) is checked by the algorithm, at the start and at every update. A constant
    # 0 would never train, so it is refused (a schedule may reach 0)
    "learning_rate": NumberRule(0.0, math.inf, low_open=True),
    "n_steps": NumberRule(1, math.inf, integer=True),
    "n_episodes": NumberRule(1, math.inf, integer=True, optional=True),
    "gamma": NumberRule(0.0, 1.0),
    "return_mode": RegistryRule(get_return_mode, lambda: tuple(RETURN_MODES)),
    "baseline": RegistryRule(get_baseline, baseline_values),
    "gae_lambda": CriticSettingRule(0.0, 1.0, neutral=1.0, away="< 1", why="GAE uses the learned V(s)"),
    "n_critic_updates": CriticSettingRule(
        1, math.inf, neutral=1, away="> 1", why="the extra steps fit the learned V(s)", integer=True
    ),
    "normalize_advantage": BoolRule(),
    "reset_on_reward": BoolRule(),
    "importance_weights": ImportanceWeightsRule(),
    "ent_coef": NumberRule(-math.inf, math.inf),
    "vf_coef": NumberRule(0.0, math.inf),
    "max_grad_norm": NumberRule(0.0, math.inf, low_open=True, optional=True),
    "use_sde": BoolRule(),
    "sde_sample_freq": SdeSampleFreqRule(),
    "rollout_buffer_class": SubclassRule(
        EpisodeRolloutBuffer, "SB3's RolloutBuffer cuts episodes at n_steps, Monte-Carlo returns need them whole", True
    ),
    "rollout_buffer_kwargs": TypeRule((dict,), "a dict", optional=True),
    "stats_window_size": NumberRule(1, math.inf, integer=True),
    "tensorboard_log": TypeRule((str, pathlib.Path), "a str path", optional=True),
    "policy_kwargs": PolicyKwargsRule(),
    "verbose": NumberRule(0, 2, integer=True),
    "seed": NumberRule(0, 2**32 - 1, integer=True, optional=True),
    "device": TypeRule((str, th.device), "a str (e.g. 'cpu', 'cuda', 'auto') or a torch.device"),
}
