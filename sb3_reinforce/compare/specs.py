"""
The rows of a comparison: ``--algos`` tokens, ``<algo>[@<env id>]`` or
``reinforce[:<return_mode>][+<baseline>][+norm|+nonorm][@<env id>]``. ``@<env id>`` trains the row on another env
than ``--env`` (e.g. ``ppo@ALE/Pong-v5``: rl-zoo's Atari PPO next to the ``KarpathyPong-v0`` rows); every row is
evaluated with the protocol of ``--env``.
"""

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
    :param env_id: the env this row trains on (None: the comparison's ``--env``)
    """

    label: str
    algo: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_id: str | None = None

    @property
    def file_label(self) -> str:
        """The label as it appears in file names (no ``:``, ``+`` nor ``/``)."""
        return self.label.replace(":", "-").replace("+", "_").replace("/", "-")

    def train_env_id(self, env_id: str) -> str:
        """The env this row trains on, in a comparison on ``env_id``."""
        return self.env_id or env_id


def parse_algo_spec(token: str) -> AlgoSpec:
    """
    Parse ``reinforce[:<return_mode>][+<baseline>][+norm|+nonorm][@<env id>]`` or ``<algo>[@<env id>]``.

    :param token: the ``--algos`` token
    :return: the spec
    :raises AlgoSpecError: naming the bad part and the allowed values
    """
    from rl_zoo3 import ALGOS

    text = token.strip()
    body, at, row_env = text.partition("@")
    if at and not row_env.strip():
        raise AlgoSpecError(f"{token!r}: '@' must be followed by an env id, e.g. ppo@ALE/Pong-v5")
    env_id = row_env.strip() or None
    head, *mods = body.split("+")
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
        return AlgoSpec(label=algo + (f"@{env_id}" if env_id else ""), algo=algo, env_id=env_id)
    if sep and not mode:
        raise AlgoSpecError(f"{token!r}: ':' must be followed by a return mode ({', '.join(RETURN_MODES)})")
    try:
        overrides = parse_estimator_variant("+".join([mode, *mods]))
    except ValueError as error:
        raise AlgoSpecError(f"{token!r}: {str(error).split(': ', 1)[1]}") from error
    return AlgoSpec(label=text, algo="reinforce", overrides=overrides, env_id=env_id)
