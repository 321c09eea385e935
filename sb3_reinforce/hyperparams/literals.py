"""
The literal parser of hyperparameter strings (``"dict(net_arch=[64], activation_fn=nn.ReLU)"``), without ``eval``.

It accepts numbers, strings, booleans, ``None``, lists, tuples, dicts, ``dict(key=value, ...)`` and a fixed table of
names (activation functions, optimizers, a few SB3 classes); :func:`format_python_literal` writes such values back.
"""

import ast
import numbers
from collections.abc import Mapping
from typing import Any

from sb3_reinforce.hyperparams.errors import HyperparamsError

__all__ = ["format_python_literal", "parse_python_literal"]


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


def _literal_value(value: Any) -> tuple[Any, str | None]:
    """``(parsed value, None)`` for a string that parses (any other value as it is), ``(None, error)`` otherwise."""
    if isinstance(value, str):
        try:
            return parse_python_literal(value), None
        except HyperparamsError as error:
            return None, str(error)
    return value, None
