"""The one range check of numeric arguments: a description of what is allowed, or an error naming the argument."""

import math
import numbers
from typing import Any

__all__ = ["check_number", "number_problem"]


def _interval(low: float, high: float, low_open: bool) -> str:
    upper = f"{high:g}]" if math.isfinite(high) else "inf)"
    return f"{'(' if low_open else '['}{low:g}, {upper}"


def number_problem(value: Any, low: float, high: float, low_open: bool = False, integer: bool = False) -> str | None:
    """
    None when ``value`` is a finite number (an integer if ``integer``) in the interval, else what is allowed.

    Python and numpy numbers count as numbers, booleans do not.

    :param value: the value to check
    :param low: lower bound (included unless ``low_open``)
    :param high: upper bound (included; ``math.inf`` for none)
    :param low_open: exclude ``low`` itself
    :param integer: require an integer
    :return: None, or e.g. ``"expected an integer in [1, inf)"``
    """
    expected = f"expected {'an integer' if integer else 'a number'} in {_interval(low, high, low_open)}"
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        return expected
    if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
        return expected
    return None


def check_number(name: str, value: Any, low: float, high: float, low_open: bool = False, integer: bool = False) -> None:
    """
    Raise a ``TypeError`` (not a number) or ``ValueError`` (out of range, NaN, inf) naming ``name``, the value and
    the allowed interval; see :func:`number_problem`.

    :param name: the argument's name, as the user wrote it
    :param value: its value
    :param low: lower bound (included unless ``low_open``)
    :param high: upper bound (included; ``math.inf`` for none)
    :param low_open: exclude ``low`` itself
    :param integer: require an integer
    """
    problem = number_problem(value, low, high, low_open, integer)
    if problem is None:
        return
    kind = numbers.Integral if integer else numbers.Real
    error = TypeError if isinstance(value, bool) or not isinstance(value, kind) else ValueError
    raise error(f"{name}={value!r} is not allowed: {problem}")
