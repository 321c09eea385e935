"""
The validation of REINFORCE hyperparameter entries (:func:`validate_reinforce_hyperparams`).

Every problem of an entry is reported at once, with the file, the entry, the key, the value and what is allowed.
REINFORCE's arguments are checked by the rules its constructor raises with (``REINFORCE.argument_rules()``, see
:mod:`sb3_reinforce.common.arguments`); the rl-zoo's own keys (``n_timesteps``, ``n_envs``, ``normalize``, ...) and
the schedule strings (``lin_1e-3``) are a file's, checked here.
"""

import inspect
import math
import re
from collections.abc import Mapping
from typing import Any

from stable_baselines3.common.vec_env import VecNormalize

from sb3_reinforce.common.arguments import REINFORCE_ARGUMENTS, ArgumentRule, TypeRule
from sb3_reinforce.common.checks import did_you_mean, number_problem
from sb3_reinforce.hyperparams.code_check import (
    _LITERAL_KEYS,
    _TRUST_HINT,
    _code_problems,
    _import_object,
    _short_repr,
    _trusting,
)
from sb3_reinforce.hyperparams.errors import HyperparamsError
from sb3_reinforce.hyperparams.literals import _literal_value
from sb3_reinforce.reinforce.reinforce import REINFORCE

__all__ = ["REINFORCE_KEYS", "ZOO_KEYS", "validate_hyperparams_content", "validate_reinforce_hyperparams"]

#: Keys the rl-zoo itself consumes (they never reach the algorithm's constructor).
ZOO_KEYS: tuple[str, ...] = (
    "n_timesteps",
    "policy",
    "n_envs",
    "normalize",
    "frame_stack",
    "env_wrapper",
    "vec_env_wrapper",
    "callback",
    "env_kwargs",
    "monitor_kwargs",
)

# Constructor arguments the zoo passes itself, from its command line.
_COMMAND_LINE_KEYS = {
    "env": "--env",
    "tensorboard_log": "--tensorboard-log",
    "verbose": "--verbose",
    "seed": "--seed",
    "device": "--device",
    "_init_setup_model": "(internal)",
}

#: REINFORCE constructor arguments that may be set in a hyperparameter file: those of
#: :data:`~sb3_reinforce.common.arguments.REINFORCE_ARGUMENTS` the zoo does not pass from its command line.
REINFORCE_KEYS: tuple[str, ...] = tuple(key for key in REINFORCE_ARGUMENTS if key not in _COMMAND_LINE_KEYS)

_LIN_SCHEDULE = re.compile(r"^lin_(?P<value>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$")

# Entry keys naming a class by its dotted path: imported (once check_hyperparams_code allowed it) to check the class
_CLASS_KEYS = ("policy", "rollout_buffer_class")

_DICT = TypeRule((dict,), "a dict", optional=True)


def _normalize_kwargs() -> tuple[str, ...]:
    """The keyword arguments of SB3's ``VecNormalize`` (what ``normalize: dict(...)`` may set)."""
    return tuple(name for name in list(inspect.signature(VecNormalize.__init__).parameters)[1:] if name != "venv")


