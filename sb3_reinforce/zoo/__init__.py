"""
rl-zoo entry point with REINFORCE registered next to rl_zoo3's algorithms.

Usage::

    python -m sb3_reinforce.zoo train --algo reinforce --env CartPole-v1
    python -m sb3_reinforce.zoo enjoy --algo reinforce --env CartPole-v1 -f logs/
    python -m sb3_reinforce.zoo train --algo reinforce --env CartPole-v1 --optimize --n-trials 20 -n 50000
    python -m sb3_reinforce.zoo export-best --storage sqlite:///logs/reinforce/optuna.db \\
        --study-name reinforce-CartPole-v1 -o my_hyperparams.yml
    python -m sb3_reinforce.zoo validate zoo_hyperparams/reinforce.yml

``train`` and ``enjoy`` are rl_zoo3's own commands (same options, see ``--help``), run with:

- ``--algo reinforce`` registered (``ALGOS``, ``HYPERPARAMS_SAMPLER``, ``HYPERPARAMS_CONVERTER``), and
  ``--conf-file`` defaulting to the packaged ``reinforce.yml`` (rl_zoo3's own files for ppo, a2c, ...);
- safe loading: YAML through a bounded ``yaml.SafeLoader`` (:func:`sb3_reinforce.hyperparams.load_yaml`), no
  Python config files, and the strings rl_zoo3 would ``eval`` (``policy_kwargs``, ``normalize``, ``-params``,
  ``--env-kwargs``, ...) parsed by :func:`sb3_reinforce.hyperparams.parse_python_literal`; REINFORCE entries are
  validated, and every entry (and a run's saved ``config.yml``) goes through
  :func:`sb3_reinforce.hyperparams.check_hyperparams_code` before anything is built: the classes it names must be
  of the expected kind and their arguments plain data. ``--trust-code`` (every command) lifts that check;
- ``--optimize`` storing the study in ``sqlite:///<log folder>/<algo>/optuna.db`` by default (study name
  ``<algo>-<env>``), so that several worker processes started with the same command share one study. Pass
  ``--storage postgresql://user:password@host/db`` for several machines, ``--storage memory`` for no storage.
"""

import argparse
import contextlib
import functools
import importlib
import importlib.util
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.safety import UsageError, atomic_write, check_env_id, check_input_file
from sb3_reinforce.common.serialization import other_algorithm_message
from sb3_reinforce.hyperparams import (
    MAX_YAML_BYTES,
    HyperparamsError,
    check_hyperparams_code,
    default_hyperparams_path,
    load_hyperparams_file,
    load_yaml,
    parse_python_literal,
    parse_yaml,
    select_env_entry,
    to_yaml_data,
    trusted_code,
    validate_hyperparams_content,
    validate_reinforce_hyperparams,
)
from sb3_reinforce.hyperparams.building import make_vec_env_from_entry
from sb3_reinforce.pong.registration import KARPATHY_PONG_ID
from sb3_reinforce.tuning import (
    SAMPLED_KEYS,
    STUDY_ATTR_ALGO,
    STUDY_ATTR_BUDGET,
    STUDY_ATTR_ENV,
    STUDY_ATTR_HYPERPARAMS,
    STUDY_ATTR_SEARCH_SPACE,
    STUDY_ATTR_SEARCH_SPACE_SHA256,
    TRIAL_ATTR_BUDGET,
    StudyError,
    best_trial_hyperparams,
    canonical_sha256,
    convert_reinforce_params,
    describe_search_space,
    load_study,
    reinforce_search_space,
    sample_reinforce_params,
    select_trial,
)

__all__ = [
    "ReinforceExperimentManager",
    "SafeStoreDict",
    "default_storage_url",
    "enjoy",
    "export_best",
    "main",
    "normalize_storage_url",
    "optuna_storage",
    "parse_cli_value",
    "register_reinforce",
    "safe_get_saved_hyperparams",
    "train",
    "validate",
    "zoo_patches",
]

# Modules of this package that register environments, imported (when present) before the env id is checked.
_ENV_MODULES = ("sb3_reinforce.pong",)
_MEMORY_STORAGE = ("memory", ":memory:", "none")


def register_reinforce() -> None:
    """Register REINFORCE in rl_zoo3's tables keyed by algorithm name (idempotent)."""
    from rl_zoo3 import hyperparams_opt, utils

    from sb3_reinforce import REINFORCE

    utils.ALGOS["reinforce"] = REINFORCE
    hyperparams_opt.HYPERPARAMS_SAMPLER["reinforce"] = sample_reinforce_params
    hyperparams_opt.HYPERPARAMS_CONVERTER["reinforce"] = convert_reinforce_params


