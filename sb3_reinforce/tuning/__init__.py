"""
Optuna search space for REINFORCE, in the format of rl_zoo3's ``HYPERPARAMS_SAMPLER``/``HYPERPARAMS_CONVERTER``,
and export of a study's best trial as a validated hyperparameter-file entry.
"""

import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, distribution_to_json
from torch import nn

from sb3_reinforce.common.checks import check_number
from sb3_reinforce.common.estimators import BASELINES, RETURN_MODES
from sb3_reinforce.hyperparams import (
    HyperparamsError,
    canonical_sha256,
    check_hyperparams_code,
    format_python_literal,
    load_hyperparams,
    parse_python_literal,
    to_yaml_data,
    validate_reinforce_hyperparams,
)

__all__ = [
    "LEARNING_RATE_RANGE",
    "LEAVE_ONE_OUT_BASELINES",
    "NET_ARCHS",
    "N_EPISODES_CHOICES",
    "N_STEPS_CHOICES",
    "SAMPLED_KEYS",
    "STUDY_ATTR_ALGO",
    "STUDY_ATTR_BUDGET",
    "STUDY_ATTR_ENV",
    "STUDY_ATTR_HYPERPARAMS",
    "STUDY_ATTR_SEARCH_SPACE",
    "STUDY_ATTR_SEARCH_SPACE_SHA256",
    "TRIAL_ATTR_BUDGET",
    "TRIAL_ATTR_GAMMA",
    "StudyError",
    "best_trial_hyperparams",
    "canonical_sha256",
    "convert_reinforce_params",
    "describe_search_space",
    "first_update_steps",
    "journal_storage",
    "load_study",
    "merge_policy_kwargs",
    "reinforce_search_space",
    "sample_reinforce_params",
    "select_trial",
    "trial_params_to_yaml_entry",
]

#: Study user attributes written by ``python -m sb3_reinforce.zoo train --optimize`` (used by the export).
STUDY_ATTR_ALGO = "sb3_reinforce:algo"
STUDY_ATTR_ENV = "sb3_reinforce:env_id"
STUDY_ATTR_HYPERPARAMS = "sb3_reinforce:hyperparams"
#: The budget every trial of the study runs with (:func:`study_protocol`); also set on each trial, where the
#: sampler reads it.
STUDY_ATTR_BUDGET = "sb3_reinforce:budget"
#: Readable description of the search space (sampled distributions and fixed entry values) and its sha256.
STUDY_ATTR_SEARCH_SPACE = "sb3_reinforce:search_space"
STUDY_ATTR_SEARCH_SPACE_SHA256 = "sb3_reinforce:search_space_sha256"
TRIAL_ATTR_BUDGET = STUDY_ATTR_BUDGET
#: The trial attribute with the sampled discount, under the name rl_zoo3's samplers give it (the zoo normalizes
#: returns with it).
TRIAL_ATTR_GAMMA = "gamma"

#: Network sizes of the search space (the ``vf`` part is only built with ``baseline="value"``).
NET_ARCHS: dict[str, dict[str, list[int]]] = {
    "tiny": dict(pi=[64], vf=[64]),
    "small": dict(pi=[64, 64], vf=[64, 64]),
    "medium": dict(pi=[256, 256], vf=[256, 256]),
}
#: Batch sizes searched: complete episodes per update, or steps per env per update. REINFORCE makes one gradient
#: step per batch, so large batches mean few updates: 16-32 episodes or 2048 steps per env gave 50-600 updates in
#: the zoo budgets and did not learn on CartPole, Acrobot, Pendulum or LunarLander (docs/zoo_tuning.md).
N_EPISODES_CHOICES = (1, 2, 4, 8)
N_STEPS_CHOICES = (32, 64, 128, 256, 512, 1024)
#: Gradient steps on the value loss per batch (value baseline): Spinning Up's VPG takes 80, sb3-contrib's TRPO 10.
N_CRITIC_UPDATES_CHOICES = (1, 2, 4, 8, 16, 32)
#: Learning rates searched (Adam/RMSprop): above 1e-2 every update is a large step and CartPole's policies collapsed
#: after reaching the maximum (docs/cartpole_tuning.md).
LEARNING_RATE_RANGE = (1e-4, 1e-2)
#: Baselines that subtract a statistic of the batch's *other* episodes: with one episode per batch there is none,
#: they subtract 0 and the trial is the ``"none"`` trial again, so one-episode batches draw ``baseline_one_episode``
#: (the others only).
LEAVE_ONE_OUT_BASELINES = frozenset(name for name, baseline in BASELINES.items() if baseline.needs_other_episodes)
#: Entry keys the sampler sets (the other keys of the base entry are the fixed part of the search space).
SAMPLED_KEYS = frozenset(
    {"learning_rate", "gamma", "return_mode", "baseline", "gae_lambda", "normalize_advantage", "ent_coef"}
    | {"max_grad_norm", "n_episodes", "n_steps", "vf_coef", "n_critic_updates", "policy_kwargs"}
)

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class StudyError(HyperparamsError):
    """A study this worker must not join or use: other budget or search space, or no usable trial."""


