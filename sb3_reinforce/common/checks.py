"""Checks of user-given values shared by every validator: numeric ranges, hints for unknown names."""

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = ["check_number", "did_you_mean", "number_problem"]


def _bound(bound: float, python: bool) -> str:
    if math.isinf(bound):
        return "inf" if bound > 0 else "-inf"
    if python:
        return repr(bound)  # as the caller declared it: 0.0 for a float argument, 4294967295 for an int one
    # Compact, but every digit of an integral bound (":g" would write 2**32 - 1 as 4.29497e+09)
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _expected(low: float, high: float, low_open: bool, integer: bool, optional: bool, python: bool) -> str:
    kind = "an integer" if integer else "a number"
    if math.isinf(low) and math.isinf(high):
        allowed = f"{kind} (finite)"
    else:
        upper = f"{_bound(high, python)}]" if math.isfinite(high) else "inf)"
        allowed = f"{kind} in {'(' if low_open else '['}{_bound(low, python)}, {upper}"
    return f"expected {allowed}" + (f" or {'None' if python else 'null'}" if optional else "")


def number_problem(
    value: Any,
    low: float,
    high: float,
    low_open: bool = False,
    integer: bool = False,
    optional: bool = False,
    python: bool = False,
) -> str | None:
    """
    None when ``value`` is a finite number (an integer if ``integer``) in the interval, else what is allowed.

    Python and numpy numbers count as numbers, booleans do not.

    :param value: the value to check
    :param low: lower bound (included unless ``low_open``; ``-math.inf`` for none)
    :param high: upper bound (included; ``math.inf`` for none)
    :param low_open: exclude ``low`` itself
    :param integer: require an integer
    :param optional: also accept None
    :param python: write the bounds and None as Python literals, as declared (``[0.0, 1.0]``, ``None``), for a
        message to a Python caller; otherwise compactly, as in a YAML file or on a command line (``[0, 1]``,
        ``null``)
    :return: None, or e.g. ``"expected an integer in [1, inf)"``
    """
    if optional and value is None:
        return None
    expected = _expected(low, high, low_open, integer, optional, python)
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        return expected
    # An int is finite (math.isfinite of one above float's range raises OverflowError)
    finite = isinstance(value, numbers.Integral) or math.isfinite(value)
    if not finite or value < low or value > high or (low_open and value == low):
        return expected
    return None


def check_number(name: str, value: Any, low: float, high: float, **options: bool) -> None:
    """
    Raise a ``TypeError`` (not a number) or ``ValueError`` (out of range, NaN, inf) naming ``name``, the value and
    the allowed interval, its bounds written as declared (see :func:`number_problem` with ``python=True``).

    :param name: the argument's name, as the user wrote it
    :param value: its value
    :param low: lower bound (included unless ``low_open``; ``-math.inf`` for none)
    :param high: upper bound (included; ``math.inf`` for none)
    :param options: ``low_open``, ``integer``, ``optional`` of :func:`number_problem`
    """
    problem = number_problem(value, low, high, **options, python=True)
    if problem is None:
        return
    kind = numbers.Integral if options.get("integer", False) else numbers.Real
    error = TypeError if isinstance(value, bool) or not isinstance(value, kind) else ValueError
    raise error(f"{name}={value!r} is not allowed: {problem}")


def did_you_mean(key: str, choices: Iterable[str]) -> str:
    """The hint of an unknown name: ``" (did you mean 'x'?)"`` for the closest of ``choices``, else ``""``."""
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
