"""
Safe loading and validation of rl-zoo hyperparameter files.

rl_zoo3 turns strings such as ``"dict(net_arch=[64], activation_fn=nn.ReLU)"`` into objects with ``eval``,
reads saved configs with ``yaml.UnsafeLoader`` and imports and calls any dotted name a file gives as
``env_wrapper``, ``callback``, ``policy``... Here YAML is read with a bounded ``yaml.SafeLoader`` (size, depth,
aliases, duplicate keys: :func:`load_yaml`) and such strings with a small literal parser: numbers, strings,
booleans, ``None``, lists, tuples, dicts, ``dict(key=value, ...)`` and a fixed table of names (activation
functions, optimizers, a few SB3 classes). Every name a file can make the program call is imported only from a
trusted package and must then be a class of the expected kind, with plain-data arguments
(:func:`check_hyperparams_code`); ``trust_code=True`` (the zoo's ``--trust-code``) is the explicit opt-out.
"""

import ast
import contextlib
import contextvars
import copy
import difflib
import importlib
import math
import numbers
import os
import re
import stat
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_YAML_ALIASES",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "REINFORCE_KEYS",
    "TRUSTED_MODULE_PREFIXES",
    "ZOO_KEYS",
    "HyperparamsError",
    "ZooSafeLoader",
    "build_model_kwargs",
    "check_hyperparams_code",
    "check_trusted_name",
    "default_hyperparams_path",
    "format_python_literal",
    "load_hyperparams",
    "load_hyperparams_file",
    "load_yaml",
    "parse_python_literal",
    "parse_yaml",
    "select_env_entry",
    "to_yaml_data",
    "trusted_code",
    "validate_hyperparams_content",
    "validate_hyperparams_file",
    "validate_reinforce_hyperparams",
]

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