def first_update_steps(batch_unit: str, size: int, n_envs: int, max_episode_steps: int) -> int:
    """
    Env steps (over all envs) after which REINFORCE has surely made its first update on at least one complete
    episode, even when every episode lasts ``max_episode_steps``.

    - ``"episodes"``: every env must end ``ceil(size / n_envs)`` episodes: ``ceil(size / n_envs) * L * n_envs``;
    - ``"steps"``: an update every ``size`` steps per env uses the episodes ended so far; the first one holding an
      episode is the first at or after ``L`` steps per env: ``ceil(L / size) * size * n_envs``.

    :param batch_unit: ``"episodes"`` (``n_episodes=size``) or ``"steps"`` (``n_steps=size``)
    :param size: the batch size in that unit
    :param n_envs: number of envs
    :param max_episode_steps: longest possible episode ``L``
    :return: env steps
    """
    if batch_unit == "episodes":
        return math.ceil(size / n_envs) * max_episode_steps * n_envs
    return math.ceil(max_episode_steps / size) * size * n_envs


def reinforce_search_space(
    n_timesteps: int | None = None, n_envs: int = 1, max_episode_steps: int | None = None
) -> dict[str, BaseDistribution]:
    """
    The distributions :func:`sample_reinforce_params` draws from. With a budget, only the batch sizes whose first
    update fits in it are offered (:func:`first_update_steps`), so that no trial ends without a single update.

    Conditional parameters: ``n_episodes`` with ``batch_unit="episodes"``, ``n_steps`` with ``"steps"``,
    ``baseline_one_episode`` instead of ``baseline`` with ``n_episodes=1`` (no leave-one-out baseline, which would
    subtract 0: :data:`LEAVE_ONE_OUT_BASELINES`), ``gae_lambda``, ``vf_coef`` and ``n_critic_updates`` with a
    baseline that needs a critic (``"value"``). Return modes and baselines
    are the estimator registry's (:mod:`sb3_reinforce.common.estimators`).

    :param n_timesteps: training budget of a trial (env steps over all envs); None: no constraint
    :param n_envs: number of envs
    :param max_episode_steps: longest possible episode (required with ``n_timesteps``)
    :return: ``{parameter name: distribution}``
    :raises ValueError: naming ``n_timesteps`` when no batch size fits in it
    """
    batch: dict[str, tuple[int, ...]] = {"episodes": N_EPISODES_CHOICES, "steps": N_STEPS_CHOICES}
    if n_timesteps is not None:
        # a positive int is needed to fit batches in a budget
        check_number("max_episode_steps", max_episode_steps, 1, math.inf, integer=True)
        for unit, choices in batch.items():
            batch[unit] = tuple(c for c in choices if first_update_steps(unit, c, n_envs, max_episode_steps) <= n_timesteps)
        if not any(batch.values()):
            smallest = min(
                first_update_steps(unit, min(choices), n_envs, max_episode_steps)
                for unit, choices in (("episodes", N_EPISODES_CHOICES), ("steps", N_STEPS_CHOICES))
            )
            raise ValueError(
                f"n_timesteps={n_timesteps} is too small for any batch of the REINFORCE search space with n_envs={n_envs} "
                f"and episodes of up to {max_episode_steps} steps: the smallest batch needs {smallest} env steps "
                "to make one update"
            )
    space: dict[str, BaseDistribution] = {
        "learning_rate": FloatDistribution(*LEARNING_RATE_RANGE, log=True),
        # "linear": rl_zoo3's lin_<value> schedule (decay to 0), what every tuned entry uses
        "lr_schedule": CategoricalDistribution(["constant", "linear"]),
        "one_minus_gamma": FloatDistribution(1e-4, 0.1, log=True),
        "batch_unit": CategoricalDistribution([unit for unit, choices in batch.items() if choices]),
    }
    if batch["episodes"]:
        space["n_episodes"] = CategoricalDistribution(list(batch["episodes"]))
    if batch["steps"]:
        space["n_steps"] = CategoricalDistribution(list(batch["steps"]))
    space.update(
        return_mode=CategoricalDistribution(list(RETURN_MODES)),
        baseline=CategoricalDistribution(list(BASELINES)),
        baseline_one_episode=CategoricalDistribution([name for name, b in BASELINES.items() if not b.needs_other_episodes]),
        gae_lambda=CategoricalDistribution([0.9, 0.95, 0.98, 0.99, 1.0]),
        vf_coef=FloatDistribution(0.1, 1.0),
        n_critic_updates=CategoricalDistribution(list(N_CRITIC_UPDATES_CHOICES)),
        normalize_advantage=CategoricalDistribution([True, False]),
        ent_coef=FloatDistribution(1e-8, 0.05, log=True),
        max_grad_norm=FloatDistribution(0.3, 5.0, log=True),
        net_arch=CategoricalDistribution(list(NET_ARCHS)),
        activation_fn=CategoricalDistribution(list(_ACTIVATIONS)),
        optimizer=CategoricalDistribution(["adam", "rmsprop"]),
    )
    return space