def _check_normalize(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if not isinstance(value, dict):
        return "expected true/false or a dict of VecNormalize arguments"
    allowed = _normalize_kwargs()
    unknown = [key for key in value if key not in allowed]
    if unknown:
        return f"unknown VecNormalize argument(s) {unknown}; allowed: {', '.join(allowed)}"
    return None


def _check_value(key: str, value: Any, values: Mapping[str, Any], rules: Mapping[str, ArgumentRule]) -> str | None:
    """
    What is wrong with the value of one key (None: nothing).

    :param key: an allowed key
    :param value: its value, parsed (``dict(...)`` strings) and imported (class paths)
    :param values: every value of the entry as the rules of REINFORCE's arguments see them (``policy`` a class)
    :param rules: REINFORCE's (``REINFORCE.argument_rules()``)
    """
    if key == "n_timesteps":
        return number_problem(value, 1, math.inf)
    if key in ("n_envs", "frame_stack"):
        return number_problem(value, 1, math.inf, integer=True)
    if key == "normalize":
        return _check_normalize(value)
    if key in ("env_kwargs", "monitor_kwargs"):
        return _DICT.problem(value, values)
    if key in ("env_wrapper", "vec_env_wrapper", "callback"):
        return None  # names: check_hyperparams_code imports and checks them
    if key == "learning_rate" and isinstance(value, str):
        # The zoo's linear schedule (rl_zoo3's ExpManager converts it)
        match = _LIN_SCHEDULE.match(value)
        if match and float(match.group("value")) > 0:
            return None
        return "expected a positive number or a linear schedule 'lin_<initial value>' such as 'lin_1e-3'"
    return rules[key].problem(value, values)


def validate_reinforce_hyperparams(
    hyperparams: Mapping[str, Any], where: str = "the given entry", trust_code: bool = False
) -> None:
    """
    Check a REINFORCE rl-zoo entry: unknown keys and bad values are reported all at once, each with the entry,
    the key, the value and what is allowed. This includes :func:`check_hyperparams_code` (what the entry may make
    the program import and call), done before any class path of the entry is imported for the value checks.

    :param hyperparams: one entry of a hyperparameter file (raw: ``"lin_1e-3"``, ``"dict(...)"`` strings allowed)
    :param where: names the entry in the message (e.g. ``"reinforce.yml [CartPole-v1]"``)
    :param trust_code: see :func:`check_hyperparams_code`
    """
    if not isinstance(hyperparams, Mapping):
        raise HyperparamsError(f"{where}: expected a mapping of hyperparameters, got {hyperparams!r}")
    allowed = ZOO_KEYS + REINFORCE_KEYS
    problems: list[tuple[str, str]] = []
    parsed: dict[str, Any] = {}
    for key, value in hyperparams.items():
        if key in _COMMAND_LINE_KEYS:
            problems.append((key, f"{key} is set by the zoo command line ({_COMMAND_LINE_KEYS[key]}), not in the file"))
            continue
        if key not in allowed:
            problems.append((key, f"unknown key {key!r}{did_you_mean(str(key), allowed)}; allowed keys: {', '.join(allowed)}"))
            continue
        literal, error = _literal_value(value) if key in _LITERAL_KEYS else (value, None)
        if error:
            problems.append((key, f"{key}: {value!r} is not allowed: {error}"))
        else:
            parsed[key] = literal
    # The same check as for every algorithm, for the keys whose values parse (no message twice); nothing the file
    # names is imported before it passed
    code_problems = _code_problems(parsed, _trusting(trust_code))
    refused = {key for key, _ in code_problems}
    values: dict[str, Any] = {}
    for key, value in parsed.items():
        if key in refused:
            continue
        if key in _CLASS_KEYS and isinstance(value, str) and "." in value:
            try:
                value = _import_object(value)
            except HyperparamsError as error:
                problems.append((key, f"{key}: {hyperparams[key]!r} is not allowed: {error}"))
                continue
        values[key] = value
    # What the rules of REINFORCE's arguments see: policy_kwargs are checked for the entry's policy class
    rules = REINFORCE.argument_rules()
    context = {**values, "policy": rules["policy"].resolve(values.get("policy"))}
    for key, value in values.items():
        text = _check_value(key, value, context, rules)
        if text is not None:
            problems.append((key, f"{key}: {hyperparams[key]!r} is not allowed: {text}"))
    for key, text in code_problems:
        problems.append((key, f"{key}: {_short_repr(hyperparams[key])} is not allowed: {text}"))
    for key in ("n_timesteps", "policy"):
        if key not in hyperparams:
            problems.append((key, f"{key} is required"))
    if problems:
        lines = "\n".join(f"  - {text}" for _, text in problems)
        hint = f"\n  ({_TRUST_HINT})" if code_problems else ""
        raise HyperparamsError(f"Invalid REINFORCE hyperparameters in {where}:\n{lines}{hint}", problems)


def validate_hyperparams_content(
    content: Mapping[str, Any], where: str = "the given hyperparameters", trust_code: bool = False
) -> None:
    """
    Validate every entry of a REINFORCE hyperparameter file's content (:func:`validate_reinforce_hyperparams`,
    which includes :func:`check_hyperparams_code`); all problems are reported at once.

    :param content: ``{entry name: entry}``
    :param where: names the file in the messages
    :param trust_code: see :func:`check_hyperparams_code`
    """
    messages, problems = [], []
    for name, entry in content.items():
        try:
            validate_reinforce_hyperparams(entry, where=f"{where} [{name}]", trust_code=trust_code)
        except HyperparamsError as error:
            messages.append(str(error))
            problems.extend((f"{name}.{key}", text) for key, text in error.problems)
    if messages:
        raise HyperparamsError("\n".join(messages), problems)
