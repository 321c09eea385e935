"""
What a hyperparameter entry may make the program run (:func:`check_hyperparams_code`).

rl_zoo3 imports and calls any dotted name a file gives as ``env_wrapper``, ``callback``, ``policy``... Here every
such name is imported only from a trusted package and must then be a class of the expected kind, with plain-data
arguments; ``trust_code=True`` (the zoo's ``--trust-code``, :func:`trusted_code`) is the explicit opt-out.
"""

import contextlib
import contextvars
import importlib
import os
import re
import types
from collections.abc import Iterator, Mapping
from typing import Any

from sb3_reinforce.hyperparams.errors import HyperparamsError
from sb3_reinforce.hyperparams.literals import _literal_value
from sb3_reinforce.hyperparams.yaml_files import MAX_YAML_DEPTH, MAX_YAML_NODES

__all__ = ["TRUSTED_MODULE_PREFIXES", "check_hyperparams_code", "check_trusted_name", "trusted_code"]

#: Module prefixes from which ``env_wrapper``, ``vec_env_wrapper``, ``callback``, ``policy`` and
#: ``rollout_buffer_class`` may import a class: a first filter only, the imported object must then be a class of
#: the expected kind (:func:`check_hyperparams_code`). Extend with the ``SB3_REINFORCE_TRUSTED_MODULES`` environment
#: variable (comma-separated package or module prefixes, e.g. ``my_envs,my_lab.wrappers``; a dot is added to each
#: that lacks one): names under them are imported, and type-checked all the same.
TRUSTED_MODULE_PREFIXES: tuple[str, ...] = (
    "sb3_reinforce.",
    "stable_baselines3.",
    "sb3_contrib.",
    "rl_zoo3.",
    "gymnasium.",
    "ale_py.",
    "minigrid.",
)

_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")

# Modules of trusted packages that run a script when imported: a name in a file never imports them
_SCRIPT_MODULES = ("rl_zoo3.benchmark",)

# Set by trusted_code() (the zoo's --trust-code): honoured by every check, also when called from other modules
_TRUST_CODE: contextvars.ContextVar[bool] = contextvars.ContextVar("sb3_reinforce_trust_code", default=False)

# Strings that the zoo (and rl_zoo3) parse into objects, with the literal parser
_LITERAL_KEYS = (
    "policy_kwargs",
    "normalize",
    "normalize_kwargs",
    "env_kwargs",
    "monitor_kwargs",
    "replay_buffer_class",
    "replay_buffer_kwargs",
    "rollout_buffer_kwargs",
)

_TRUST_HINT = (
    "a file may only name classes of the expected kind (from trusted packages, see TRUSTED_MODULE_PREFIXES and "
    "SB3_REINFORCE_TRUSTED_MODULES) with plain-data arguments; --trust-code (trust_code=True) lifts this check"
)


@contextlib.contextmanager
def trusted_code(enabled: bool = True) -> Iterator[None]:
    """
    Within the block, :func:`check_hyperparams_code` (and every loader calling it, in any module) runs as with
    ``trust_code=enabled``. The zoo's ``--trust-code`` flag opens this block around its command.

    :param enabled: trust the code named by hyperparameter files
    """
    token = _TRUST_CODE.set(enabled)
    try:
        yield
    finally:
        _TRUST_CODE.reset(token)


def _trusting(trust_code: bool) -> bool:
    return bool(trust_code) or _TRUST_CODE.get()


def _trusted_prefixes() -> tuple[str, ...]:
    extra = [prefix.strip() for prefix in os.environ.get("SB3_REINFORCE_TRUSTED_MODULES", "").split(",") if prefix.strip()]
    # "my_envs" trusts the package my_envs, not also my_envs_evil
    return TRUSTED_MODULE_PREFIXES + tuple(prefix if prefix.endswith(".") else prefix + "." for prefix in extra)


def check_trusted_name(name: str) -> None:
    """
    Check that a dotted import path (``env_wrapper``, ``callback``, ...) is in a trusted package: the first filter
    of :func:`check_hyperparams_code` (which then imports the name and checks its type), not a check on its own.

    :param name: e.g. ``"stable_baselines3.common.atari_wrappers.AtariWrapper"``
    """
    if not isinstance(name, str) or not _DOTTED_NAME.match(name):
        raise HyperparamsError(f"{name!r} is not a dotted import path like 'package.module.ClassName'")
    prefixes = _trusted_prefixes()
    if not name.startswith(prefixes):
        raise HyperparamsError(
            f"{name!r} is not from a trusted package (allowed prefixes: {', '.join(prefixes)}; "
            "add more with the SB3_REINFORCE_TRUSTED_MODULES environment variable)"
        )