#: REINFORCE constructor arguments that may be set in a hyperparameter file.
REINFORCE_KEYS: tuple[str, ...] = (
    "learning_rate",
    "n_steps",
    "n_episodes",
    "gamma",
    "return_mode",
    "baseline",
    "gae_lambda",
    "normalize_advantage",
    "reset_on_reward",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "rollout_buffer_class",
    "rollout_buffer_kwargs",
    "stats_window_size",
    "policy_kwargs",
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

# ``policy_kwargs`` accepted by REINFORCE's policies (SB3's ActorCriticPolicy arguments, minus those the
# algorithm sets itself: use_sde, value_baseline).
_POLICY_KWARGS = (
    "net_arch",
    "activation_fn",
    "ortho_init",
    "log_std_init",
    "full_std",
    "use_expln",
    "squash_output",
    "features_extractor_class",
    "features_extractor_kwargs",
    "share_features_extractor",
    "normalize_images",
    "optimizer_class",
    "optimizer_kwargs",
)

_NORMALIZE_KWARGS = ("norm_obs", "norm_reward", "norm_obs_keys", "clip_obs", "clip_reward", "gamma", "epsilon", "training")

_POLICIES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")

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

_LIN_SCHEDULE = re.compile(r"^lin_(?P<value>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$")
_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class HyperparamsError(ValueError):
    """
    A hyperparameter file or entry that cannot be loaded or does not validate.

    :param message: the full, human-readable message
    :param problems: ``(key, description)`` for each problem found (empty when not specific to a key)
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []


# ---------------------------------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------------------------------

#: Largest YAML file :func:`load_yaml` reads (1 MiB; rl_zoo3's largest hyperparameter file is about 30 KiB).
MAX_YAML_BYTES: int = 1 << 20
#: Deepest nesting of YAML lists/mappings, aliases expanded (rl_zoo3's files nest 4 levels).
MAX_YAML_DEPTH: int = 50
#: Most alias references (``*name``) in one document (rl_zoo3's files use at most 19).
MAX_YAML_ALIASES: int = 1000
#: Most nodes of one document once every alias is expanded ("billion laughs"; rl_zoo3's files have 1300 at most).
MAX_YAML_NODES: int = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _YamlLimitError(yaml.composer.ComposerError):
    """A document over one of the limits above (or with a duplicate key): reported as such, not as a syntax error."""


class ZooSafeLoader(yaml.SafeLoader):
    """
    ``yaml.SafeLoader`` that also reads the one Python tag stock rl_zoo3 writes in ``config.yml``
    (``!!python/object/apply:collections.OrderedDict``), as a plain dict. Any other ``!!python/...`` tag is
    rejected, as by ``yaml.safe_load``. Hostile documents fail fast while being composed, before any object is
    built: more than :data:`MAX_YAML_ALIASES` alias references, more than :data:`MAX_YAML_NODES` nodes once
    aliases are expanded, lists/mappings nested deeper than :data:`MAX_YAML_DEPTH` (aliases expanded),
    recursive aliases, and duplicate mapping keys (YAML would silently keep the last one) are errors.

    :param stream: the YAML text (``str``, ``bytes`` or a file)
    """

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._zoo_depth = 0
        self._zoo_aliases = 0
        # id(node) -> (node, expanded size, expanded depth); the node is kept so that its id is not reused
        self._zoo_sizes: dict[int, tuple[yaml.Node, int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            self._zoo_aliases += 1
            if self._zoo_aliases > MAX_YAML_ALIASES:
                raise _YamlLimitError(None, None, f"more than {MAX_YAML_ALIASES} alias references (*name)", mark)
            node = super().compose_node(parent, index)
            if id(node) not in self._zoo_sizes:
                raise _YamlLimitError(None, None, "recursive alias: it refers to a collection that contains it", mark)
            return node
        self._zoo_depth += 1
        try:
            # Composing recurses once per level: stop before Python's recursion limit does
            if self._zoo_depth > MAX_YAML_DEPTH + 1:
                mark = self.peek_event().start_mark
                raise _YamlLimitError(None, None, f"lists/mappings nested deeper than {MAX_YAML_DEPTH} levels", mark)
            node = super().compose_node(parent, index)
        finally:
            self._zoo_depth -= 1
        self._record_size(node)
        if isinstance(node, yaml.MappingNode):
            self._check_duplicate_keys(node)
        return node

    def _record_size(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            self._zoo_sizes[id(node)] = (node, 1, 0)
            return
        # Children (aliases included) were composed before their parent: their expanded sizes are known
        sizes = [self._zoo_sizes[id(child)] for child in children]
        size = 1 + sum(item[1] for item in sizes)
        depth = 1 + max((item[2] for item in sizes), default=0)
        if size > MAX_YAML_NODES:
            raise _YamlLimitError(
                None, None, f"more than {MAX_YAML_NODES} nodes once aliases are expanded (alias bomb?)", node.start_mark
            )
        if depth > MAX_YAML_DEPTH:
            raise _YamlLimitError(
                None, None, f"lists/mappings nested deeper than {MAX_YAML_DEPTH} levels (aliases expanded)", node.start_mark
            )
        self._zoo_sizes[id(node)] = (node, size, depth)

    def _check_duplicate_keys(self, node: yaml.MappingNode) -> None:
        # Checked on the composed node, before merge keys (<<) are flattened: a key overriding a merged one is fine
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _YamlLimitError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]}, again at line {line})", key_node.start_mark
                )
            seen[key] = line


def _construct_ordered_dict(loader: ZooSafeLoader, node: yaml.Node) -> dict[Any, Any]:
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != 1:
        raise yaml.constructor.ConstructorError(None, None, "unexpected OrderedDict layout", node.start_mark)
    pairs = loader.construct_sequence(node.value[0], deep=True)
    result: dict[Any, Any] = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise yaml.constructor.ConstructorError(None, None, "OrderedDict items must be [key, value]", node.start_mark)
        if pair[0] in result:
            raise _YamlLimitError(None, None, f"duplicate key {pair[0]!r} in an OrderedDict", node.start_mark)
        result[pair[0]] = pair[1]
    return result


ZooSafeLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _construct_ordered_dict)


def _yaml_error_message(error: yaml.YAMLError, where: str) -> str:
    if not isinstance(error, yaml.MarkedYAMLError):
        # ReaderError: bytes that are not text (invalid UTF-8, control characters)
        return f"Cannot load {where}: not YAML text: {error}"
    mark = error.problem_mark or error.context_mark
    position = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
    problem = error.problem or error.context or "invalid YAML"
    if isinstance(error, yaml.constructor.ConstructorError) and "tag:yaml.org,2002:python/" in problem:
        tag = problem.split("tag:yaml.org,2002:", 1)[1].split("'", 1)[0]
        return (
            f"Cannot load {where} safely: Python tag '!!{tag}' at {position} is refused "
            "(only plain YAML is accepted, no Python tags: nothing in a file is executed)"
        )
    if isinstance(error, _YamlLimitError):
        return f"Cannot load {where}: {problem} at {position}"
    if isinstance(error, yaml.constructor.ConstructorError):
        return f"Cannot load {where}: {problem} at {position} (only plain YAML is accepted)"
    context = f" ({error.context})" if error.context and error.problem else ""
    return f"Cannot load {where}: YAML syntax error at {position}: {problem}{context}"


def parse_yaml(text: str | bytes, where: str = "<string>") -> Any:
    """
    Parse YAML text without executing anything, with the limits of :class:`ZooSafeLoader`.

    :param text: the document
    :param where: names the document in error messages (e.g. its path)
    :return: its content (plain dicts, lists, strings, numbers, booleans, None)
    """
    try:
        return yaml.load(text, Loader=ZooSafeLoader)
    except yaml.YAMLError as error:
        raise HyperparamsError(_yaml_error_message(error, where)) from error


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """
    Read a YAML file without executing anything: ``!!python/object``, ``!!python/name`` etc. are refused. A path
    that does not exist, is a directory or not a regular file (a FIFO would block), a file over
    :data:`MAX_YAML_BYTES` (1 MiB), a YAML syntax error (reported with its line and column), a duplicate key, an
    alias bomb or nesting deeper than :data:`MAX_YAML_DEPTH` raise :class:`HyperparamsError` naming the path.

    :param path: the YAML file
    :return: its content (plain dicts, lists, strings, numbers, booleans, None)
    """
    try:
        info = os.stat(path)
    except FileNotFoundError as error:
        raise HyperparamsError(f"Cannot load {path}: no such file") from error
    except OSError as error:
        raise HyperparamsError(f"Cannot load {path}: {error.strerror or error}") from error
    if stat.S_ISDIR(info.st_mode):
        raise HyperparamsError(f"Cannot load {path}: it is a directory, not a YAML file")
    if not stat.S_ISREG(info.st_mode):
        raise HyperparamsError(f"Cannot load {path}: not a regular file")
    too_large = f"Cannot load {path}: larger than {MAX_YAML_BYTES} bytes (1 MiB), the limit for a YAML file"
    if info.st_size > MAX_YAML_BYTES:
        raise HyperparamsError(too_large)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_YAML_BYTES + 1)
    except OSError as error:
        raise HyperparamsError(f"Cannot load {path}: {error.strerror or error}") from error
    if len(data) > MAX_YAML_BYTES:
        raise HyperparamsError(too_large)
    return parse_yaml(data, where=str(path))


def to_yaml_data(value: Any) -> Any:
    """
    Turn a value into something ``yaml.safe_dump`` writes and :func:`load_yaml` reads back: containers become
    plain dicts/lists; a container holding objects (e.g. ``policy_kwargs`` with ``nn.ReLU``) becomes its literal
    string (``"dict(activation_fn=nn.ReLU)"``), which the zoo parses safely again.

    :param value: the value to convert
    :return: YAML-safe data
    """
    if _is_plain_data(value):
        return _plain_copy(value)
    try:
        return format_python_literal(value)
    except HyperparamsError:
        return repr(value)


def _is_plain_data(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain_data(item) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(key, (str, int)) and _is_plain_data(item) for key, item in value.items())
    return False


def _plain_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value)


# ---------------------------------------------------------------------------------------------------------------------
# Literal parser with a fixed table of names
# ---------------------------------------------------------------------------------------------------------------------

_SAFE_NAMES: dict[str, Any] | None = None
_CANONICAL_NAMES: dict[int, str] | None = None


def _safe_names() -> dict[str, Any]:
    """Names allowed in literal strings, mapped to their objects (first spelling of an object is its canonical one)."""
    global _SAFE_NAMES, _CANONICAL_NAMES
    if _SAFE_NAMES is None:
        import torch as th
        from stable_baselines3 import HerReplayBuffer
        from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
        from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor, NatureCNN

        names: dict[str, Any] = {}
        for activation in ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Softplus", "SELU", "Mish"):
            for prefix in ("nn.", "th.nn.", "torch.nn."):
                names[prefix + activation] = getattr(th.nn, activation)
        for optimizer in ("Adam", "AdamW", "RMSprop", "SGD", "Adagrad", "Adamax", "NAdam", "RAdam"):
            for prefix in ("th.optim.", "torch.optim.", "optim."):
                names[prefix + optimizer] = getattr(th.optim, optimizer)
        extras = {
            "RMSpropTFLike": RMSpropTFLike,
            "HerReplayBuffer": HerReplayBuffer,
            "NatureCNN": NatureCNN,
            "FlattenExtractor": FlattenExtractor,
            "CombinedExtractor": CombinedExtractor,
        }
        for name, obj in extras.items():
            names[name] = obj
            names[f"{obj.__module__}.{obj.__qualname__}"] = obj
        _SAFE_NAMES = names
        _CANONICAL_NAMES = {}
        for name, obj in names.items():
            _CANONICAL_NAMES.setdefault(id(obj), name)
    return _SAFE_NAMES


def _canonical_name(obj: Any) -> str | None:
    _safe_names()
    assert _CANONICAL_NAMES is not None
    return _CANONICAL_NAMES.get(id(obj))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _allowed_names_hint() -> str:
    names = sorted(name for name in _safe_names() if name.startswith(("nn.", "th.optim.")) or "." not in name)
    return ", ".join(names)


def _eval_node(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Constant):
        if node.value is None or isinstance(node.value, (bool, int, float, str)):
            return node.value
        raise HyperparamsError(f"constant {node.value!r} is not allowed in {text!r}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _eval_node(node.operand, text)
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise HyperparamsError(f"unary +/- only applies to numbers in {text!r}")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List):
        return [_eval_node(item, text) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_eval_node(item, text) for item in node.elts)
    if isinstance(node, ast.Dict):
        result = {}
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            if key_node is None:
                raise HyperparamsError(f"'**' unpacking is not allowed in {text!r}")
            key = _eval_node(key_node, text)
            if not isinstance(key, (str, int)):
                raise HyperparamsError(f"dict keys must be strings or ints in {text!r}")
            result[key] = _eval_node(value_node, text)
        return result
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == "dict"):
            raise HyperparamsError(f"only dict(...) may be called in {text!r}, not {ast.unparse(node.func)}(...)")
        if node.args or any(keyword.arg is None for keyword in node.keywords):
            raise HyperparamsError(f"dict(...) takes only key=value arguments in {text!r}")
        return {keyword.arg: _eval_node(keyword.value, text) for keyword in node.keywords}
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        if name is not None and name in _safe_names():
            return _safe_names()[name]
        raise HyperparamsError(
            f"name {ast.unparse(node)!r} is not allowed in {text!r}; allowed names: {_allowed_names_hint()}"
        )
    raise HyperparamsError(
        f"expression {ast.unparse(node)!r} is not allowed in {text!r} (only literals, dict(...) and known names)"
    )


def parse_python_literal(text: str) -> Any:
    """
    Safe replacement for rl_zoo3's ``eval`` of hyperparameter strings: accepts numbers, strings, booleans,
    ``None``, lists, tuples, ``{...}`` dicts, ``dict(key=value, ...)`` and a fixed table of names
    (``nn.ReLU``, ``nn.Tanh``, ... ``th.optim.Adam``, ``th.optim.RMSprop``, ``th.optim.SGD``, ...,
    ``RMSpropTFLike``, ``HerReplayBuffer``, ``NatureCNN``). Nothing is executed.

    :param text: e.g. ``"dict(net_arch=[64, 64], activation_fn=nn.ReLU)"``
    :return: the value
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise HyperparamsError(f"cannot parse {text!r}: {error.msg}") from error
    return _eval_node(tree.body, text)


def format_python_literal(value: Any) -> str:
    """
    Inverse of :func:`parse_python_literal`: write a value (possibly holding known classes) as a literal string.

    :param value: e.g. ``{"net_arch": [64], "activation_fn": th.nn.ReLU}``
    :return: e.g. ``"dict(net_arch=[64], activation_fn=nn.ReLU)"``
    """
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return repr(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, list):
        return "[" + ", ".join(format_python_literal(item) for item in value) + "]"
    if isinstance(value, tuple):
        items = [format_python_literal(item) for item in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, Mapping):
        if all(isinstance(key, str) and key.isidentifier() for key in value):
            return "dict(" + ", ".join(f"{key}={format_python_literal(item)}" for key, item in value.items()) + ")"
        return "{" + ", ".join(f"{key!r}: {format_python_literal(item)}" for key, item in value.items()) + "}"
    name = _canonical_name(value)
    if name is not None:
        return name
    raise HyperparamsError(f"{value!r} cannot be written as a safe literal (unknown object)")


# ---------------------------------------------------------------------------------------------------------------------
# What a file may make the program call
# ---------------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------------------
# Files and entries
# ---------------------------------------------------------------------------------------------------------------------


def default_hyperparams_path(algo: str) -> Path:
    """
    The hyperparameter file used when ``--conf-file`` is not given.

    :param algo: ``"reinforce"`` (this package's ``hyperparams/reinforce.yml``) or an rl_zoo3 algorithm
        (rl_zoo3's own ``hyperparams/<algo>.yml``)
    :return: the path
    """
    if algo == "reinforce":
        return Path(__file__).resolve().parent / "reinforce.yml"
    import rl_zoo3

    package = Path(rl_zoo3.__file__).resolve().parent
    folder = package if (package / "hyperparams").is_dir() else package.parent
    return folder / "hyperparams" / f"{algo}.yml"


def load_hyperparams_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """
    Read a whole hyperparameter file safely (``.yml``/``.yaml`` only: Python configs are refused), with the limits
    of :func:`load_yaml` (1 MiB, nesting, aliases, duplicate keys).

    :param path: the file
    :return: ``{entry name (env id, "atari", "default"): hyperparameters}``
    """
    if not str(path).endswith((".yml", ".yaml")):
        raise HyperparamsError(
            f"Hyperparameter file {path} must be a .yml/.yaml file: Python files and modules are not loaded "
            "because they would execute arbitrary code"
        )
    content = load_yaml(path)
    if not isinstance(content, dict) or not all(isinstance(value, dict) for value in content.values()):
        raise HyperparamsError(f"{path} must map entry names (env ids) to dicts of hyperparameters")
    return content


def select_env_entry(hyperparams_dict: Mapping[str, Any], env_id: str, is_atari: bool = False) -> tuple[str, dict[str, Any]]:
    """
    The entry for an environment, with rl_zoo3's fallbacks (``atari`` for Atari games, then ``default``).

    :param hyperparams_dict: content of a hyperparameter file
    :param env_id: environment id
    :param is_atari: whether the env is an Atari game
    :return: ``(entry name, deep copy of the entry)``
    """
    if env_id in hyperparams_dict:
        name = env_id
    elif is_atari and "atari" in hyperparams_dict:
        name = "atari"
    elif "default" in hyperparams_dict:
        name = "default"
    else:
        raise HyperparamsError(f"No hyperparameters for {env_id!r}; entries are: {', '.join(map(str, hyperparams_dict))}")
    return name, copy.deepcopy(dict(hyperparams_dict[name]))


def _is_atari(env_id: str) -> bool:
    try:
        import gymnasium as gym
        import rl_zoo3.import_envs  # noqa: F401  (registers ALE envs)

        return "AtariEnv" in str(gym.envs.registry[env_id].entry_point)
    except Exception:
        return False


def load_hyperparams(
    algo: str,
    env_id: str,
    path: str | os.PathLike[str] | None = None,
    validate: bool = True,
    trust_code: bool = False,
) -> dict[str, Any]:
    """
    Load (safely) the hyperparameters of one environment, check what they may make the program call
    (:func:`check_hyperparams_code`, for every algorithm) and, for ``algo="reinforce"``, validate them.

    :param algo: ``"reinforce"`` or an rl_zoo3 algorithm name (``"ppo"``, ``"a2c"``, ...)
    :param env_id: environment id (falls back to the ``atari``/``default`` entries like rl_zoo3)
    :param path: hyperparameter file; default: :func:`default_hyperparams_path`
    :param validate: validate a REINFORCE entry (:func:`validate_reinforce_hyperparams`)
    :param trust_code: let the entry name any importable callable, with any arguments (see
        :func:`check_hyperparams_code`)
    :return: the raw entry (strings such as ``"lin_1e-3"`` or ``"dict(...)"`` are kept; see
        :func:`build_model_kwargs` for objects)
    """
    path = default_hyperparams_path(algo) if path is None else Path(path)
    name, entry = select_env_entry(load_hyperparams_file(path), env_id, is_atari=_is_atari(env_id))
    where = f"{path} [{name}]"
    if validate and algo == "reinforce":
        validate_reinforce_hyperparams(entry, where=where, trust_code=trust_code)
    else:
        check_hyperparams_code(entry, where=where, trust_code=trust_code)
    return entry


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


def validate_hyperparams_file(path: str | os.PathLike[str], trust_code: bool = False) -> dict[str, dict[str, Any]]:
    """
    Validate every entry of a REINFORCE hyperparameter file, what ``python -m sb3_reinforce.zoo validate`` runs:
    the same checks as ``train`` (:func:`validate_hyperparams_content`); all problems are reported at once.

    :param path: the file
    :param trust_code: see :func:`check_hyperparams_code`
    :return: its content
    """
    content = load_hyperparams_file(path)
    validate_hyperparams_content(content, where=str(path), trust_code=trust_code)
    return content


# ---------------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------------


def _number(value: Any, low: float, high: float, low_open: bool = False, integer: bool = False) -> str | None:
    """None when ``value`` is a number in range, else a description of what is allowed."""
    kind = "an integer" if integer else "a number"
    low_bracket = "(" if low_open else "["
    high_bracket = "]" if math.isfinite(high) else ")"
    interval = f"{low_bracket}{low:g}, {high:g}{high_bracket}" if math.isfinite(high) else f"{low_bracket}{low:g}, inf)"
    expected = f"expected {kind} in {interval}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return expected
    if integer and not isinstance(value, numbers.Integral):
        return expected
    if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
        return expected
    return None


def _literal_value(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str):
        try:
            return parse_python_literal(value), None
        except HyperparamsError as error:
            return None, str(error)
    return value, None


def _check_policy_kwargs(value: Any) -> list[str]:
    # Classes (activation_fn, optimizer_class, ...) are checked by check_hyperparams_code
    kwargs, error = _literal_value(value)
    if error:
        return [error]
    if not isinstance(kwargs, dict):
        return ["expected a dict or a 'dict(...)' string"]
    problems = []
    for key, item in kwargs.items():
        if key not in _POLICY_KWARGS:
            problems.append(
                f"unknown policy_kwargs key {key!r}{_did_you_mean(key, _POLICY_KWARGS)}; allowed: {', '.join(_POLICY_KWARGS)}"
            )
        elif key == "net_arch":
            ok_list = isinstance(item, list) and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in item)
            ok_dict = (
                isinstance(item, dict)
                and set(item) <= {"pi", "vf"}
                and all(
                    isinstance(v, list) and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in v)
                    for v in item.values()
                )
            )
            if not (ok_list or ok_dict):
                problems.append(f"net_arch={item!r}: expected a list of positive ints or dict(pi=[...], vf=[...])")
        elif key in ("optimizer_kwargs", "features_extractor_kwargs") and not isinstance(item, dict):
            problems.append(f"{key}={item!r}: expected a dict")
        elif key in ("ortho_init", "full_std", "use_expln", "squash_output", "share_features_extractor", "normalize_images"):
            if not isinstance(item, bool):
                problems.append(f"{key}={item!r}: expected true or false")
        elif key == "log_std_init" and _number(item, -math.inf, math.inf) is not None:
            problems.append(f"log_std_init={item!r}: expected a number")
    return problems