def default_storage_url(log_folder: str, algo: str) -> str:
    """
    The Optuna storage used by ``--optimize`` without ``--storage``: an SQLite file in the log folder, shared by
    every worker process started with the same log folder.

    :param log_folder: the zoo's ``-f/--log-folder``
    :param algo: algorithm name
    :return: an SQLAlchemy URL (with a lock timeout, for concurrent workers)
    """
    folder = Path(log_folder).resolve() / algo
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}?timeout=60"


def normalize_storage_url(storage: str | None) -> str | None:
    """
    SQLAlchemy 2.1 maps ``postgresql://`` to the ``psycopg`` (v3) driver; when only ``psycopg2`` is installed
    (``pip install 'sb3_reinforce[postgres]'``), use it explicitly (``postgresql+psycopg2://``).

    :param storage: an Optuna storage (URL or journal file), or None
    :return: the storage to use
    """
    if storage is None or not storage.startswith(("postgresql://", "postgres://")):
        return storage
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + storage.split("://", 1)[1]
    return storage


def _report_stale_trial(study: Any, trial: Any) -> None:
    print(
        f"Optuna: trial {trial.number} of study {study.study_name!r} had no heartbeat for longer than the grace period "
        "(its worker died): marked FAIL",
        file=sys.stderr,
    )


def optuna_storage(storage: str | None, heartbeat_interval: int | None = 60, grace_period: int | None = 180) -> Any:
    """
    The Optuna storage object the zoo's workers use for a storage URL. For a database (``sqlite:///``,
    ``postgresql://``, ...) an ``RDBStorage`` with Optuna's heartbeat: a running trial records a heartbeat every
    ``heartbeat_interval`` seconds, and a trial whose worker died (killed, machine lost) is marked FAIL by the next
    worker that starts a trial (or by ``optuna.storages.fail_stale_trials``) once ``grace_period`` seconds passed
    without one, instead of staying RUNNING for ever. A ``.log`` journal file has no heartbeat.

    :param storage: storage URL or journal file (None: in memory)
    :param heartbeat_interval: seconds between heartbeats (None: no heartbeat)
    :param grace_period: seconds without heartbeat after which a running trial is failed
    :return: an Optuna storage, or None for in-memory
    """
    import inspect
    import warnings

    import optuna

    if storage is None:
        return None
    if storage.endswith(".log"):
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    kwargs: dict[str, Any] = {}
    if heartbeat_interval is not None:
        # optuna >= 4.9 renamed failed_trial_callback
        parameters = inspect.signature(optuna.storages.RDBStorage).parameters
        callback = "heartbeat_stale_trial_callback"
        if callback not in parameters:
            callback = "failed_trial_callback"
        kwargs = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period, callback: _report_stale_trial}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(storage, **kwargs)


def _differences(study: Any, here: Any, name: str, depth: int) -> list[str]:
    """``name.key: <study value> (study) != <our value> (here)`` for every differing key, ``depth`` dicts deep."""
    if depth > 0 and isinstance(study, dict) and isinstance(here, dict):
        keys = sorted(set(study) | set(here))
        return [line for key in keys for line in _differences(study.get(key), here.get(key), f"{name}.{key}", depth - 1)]
    return [] if study == here else [f"{name}: {study!r} (study) != {here!r} (here)"]


class _OptunaForZoo:
    """
    Stands for the ``optuna`` module inside ``rl_zoo3.exp_manager`` while the zoo optimizes: ``create_study`` gets
    the manager's storage object (with the heartbeat) instead of the URL rl_zoo3 passes.
    """

    def __init__(self, storage: Any):
        self._storage = storage

    def __getattr__(self, name: str) -> Any:
        import optuna

        return getattr(optuna, name)

    def create_study(self, *args: Any, **kwargs: Any) -> Any:
        import optuna

        if self._storage is not None and isinstance(kwargs.get("storage"), str):
            kwargs["storage"] = self._storage
        return optuna.create_study(*args, **kwargs)


def _hide_password(storage: str | None) -> str | None:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    if storage is None:
        return None
    return re.sub(r"^([a-zA-Z0-9+.-]+://[^:/@]+):[^@]*@", r"\1:***@", storage)


# ---------------------------------------------------------------------------------------------------------------------
# Safe replacements for rl_zoo3's eval-based helpers
# ---------------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------------
# Experiment manager
# ---------------------------------------------------------------------------------------------------------------------