def describe_search_space(space: Mapping[str, BaseDistribution], fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """
    A readable, JSON-able description of a search space: ``{"sampled": {name: distribution as Optuna writes it},
    "fixed": {key: value}}``.

    :param space: the distributions (:func:`reinforce_search_space`)
    :param fixed: entry values every trial uses as they are (the base entry without :data:`SAMPLED_KEYS`)
    :return: the description
    """
    sampled = {name: json.loads(distribution_to_json(distribution)) for name, distribution in space.items()}
    return {"sampled": sampled, "fixed": to_yaml_data(dict(fixed or {}))}


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    assert isinstance(distribution, FloatDistribution), distribution
    return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log, step=distribution.step)


def sample_reinforce_params(
    trial: optuna.Trial, n_actions: int = 0, n_envs: int = 1, additional_args: dict | None = None
) -> dict[str, Any]:
    """
    Sampler for REINFORCE hyperparameters (rl_zoo3 ``HYPERPARAMS_SAMPLER`` signature).

    Searched (:func:`reinforce_search_space`): learning rate (constant or decaying linearly to 0), discount, batch
    size (in complete episodes or in steps per env), return mode, baseline (and GAE lambda, value coefficient and
    critic steps per batch with the value baseline), advantage normalization, entropy coefficient, gradient
    clipping, network size and activation, optimizer (Adam or RMSprop). The other ``policy_kwargs`` of the study's
    base entry (recorded by the zoo) are kept, as :func:`trial_params_to_yaml_entry` keeps them.

    rl_zoo3 passes no budget to samplers: the zoo's experiment manager sets it as the trial's user attribute
    :data:`TRIAL_ATTR_BUDGET` (``n_timesteps``, ``max_episode_steps``) before sampling, and only the batch sizes
    that make an update within it are drawn. Without it the whole space is searched.

    :param trial: the Optuna trial
    :param n_actions: action dimension (unused)
    :param n_envs: number of parallel envs
    :param additional_args: rl_zoo3 extras (unused)
    :return: REINFORCE keyword arguments (with objects, as rl_zoo3 passes them to the constructor)
    """
    budget = trial.user_attrs.get(TRIAL_ATTR_BUDGET) or {}
    space = reinforce_search_space(budget.get("n_timesteps"), n_envs, budget.get("max_episode_steps"))

    def suggest(name: str) -> Any:
        return _suggest(trial, name, space[name])

    names = ("learning_rate", "lr_schedule", "one_minus_gamma", "batch_unit")
    params: dict[str, Any] = {name: suggest(name) for name in names}
    if params["batch_unit"] == "episodes":
        params["n_episodes"] = suggest("n_episodes")
    else:
        params["n_steps"] = suggest("n_steps")
    params["return_mode"] = suggest("return_mode")
    baseline_name = "baseline_one_episode" if params.get("n_episodes") == 1 else "baseline"
    params[baseline_name] = suggest(baseline_name)
    if BASELINES[params[baseline_name]].needs_values:
        params["gae_lambda"] = suggest("gae_lambda")
        params["vf_coef"] = suggest("vf_coef")
        params["n_critic_updates"] = suggest("n_critic_updates")
    for name in ("normalize_advantage", "ent_coef", "max_grad_norm", "net_arch", "activation_fn", "optimizer"):
        params[name] = suggest(name)

    hyperparams = convert_reinforce_params(params)
    # The trial trains what export-best writes: the base entry's other policy arguments (log_std_init, ortho_init...)
    # stay, where rl_zoo3's objective would replace its whole policy_kwargs by the sampled ones
    study = getattr(trial, "study", None)
    base = study.user_attrs.get(STUDY_ATTR_HYPERPARAMS) if study is not None else None
    if isinstance(base, Mapping) and base.get("policy_kwargs") is not None:
        # A study is data from a file or a server: the same check as export-best before anything is built
        check_hyperparams_code({"policy_kwargs": base["policy_kwargs"]}, where=f"base entry of study {study.study_name!r}")
        hyperparams["policy_kwargs"] = merge_policy_kwargs(base["policy_kwargs"], hyperparams["policy_kwargs"])
    if isinstance(hyperparams["learning_rate"], str):
        from rl_zoo3.utils import SimpleLinearSchedule

        hyperparams["learning_rate"] = SimpleLinearSchedule(params["learning_rate"])
    # Display the true values in the study
    trial.set_user_attr(TRIAL_ATTR_GAMMA, hyperparams["gamma"])
    trial.set_user_attr("batch", f"{params.get('n_episodes', params.get('n_steps'))} {params['batch_unit']}")
    return hyperparams


