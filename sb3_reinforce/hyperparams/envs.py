"""The one vec-env factory of the zoo and the tools: SB3's ``make_vec_env``, or the fast Pong env for ``KarpathyPong-v0``."""

import os
import warnings
from typing import Any

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from sb3_reinforce.pong.registration import KARPATHY_PONG_ID

__all__ = ["make_zoo_vec_env"]


def make_zoo_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    wrapper_class: Any = None,
    monitor_dir: str | None = None,
    monitor_kwargs: dict[str, Any] | None = None,
    **make_vec_env_kwargs: Any,
) -> VecEnv:
    """
    SB3's ``make_vec_env``, except for ``KarpathyPong-v0``, which is built as the fast
    :class:`sb3_reinforce.pong.PongVecEnv` (``env_kwargs`` go to :func:`sb3_reinforce.pong.make_pong_vec_env`;
    episode statistics are written to ``monitor_dir`` by SB3's ``VecMonitor``).

    :param env_id: gymnasium id
    :param n_envs: number of environments
    :param seed: seed of the first environment (environment ``i`` gets ``seed + i``)
    :param env_kwargs: keyword arguments of the environment
    :param wrapper_class: gymnasium wrapper applied to each environment (not with ``KarpathyPong-v0``)
    :param monitor_dir: folder of the monitor files (None: none written)
    :param monitor_kwargs: keyword arguments of SB3's ``Monitor``/``VecMonitor``
    :param make_vec_env_kwargs: other ``make_vec_env`` arguments (``vec_env_cls``, ``vec_env_kwargs``, ...),
        ignored for ``KarpathyPong-v0``
    :return: the vectorized environment
    """
    if env_id != KARPATHY_PONG_ID:
        return make_vec_env(
            env_id,
            n_envs=n_envs,
            seed=seed,
            env_kwargs=env_kwargs,
            wrapper_class=wrapper_class,
            monitor_dir=monitor_dir,
            monitor_kwargs=monitor_kwargs,
            **make_vec_env_kwargs,
        )
    if wrapper_class is not None:
        raise ValueError(
            f"env_wrapper cannot be used with {KARPATHY_PONG_ID}: its games run in ale-py's native vector "
            "environment, with Karpathy's preprocessing already applied; use ALE/Pong-v5 for gymnasium wrappers"
        )
    from sb3_reinforce.pong.vec_env import make_pong_vec_env

    env = make_pong_vec_env(n_envs=n_envs, seed=seed, **(env_kwargs or {}))
    if monitor_dir is None:
        return env
    os.makedirs(monitor_dir, exist_ok=True)
    info_keywords = tuple((monitor_kwargs or {}).get("info_keywords", ()))
    with warnings.catch_warnings():
        # PongVecEnv already writes the episode statistics Monitor would; VecMonitor's are the same numbers
        warnings.filterwarnings("ignore", message=".*already wrapped with a `Monitor`", category=UserWarning)
        return VecMonitor(env, os.path.join(monitor_dir, "0"), info_keywords=info_keywords)
