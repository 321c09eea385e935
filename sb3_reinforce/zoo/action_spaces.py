"""
Whether an rl_zoo3 algorithm supports an env's action space, asked before anything is trained.

SB3's algorithms pass their ``supported_action_spaces`` to ``BaseAlgorithm.__init__``, which asserts on the env's
action space (``stable_baselines3/common/base_class.py``) and does not keep the tuple: the only way to ask is to
build the algorithm on the env. :func:`supports_action_space` does that without its networks or buffers
(``_init_setup_model=False``), so that the answer is SB3's own, for any algorithm in ``rl_zoo3.ALGOS``.
"""

from typing import Any

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.safety import SUPPORTED_ACTION_SPACES, UsageError

__all__ = ["algorithms_supporting", "check_action_space", "supports_action_space"]

# The start of the message of SB3's assertion (BaseAlgorithm.__init__)
_SB3_ACTION_SPACE_ASSERTION = "The algorithm only supports"


def supports_action_space(algo_class: type, env: gym.Env | VecEnv) -> bool:
    """
    Whether ``algo_class`` accepts the action space of ``env``: for REINFORCE its
    :data:`~sb3_reinforce.common.safety.SUPPORTED_ACTION_SPACES`, for the others SB3's own check, by building the
    algorithm on ``env`` without networks (any other error of that build is not about the action space and is left
    to the real build).

    :param algo_class: an algorithm class, e.g. ``stable_baselines3.DQN``
    :param env: the env (gymnasium or vectorized), not modified
    :return: False only if the algorithm refuses the action space
    """
    from sb3_reinforce import REINFORCE

    if issubclass(algo_class, REINFORCE):
        return isinstance(env.action_space, SUPPORTED_ACTION_SPACES)
    # Any policy the algorithm knows (RecurrentPPO has no "MlpPolicy"): the action space is checked before the policy
    policy = next(iter(getattr(algo_class, "policy_aliases", {}) or {}), "MlpPolicy")
    try:
        algo_class(policy, env, verbose=0, _init_setup_model=False)
    except AssertionError as error:
        return not str(error).startswith(_SB3_ACTION_SPACE_ASSERTION)
    except Exception:  # not about the action space (observation space, n_envs, ...): the real build reports it
        return True
    return True


def algorithms_supporting(env: gym.Env | VecEnv) -> list[str]:
    """
    The names in ``rl_zoo3.ALGOS`` (REINFORCE registered) of the algorithms that support ``env``'s action space.

    :param env: the env
    :return: e.g. ``["a2c", "dqn", "ppo", ...]``, in ``ALGOS``'s order
    """
    from rl_zoo3.utils import ALGOS

    from sb3_reinforce.zoo.running import register_reinforce

    register_reinforce()
    return [name for name, algo_class in ALGOS.items() if supports_action_space(algo_class, env)]


def check_action_space(algo: str, env: gym.Env | VecEnv, env_id: str) -> None:
    """
    Raise :class:`~sb3_reinforce.common.safety.UsageError` when the rl_zoo3 algorithm ``algo`` does not support the
    action space of ``env``, naming the algorithm, the space and the algorithms that support it.

    :param algo: rl_zoo3's name of the algorithm (``--algo``); a name not in ``ALGOS`` is left to rl_zoo3
    :param env: the env the algorithm would train on
    :param env_id: its id, for the message
    """
    from rl_zoo3.utils import ALGOS

    algo_class = ALGOS.get(algo)
    if algo_class is None or supports_action_space(algo_class, env):
        return
    space = env.action_space
    others = algorithms_supporting(env)
    supported = f"the algorithms that support it: {', '.join(others)}" if others else "no algorithm of rl_zoo3 supports it"
    raise UsageError(f"--algo {algo} does not support the action space of {env_id}, {space}; {supported}")


def check_env_action_space(algo: str, env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
    """
    :func:`check_action_space` on a single env made with ``gymnasium.make(env_id, **env_kwargs)`` (closed after).

    :param algo: rl_zoo3's name of the algorithm
    :param env_id: a registered env id
    :param env_kwargs: the env's keyword arguments (``--env-kwargs``)
    """
    try:
        env = gym.make(env_id, **(env_kwargs or {}))
    except TypeError as error:  # an unknown keyword argument
        raise UsageError(f"--env-kwargs {env_kwargs!r}: gymnasium.make({env_id!r}) refused them: {error}") from error
    try:
        check_action_space(algo, env, env_id)
    finally:
        env.close()
