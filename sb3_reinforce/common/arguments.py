"""
Checks of ``policy_kwargs``, shared by the REINFORCE constructor and the hyperparameter-file validator.

The keys a policy class accepts are read from the ``__init__`` signatures along its MRO (following ``**kwargs``
to the parent class, up to SB3's ``ActorCriticPolicy``), so a custom policy's own arguments (e.g.
``KarpathyPolicy``'s ``n_hidden``) are accepted without being listed here. From those are removed the keys the
algorithm passes itself (:data:`ALGORITHM_POLICY_KWARGS`) and those the policy class fixes itself
(``REINFORCEPolicy.policy_set_kwargs``). The values of SB3's keys are checked (layer sizes, classes, dicts,
flags); the values of other keys are left to the policy.
"""

import difflib
import inspect
import numbers
from typing import Any, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sb3_reinforce.reinforce.policies import REINFORCEPolicy

#: Policy arguments REINFORCE sets itself, with why: they are rejected in ``policy_kwargs``.
ALGORITHM_POLICY_KWARGS: dict[str, str] = {
    "observation_space": "taken from the env",
    "action_space": "taken from the env",
    "lr_schedule": "built from the learning_rate argument",
    "value_baseline": "set from the baseline argument (baseline='value' builds the value network)",
    "use_sde": "REINFORCE does not support gSDE (the algorithm passes use_sde=False)",
}


class PolicyKwargsProblem(NamedTuple):
    """One problem of a ``policy_kwargs`` dict: the key, a message naming ``policy_kwargs`` and the key, and the
    exception class to raise for it (``TypeError`` for a wrong type, ``ValueError`` otherwise)."""

    key: Any
    message: str
    error: type[Exception]


def allowed_policy_kwargs(policy_class: type = REINFORCEPolicy) -> tuple[str, ...]:
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


#: ``policy_kwargs`` keys of ``MlpPolicy``, ``CnnPolicy`` and ``MultiInputPolicy``.
POLICY_KWARGS: tuple[str, ...] = allowed_policy_kwargs(REINFORCEPolicy)

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
_NET_ARCH_HELP = "a list of positive layer sizes such as [64, 64] (or []) or dict(pi=[64, 64], vf=[64, 64])"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


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
    if key in _FLAGS and not isinstance(value, (bool, np.bool_)) and not (value is None and key in _GSDE_FLAGS):
        return TypeError, f"{key}={value!r} must be a bool"
    if key == "squash_output" and value:
        return ValueError, "squash_output=True needs gSDE (use_sde=True), which REINFORCE does not support"
    if key == "log_std_init":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            return TypeError, f"log_std_init={value!r} must be a number"
        if not np.isfinite(value):
            return ValueError, f"log_std_init={value!r} must be finite"
    if key == "n_hidden":
        if not _is_int(value):
            return TypeError, f"n_hidden={value!r} must be an int"
        if value <= 0:
            return ValueError, f"n_hidden={value!r} must be positive"
    return None


def policy_kwargs_problems(policy_kwargs: Any, policy_class: type = REINFORCEPolicy) -> list[PolicyKwargsProblem]:
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
        return [PolicyKwargsProblem(None, f"policy_kwargs must be a dict or None, got {policy_kwargs!r}", TypeError)]
    allowed = allowed_policy_kwargs(policy_class)
    policy_set = getattr(policy_class, "policy_set_kwargs", ())
    problems = []
    for key, value in policy_kwargs.items():
        if key in ALGORITHM_POLICY_KWARGS:
            message = f"policy_kwargs[{key!r}] is not allowed: {ALGORITHM_POLICY_KWARGS[key]}"
            problems.append(PolicyKwargsProblem(key, message, ValueError))
        elif key in policy_set:
            message = f"policy_kwargs[{key!r}] is not allowed: {policy_class.__name__} sets it itself (it would be ignored)"
            problems.append(PolicyKwargsProblem(key, message, ValueError))
        elif key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"policy_kwargs has an unknown key {key!r}{hint}: {policy_class.__name__} accepts {', '.join(allowed)}"
            problems.append(PolicyKwargsProblem(key, message, ValueError))
        else:
            problem = _value_problem(key, value)
            if problem is not None:
                problems.append(PolicyKwargsProblem(key, f"policy_kwargs[{key!r}]: {problem[1]}", problem[0]))
    return problems


def check_policy_kwargs(policy_kwargs: Any, policy_class: type = REINFORCEPolicy) -> None:
    """
    Raise for bad ``policy_kwargs`` (see :func:`policy_kwargs_problems`): ``TypeError`` if the first problem is
    a wrong type, ``ValueError`` otherwise; the message lists every problem.

    :param policy_kwargs: the ``policy_kwargs`` argument (None or a dict)
    :param policy_class: the policy class they are for
    """
    problems = policy_kwargs_problems(policy_kwargs, policy_class)
    if problems:
        raise problems[0].error("; ".join(problem.message for problem in problems))