def _check_normalize(value: Any) -> str | None:
    kwargs, error = _literal_value(value)
    if error:
        return error
    if isinstance(kwargs, bool):
        return None
    if not isinstance(kwargs, dict):
        return "expected true/false or a dict of VecNormalize arguments"
    unknown = [key for key in kwargs if key not in _NORMALIZE_KWARGS]
    if unknown:
        return f"unknown VecNormalize argument(s) {unknown}; allowed: {', '.join(_NORMALIZE_KWARGS)}"
    return None


def _did_you_mean(key: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_value(key: str, value: Any, entry: Mapping[str, Any]) -> str | list[str] | None:  # noqa: C901
    from sb3_reinforce.common.estimators import BASELINES, RETURN_MODES, baseline_values

    if key == "n_timesteps":
        return _number(value, 1, math.inf)
    if key == "policy":
        if value in _POLICIES:
            return None
        if isinstance(value, str) and "." in value:
            return None  # a class path: check_hyperparams_code imports and checks it
        return f"expected one of {', '.join(_POLICIES)} (or a trusted dotted class path)"
    if key in ("n_envs", "frame_stack", "n_steps", "stats_window_size"):
        return _number(value, 1, math.inf, integer=True)
    if key == "n_episodes":
        return None if value is None else _number(value, 1, math.inf, integer=True)
    if key == "normalize":
        return _check_normalize(value)
    if key in ("env_wrapper", "vec_env_wrapper", "callback", "rollout_buffer_class"):
        return None  # names: check_hyperparams_code imports and checks them
    if key in ("env_kwargs", "rollout_buffer_kwargs", "monitor_kwargs"):
        parsed, error = _literal_value(value)
        return error or (None if parsed is None or isinstance(parsed, dict) else "expected a dict")
    if key == "policy_kwargs":
        return _check_policy_kwargs(value)
    if key == "learning_rate":
        if isinstance(value, str):
            match = _LIN_SCHEDULE.match(value)
            if match and float(match.group("value")) > 0:
                return None
            return "expected a positive number or a linear schedule 'lin_<initial value>' such as 'lin_1e-3'"
        return _number(value, 0, math.inf, low_open=True)
    if key in ("gamma", "gae_lambda"):
        problem = _number(value, 0, 1)
        baseline = BASELINES.get("none" if entry.get("baseline") is None else entry.get("baseline"))
        if problem is None and key == "gae_lambda" and value != 1 and baseline is not None and not baseline.needs_values:
            return "gae_lambda < 1 needs baseline: value (GAE uses the learned V(s)); leave it at 1.0 otherwise"
        return problem
    if key == "return_mode":
        return None if value in RETURN_MODES else f"expected one of {', '.join(map(repr, RETURN_MODES))}"
    if key == "baseline":
        allowed = ", ".join("null" if item is None else repr(item) for item in baseline_values())
        valid = isinstance(value, str) and value != "none" and value in BASELINES
        return None if value is None or valid else f"expected one of {allowed}"
    if key in ("normalize_advantage", "reset_on_reward"):
        return None if isinstance(value, bool) else "expected true or false"
    if key == "ent_coef":
        finite = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        return None if finite else "expected a finite number"
    if key == "vf_coef":
        return _number(value, 0, math.inf)
    if key == "max_grad_norm":
        return None if value is None else _number(value, 0, math.inf, low_open=True)
    return None


def validate_reinforce_hyperparams(
    hyperparams: Mapping[str, Any], where: str = "the given entry", trust_code: bool = False
) -> None:
    """
    Check a REINFORCE rl-zoo entry: unknown keys and bad values are reported all at once, each with the entry,
    the key, the value and what is allowed. This includes :func:`check_hyperparams_code` (what the entry may make
    the program import and call).

    :param hyperparams: one entry of a hyperparameter file (raw: ``"lin_1e-3"``, ``"dict(...)"`` strings allowed)
    :param where: names the entry in the message (e.g. ``"reinforce.yml [CartPole-v1]"``)
    :param trust_code: see :func:`check_hyperparams_code`
    """
    if not isinstance(hyperparams, Mapping):
        raise HyperparamsError(f"{where}: expected a mapping of hyperparameters, got {hyperparams!r}")
    allowed = ZOO_KEYS + REINFORCE_KEYS
    problems: list[tuple[str, str]] = []
    for key, value in hyperparams.items():
        if key in _COMMAND_LINE_KEYS:
            problems.append((key, f"{key} is set by the zoo command line ({_COMMAND_LINE_KEYS[key]}), not in the file"))
            continue
        if key not in allowed:
            problems.append(
                (key, f"unknown key {key!r}{_did_you_mean(str(key), allowed)}; allowed keys: {', '.join(allowed)}")
            )
            continue
        result = _check_value(key, value, hyperparams)
        for text in [result] if isinstance(result, str) else result or []:
            problems.append((key, f"{key}: {value!r} is not allowed: {text}"))
    # The same check as for every algorithm, for the keys whose values are otherwise fine (no message twice)
    reported = {key for key, _ in problems}
    checked = {key: value for key, value in hyperparams.items() if key in allowed and key not in reported}
    code_problems = _code_problems(checked, _trusting(trust_code))
    for key, text in code_problems:
        problems.append((key, f"{key}: {_short_repr(hyperparams[key])} is not allowed: {text}"))
    for key in ("n_timesteps", "policy"):
        if key not in hyperparams:
            problems.append((key, f"{key} is required"))
    if problems:
        lines = "\n".join(f"  - {text}" for _, text in problems)
        hint = f"\n  ({_TRUST_HINT})" if code_problems else ""
        raise HyperparamsError(f"Invalid REINFORCE hyperparameters in {where}:\n{lines}{hint}", problems)


# ---------------------------------------------------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------------------------------------------------


def build_model_kwargs(hyperparams: Mapping[str, Any], trust_code: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    Split a raw entry into algorithm keyword arguments (with objects: schedules, policy_kwargs classes) and the
    zoo settings (``n_timesteps``, ``n_envs``, ``normalize``, ``frame_stack``, ``env_wrapper``, ...), the way the
    rl-zoo does, but without ``eval``, and only after :func:`check_hyperparams_code`. Useful to build a model
    outside the zoo::

        kwargs, zoo = build_model_kwargs(load_hyperparams("reinforce", "CartPole-v1"))
        env = make_vec_env("CartPole-v1", n_envs=zoo["n_envs"], wrapper_class=zoo["env_wrapper"])
        model = REINFORCE(env=env, **kwargs)

    :param hyperparams: a raw entry (e.g. from :func:`load_hyperparams`)
    :param trust_code: see :func:`check_hyperparams_code`
    :return: ``(algorithm kwargs including "policy", zoo settings)``; ``zoo["env_wrapper"]`` is a callable or None,
        ``zoo["normalize"]`` a dict of VecNormalize arguments or None
    """
    from rl_zoo3.utils import SimpleLinearSchedule, get_wrapper_class
    from stable_baselines3.common.utils import ConstantSchedule

    check_hyperparams_code(hyperparams, where="the given hyperparameters", trust_code=trust_code)
    kwargs = dict(copy.deepcopy(dict(hyperparams)))
    zoo: dict[str, Any] = {
        "n_timesteps": int(kwargs.pop("n_timesteps", 0)),
        "n_envs": int(kwargs.pop("n_envs", 1)),
        "frame_stack": kwargs.pop("frame_stack", None),
        "env_kwargs": _literal_value(kwargs.pop("env_kwargs", {}))[0] or {},
        "monitor_kwargs": _literal_value(kwargs.pop("monitor_kwargs", {}))[0] or {},
        "callback": kwargs.pop("callback", None),
    }
    normalize, _ = _literal_value(kwargs.pop("normalize", False))
    if normalize is True:
        normalize = {}
    if isinstance(normalize, dict) and "gamma" in kwargs:
        normalize = {**normalize, "gamma": kwargs["gamma"]}
    zoo["normalize"] = normalize if isinstance(normalize, dict) else None
    for key in ("env_wrapper", "vec_env_wrapper"):
        value = kwargs.pop(key, None)
        # the names were imported and checked above: rl_zoo3 imports the same modules (cached) again
        zoo[key] = get_wrapper_class({key: value}, key) if value is not None else None
    for key in ("policy_kwargs", "rollout_buffer_kwargs"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = parse_python_literal(kwargs[key])
    # Schedules, as rl_zoo3's ExpManager converts them (PPO's clip_range too)
    for key in ("learning_rate", "clip_range", "clip_range_vf", "delta_std"):
        if key not in kwargs or kwargs[key] is None:
            continue
        value = kwargs[key]
        if isinstance(value, str):
            match = _LIN_SCHEDULE.match(value)
            _raise_if(None if match else f"{key} {value!r}: expected 'lin_<value>'", key)
            assert match is not None
            kwargs[key] = SimpleLinearSchedule(float(match.group("value")))
        elif key == "learning_rate":
            kwargs[key] = ConstantSchedule(float(value))
    for key in ("policy", "rollout_buffer_class"):
        if isinstance(kwargs.get(key), str) and "." in kwargs[key]:
            kwargs[key] = _import_object(kwargs[key])
    return kwargs, zoo


def _raise_if(problem: str | None, key: str) -> None:
    if problem:
        raise HyperparamsError(f"{key}: {problem}", [(key, problem)])
