"""
The one path from a hyperparameter entry to a model on its envs (:func:`make_model_from_entry`).

:func:`build_model_kwargs` splits an entry into the algorithm's arguments and the rl-zoo's settings,
:func:`make_vec_env_from_entry` builds the envs from those settings as rl_zoo3's ``ExperimentManager`` does
(``env_kwargs``, ``env_wrapper``, ``monitor_kwargs``, ``vec_env_wrapper``, ``normalize``, ``frame_stack``), on
:func:`make_zoo_vec_env`: SB3's ``make_vec_env``, or the fast Pong env for ``KarpathyPong-v0``. The comparison
tool, the variance study, ``karpathy_pong`` and the zoo's ``KarpathyPong-v0`` envs are built here.
"""

import copy
import os
from collections.abc import Callable, Mapping
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize

from sb3_reinforce.hyperparams.code_check import _import_object, check_hyperparams_code
from sb3_reinforce.hyperparams.errors import HyperparamsError
from sb3_reinforce.hyperparams.literals import _literal_value, parse_python_literal
from sb3_reinforce.hyperparams.validation import _LIN_SCHEDULE
from sb3_reinforce.pong.registration import KARPATHY_PONG_ID

__all__ = [
    "EVAL_SEED_OFFSET",
    "SCHEDULE_KEYS",
    "build_model_kwargs",
    "make_model_from_entry",
    "make_vec_env_from_entry",
    "make_zoo_vec_env",
    "schedule_from_entry",
]

#: Entry keys that may hold an rl-zoo ``lin_<value>`` schedule (:func:`schedule_from_entry`).
SCHEDULE_KEYS: tuple[str, ...] = ("learning_rate", "clip_range", "clip_range_vf", "delta_std")

#: Seed of the evaluation env of :func:`make_model_from_entry`: the model's seed plus this (other episodes than
#: the training env's first ones).
EVAL_SEED_OFFSET: int = 10_000