def _import_object(name: str) -> Any:
    module_name, _, attribute = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # a missing module, or a trusted module whose own dependencies are missing
        raise HyperparamsError(f"cannot import {module_name!r} (for {name!r}): {type(error).__name__}: {error}") from error
    try:
        return getattr(module, attribute)
    except AttributeError as error:
        raise HyperparamsError(f"{name!r}: module {module_name!r} has no attribute {attribute!r}") from error


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, types.ModuleType):
        return f"the module {obj.__name__}"
    if callable(obj):
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))
        return f"the {type(obj).__name__} {getattr(obj, '__module__', None) or '?'}.{name}"
    return f"a {type(obj).__name__} object"


def _short_repr(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _class_problem(value: Any, base: type, trust_code: bool) -> str | None:
    """None when ``value`` (a dotted import path or a class) is a subclass of ``base``, else what is wrong."""
    label = _short_repr(value)
    if isinstance(value, str):
        if not _DOTTED_NAME.match(value):
            return f"{label} is not a dotted import path like 'package.module.ClassName'"
        if not trust_code:
            # Nothing outside a trusted package is imported, not even to check its type
            try:
                check_trusted_name(value)
            except HyperparamsError as error:
                return str(error)
            module_name = value.rpartition(".")[0]
            if module_name in _SCRIPT_MODULES or "__main__" in value.split("."):
                return f"{label}: the module {module_name} runs a script when imported"
        try:
            obj = _import_object(value)
        except HyperparamsError as error:
            return str(error)
    else:
        obj = value
    if trust_code or (isinstance(obj, type) and issubclass(obj, base)):
        return None
    return f"{label} is {_describe(obj)}, not a subclass of {base.__module__}.{base.__qualname__}"


def _plain_data_problem(value: Any, label: str) -> str | None:
    """None when ``value`` is plain data (None, booleans, numbers, strings, lists/tuples/dicts of those)."""
    stack = [(value, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_YAML_NODES or depth > MAX_YAML_DEPTH:
            return f"{label}: more than {MAX_YAML_NODES} values or nested deeper than {MAX_YAML_DEPTH} levels"
        if item is None or isinstance(item, (bool, int, float, str)):
            continue
        if isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, (str, int)):
                    return f"{label}: dict keys must be strings or ints, not {_describe(key)}"
                stack.append((child, depth + 1))
        else:
            return (
                f"{label} holds {_describe(item)}: only plain data is accepted "
                "(null, booleans, numbers, strings, lists and dicts of those)"
            )
    return None


def _import_list_problems(value: Any, base: type, trust_code: bool) -> list[str]:
    """``env_wrapper``/``vec_env_wrapper``/``callback``: a name, ``{name: kwargs}`` or a list of those."""
    problems = []
    for item in value if isinstance(value, list) else [value]:
        kwargs: Any = None
        if isinstance(item, Mapping):
            if len(item) != 1:
                problems.append("expected 'package.Class' or {'package.Class': {kwargs}} (check the indentation)")
                continue
            ((item, kwargs),) = item.items()
            if not isinstance(kwargs, Mapping):
                problems.append(f"the keyword arguments of {_short_repr(item)} must be a dict")
                continue
        problem = _class_problem(item, base, trust_code)
        if problem is None and kwargs is not None and not trust_code:
            problem = _plain_data_problem(kwargs, f"the keyword arguments of {_short_repr(item)}")
        if problem:
            problems.append(problem)
    return problems


def _policy_kwargs_problems(kwargs: Any) -> list[str]:
    import torch as th
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    if not isinstance(kwargs, Mapping):
        return ["expected a dict or a 'dict(...)' string"]
    # The only policy_kwargs SB3 calls; all others must be plain data
    classes = {
        "activation_fn": (th.nn.Module, "a torch.nn.Module subclass (activation) such as nn.ReLU or nn.Tanh"),
        "optimizer_class": (th.optim.Optimizer, "a torch.optim.Optimizer subclass such as th.optim.Adam or th.optim.RMSprop"),
        "features_extractor_class": (
            BaseFeaturesExtractor,
            "a BaseFeaturesExtractor subclass such as NatureCNN, FlattenExtractor or CombinedExtractor",
        ),
    }
    problems = []
    for key, item in kwargs.items():
        if key in classes:
            base, expected = classes[key]
            if not (isinstance(item, type) and issubclass(item, base)):
                problems.append(f"{key}={_short_repr(item)}: expected {expected}")
        else:
            problem = _plain_data_problem(item, f"{key}={_short_repr(item)}")
            if problem:
                problems.append(problem)
    return problems


def _code_problems(hyperparams: Mapping[str, Any], trust_code: bool) -> list[tuple[str, str]]:
    """``(key, problem)`` for every value of an entry that could make the program call something unchecked."""
    import gymnasium as gym
    from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.policies import BasePolicy
    from stable_baselines3.common.vec_env import VecEnvWrapper

    imported = {"env_wrapper": gym.Wrapper, "vec_env_wrapper": VecEnvWrapper, "callback": BaseCallback}
    problems: list[tuple[str, str]] = []
    for key, value in hyperparams.items():
        found: list[str] = []
        if key in imported:
            found = [] if value is None else _import_list_problems(value, imported[key], trust_code)
        elif key == "policy":
            # Short names (MlpPolicy, MlpLstmPolicy...) are looked up in the algorithm's own table
            if not (isinstance(value, str) and "." not in value):
                found = [problem] if (problem := _class_problem(value, BasePolicy, trust_code)) else []
        elif key == "rollout_buffer_class":
            if value is not None:
                found = [problem] if (problem := _class_problem(value, BaseBuffer, trust_code)) else []
        elif key in _LITERAL_KEYS:
            parsed, error = _literal_value(value)
            if error:
                found = [error]
            elif trust_code or parsed is None:
                found = []
            elif key == "policy_kwargs":
                found = _policy_kwargs_problems(parsed)
            elif key == "replay_buffer_class":
                found = [problem] if (problem := _class_problem(parsed, ReplayBuffer, trust_code)) else []
            else:
                found = [problem] if (problem := _plain_data_problem(parsed, key)) else []
        elif not trust_code:
            # Any other value goes to the algorithm's constructor: data only
            found = [problem] if (problem := _plain_data_problem(value, key)) else []
        problems.extend((key, text) for text in found)
    return problems


def _problem_lines(hyperparams: Mapping[str, Any], problems: list[tuple[str, str]]) -> str:
    return "\n".join(f"  - {key}: {_short_repr(hyperparams.get(key))} is not allowed: {text}" for key, text in problems)


def check_hyperparams_code(hyperparams: Mapping[str, Any], where: str = "the given entry", trust_code: bool = False) -> None:
    """
    Check every name an entry (of any algorithm) can make the program import and call, after importing it: each
    ``env_wrapper`` must be a ``gymnasium.Wrapper`` subclass, each ``vec_env_wrapper`` a ``VecEnvWrapper``
    subclass, each ``callback`` a ``BaseCallback`` subclass, a dotted ``policy`` a ``BasePolicy`` subclass,
    ``rollout_buffer_class`` a ``BaseBuffer`` subclass, ``replay_buffer_class`` a ``ReplayBuffer`` subclass and,
    in ``policy_kwargs``, ``activation_fn`` an ``nn.Module`` subclass, ``optimizer_class`` a
    ``torch.optim.Optimizer`` subclass and ``features_extractor_class`` a ``BaseFeaturesExtractor`` subclass.
    Every argument (wrapper and callback keyword arguments, the other ``policy_kwargs``, ``env_kwargs``, ...,
    every other value) must be plain data: None, booleans, numbers, strings, lists and dicts of those.

    Dotted names are only imported from trusted packages (:data:`TRUSTED_MODULE_PREFIXES`, extended with the
    ``SB3_REINFORCE_TRUSTED_MODULES`` environment variable, comma-separated prefixes such as ``my_envs.``; names
    under such a prefix are still type-checked). ``trust_code=True`` (or :func:`trusted_code`, the zoo's
    ``--trust-code``) imports any name and skips the type and plain-data checks: the file may then run any code.

    This is the check ``validate``, ``train``, ``enjoy``, ``export-best`` and the comparison tool run (through
    :func:`validate_reinforce_hyperparams`, :func:`load_hyperparams` and :func:`build_model_kwargs`).

    :param hyperparams: one entry (raw: ``"dict(...)"`` strings allowed)
    :param where: names the entry in the message (e.g. ``"ppo.yml [CartPole-v1]"``)
    :param trust_code: allow any importable name and any argument
    """
    if not isinstance(hyperparams, Mapping):
        raise HyperparamsError(f"{where}: expected a mapping of hyperparameters, got {_short_repr(hyperparams)}")
    problems = _code_problems(hyperparams, _trusting(trust_code))
    if problems:
        message = f"Refused hyperparameters in {where}:\n{_problem_lines(hyperparams, problems)}\n  ({_TRUST_HINT})"
        raise HyperparamsError(message, problems)
