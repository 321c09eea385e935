"""The rows of a comparison: ``--algos`` tokens, ``<algo>`` or ``reinforce[:<return_mode>][+<baseline>][+norm|+nonorm]``."""

from __future__ import annotations

import dataclasses
from typing import Any

from sb3_reinforce.common.estimators import RETURN_MODES, parse_estimator_variant

__all__ = ["AlgoSpec", "AlgoSpecError", "parse_algo_spec"]


class AlgoSpecError(ValueError):
    """A ``--algos`` token that does not follow the syntax."""


@dataclasses.dataclass(frozen=True)
class AlgoSpec:
    """
    One row of the comparison: an algorithm and the hyperparameters that override its zoo entry.

    :param label: the token as given (used in file names and tables)
    :param algo: ``"reinforce"`` or an rl_zoo3 algorithm name
    :param overrides: hyperparameters replacing the zoo entry's (``return_mode``, ``baseline``,
        ``normalize_advantage``)
    """

    label: str
    algo: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def file_label(self) -> str:
        """The label as it appears in file names (no ``:`` nor ``+``)."""
        return self.label.replace(":", "-").replace("+", "_")


def parse_algo_spec(token: str) -> AlgoSpec:
    """
    Parse ``reinforce[:<return_mode>][+<baseline>][+norm|+nonorm]`` or a plain algorithm name.

    :param token: the ``--algos`` token
    :return: the spec
    :raises AlgoSpecError: naming the bad part and the allowed values
    """
    from rl_zoo3 import ALGOS

    text = token.strip()
    head, *mods = text.split("+")
    algo, sep, mode = head.partition(":")
    algo = algo.lower()
    if algo != "reinforce":
        if sep or mods:
            raise AlgoSpecError(
                f"{token!r}: only reinforce takes ':<return_mode>' and '+<option>' parts; "
                f"{algo!r} is used with its zoo settings"
            )
        if algo not in ALGOS:
            raise AlgoSpecError(f"{token!r}: unknown algorithm {algo!r}; use reinforce or one of {', '.join(sorted(ALGOS))}")
        return AlgoSpec(label=algo, algo=algo)
    if sep and not mode:
        raise AlgoSpecError(f"{token!r}: ':' must be followed by a return mode ({', '.join(RETURN_MODES)})")
    try:
        overrides = parse_estimator_variant("+".join([mode, *mods]))
    except ValueError as error:
        raise AlgoSpecError(f"{token!r}: {str(error).split(': ', 1)[1]}") from error
    return AlgoSpec(label=text, algo="reinforce", overrides=overrides)
