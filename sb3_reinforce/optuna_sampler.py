"""
Optuna search space for REINFORCE, in the format of rl_zoo3's ``HYPERPARAMS_SAMPLER``/``HYPERPARAMS_CONVERTER``,
and export of a study's best trial as a validated hyperparameter-file entry.
"""

from collections.abc import Mapping
from typing import Any

import optuna
from torch import nn

from sb3_reinforce.hyperparams import (
    format_python_literal,
    load_hyperparams,
    parse_python_literal,
    to_yaml_data,
    validate_reinforce_hyperparams,
)

__all__ = [
    "NET_ARCHS",
    "STUDY_ATTR_ALGO",
    "STUDY_ATTR_ENV",
    "STUDY_ATTR_HYPERPARAMS",
    "best_trial_hyperparams",
    "convert_reinforce_params",
    "sample_reinforce_params",
    "trial_params_to_yaml_entry",
]

#: Study user attributes written by ``python -m sb3_reinforce.zoo train --optimize`` (used by the export).
STUDY_ATTR_ALGO = "sb3_reinforce:algo"
STUDY_ATTR_ENV = "sb3_reinforce:env_id"
STUDY_ATTR_HYPERPARAMS = "sb3_reinforce:hyperparams"

#: Network sizes of the search space (the ``vf`` part is only built with ``baseline="value"``).
NET_ARCHS: dict[str, dict[str, list[int]]] = {
    "tiny": dict(pi=[64], vf=[64]),
    "small": dict(pi=[64, 64], vf=[64, 64]),
    "medium": dict(pi=[256, 256], vf=[256, 256]),
}

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def sample_reinforce_params(
    trial: optuna.Trial, n_actions: int = 0, n_envs: int = 1, additional_args: dict | None = None
) -> dict[str, Any]:
    """
    Sampler for REINFORCE hyperparameters (rl_zoo3 ``HYPERPARAMS_SAMPLER`` signature).

    Searched: learning rate, discount, batch size (in complete episodes or in steps per env), return mode,
    baseline (and GAE lambda / value coefficient with the value baseline), advantage normalization, entropy
    coefficient, gradient clipping, network size and activation, optimizer (Adam or RMSprop).

    :param trial: the Optuna trial
    :param n_actions: action dimension (unused)
    :param n_envs: number of parallel envs (unused)
    :param additional_args: rl_zoo3 extras (unused)
    :return: REINFORCE keyword arguments (with objects, as rl_zoo3 passes them to the constructor)
    """
    params: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 1e-4, 0.1, log=True),
        "batch_unit": trial.suggest_categorical("batch_unit", ["episodes", "steps"]),
    }
    if params["batch_unit"] == "episodes":
        params["n_episodes"] = trial.suggest_categorical("n_episodes", [1, 2, 4, 8, 16, 32])
    else:
        params["n_steps"] = trial.suggest_categorical("n_steps", [32, 64, 128, 256, 512, 1024, 2048])
    params["return_mode"] = trial.suggest_categorical("return_mode", ["reward_to_go", "total"])
    params["baseline"] = trial.suggest_categorical("baseline", ["none", "mean", "optimal", "value"])
    if params["baseline"] == "value":
        params["gae_lambda"] = trial.suggest_categorical("gae_lambda", [0.9, 0.95, 0.98, 0.99, 1.0])
        params["vf_coef"] = trial.suggest_float("vf_coef", 0.1, 1.0)
    params["normalize_advantage"] = trial.suggest_categorical("normalize_advantage", [True, False])
    params["ent_coef"] = trial.suggest_float("ent_coef", 1e-8, 0.05, log=True)
    params["max_grad_norm"] = trial.suggest_float("max_grad_norm", 0.3, 5.0, log=True)
    params["net_arch"] = trial.suggest_categorical("net_arch", list(NET_ARCHS))
    params["activation_fn"] = trial.suggest_categorical("activation_fn", list(_ACTIVATIONS))
    params["optimizer"] = trial.suggest_categorical("optimizer", ["adam", "rmsprop"])

    hyperparams = convert_reinforce_params(params)
    # Display the true values in the study
    trial.set_user_attr("gamma", hyperparams["gamma"])
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
    hyperparams: dict[str, Any] = {
        "learning_rate": params["learning_rate"],
        "gamma": 1.0 - params["one_minus_gamma"],
        "return_mode": params["return_mode"],
        "baseline": None if params["baseline"] == "none" else params["baseline"],
        # Always set, so that a base entry with a value baseline and gae_lambda < 1 cannot leak in
        "gae_lambda": params.get("gae_lambda", 1.0) if params["baseline"] == "value" else 1.0,
        "normalize_advantage": params["normalize_advantage"],
        "ent_coef": params["ent_coef"],
        "max_grad_norm": params["max_grad_norm"],
    }
    if params["batch_unit"] == "episodes":
        hyperparams["n_episodes"] = params["n_episodes"]
    else:
        hyperparams["n_episodes"] = None
        hyperparams["n_steps"] = params["n_steps"]
    if "vf_coef" in params and params["baseline"] == "value":
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
    base_policy_kwargs = entry.get("policy_kwargs", {})
    if isinstance(base_policy_kwargs, str):
        base_policy_kwargs = parse_python_literal(base_policy_kwargs)
    policy_kwargs = dict(base_policy_kwargs or {})
    if "optimizer_class" not in hyperparams["policy_kwargs"]:
        # The trial chose Adam: drop an optimizer set by the base entry
        policy_kwargs.pop("optimizer_class", None)
        policy_kwargs.pop("optimizer_kwargs", None)
    policy_kwargs.update(hyperparams.pop("policy_kwargs"))
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
    turn its best (or a given) trial into a validated hyperparameter-file entry.

    :param storage: Optuna storage
    :param study_name: the study
    :param env_id: environment id; default: the one recorded in the study by the zoo
    :param trial_number: export this trial instead of the best one
    :param base: base entry; default: the one recorded in the study, else the env's entry of ``conf_file``
    :param conf_file: hyperparameter file for the base entry (default: the packaged ``reinforce.yml``)
    :return: ``(env id, entry, trial)``
    """
    if storage.endswith(".log"):
        storage_obj: Any = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    else:
        storage_obj = storage
    study = optuna.load_study(study_name=study_name, storage=storage_obj)
    attrs = study.user_attrs
    algo = attrs.get(STUDY_ATTR_ALGO, "reinforce")
    if algo != "reinforce":
        raise ValueError(f"Study {study_name!r} was run with --algo {algo}; only REINFORCE studies can be exported")
    env_id = env_id or attrs.get(STUDY_ATTR_ENV)
    if env_id is None:
        raise ValueError(f"Study {study_name!r} does not record its environment: pass --env")
    if trial_number is None:
        trial = study.best_trial
    else:
        matches = [t for t in study.trials if t.number == trial_number]
        if not matches:
            raise ValueError(f"Study {study_name!r} has no trial number {trial_number}")
        trial = matches[0]
    if base is None:
        recorded = attrs.get(STUDY_ATTR_HYPERPARAMS)
        if isinstance(recorded, dict) and conf_file is None:
            base = recorded
        else:
            base = load_hyperparams("reinforce", env_id, path=conf_file)
    return env_id, trial_params_to_yaml_entry(trial.params, base), trial
