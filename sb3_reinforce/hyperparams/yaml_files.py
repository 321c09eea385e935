"""
Safe YAML loading: a bounded ``yaml.SafeLoader`` (size, depth, aliases, duplicate keys; :func:`load_yaml`).

Nothing in a document is executed: Python tags are refused, except the ``OrderedDict`` stock rl_zoo3 writes in
``config.yml``. :func:`to_yaml_data` turns values into what ``yaml.safe_dump`` writes and :func:`load_yaml` reads.
"""

import hashlib
import json
import numbers
import os
import stat
from collections.abc import Mapping
from typing import Any

import yaml

from sb3_reinforce.hyperparams.errors import HyperparamsError
from sb3_reinforce.hyperparams.literals import format_python_literal

__all__ = [
    "MAX_YAML_ALIASES",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "ZooSafeLoader",
    "load_yaml",
    "parse_yaml",
    "to_yaml_data",
]

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


def canonical_sha256(data: Any) -> str:
    """sha256 of the canonical JSON of plain ``data`` (sorted keys, no spaces): a hash that two runs agree on."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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