def convert_reinforce_params(sampled_params: Mapping[str, Any]) -> dict[str, Any]:
    """
    Turn the raw parameters of a trial (``trial.params``) into REINFORCE keyword arguments
    (rl_zoo3 ``HYPERPARAMS_CONVERTER`` signature, used by ``--trial-id``).

    :param sampled_params: the trial's parameters
    :return: keyword arguments, ``policy_kwargs`` holding classes (``nn.ReLU``, ``th.optim.RMSprop``)
    """
    import torch as th

    params = dict(sampled_params)
    baseline = BASELINES[params["baseline"] if "baseline" in params else params["baseline_one_episode"]]
    # Trials of studies made before lr_schedule was searched used a constant learning rate
    linear = params.get("lr_schedule", "constant") == "linear"
    hyperparams: dict[str, Any] = {
        "learning_rate": f"lin_{params['learning_rate']!r}" if linear else params["learning_rate"],
        "gamma": 1.0 - params["one_minus_gamma"],
        "return_mode": params["return_mode"],
        "baseline": baseline.value,
        # Always set, so that a base entry with a value baseline and gae_lambda < 1 cannot leak in
        "gae_lambda": params.get("gae_lambda", 1.0) if baseline.needs_values else 1.0,
        # Trials of studies made before it was searched fitted the critic once per batch
        "n_critic_updates": params.get("n_critic_updates", 1) if baseline.needs_values else 1,
        "normalize_advantage": params["normalize_advantage"],
        "ent_coef": params["ent_coef"],
        "max_grad_norm": params["max_grad_norm"],
    }
    if params["batch_unit"] == "episodes":
        hyperparams["n_episodes"] = params["n_episodes"]
    else:
        hyperparams["n_episodes"] = None
        hyperparams["n_steps"] = params["n_steps"]
    if "vf_coef" in params and baseline.needs_values:
        hyperparams["vf_coef"] = params["vf_coef"]
    policy_kwargs: dict[str, Any] = {
        "net_arch": {key: list(value) for key, value in NET_ARCHS[params["net_arch"]].items()},
        "activation_fn": _ACTIVATIONS[params["activation_fn"]],
    }
    if params["optimizer"] == "rmsprop":
        policy_kwargs["optimizer_class"] = th.optim.RMSprop
        policy_kwargs["optimizer_kwargs"] = {"alpha": 0.99, "eps": 1e-5}
    hyperparams["policy_kwargs"] = policy_kwargs
    return hyperparams


