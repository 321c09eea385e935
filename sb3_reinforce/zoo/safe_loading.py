"""Safe replacements for rl_zoo3's ``eval``-based and unsafe-YAML/pickle helpers, swapped in while the zoo runs."""

import argparse
import os
import pickle
from collections.abc import Sequence
from typing import Any

import yaml
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.hyperparams import (
    MAX_YAML_BYTES,
    HyperparamsError,
    check_hyperparams_code,
    load_yaml,
    parse_python_literal,
    parse_yaml,
)

__all__ = ["SafeStoreDict", "parse_cli_value", "safe_get_saved_hyperparams"]


def parse_cli_value(text: str) -> Any:
    """
    Parse a ``key:value`` command-line value (``-params``, ``--env-kwargs``) without ``eval``: Python literals,
    ``dict(...)`` and known names as in :func:`~sb3_reinforce.hyperparams.parse_python_literal`, and
    ``true``/``false``/``null``. Anything else (``mean``, ``lin_1e-3``, ``MlpPolicy``, or code) is kept as a plain
    string, which is never executed: the hyperparameter validation or the safe parser of ``policy_kwargs`` then
    reports it.

    :param text: the value
    :return: the parsed value
    """
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    try:
        return parse_python_literal(stripped)
    except HyperparamsError:
        return text


class SafeStoreDict(argparse.Action):
    """
    Safe ``rl_zoo3.utils.StoreDict``: ``key1:value1 key2:value2`` into a dict, values parsed with
    :func:`parse_cli_value` instead of ``eval``.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, nargs: Any = None, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None
    ) -> None:
        arg_dict = {}
        for argument in values:
            key, sep, value = argument.partition(":")
            if not sep:
                parser.error(f"{option_string}: expected key:value, got {argument!r}")
            try:
                arg_dict[key] = parse_cli_value(value)
            except HyperparamsError as error:
                parser.error(f"{option_string} {key}: {error}")
        setattr(namespace, self.dest, arg_dict)


def _parse_literal_keys(hyperparams: dict[str, Any], keys: Sequence[str], where: str) -> None:
    for key in keys:
        if isinstance(hyperparams.get(key), str):
            try:
                hyperparams[key] = parse_python_literal(hyperparams[key])
            except HyperparamsError as error:
                raise HyperparamsError(f"{where}: {key}: {error}", [(key, str(error))]) from error


def safe_get_saved_hyperparams(
    stats_path: str, norm_reward: bool = False, test_mode: bool = False
) -> tuple[dict[str, Any], str | None]:
    """
    Safe ``rl_zoo3.utils.get_saved_hyperparams``: reads ``config.yml`` with a safe loader and parses the
    ``normalize`` string without ``eval``.

    :param stats_path: the run's ``<log>/<env>`` folder
    :param norm_reward: normalize the reward when testing (VecNormalize)
    :param test_mode: testing (``norm_reward`` applies)
    :return: ``(hyperparams, stats_path or None)``
    """
    hyperparams: dict[str, Any] = {}
    if not os.path.isdir(stats_path):
        return hyperparams, None
    config_file = os.path.join(stats_path, "config.yml")
    if os.path.isfile(config_file):
        hyperparams = dict(load_yaml(config_file) or {})
        hyperparams["normalize"] = hyperparams.get("normalize", False)
    else:
        hyperparams["normalize"] = os.path.isfile(os.path.join(stats_path, "obs_rms.pkl"))
    # What enjoy builds from the saved config (env_wrapper, vec_env_wrapper, normalize) is checked like a hyperparameter file
    check_hyperparams_code(hyperparams, where=config_file)
    if hyperparams["normalize"]:
        normalize = hyperparams["normalize"]
        if isinstance(normalize, str):
            normalize_kwargs = parse_python_literal(normalize)
            if test_mode:
                normalize_kwargs["norm_reward"] = norm_reward
        elif isinstance(normalize, dict):
            normalize_kwargs = normalize
        else:
            normalize_kwargs = {"norm_obs": normalize, "norm_reward": norm_reward}
        hyperparams["normalize_kwargs"] = normalize_kwargs
    return hyperparams, stats_path


class _SafeYaml:
    """Stands for the ``yaml`` module inside ``rl_zoo3.enjoy``: ``yaml.load`` uses the safe loader, whatever is asked."""

    def __getattr__(self, name: str) -> Any:
        return getattr(yaml, name)

    @staticmethod
    def load(stream: Any, Loader: Any = None) -> Any:
        where = str(getattr(stream, "name", "<stream>"))
        text = stream.read(MAX_YAML_BYTES + 1) if hasattr(stream, "read") else stream
        if len(text) > MAX_YAML_BYTES:
            raise HyperparamsError(f"Cannot load {where}: larger than {MAX_YAML_BYTES} bytes (1 MiB), the YAML file limit")
        return parse_yaml(text, where=where)


class _SafePickle:
    """
    Stands for the ``pickle`` module inside rl_zoo3's ``plot_from_file``: ``pickle.load`` of the results file
    (written by ``all_plots -o``: dicts of numpy arrays and strings) resolves only the globals of
    :class:`~sb3_reinforce.common.serialization.RestrictedUnpickler`, except under ``--trust-code``.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(pickle, name)

    @staticmethod
    def load(file: Any) -> Any:
        from sb3_reinforce.common.serialization import ALLOWED_DESCRIPTION, RestrictedUnpickler, UntrustedPickleError
        from sb3_reinforce.hyperparams.code_check import _trusting

        if _trusting(False):
            return pickle.load(file)
        where = str(getattr(file, "name", "<file>"))
        try:
            return RestrictedUnpickler(file).load()
        except UntrustedPickleError as error:
            raise UntrustedPickleError(
                f"Refused to unpickle {where!r}, nothing of the file was run: {error}. Allowed: {ALLOWED_DESCRIPTION}. "
                "If you trust the file, pass --trust-code (this runs any code the file holds).",
                error.refused,
            ) from error


def _safe_vec_normalize_load(load_path: str, venv: VecEnv) -> Any:
    """
    ``VecNormalize.load`` while the zoo runs (``enjoy``'s ``create_test_env``, ``train -i``): the run folder's
    ``vecnormalize.pkl`` is unpickled by :func:`~sb3_reinforce.common.serialization.load_vec_normalize`, which
    runs none of its code, except under ``--trust-code`` (SB3's ``pickle.load`` then).

    :param load_path: the ``vecnormalize.pkl``
    :param venv: the env to wrap
    :return: the VecNormalize wrapper
    """
    from sb3_reinforce.common.serialization import load_vec_normalize
    from sb3_reinforce.hyperparams.code_check import _trusting

    return load_vec_normalize(load_path, venv, trusted=_trusting(False))
