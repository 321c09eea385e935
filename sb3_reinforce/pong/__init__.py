"""
Karpathy's "Pong from Pixels": the preprocessing, the gymnasium wrappers, the fast vectorized env on ale-py's
``AtariVectorEnv``, the Karpathy policy and agent, the ``KarpathyPong-v0`` registration, and the one evaluation
protocol by which a Pong agent is scored (:func:`evaluate_pong`). Every env defaults to sticky actions
(``repeat_action_probability=0.25``, as ``ALE/Pong-v5``).
"""

from sb3_reinforce.pong.evaluation import PONG_EVAL_SEED_BASE, PongEvaluation, evaluate_pong
from sb3_reinforce.pong.karpathy import KARPATHY_HYPERPARAMS, KarpathyPolicy, karpathy_pong
from sb3_reinforce.pong.registration import KARPATHY_PONG_ID, register_envs
from sb3_reinforce.pong.vec_env import PongVecEnv, make_pong_vec_env

__all__ = [
    "KARPATHY_HYPERPARAMS",
    "KARPATHY_PONG_ID",
    "PONG_EVAL_SEED_BASE",
    "KarpathyPolicy",
    "PongEvaluation",
    "PongVecEnv",
    "evaluate_pong",
    "karpathy_pong",
    "make_pong_vec_env",
    "register_envs",
]
