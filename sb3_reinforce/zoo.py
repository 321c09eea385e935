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
- safe loading: YAML through ``yaml.SafeLoader``, no Python config files, and the strings rl_zoo3 would ``eval``
  (``policy_kwargs``, ``normalize``, ``-params``, ``--env-kwargs``, ...) parsed by
  :func:`sb3_reinforce.hyperparams.parse_python_literal`; REINFORCE entries are validated;
- ``--optimize`` storing the study in ``sqlite:///<log folder>/<algo>/optuna.db`` by default (study name
  ``<algo>-<env>``), so that several worker processes started with the same command share one study. Pass
  ``--storage postgresql://user:password@host/db`` for several machines, ``--storage memory`` for no storage.
"""

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

from sb3_reinforce.envs import KARPATHY_PONG_ID, make_zoo_vec_env
from sb3_reinforce.hyperparams import (
    HyperparamsError,
    ZooSafeLoader,
    check_trusted_name,
    default_hyperparams_path,
    load_hyperparams_file,
    load_yaml,
    parse_python_literal,
    select_env_entry,
    to_yaml_data,
    validate_hyperparams_file,
    validate_reinforce_hyperparams,
)
from sb3_reinforce.optuna_sampler import (
    STUDY_ATTR_ALGO,
    STUDY_ATTR_ENV,
    STUDY_ATTR_HYPERPARAMS,
    best_trial_hyperparams,
    convert_reinforce_params,
    sample_reinforce_params,
)

__all__ = [
    "ReinforceExperimentManager",
    "SafeStoreDict",
    "default_storage_url",
    "enjoy",
    "export_best",
    "main",
    "normalize_storage_url",
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


def _check_import_names(hyperparams: dict[str, Any], where: str) -> None:
    for key in ("env_wrapper", "vec_env_wrapper", "callback"):
        value = hyperparams.get(key)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            name = next(iter(item)) if isinstance(item, dict) and len(item) == 1 else item
            if isinstance(name, str):
                try:
                    check_trusted_name(name)
                except HyperparamsError as error:
                    raise HyperparamsError(f"{where}: {key}: {error}", [(key, str(error))]) from error
    policy = hyperparams.get("policy")
    if isinstance(policy, str) and "." in policy:
        try:
            check_trusted_name(policy)
        except HyperparamsError as error:
            raise HyperparamsError(f"{where}: policy: {error}", [("policy", str(error))]) from error


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
    _check_import_names(hyperparams, config_file)
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
        return yaml.load(stream, Loader=ZooSafeLoader)


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
        entry_name, hyperparams = select_env_entry(content, self.env_name.gym_id, is_atari=self._is_atari)
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

        if self.algo == "reinforce":
            validate_reinforce_hyperparams(hyperparams, where=where)
        _check_import_names(hyperparams, where)
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

            check_trusted_name(hyperparams["rollout_buffer_class"])
            hyperparams["rollout_buffer_class"] = get_class_by_name(hyperparams["rollout_buffer_class"])
        return super()._preprocess_hyperparams(hyperparams)

    def create_envs(self, n_envs: int, eval_env: bool = False, no_log: bool = False) -> VecEnv:
        """rl_zoo3's envs, except ``KarpathyPong-v0``: ale-py's native vector env (see :mod:`sb3_reinforce.envs`)."""
        if self.env_name.gym_id != KARPATHY_PONG_ID:
            return super().create_envs(n_envs, eval_env, no_log)
        try:
            env = make_zoo_vec_env(
                KARPATHY_PONG_ID,
                n_envs=n_envs,
                seed=self.seed,
                env_kwargs=self.eval_env_kwargs if eval_env else self.env_kwargs,
                wrapper_class=self.env_wrapper,
                monitor_dir=None if eval_env or no_log else self.save_path,
                monitor_kwargs=self.monitor_kwargs,
            )
        except (TypeError, ValueError) as error:
            raise HyperparamsError(f"{self._zoo_where}: {error}", [("env_kwargs", str(error))]) from error
        if self.vec_env_wrapper is not None:
            env = self.vec_env_wrapper(env)
        env = self._maybe_normalize(env, eval_env)
        if self.frame_stack is not None:
            env = VecFrameStack(env, self.frame_stack)
        return env

    def load_trial(self, storage: str, study_name: str, trial_id: int | None = None, convert: bool = True) -> dict[str, Any]:
        params = super().load_trial(storage, study_name, trial_id, convert)
        return {key: to_yaml_data(value) if key == "policy_kwargs" else value for key, value in params.items()}

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

    def _record_study(self) -> None:
        """Record the algorithm, env and base hyperparameters in the study (read by ``export-best``)."""
        import optuna

        if self.storage is None or self.storage.endswith(".log"):
            return
        for attempt in range(5):
            try:
                study = optuna.create_study(
                    storage=self.storage, study_name=self.study_name, load_if_exists=True, direction="maximize"
                )
                if STUDY_ATTR_HYPERPARAMS not in study.user_attrs:
                    study.set_user_attr(STUDY_ATTR_ALGO, self.algo)
                    study.set_user_attr(STUDY_ATTR_ENV, self.env_name.gym_id)
                    study.set_user_attr(STUDY_ATTR_HYPERPARAMS, self._zoo_raw_hyperparams)
                return
            except Exception:
                # Workers starting together can race on the schema/study creation: retry
                if attempt == 4:
                    raise
                time.sleep(1.0 + attempt)

    def hyperparameters_optimization(self) -> None:
        self._record_study()
        super().hyperparameters_optimization()


@contextlib.contextmanager
def zoo_patches() -> Iterator[None]:
    """
    While active, rl_zoo3's ``train``/``enjoy`` use the safe experiment manager and helpers of this module (and
    REINFORCE is registered). rl_zoo3's modules are restored on exit.
    """
    import rl_zoo3.enjoy
    import rl_zoo3.train

    register_reinforce()
    patches = [
        (rl_zoo3.train, "ExperimentManager", ReinforceExperimentManager),
        (rl_zoo3.train, "StoreDict", SafeStoreDict),
        (rl_zoo3.enjoy, "StoreDict", SafeStoreDict),
        (rl_zoo3.enjoy, "get_saved_hyperparams", safe_get_saved_hyperparams),
        (rl_zoo3.enjoy, "yaml", _SafeYaml()),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
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


def _with_default_algo(argv: Sequence[str]) -> list[str]:
    argv = list(argv)
    if not any(arg == "--algo" or arg.startswith("--algo=") for arg in argv) and not any(a in ("-h", "--help") for a in argv):
        argv = ["--algo", "reinforce", *argv]
    return argv


# ---------------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------------


def train(argv: Sequence[str] | None = None) -> None:
    """
    rl_zoo3's ``train`` (all its options, ``--optimize`` included) with REINFORCE registered and safe loading.
    ``--algo`` defaults to ``reinforce``.

    :param argv: command-line arguments after ``train`` (default: ``sys.argv[2:]``)
    """
    import rl_zoo3.train

    _import_env_modules()
    argv = _with_default_algo(sys.argv[2:] if argv is None else argv)
    with zoo_patches(), _argv("sb3-reinforce-zoo train", argv):
        rl_zoo3.train.train()


def enjoy(argv: Sequence[str] | None = None) -> None:
    """
    rl_zoo3's ``enjoy`` with REINFORCE registered and safe loading of the saved ``config.yml``/``args.yml``.
    ``--algo`` defaults to ``reinforce``.

    :param argv: command-line arguments after ``enjoy`` (default: ``sys.argv[2:]``)
    """
    import rl_zoo3.enjoy

    _import_env_modules()
    argv = _with_default_algo(sys.argv[2:] if argv is None else argv)
    with zoo_patches(), _argv("sb3-reinforce-zoo enjoy", argv):
        rl_zoo3.enjoy.enjoy()


def export_best(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """
    Export the best trial of a REINFORCE study as a validated hyperparameter-file entry.

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
        sys.stdout.write(header + yaml.safe_dump({env_id: entry}, sort_keys=False))
    else:
        content: dict[str, Any] = {}
        if os.path.isfile(args.output):
            content = load_hyperparams_file(args.output)
        content[env_id] = entry
        Path(args.output).write_text(header + yaml.safe_dump(content, sort_keys=False))
        print(f"Wrote {env_id} (trial {trial.number}, value {trial.value}) to {args.output}", file=sys.stderr)
    return {env_id: entry}


