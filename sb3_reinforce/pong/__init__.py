"""
Karpathy's "Pong from Pixels": the preprocessing, the gymnasium wrappers, the fast vectorized env on ale-py's
``AtariVectorEnv``, the Karpathy policy and agent, and the ``KarpathyPong-v0`` registration.
"""

from sb3_reinforce.pong.karpathy import KARPATHY_HYPERPARAMS, KarpathyPolicy, karpathy_pong
from sb3_reinforce.pong.registration import KARPATHY_PONG_ID, register_envs
from sb3_reinforce.pong.vec_env import PongVecEnv, make_pong_vec_env

__all__ = [
    "KARPATHY_HYPERPARAMS",
    "KARPATHY_PONG_ID",
    "KarpathyPolicy",
    "PongVecEnv",
    "karpathy_pong",
    "make_pong_vec_env",
    "register_envs",
]
