"""
Reading hyperparameter files: the default file, a whole file, one environment's entry (validated).
"""

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sb3_reinforce.common.arguments import CRITIC_POLICY_KWARGS, critic_settings
from sb3_reinforce.common.estimators import get_baseline
from sb3_reinforce.hyperparams.code_check import check_hyperparams_code
from sb3_reinforce.hyperparams.errors import HyperparamsError
from sb3_reinforce.hyperparams.literals import format_python_literal, parse_python_literal
from sb3_reinforce.hyperparams.validation import validate_hyperparams_content, validate_reinforce_hyperparams
from sb3_reinforce.hyperparams.yaml_files import load_yaml

__all__ = [
    "default_hyperparams_path",
    "load_hyperparams",
    "load_hyperparams_file",
    "select_env_entry",
    "validate_hyperparams_file",
    "without_unused_critic",
]


def default_hyperparams_path(algo: str) -> Path:
    """
    The hyperparameter file used when ``--conf-file`` is not given.

    :param algo: ``"reinforce"`` (this package's ``hyperparams/reinforce.yml``) or an rl_zoo3 algorithm
        (rl_zoo3's own ``hyperparams/<algo>.yml``)
    :return: the path
    """
    if algo == "reinforce":
        return Path(__file__).resolve().parent / "reinforce.yml"
    import rl_zoo3

    package = Path(rl_zoo3.__file__).resolve().parent
    folder = package if (package / "hyperparams").is_dir() else package.parent
    return folder / "hyperparams" / f"{algo}.yml"


def load_hyperparams_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """
    Read a whole hyperparameter file safely (``.yml``/``.yaml`` only: Python configs are refused), with the limits
    of :func:`load_yaml` (1 MiB, nesting, aliases, duplicate keys).

    :param path: the file
    :return: ``{entry name (env id, "atari", "default"): hyperparameters}``
    """
    if not str(path).endswith((".yml", ".yaml")):
        raise HyperparamsError(
            f"Hyperparameter file {path} must be a .yml/.yaml file: Python files and modules are not loaded "
            "because they would execute arbitrary code"
        )
    content = load_yaml(path)
    if not isinstance(content, dict) or not all(isinstance(value, dict) for value in content.values()):
        raise HyperparamsError(f"{path} must map entry names (env ids) to dicts of hyperparameters")
    return content


def select_env_entry(hyperparams_dict: Mapping[str, Any], env_id: str, is_atari: bool = False) -> tuple[str, dict[str, Any]]:
    """
    The entry for an environment, with rl_zoo3's fallbacks (``atari`` for Atari games, then ``default``).

    :param hyperparams_dict: content of a hyperparameter file
    :param env_id: environment id
    :param is_atari: whether the env is an Atari game
    :return: ``(entry name, deep copy of the entry)``
    """
    if env_id in hyperparams_dict:
        name = env_id
    elif is_atari and "atari" in hyperparams_dict:
        name = "atari"
    elif "default" in hyperparams_dict:
        name = "default"
    else:
        raise HyperparamsError(f"No hyperparameters for {env_id!r}; entries are: {', '.join(map(str, hyperparams_dict))}")
    return name, copy.deepcopy(dict(hyperparams_dict[name]))


def _is_atari(env_id: str) -> bool:
    try:
        import gymnasium as gym
        import rl_zoo3.import_envs  # noqa: F401  (registers ALE envs)

        return "AtariEnv" in str(gym.envs.registry[env_id].entry_point)
    except Exception:
        return False


def load_hyperparams(
    algo: str,
    env_id: str,
    path: str | os.PathLike[str] | None = None,
    validate: bool = True,
    trust_code: bool = False,
) -> dict[str, Any]:
    """
    Load (safely) the hyperparameters of one environment, check what they may make the program call
    (:func:`check_hyperparams_code`, for every algorithm) and, for ``algo="reinforce"``, validate them.

    :param algo: ``"reinforce"`` or an rl_zoo3 algorithm name (``"ppo"``, ``"a2c"``, ...)
    :param env_id: environment id (falls back to the ``atari``/``default`` entries like rl_zoo3)
    :param path: hyperparameter file; default: :func:`default_hyperparams_path`
    :param validate: validate a REINFORCE entry (:func:`validate_reinforce_hyperparams`)
    :param trust_code: let the entry name any importable callable, with any arguments (see
        :func:`check_hyperparams_code`)
    :return: the raw entry (strings such as ``"lin_1e-3"`` or ``"dict(...)"`` are kept; see
        :func:`build_model_kwargs` for objects)
    """
    path = default_hyperparams_path(algo) if path is None else Path(path)
    name, entry = select_env_entry(load_hyperparams_file(path), env_id, is_atari=_is_atari(env_id))
    where = f"{path} [{name}]"
    if validate and algo == "reinforce":
        validate_reinforce_hyperparams(entry, where=where, trust_code=trust_code)
    else:
        check_hyperparams_code(entry, where=where, trust_code=trust_code)
    return entry


def validate_hyperparams_file(path: str | os.PathLike[str], trust_code: bool = False) -> dict[str, dict[str, Any]]:
    """
    Validate every entry of a REINFORCE hyperparameter file, what ``python -m sb3_reinforce.zoo validate`` runs:
    the same checks as ``train`` (:func:`validate_hyperparams_content`); all problems are reported at once.

    :param path: the file
    :param trust_code: see :func:`check_hyperparams_code`
    :return: its content
    """
    content = load_hyperparams_file(path)
    validate_hyperparams_content(content, where=str(path), trust_code=trust_code)
    return content


def without_unused_critic(entry: Mapping[str, Any]) -> dict[str, Any]:
    """
    A REINFORCE entry without what only a critic uses when its baseline has no learned V(s) (``baseline: null``,
    ``mean``, ...): its :func:`~sb3_reinforce.common.arguments.critic_settings` (``gae_lambda``,
    ``n_critic_updates``) and the critic's ``policy_kwargs`` (``critic_hidden``), which the new baseline would
    otherwise refuse. How an entry with a critic is trained with another baseline (``entry.update(baseline=None)``
    first).

    :param entry: a raw entry (not modified)
    :return: a copy, without those keys when the baseline needs no V(s) (anything else as it was, the form of
        ``policy_kwargs`` included)
    """
    result = copy.deepcopy(dict(entry))
    if get_baseline(result.get("baseline")).needs_values:
        return result
    for key in critic_settings():
        result.pop(key, None)
    written = result.get("policy_kwargs")
    policy_kwargs = parse_python_literal(written) if isinstance(written, str) else written
    if isinstance(policy_kwargs, Mapping) and set(policy_kwargs) & set(CRITIC_POLICY_KWARGS):
        kept = {key: value for key, value in policy_kwargs.items() if key not in CRITIC_POLICY_KWARGS}
        # Written back as it was given (a "dict(...)" string stays one): an entry's hash depends on the form
        result["policy_kwargs"] = format_python_literal(kept) if isinstance(written, str) else kept
    return result
