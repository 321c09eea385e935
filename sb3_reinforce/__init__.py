"""REINFORCE (Monte-Carlo policy gradient) as a first-class Stable-Baselines3 algorithm."""

from sb3_reinforce.pong.registration import register_envs
from sb3_reinforce.reinforce import REINFORCE

register_envs()

__version__ = "0.1.0"

__all__ = ["REINFORCE", "__version__"]