def trial_params_to_yaml_entry(sampled_params: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """
    A hyperparameter-file entry for a trial: the base entry (``n_timesteps``, ``policy``, ``n_envs``, wrappers...)
    updated with the trial's values. ``policy_kwargs`` is written as a ``"dict(...)"`` string. The result is
    validated.

    :param sampled_params: the trial's parameters (``trial.params``)
    :param base: the entry the study was run with
    :return: the entry, ready for ``yaml.safe_dump``
    """
    entry = dict(to_yaml_data(dict(base or {})))
    hyperparams = convert_reinforce_params(sampled_params)
    policy_kwargs = merge_policy_kwargs(entry.get("policy_kwargs"), hyperparams.pop("policy_kwargs"))
    if hyperparams.get("n_episodes") is None:
        hyperparams.pop("n_episodes")
        entry.pop("n_episodes", None)
    else:
        entry.pop("n_steps", None)
    entry.update(hyperparams)
    entry["policy_kwargs"] = format_python_literal(policy_kwargs)
    entry.setdefault("policy", "MlpPolicy")
    validate_reinforce_hyperparams(entry, where="exported Optuna trial")
    return {key: entry[key] for key in sorted(entry)}


def merge_policy_kwargs(base: Mapping[str, Any] | str | None, sampled: Mapping[str, Any]) -> dict[str, Any]:
    """
    A trial's ``policy_kwargs``: the base entry's (``log_std_init``, ``ortho_init``, ...) updated with the sampled
    network, activation and optimizer. The sampled optimizer replaces the base entry's: when the trial chose Adam
    (no ``optimizer_class``), the base entry's ``optimizer_class`` and ``optimizer_kwargs`` are dropped.

    :param base: the base entry's ``policy_kwargs`` (a dict or a ``"dict(...)"`` string), or None
    :param sampled: the sampled ``policy_kwargs`` (:func:`convert_reinforce_params`)
    :return: the merged keyword arguments (a new dict)
    """
    if isinstance(base, str):
        base = parse_python_literal(base)
    if base is not None and not isinstance(base, Mapping):
        raise HyperparamsError(f"policy_kwargs {base!r} of the base entry: expected a dict or a 'dict(...)' string")
    policy_kwargs = dict(base or {})
    if "optimizer_class" not in sampled:
        policy_kwargs.pop("optimizer_class", None)
        policy_kwargs.pop("optimizer_kwargs", None)
    policy_kwargs.update(sampled)
    return policy_kwargs


def journal_storage(storage: Any, create: bool = True) -> optuna.storages.JournalStorage | None:
    """
    The Optuna storage of a journal file (a path ending in ``.log``, an append-only text file that can be
    committed with the code), or None when ``storage`` is anything else (a URL, a storage object, None).

    :param storage: what the user passed as the storage
    :param create: create the file (and its folder) when it does not exist; without it, a missing file is a
        :class:`StudyError` (reading a mistyped path must not leave an empty journal behind)
    :raises StudyError: ``create`` is false and there is no such file
    """
    if not (isinstance(storage, str) and storage.endswith(".log")):
        return None
    path = Path(storage)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.is_file():
        raise StudyError(f"There is no Optuna journal file {storage!r}")
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))