class ReinforceExperimentManager(ExperimentManager):
    """
    rl_zoo3's ``ExperimentManager`` with safe loading (no ``eval``/``exec``/unsafe YAML), validation of
    REINFORCE entries, the packaged ``reinforce.yml`` as default config, a default SQLite Optuna storage and
    YAML-safe ``config.yml``/``args.yml``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if kwargs.get("config") is None:
            self.config = str(default_hyperparams_path(self.algo))
        self.storage = normalize_storage_url(self.storage)
        if self.optimize_hyperparameters:
            if self.storage is None:
                self.storage = default_storage_url(self.log_folder, self.algo)
            elif self.storage.lower() in _MEMORY_STORAGE:
                self.storage = None
            if self.storage is not None and self.study_name is None:
                self.study_name = f"{self.algo}-{self.env_name.gym_id}"
            if self.verbose > 0:
                print(f"Optuna storage: {_hide_password(self.storage) or 'in memory'}, study: {self.study_name}")
        self._zoo_raw_hyperparams: dict[str, Any] = {}
        self._zoo_where = str(self.config)

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from pprint import pprint

        print(f"Loading hyperparameters from: {self.config}")
        content = load_hyperparams_file(self.config)
        try:
            entry_name, hyperparams = select_env_entry(content, self.env_name.gym_id, is_atari=self._is_atari)
        except HyperparamsError as error:
            raise HyperparamsError(
                f"{error}. To write one: copy an entry of zoo_hyperparams/reinforce.yml (or the packaged file) under "
                f"{self.env_name.gym_id!r} in your own file, check it with `python -m sb3_reinforce.zoo validate FILE` "
                "and train with --conf-file FILE",
                error.problems,
            ) from error
        if entry_name == "default":
            print("Using 'default' hyperparameters")
        where = f"{self.config} [{entry_name}]"

        if self.storage and self.study_name and self.trial_id is not None:
            print("Loading from Optuna study...")
            hyperparams.update(self.load_trial(self.storage, self.study_name, self.trial_id))
            where += f" + trial {self.trial_id}"

        if self.custom_hyperparams is not None:
            hyperparams.update(self.custom_hyperparams)
            where += " + command-line hyperparameters"

        if "env_kwargs" in hyperparams and self.env_kwargs:
            hyperparams.update({"env_kwargs": self.env_kwargs})
            if self._eval_env_kwargs_args is None:
                self.eval_env_kwargs = hyperparams["env_kwargs"]

        # Before anything is imported, built or run: the same check as `validate` (values, and what may be called)
        if self.algo == "reinforce":
            validate_reinforce_hyperparams(hyperparams, where=where)
        else:
            check_hyperparams_code(hyperparams, where=where)
        self._zoo_where = where

        saved_hyperparams = {key: hyperparams[key] for key in sorted(hyperparams)}
        self._zoo_raw_hyperparams = {key: to_yaml_data(value) for key, value in saved_hyperparams.items()}
        print("Default hyperparameters for environment (ones being tuned will be overridden):")
        pprint(saved_hyperparams)
        return hyperparams, saved_hyperparams

    def _preprocess_hyperparams(self, hyperparams: dict[str, Any]) -> Any:
        # Parse the strings rl_zoo3 would eval(); it leaves non-strings alone
        keys = ("policy_kwargs", "replay_buffer_class", "replay_buffer_kwargs", "monitor_kwargs", "normalize")
        keys += ("env_kwargs", "rollout_buffer_kwargs")
        _parse_literal_keys(hyperparams, keys, self._zoo_where)
        if self.algo == "reinforce" and isinstance(hyperparams.get("rollout_buffer_class"), str):
            from rl_zoo3.utils import get_class_by_name

            check_hyperparams_code({"rollout_buffer_class": hyperparams["rollout_buffer_class"]}, where=self._zoo_where)
            hyperparams["rollout_buffer_class"] = get_class_by_name(hyperparams["rollout_buffer_class"])
        return super()._preprocess_hyperparams(hyperparams)

    def create_envs(self, n_envs: int, eval_env: bool = False, no_log: bool = False) -> VecEnv:
        """
        rl_zoo3's envs, except ``KarpathyPong-v0``: ale-py's native vector env, built by the tools' own path from
        the entry's settings (:func:`~sb3_reinforce.hyperparams.make_vec_env_from_entry`) with rl_zoo3's
        normalization (which also loads the statistics of a trained agent).
        """
        if self.env_name.gym_id != KARPATHY_PONG_ID:
            return super().create_envs(n_envs, eval_env, no_log)
        settings = {
            "env_kwargs": self.eval_env_kwargs if eval_env else self.env_kwargs,
            "env_wrapper": self.env_wrapper,
            "monitor_kwargs": self.monitor_kwargs,
            "vec_env_wrapper": self.vec_env_wrapper,
            "frame_stack": self.frame_stack,
        }
        try:
            return make_vec_env_from_entry(
                KARPATHY_PONG_ID,
                settings,
                n_envs=n_envs,
                seed=self.seed,
                evaluation=eval_env,
                monitor_dir=None if eval_env or no_log else self.save_path,
                normalize_env=functools.partial(self._maybe_normalize, eval_env=eval_env),
            )
        except (TypeError, ValueError) as error:
            raise HyperparamsError(f"{self._zoo_where}: {error}", [("env_kwargs", str(error))]) from error

    def _save_config(self, saved_hyperparams: dict[str, Any]) -> None:
        config = {key: to_yaml_data(value) for key, value in saved_hyperparams.items()}
        with open(os.path.join(self.params_path, "config.yml"), "w") as file:
            yaml.safe_dump(config, file)
        args = {key: to_yaml_data(value) for key, value in vars(self.args).items()}
        if isinstance(args.get("storage"), str):
            args["storage"] = _hide_password(args["storage"])
        with open(os.path.join(self.params_path, "args.yml"), "w") as file:
            yaml.safe_dump(args, file)
        command = " ".join(getattr(sys, "orig_argv", ["python3", *sys.argv]))
        (Path(self.params_path) / "command.txt").write_text(command)
        print(f"Log path: {self.save_path}")

    #: Optuna heartbeat of the trials (:func:`optuna_storage`): seconds between heartbeats, and seconds without one
    #: after which the trial of a dead worker is failed.
    optuna_heartbeat_interval: int = 60
    optuna_grace_period: int = 180

    def _optuna_storage(self) -> Any:
        """This worker's storage object (one per manager: one engine, one heartbeat setting)."""
        if getattr(self, "_zoo_optuna_storage", None) is None and self.storage is not None:
            self._zoo_optuna_storage = optuna_storage(self.storage, self.optuna_heartbeat_interval, self.optuna_grace_period)
        return getattr(self, "_zoo_optuna_storage", None)

    def load_trial(self, storage: str, study_name: str, trial_id: int | None = None, convert: bool = True) -> dict[str, Any]:
        """
        The parameters of trial number ``trial_id`` (``--trial-id``), or of the best trial, which must be COMPLETE
        (:func:`~sb3_reinforce.tuning.select_trial`), converted to keyword arguments.
        """
        from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER

        trial = select_trial(load_study(normalize_storage_url(storage), study_name), trial_id)
        if not convert:
            return dict(trial.params)
        params = HYPERPARAMS_CONVERTER[self.algo](trial.params)
        return {key: to_yaml_data(value) if key == "policy_kwargs" else value for key, value in params.items()}

    def _episode_step_limit(self) -> int | None:
        """Longest possible episode: the env's time limit, and for REINFORCE its buffer's ``max_episode_steps``."""
        import inspect

        import gymnasium as gym

        from sb3_reinforce.common.buffers import EpisodeRolloutBuffer

        limit = self.env_kwargs.get("max_episode_steps")
        if limit is None:
            try:
                limit = gym.spec(self.env_name.gym_id).max_episode_steps
            except gym.error.Error:
                limit = None
        if self.algo == "reinforce":
            # An episode longer than the buffer's max_episode_steps stops training with an error
            buffer_class = self._hyperparams.get("rollout_buffer_class") or EpisodeRolloutBuffer
            default = inspect.signature(buffer_class).parameters.get("max_episode_steps")
            cap = (self._hyperparams.get("rollout_buffer_kwargs") or {}).get(
                "max_episode_steps", None if default is None else default.default
            )
            if isinstance(cap, int):
                limit = cap if limit is None else min(int(limit), cap)
        return None if limit is None else int(limit)

    def _study_protocol(self) -> dict[str, Any]:
        """
        The budget and search space of this worker's trials, as recorded in the study (see :meth:`_record_study`).

        :raises StudyError: the budget is too small for any REINFORCE batch
        """
        import json

        if getattr(self, "_zoo_study_protocol", None) is not None:
            return self._zoo_study_protocol
        n_envs = int(self.n_envs)
        budget = dict(
            algo=self.algo,
            env_id=self.env_name.gym_id,
            n_timesteps=int(self.n_timesteps),
            n_envs=n_envs,
            max_episode_steps=self._episode_step_limit(),
            n_evaluations=int(self.n_evaluations),
            # env steps between evaluations, as rl_zoo3's objective computes it
            eval_freq=max(int(self.n_timesteps / self.n_evaluations) // n_envs, 1) * n_envs,
            n_eval_episodes=int(self.n_eval_episodes),
            n_eval_envs=int(self.n_eval_envs),
            deterministic_eval=bool(self.deterministic_eval),
        )
        fixed = {key: value for key, value in self._zoo_raw_hyperparams.items() if key not in ("n_timesteps", "n_envs")}
        fixed["env_kwargs"] = to_yaml_data(self.env_kwargs)
        if self.algo == "reinforce":
            fixed = {key: value for key, value in fixed.items() if key not in SAMPLED_KEYS}
            try:
                space = reinforce_search_space(budget["n_timesteps"], n_envs, budget["max_episode_steps"])
            except ValueError as error:
                raise StudyError(f"{self._zoo_where}: {error}", [("n_timesteps", str(error))]) from error
            search_space = describe_search_space(space, fixed)
        else:
            # rl_zoo3's samplers are code, not tables: the sampler's name and a hash of its source stand for its space
            import hashlib
            import inspect

            from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER

            sampler = HYPERPARAMS_SAMPLER[self.algo]
            source = inspect.getsource(sampler).encode()
            search_space = {
                "sampler": f"{sampler.__module__}.{sampler.__qualname__}",
                "sampler_source_sha256": hashlib.sha256(source).hexdigest(),
                "fixed": to_yaml_data(fixed),
            }
        # As stored (JSON), so that it compares equal to what is read back
        protocol = json.loads(json.dumps({"budget": budget, "search_space": search_space}))
        protocol["search_space_sha256"] = canonical_sha256(protocol["search_space"])
        self._zoo_study_protocol = protocol
        return protocol

    def _check_study_protocol(self, attrs: dict[str, Any]) -> None:
        """Raise :class:`StudyError` naming every field where the study's budget or search space differ from ours."""
        protocol = self._study_protocol()
        differences = _differences(attrs.get(STUDY_ATTR_BUDGET), protocol["budget"], "budget", depth=1)
        if attrs.get(STUDY_ATTR_SEARCH_SPACE_SHA256) != protocol["search_space_sha256"]:
            space = _differences(attrs.get(STUDY_ATTR_SEARCH_SPACE), protocol["search_space"], "search_space", depth=2)
            hashes = (attrs.get(STUDY_ATTR_SEARCH_SPACE_SHA256), protocol["search_space_sha256"])
            differences += space or [f"search_space_sha256: {hashes[0]!r} (study) != {hashes[1]!r} (here)"]
        if differences:
            raise StudyError(
                f"Optuna study {self.study_name!r} ({_hide_password(self.storage)}) was started with another budget or "
                "search space than this worker's; its trials would not be comparable, so this worker does not join it:\n  "
                + "\n  ".join(differences)
                + "\nStart the worker with the study's settings, or use a new --study-name."
            )

    def _record_study(self) -> None:
        """
        Record the algorithm, env and base hyperparameters (read by ``export-best``), the budget and the search space
        in the study, or, when it has them already, check that this worker's are the same; fail the trials of dead
        workers (heartbeat).

        :raises StudyError: the study was started with another budget or search space, or has trials but records none
        """
        import warnings

        import optuna

        if self.storage is None:
            return
        protocol = self._study_protocol()
        for attempt in range(5):
            try:
                study = optuna.create_study(
                    storage=self._optuna_storage(), study_name=self.study_name, load_if_exists=True, direction="maximize"
                )
                attrs = study.user_attrs
                if STUDY_ATTR_BUDGET not in attrs:
                    n_trials = len(study.get_trials(deepcopy=False))
                    if n_trials:
                        raise StudyError(
                            f"Optuna study {self.study_name!r} ({_hide_password(self.storage)}) has {n_trials} trial(s) but "
                            "records no budget nor search space (made by an older sb3_reinforce or another tool): its "
                            "trials cannot be checked against this worker's. Use a new --study-name."
                        )
                    if STUDY_ATTR_HYPERPARAMS not in attrs:
                        study.set_user_attr(STUDY_ATTR_ALGO, self.algo)
                        study.set_user_attr(STUDY_ATTR_ENV, self.env_name.gym_id)
                        study.set_user_attr(STUDY_ATTR_HYPERPARAMS, self._zoo_raw_hyperparams)
                    study.set_user_attr(STUDY_ATTR_SEARCH_SPACE, protocol["search_space"])
                    study.set_user_attr(STUDY_ATTR_SEARCH_SPACE_SHA256, protocol["search_space_sha256"])
                    study.set_user_attr(STUDY_ATTR_BUDGET, protocol["budget"])
                    # Read back: a worker that recorded at the same time is caught here or before its next trial
                    attrs = study.user_attrs
                break
            except StudyError:
                raise
            except Exception:
                # Workers starting together can race on the schema/study creation: retry
                if attempt == 4:
                    raise
                time.sleep(1.0 + attempt)
        self._check_study_protocol(attrs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)

    def objective(self, trial: Any) -> float:
        """rl_zoo3's objective, after checking the study's budget again and giving it to the sampler (trial attribute)."""
        if self.storage is not None:
            self._check_study_protocol(trial.study.user_attrs)
        trial.set_user_attr(TRIAL_ATTR_BUDGET, self._study_protocol()["budget"])
        return super().objective(trial)

    def hyperparameters_optimization(self) -> None:
        """rl_zoo3's optimization loop, on a storage with heartbeat, in a study whose budget and space match ours."""
        import rl_zoo3.exp_manager

        self._record_study()
        saved = rl_zoo3.exp_manager.optuna
        rl_zoo3.exp_manager.optuna = _OptunaForZoo(self._optuna_storage())
        try:
            super().hyperparameters_optimization()
        finally:
            rl_zoo3.exp_manager.optuna = saved


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


@contextlib.contextmanager
def zoo_patches() -> Iterator[None]:
    """
    While active, rl_zoo3's ``train``/``enjoy`` use the safe experiment manager and helpers of this module (and
    REINFORCE is registered), and ``VecNormalize.load`` unpickles no code (:func:`_safe_vec_normalize_load`).
    rl_zoo3's modules and ``VecNormalize.load`` are restored on exit.
    """
    import rl_zoo3.enjoy
    import rl_zoo3.train
    import rl_zoo3.utils

    register_reinforce()
    patches = [
        (rl_zoo3.train, "ExperimentManager", ReinforceExperimentManager),
        (rl_zoo3.train, "StoreDict", SafeStoreDict),
        (rl_zoo3.enjoy, "StoreDict", SafeStoreDict),
        (rl_zoo3.enjoy, "get_saved_hyperparams", safe_get_saved_hyperparams),
        (rl_zoo3.enjoy, "yaml", _SafeYaml()),
        # SB3's class itself (rl_zoo3.utils and rl_zoo3.exp_manager import the same one), whoever calls its load
        (rl_zoo3.utils.VecNormalize, "load", staticmethod(_safe_vec_normalize_load)),
    ]
    # vars(): the class's staticmethod itself is restored, not the function getattr returns
    saved = [(module, name, vars(module)[name]) for module, name, _ in patches]
    try:
        for module, name, value in patches:
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


@contextlib.contextmanager
def _argv(prog: str, argv: Sequence[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        yield
    finally:
        sys.argv = saved


def _import_env_modules() -> None:
    for module in _ENV_MODULES:
        with contextlib.suppress(ImportError):
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)


#: Command-line flag of every zoo command: let hyperparameter files name any importable callable (see
#: :func:`sb3_reinforce.hyperparams.check_hyperparams_code`).
TRUST_CODE_FLAG = "--trust-code"
_TRUST_CODE_HELP = (
    "trust the hyperparameter files: import any callable they name (env_wrapper, callback, policy, ...) and call it "
    "with any arguments, and unpickle a run's vecnormalize.pkl with SB3's pickle.load. Without it only classes of the "
    "expected kind from trusted packages, with plain-data arguments, are accepted, and vecnormalize.pkl may hold only "
    "what VecNormalize.save writes"
)


def _trust_code_flag(command: Any) -> Any:
    """Run ``command(argv)`` with ``--trust-code`` taken out of ``argv`` and, when given, inside :func:`trusted_code`."""

    @functools.wraps(command)
    def run(argv: Sequence[str] | None = None) -> Any:
        argv = list(sys.argv[2:] if argv is None else argv)
        trust = TRUST_CODE_FLAG in argv
        with trusted_code() if trust else contextlib.nullcontext():
            return command([arg for arg in argv if arg != TRUST_CODE_FLAG])

    return run


def _check_zoo_arguments(argv: Sequence[str]) -> None:
    """
    Raise :class:`~sb3_reinforce.common.safety.UsageError` for the careless mistakes rl_zoo3 answers with a traceback:
    an env id not registered (with the closest ids), a missing ``-i``/``--trained-agent`` or ``--conf-file``.

    :param argv: the command's arguments (rl_zoo3's names for these options)
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--env", default=None)
    parser.add_argument("-i", "--trained-agent", default="")
    parser.add_argument("-conf", "--conf-file", default=None)
    args, _ = parser.parse_known_args(argv)
    if args.env is not None:
        check_env_id(args.env)
    if args.trained_agent:
        check_input_file(args.trained_agent, "-i/--trained-agent")
    if args.conf_file is not None and args.conf_file.endswith((".yml", ".yaml")):  # else a Python module, for rl_zoo3
        check_input_file(args.conf_file, "--conf-file")


def _checked_get_model_path(get_model_path: Callable[..., tuple[str, str, str]]) -> Callable[..., tuple[str, str, str]]:
    """
    rl_zoo3's ``get_model_path`` for ``enjoy``: a missing run folder or model is a :class:`UsageError`, and a model
    of another algorithm than ``--algo`` says which one it is (e.g. ``--algo ppo`` on a REINFORCE run folder).
    """

    @functools.wraps(get_model_path)
    def checked(exp_id: int, folder: str, algo: str, *args: Any, **kwargs: Any) -> tuple[str, str, str]:
        from sb3_reinforce.common.serialization import read_model_data

        try:
            result = get_model_path(exp_id, folder, algo, *args, **kwargs)
        except (AssertionError, ValueError) as error:  # rl_zoo3's messages: "The ... folder was not found", ...
            raise UsageError(str(error)) from error
        model_file = result[1]
        with contextlib.suppress(OSError, ValueError):
            expected = rl_zoo3_algo_path(algo)
            json_string = read_model_data(Path(model_file).read_bytes())
            other = None if json_string is None or expected is None else other_algorithm_message(json_string, expected)
            if other is not None:
                raise UsageError(f"{model_file}: {other} (enjoy --algo {algo} cannot run it)")
        return result

    return checked


def rl_zoo3_algo_path(algo: str) -> str | None:
    """
    The class path (``"stable_baselines3.PPO"``) of an rl_zoo3 algorithm name, or None if not known.

    :param algo: rl_zoo3's name, e.g. ``"ppo"``
    """
    import rl_zoo3

    cls = rl_zoo3.ALGOS.get(algo)
    if cls is None:
        return None
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"


def _with_default_algo(argv: Sequence[str]) -> list[str]:
    argv = list(argv)
    if not any(arg == "--algo" or arg.startswith("--algo=") for arg in argv) and not any(a in ("-h", "--help") for a in argv):
        argv = ["--algo", "reinforce", *argv]
    return argv


# ---------------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------------


@_trust_code_flag
def train(argv: Sequence[str] | None = None) -> None:
    """
    rl_zoo3's ``train`` (all its options, ``--optimize`` included) with REINFORCE registered and safe loading.
    ``--algo`` defaults to ``reinforce``; ``--trust-code`` lets the hyperparameter file name any callable.

    :param argv: command-line arguments after ``train`` (default: ``sys.argv[2:]``)
    """
    import rl_zoo3.train

    _import_env_modules()
    argv = _with_default_algo(sys.argv[2:] if argv is None else argv)
    with zoo_patches(), _argv("sb3-reinforce-zoo train", argv):
        _check_zoo_arguments(argv)
        rl_zoo3.train.train()


@_trust_code_flag
def enjoy(argv: Sequence[str] | None = None) -> None:
    """
    rl_zoo3's ``enjoy`` with REINFORCE registered and safe loading of the saved ``config.yml``/``args.yml``.
    ``--algo`` defaults to ``reinforce``; ``--trust-code`` lets the saved config name any callable.

    :param argv: command-line arguments after ``enjoy`` (default: ``sys.argv[2:]``)
    """
    import rl_zoo3.enjoy

    _import_env_modules()
    argv = _with_default_algo(sys.argv[2:] if argv is None else argv)
    get_model_path = rl_zoo3.enjoy.get_model_path
    with zoo_patches(), _argv("sb3-reinforce-zoo enjoy", argv):
        _check_zoo_arguments(argv)
        rl_zoo3.enjoy.get_model_path = _checked_get_model_path(get_model_path)
        try:
            rl_zoo3.enjoy.enjoy()
        finally:
            rl_zoo3.enjoy.get_model_path = get_model_path


@_trust_code_flag
def export_best(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """
    Export the best trial of a REINFORCE study as a validated hyperparameter-file entry: nothing is written that
    ``validate`` (with the same ``--trust-code``) would refuse.

    :param argv: command-line arguments after ``export-best`` (see ``--help``)
    :return: ``{env id: entry}``
    """
    parser = argparse.ArgumentParser(
        prog="sb3-reinforce-zoo export-best",
        description="Write the best trial of an Optuna study as a reinforce.yml entry (validated).",
    )
    parser.add_argument("--storage", required=True, help="Optuna storage: sqlite:///file.db, postgresql://..., file.log")
    parser.add_argument("--study-name", required=True, help="Study name")
    parser.add_argument("--env", default=None, help="Environment id (default: recorded in the study)")
    parser.add_argument("--trial-id", type=int, default=None, help="Export this trial number instead of the best one")
    parser.add_argument(
        "-conf",
        "--conf-file",
        default=None,
        help="Hyperparameter file for the base entry (default: the one recorded in the study, else the packaged file)",
    )
    parser.add_argument(
        "-o", "--output", default=None, help="YAML file to write (the env's entry is replaced); default: stdout"
    )
    parser.add_argument(TRUST_CODE_FLAG, action="store_true", help=_TRUST_CODE_HELP)
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)

    env_id, entry, trial = best_trial_hyperparams(
        normalize_storage_url(args.storage),
        args.study_name,
        env_id=args.env,
        trial_number=args.trial_id,
        conf_file=args.conf_file,
    )
    header = f"# Optuna study {args.study_name!r}, trial {trial.number}, value {trial.value}\n"
    if args.output is None:
        validate_hyperparams_content({env_id: entry}, where="the exported entry")
        sys.stdout.write(header + yaml.safe_dump({env_id: entry}, sort_keys=False))
    else:
        content: dict[str, Any] = {}
        if os.path.isfile(args.output):
            content = load_hyperparams_file(args.output)
        content[env_id] = entry
        # The whole file is checked as `validate` would (the study's recorded base entry and the file's other entries)
        validate_hyperparams_content(content, where=args.output)
        # Atomically: the file's other entries are never lost to a crash half-way
        with atomic_write(args.output) as file:
            file.write((header + yaml.safe_dump(content, sort_keys=False)).encode())
        print(f"Wrote {env_id} (trial {trial.number}, value {trial.value}) to {args.output}", file=sys.stderr)
    return {env_id: entry}


@_trust_code_flag
def validate(argv: Sequence[str] | None = None) -> None:
    """
    Validate REINFORCE hyperparameter files (default: the packaged ``reinforce.yml``) with the checks ``train`` runs:
    exit status 1 when an entry is invalid, 2 when a file cannot be read (missing, not YAML, over the limits).

    :param argv: file names, and ``--trust-code``
    """
    parser = argparse.ArgumentParser(prog="sb3-reinforce-zoo validate", description="Validate REINFORCE hyperparameter files.")
    parser.add_argument("files", nargs="*", help="YAML files (default: the packaged reinforce.yml)")
    parser.add_argument(TRUST_CODE_FLAG, action="store_true", help=_TRUST_CODE_HELP)
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    status = 0
    for path in args.files or [str(default_hyperparams_path("reinforce"))]:
        try:
            content = load_hyperparams_file(path)
        except HyperparamsError as error:
            print(f"error: {error}", file=sys.stderr)
            status = 2
            continue
        try:
            validate_hyperparams_content(content, where=path)
            print(f"{path}: OK ({len(content)} entries)")
        except HyperparamsError as error:
            print(error, file=sys.stderr)
            status = max(status, 1)
    if status:
        raise SystemExit(status)


_COMMANDS = {"train": train, "enjoy": enjoy, "export-best": export_best, "validate": validate}


def main(argv: Sequence[str] | None = None) -> None:
    """
    ``sb3-reinforce-zoo {train,enjoy,export-best,validate} [options]``.

    :param argv: command line without the program name (default: ``sys.argv[1:]``)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in _COMMANDS:
        print(f"error: unknown command {argv[0]!r}: choose from {', '.join(_COMMANDS)} (see --help)", file=sys.stderr)
        raise SystemExit(2)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in _COMMANDS:
        print(
            "usage: sb3-reinforce-zoo {train,enjoy,export-best,validate} [options]\n\n"
            "  train        rl_zoo3 train (--algo reinforce by default; --optimize for Optuna)\n"
            "  enjoy        rl_zoo3 enjoy (run a trained agent)\n"
            "  export-best  write the best trial of an Optuna study as a reinforce.yml entry\n"
            "  validate     validate REINFORCE hyperparameter files\n\n"
            "Every command takes --trust-code: let hyperparameter files name any importable callable (by default only\n"
            "classes of the expected kind from trusted packages, with plain-data arguments) and unpickle a run's\n"
            "vecnormalize.pkl as SB3 does (by default only what VecNormalize.save writes).\n"
            "Run `sb3-reinforce-zoo COMMAND --help` for the options of a command.",
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(2)
        return
    from sb3_reinforce.common.serialization import UntrustedPickleError

    try:
        _COMMANDS[argv[0]](argv[1:])
    except (HyperparamsError, UntrustedPickleError, UsageError) as error:
        # A user's file that cannot be used as it is: one clear message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