def validate(argv: Sequence[str] | None = None) -> None:
    """
    Validate REINFORCE hyperparameter files (default: the packaged ``reinforce.yml``); exit status 1 on errors.

    :param argv: file names
    """
    parser = argparse.ArgumentParser(prog="sb3-reinforce-zoo validate", description="Validate REINFORCE hyperparameter files.")
    parser.add_argument("files", nargs="*", help="YAML files (default: the packaged reinforce.yml)")
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    failed = False
    for path in args.files or [str(default_hyperparams_path("reinforce"))]:
        try:
            content = validate_hyperparams_file(path)
            print(f"{path}: OK ({len(content)} entries)")
        except HyperparamsError as error:
            print(error, file=sys.stderr)
            failed = True
    if failed:
        raise SystemExit(1)


_COMMANDS = {"train": train, "enjoy": enjoy, "export-best": export_best, "validate": validate}


def main(argv: Sequence[str] | None = None) -> None:
    """
    ``sb3-reinforce-zoo {train,enjoy,export-best,validate} [options]``.

    :param argv: command line without the program name (default: ``sys.argv[1:]``)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in _COMMANDS:
        print(
            "usage: sb3-reinforce-zoo {train,enjoy,export-best,validate} [options]\n\n"
            "  train        rl_zoo3 train (--algo reinforce by default; --optimize for Optuna)\n"
            "  enjoy        rl_zoo3 enjoy (run a trained agent)\n"
            "  export-best  write the best trial of an Optuna study as a reinforce.yml entry\n"
            "  validate     validate REINFORCE hyperparameter files\n\n"
            "Run `sb3-reinforce-zoo COMMAND --help` for the options of a command.",
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(2)
        return
    try:
        _COMMANDS[argv[0]](argv[1:])
    except HyperparamsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


if __name__ == "__main__":
    main()
