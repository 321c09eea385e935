"""
Environment ids registered by this package.

``KarpathyPong-v0`` is the environment of Karpathy's "Pong from Pixels" agent: Atari Pong with int8 difference
frames of 6400 values and the actions UP/DOWN, on the emulator of ``ALE/Pong-v5`` (frameskip 4, sticky actions with
probability 0.25). ``gymnasium.make("KarpathyPong-v0")`` gives one game through the gymnasium wrapper chain
(:func:`sb3_reinforce.pong.wrappers.make_karpathy_pong_env`); the zoo and the tools build N games on ale-py's native
vector environment instead (:func:`sb3_reinforce.pong.make_pong_vec_env`): the same observations and emulator
settings, several times faster. ``gymnasium.make("KarpathyPong-v0", repeat_action_probability=0.0)`` is the
deterministic emulator.
"""

import gymnasium as gym

__all__ = ["KARPATHY_PONG_ID", "PONG_REWARD_THRESHOLD", "STICKY_ACTION_PROBABILITY", "register_envs"]

KARPATHY_PONG_ID = "KarpathyPong-v0"
#: Sticky actions of every Pong env of the package by default and of the evaluation protocol: ``ALE/Pong-v5``'s
#: ``repeat_action_probability`` (Machado et al. 2018)
STICKY_ACTION_PROBABILITY: float = 0.25
#: ``reward_threshold`` of ``KarpathyPong-v0``: a score (points won - lost) of 0 or more, level with the opponent
PONG_REWARD_THRESHOLD: float = 0.0


def register_envs() -> None:
    """Register ``KarpathyPong-v0`` with gymnasium (idempotent; done when ``sb3_reinforce`` is imported)."""
    if KARPATHY_PONG_ID not in gym.registry:
        # The sticky actions are in the spec (gymnasium.spec(...).kwargs, env.spec), as ALE/Pong-v5 records them
        gym.register(
            KARPATHY_PONG_ID,
            entry_point="sb3_reinforce.pong.wrappers:make_karpathy_pong_env",
            kwargs={"repeat_action_probability": STICKY_ACTION_PROBABILITY},
            # A game's score is points won - lost: 0 or more is a game not lost to the built-in opponent
            # (the compare tool's "steps to threshold")
            reward_threshold=PONG_REWARD_THRESHOLD,
        )