def build_model_kwargs(hyperparams: Mapping[str, Any], trust_code: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    Split a raw entry into algorithm keyword arguments (with objects: schedules, policy_kwargs classes) and the
    zoo settings (``n_timesteps``, ``n_envs``, ``normalize``, ``frame_stack``, ``env_wrapper``, ...), the way the
    rl-zoo does, but without ``eval``, and only after :func:`check_hyperparams_code`. Useful to build a model
    outside the zoo::

        kwargs, zoo = build_model_kwargs(load_hyperparams("reinforce", "CartPole-v1"))
        env = make_vec_env_from_entry("CartPole-v1", zoo, seed=0)
        model = REINFORCE(env=env, seed=0, **kwargs)

    (what :func:`make_model_from_entry` does).

    :param hyperparams: a raw entry (e.g. from :func:`load_hyperparams`)
    :param trust_code: see :func:`check_hyperparams_code`
    :return: ``(algorithm kwargs including "policy", zoo settings)``; ``zoo["env_wrapper"]`` is a callable or None,
        ``zoo["normalize"]`` a dict of VecNormalize arguments or None
    """
    from rl_zoo3.utils import get_wrapper_class

    check_hyperparams_code(hyperparams, where="the given hyperparameters", trust_code=trust_code)
    kwargs = dict(copy.deepcopy(dict(hyperparams)))
    zoo: dict[str, Any] = {
        "n_timesteps": int(kwargs.pop("n_timesteps", 0)),
        "n_envs": int(kwargs.pop("n_envs", 1)),
        "frame_stack": kwargs.pop("frame_stack", None),
        "env_kwargs": _literal_value(kwargs.pop("env_kwargs", {}))[0] or {},
        "monitor_kwargs": _literal_value(kwargs.pop("monitor_kwargs", {}))[0] or {},
        "callback": kwargs.pop("callback", None),
    }
    normalize, _ = _literal_value(kwargs.pop("normalize", False))
    if normalize is True:
        normalize = {}
    if isinstance(normalize, dict) and "gamma" in kwargs:
        normalize = {**normalize, "gamma": kwargs["gamma"]}
    zoo["normalize"] = normalize if isinstance(normalize, dict) else None
    for key in ("env_wrapper", "vec_env_wrapper"):
        value = kwargs.pop(key, None)
        # the names were imported and checked above: rl_zoo3 imports the same modules (cached) again
        zoo[key] = get_wrapper_class({key: value}, key) if value is not None else None
    for key in ("policy_kwargs", "rollout_buffer_kwargs"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = parse_python_literal(kwargs[key])
    # Schedules, as rl_zoo3's ExpManager converts them (PPO's clip_range too)
    for key in SCHEDULE_KEYS:
        if key in kwargs and kwargs[key] is not None:
            kwargs[key] = schedule_from_entry(key, kwargs[key])
    for key in ("policy", "rollout_buffer_class"):
        if isinstance(kwargs.get(key), str) and "." in kwargs[key]:
            kwargs[key] = _import_object(kwargs[key])
    return kwargs, zoo


def schedule_from_entry(key: str, value: str | float) -> Any:
    """
    A schedulable entry value as the algorithm takes it, the way rl_zoo3's ``ExperimentManager`` converts it:
    ``"lin_<value>"`` is rl_zoo3's ``SimpleLinearSchedule`` (from the value at the start of ``learn()`` to 0 at
    its ``total_timesteps``), a number is a constant (a ``ConstantSchedule`` for ``learning_rate``, as SB3 makes).

    :param key: the entry's key (one of :data:`SCHEDULE_KEYS`; named in the error)
    :param value: the entry's value
    :return: the schedule, or the number for keys other than ``learning_rate``
    :raises HyperparamsError: for a string that is not ``lin_<value>``
    """
    from rl_zoo3.utils import SimpleLinearSchedule
    from stable_baselines3.common.utils import ConstantSchedule

    if isinstance(value, str):
        match = _LIN_SCHEDULE.match(value)
        _raise_if(None if match else f"{key} {value!r}: expected a number or 'lin_<value>'", key)
        assert match is not None
        return SimpleLinearSchedule(float(match.group("value")))
    return ConstantSchedule(float(value)) if key == "learning_rate" else value


def _raise_if(problem: str | None, key: str) -> None:
    if problem:
        raise HyperparamsError(f"{key}: {problem}", [(key, problem)])


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
    :class:`sb3_reinforce.pong.PongVecEnv` in SB3's ``VecMonitor`` (``env_kwargs`` go to
    :func:`sb3_reinforce.pong.make_pong_vec_env`; the episode statistics are written to ``monitor_dir``).

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

    # make_pong_vec_env puts SB3's VecMonitor around PongVecEnv; it writes the monitor file here
    monitor_filename = None
    if monitor_dir is not None:
        os.makedirs(monitor_dir, exist_ok=True)
        monitor_filename = os.path.join(monitor_dir, "0")
    info_keywords = tuple((monitor_kwargs or {}).get("info_keywords", ()))
    return make_pong_vec_env(
        n_envs=n_envs, seed=seed, monitor_filename=monitor_filename, info_keywords=info_keywords, **(env_kwargs or {})
    )


def make_vec_env_from_entry(
    env_id: str,
    zoo_settings: Mapping[str, Any],
    n_envs: int | None = None,
    seed: int | None = None,
    evaluation: bool = False,
    monitor_dir: str | None = None,
    normalize_env: Callable[[VecEnv], VecEnv] | None = None,
) -> VecEnv:
    """
    The envs of a hyperparameter entry, wrapped in the order of rl_zoo3's ``ExperimentManager.create_envs``:
    :func:`make_zoo_vec_env` (``env_kwargs``, ``env_wrapper``, ``monitor_kwargs``; ``KarpathyPong-v0`` is the fast
    ``PongVecEnv``), then ``vec_env_wrapper``, then ``VecNormalize`` (``normalize``), then ``VecFrameStack``
    (``frame_stack``): ``VecFrameStack(VecNormalize(...))``, the frames are normalized before they are stacked.

    :param env_id: gymnasium id
    :param zoo_settings: the zoo settings of the entry (the second value of :func:`build_model_kwargs`)
    :param n_envs: number of environments (None: the entry's ``n_envs``)
    :param seed: seed of the first environment (environment ``i`` gets ``seed + i``)
    :param evaluation: an evaluation env: ``VecNormalize`` with ``training=False`` and ``norm_reward=False`` (as
        rl_zoo3's; copy the training env's statistics into it, e.g. with ``sync_envs_normalization``)
    :param monitor_dir: folder of the monitor files (None: none written)
    :param normalize_env: replaces the ``VecNormalize`` step (the zoo passes rl_zoo3's own, which also loads the
        statistics of the agent it continues training)
    :return: the vectorized environment
    """
    env = make_zoo_vec_env(
        env_id,
        n_envs=zoo_settings.get("n_envs", 1) if n_envs is None else n_envs,
        seed=seed,
        env_kwargs=zoo_settings.get("env_kwargs"),
        wrapper_class=zoo_settings.get("env_wrapper"),
        monitor_dir=monitor_dir,
        monitor_kwargs=zoo_settings.get("monitor_kwargs"),
    )
    if zoo_settings.get("vec_env_wrapper") is not None:
        env = zoo_settings["vec_env_wrapper"](env)
    normalize = zoo_settings.get("normalize")
    if normalize_env is not None:
        env = normalize_env(env)
    elif normalize is not None:
        # As rl_zoo3: an evaluation env neither updates the statistics nor normalizes the reward, whatever the entry
        env = VecNormalize(env, **({**normalize, "training": False, "norm_reward": False} if evaluation else normalize))
    if zoo_settings.get("frame_stack") is not None:
        env = VecFrameStack(env, int(zoo_settings["frame_stack"]))
    return env


def make_model_from_entry(
    algo: str,
    env_id: str,
    entry: Mapping[str, Any],
    seed: int | None = None,
    n_envs: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    evaluation_env: bool = True,
    trust_code: bool = False,
    **overrides: Any,
) -> tuple[BaseAlgorithm, VecEnv, VecEnv | None]:
    """
    A model with its training env (and an evaluation env) from a hyperparameter entry: :func:`build_model_kwargs`,
    then :func:`make_vec_env_from_entry`, then the algorithm. The entry is not validated here (use
    :func:`~sb3_reinforce.hyperparams.load_hyperparams`, which is); what it names is checked
    (:func:`~sb3_reinforce.hyperparams.check_hyperparams_code`).

    .. code-block:: python

        entry = load_hyperparams("reinforce", "CartPole-v1")
        model, env, eval_env = make_model_from_entry("reinforce", "CartPole-v1", entry, seed=0, device="cpu")

    :param algo: ``"reinforce"`` or an rl_zoo3 algorithm (``"ppo"``, ``"a2c"``, ...)
    :param env_id: gymnasium id
    :param entry: a raw entry (``"lin_1e-3"``, ``"dict(...)"`` strings allowed)
    :param seed: seed of the model and of the training env; the evaluation env gets ``seed + EVAL_SEED_OFFSET``
    :param n_envs: number of training environments (None: the entry's ``n_envs``)
    :param env_kwargs: environment arguments added to the entry's ``env_kwargs`` (they take precedence)
    :param evaluation_env: also build the evaluation env (one environment, see :func:`make_vec_env_from_entry`)
    :param trust_code: see :func:`~sb3_reinforce.hyperparams.check_hyperparams_code`
    :param overrides: algorithm arguments replacing the entry's (``device``, ``verbose``, ``learning_rate``, ...)
    :return: ``(model, training env, evaluation env or None)``
    """
    if algo == "reinforce":
        from sb3_reinforce import REINFORCE

        algo_class: type[BaseAlgorithm] = REINFORCE
    else:
        from rl_zoo3 import ALGOS

        if algo not in ALGOS:
            raise ValueError(f"algo={algo!r} is not allowed: use 'reinforce' or one of {', '.join(sorted(ALGOS))}")
        algo_class = ALGOS[algo]
    kwargs, zoo = build_model_kwargs(entry, trust_code=trust_code)
    if env_kwargs:
        zoo = {**zoo, "env_kwargs": {**zoo["env_kwargs"], **env_kwargs}}
    env = make_vec_env_from_entry(env_id, zoo, n_envs=n_envs, seed=seed)
    eval_env = None
    if evaluation_env:
        eval_seed = None if seed is None else seed + EVAL_SEED_OFFSET
        eval_env = make_vec_env_from_entry(env_id, zoo, n_envs=1, seed=eval_seed, evaluation=True)
    model = algo_class(env=env, **{**kwargs, "seed": seed, **overrides})
    return model, env, eval_env