def load_study(storage: Any, study_name: str) -> optuna.Study:
    """
    Load an existing study: ``storage`` is an Optuna storage object or URL (``sqlite:///...``,
    ``postgresql://...``, or a ``.log`` journal file).

    :raises StudyError: when there is no such study
    """
    journal = journal_storage(storage, create=False)
    if journal is not None:
        storage = journal
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise StudyError(f"There is no study named {study_name!r} in this storage") from None


def select_trial(study: optuna.Study, trial_number: int | None = None) -> optuna.trial.FrozenTrial:
    """
    The trial to use from a study: trial ``trial_number``, which must be COMPLETE (a FAIL, RUNNING, PRUNED or
    WAITING trial has no full evaluation, and a killed worker's trial may miss parameters), or the best COMPLETE
    trial.

    :param study: the study
    :param trial_number: the trial's number (``trial.number``), or None for the best one
    :raises StudyError: no such trial, a trial that is not COMPLETE, or no COMPLETE trial at all
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if trial_number is None:
        complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
        if not complete:
            counts = Counter(trial.state.name for trial in trials)
            states = ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "none"
            raise StudyError(f"Study {study.study_name!r} has no COMPLETE trial (its trials: {states})")
        return study.best_trial
    matches = [trial for trial in trials if trial.number == trial_number]
    if not matches:
        raise StudyError(
            f"Study {study.study_name!r} has no trial number {trial_number} (numbers 0 to {len(trials) - 1})"
            if trials
            else f"Study {study.study_name!r} has no trial number {trial_number}: it has no trials"
        )
    trial = matches[0]
    if trial.state != TrialState.COMPLETE:
        raise StudyError(
            f"Trial {trial_number} of study {study.study_name!r} is {trial.state.name}, not COMPLETE: only a "
            "finished, fully evaluated trial can be used (omit --trial-id for the best COMPLETE trial)"
        )
    return trial


def best_trial_hyperparams(
    storage: str,
    study_name: str,
    env_id: str | None = None,
    trial_number: int | None = None,
    base: Mapping[str, Any] | None = None,
    conf_file: str | None = None,
) -> tuple[str, dict[str, Any], optuna.trial.FrozenTrial]:
    """
    Load a study (any Optuna storage URL: ``sqlite:///...``, ``postgresql://...``, or a ``.log`` journal file) and
    turn its best COMPLETE trial (or a given COMPLETE trial, :func:`select_trial`) into a validated
    hyperparameter-file entry.

    :param storage: Optuna storage
    :param study_name: the study
    :param env_id: environment id; default: the one recorded in the study by the zoo
    :param trial_number: export this trial instead of the best one
    :param base: base entry; default: the one recorded in the study, else the env's entry of ``conf_file``
    :param conf_file: hyperparameter file for the base entry (default: the packaged ``reinforce.yml``)
    :return: ``(env id, entry, trial)``
    :raises StudyError: no such study or trial, a trial that is not COMPLETE, not a REINFORCE study
    """
    study = load_study(storage, study_name)
    attrs = study.user_attrs
    algo = attrs.get(STUDY_ATTR_ALGO, "reinforce")
    if algo != "reinforce":
        raise StudyError(f"Study {study_name!r} was run with --algo {algo}; only REINFORCE studies can be exported")
    env_id = env_id or attrs.get(STUDY_ATTR_ENV)
    if env_id is None:
        raise StudyError(f"Study {study_name!r} does not record its environment: pass --env")
    trial = select_trial(study, trial_number)
    if base is None:
        recorded = attrs.get(STUDY_ATTR_HYPERPARAMS)
        if isinstance(recorded, dict) and conf_file is None:
            base = recorded
        else:
            base = load_hyperparams("reinforce", env_id, path=conf_file)
    return env_id, trial_params_to_yaml_entry(trial.params, base), trial
