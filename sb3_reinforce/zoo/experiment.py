"""rl_zoo3's ``ExperimentManager`` with safe loading, REINFORCE validation and Optuna studies that record their protocol."""

import functools
import os
import sys
import time
from typing import Any

import yaml
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.safety import atomic_write
from sb3_reinforce.hyperparams import (
    HyperparamsError,
    check_hyperparams_code,
    default_hyperparams_path,
    load_hyperparams_file,
    select_env_entry,
    to_yaml_data,
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
    TRIAL_ATTR_GAMMA,
    StudyError,
    canonical_sha256,
    describe_search_space,
    load_study,
    merge_policy_kwargs,
    reinforce_search_space,
    select_trial,
)
from sb3_reinforce.zoo.action_spaces import check_action_space, check_env_action_space
from sb3_reinforce.zoo.safe_loading import _parse_literal_keys
from sb3_reinforce.zoo.storage import (
    _MEMORY_STORAGE,
    _hide_password,
    _OptunaForZoo,
    default_storage_url,
    normalize_storage_url,
    optuna_storage,
)

__all__ = ["ReinforceExperimentManager"]


def _differences(study: Any, here: Any, name: str, depth: int) -> list[str]:
    """``name.key: <study value> (study) != <our value> (here)`` for every differing key, ``depth`` dicts deep."""
    if depth > 0 and isinstance(study, dict) and isinstance(here, dict):
        keys = sorted(set(study) | set(here))
        return [line for key in keys for line in _differences(study.get(key), here.get(key), f"{name}.{key}", depth - 1)]
    return [] if study == here else [f"{name}: {study!r} (study) != {here!r} (here)"]


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

        # First, so that an env no entry is for because the algorithm cannot act on it (dqn on Pendulum) is told so:
        # the algorithm must support the env's action space. KarpathyPong-v0's env_kwargs are for its vector env (its
        # actions are always Discrete).
        env_kwargs = None if self.env_name.gym_id == KARPATHY_PONG_ID else self.env_kwargs
        check_env_action_space(self.algo, self.env_name.gym_id, env_kwargs)
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
            hyperparams.update(self.load_trial(self.storage, self.study_name, self.trial_id, base=hyperparams))
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
        rl_zoo3's envs (the training env checked against the algorithm's action spaces), except ``KarpathyPong-v0``:
        ale-py's native vector env, built by the tools' own path from the entry's settings
        (:func:`~sb3_reinforce.hyperparams.make_vec_env_from_entry`) with rl_zoo3's normalization (which also loads
        the statistics of a trained agent).
        """
        if self.env_name.gym_id != KARPATHY_PONG_ID:
            env = super().create_envs(n_envs, eval_env, no_log)
            if not eval_env:
                # Again on the env built from the entry (its env_kwargs, wrappers), before a model is built on it
                check_action_space(self.algo, env, self.env_name.gym_id)
            return env
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
        args = {key: to_yaml_data(value) for key, value in vars(self.args).items()}
        if isinstance(args.get("storage"), str):
            args["storage"] = _hide_password(args["storage"])
        command = " ".join(getattr(sys, "orig_argv", ["python3", *sys.argv]))
        # Written whole or not at all: enjoy and the tools read config.yml and args.yml back
        files = {"config.yml": yaml.safe_dump(config), "args.yml": yaml.safe_dump(args), "command.txt": command}
        for name, text in files.items():
            with atomic_write(os.path.join(self.params_path, name)) as file:
                file.write(text.encode())
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

    def load_trial(
        self,
        storage: str,
        study_name: str,
        trial_id: int | None = None,
        convert: bool = True,
        base: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """
        The parameters of trial number ``trial_id`` (``--trial-id``), or of the best trial, which must be COMPLETE
        (:func:`~sb3_reinforce.tuning.select_trial`), converted to keyword arguments.

        :param base: the entry they update. A REINFORCE trial trained with the base entry's ``policy_kwargs``
            (``log_std_init``, ``ortho_init``, ...) updated by its sampled ones, so its ``policy_kwargs`` are merged
            the same way (:func:`~sb3_reinforce.tuning.merge_policy_kwargs`, as ``export-best`` writes them)
            instead of replacing the entry's whole.
        """
        from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER

        trial = select_trial(load_study(normalize_storage_url(storage), study_name), trial_id)
        if not convert:
            return dict(trial.params)
        params = HYPERPARAMS_CONVERTER[self.algo](trial.params)
        if self.algo == "reinforce" and base is not None and "policy_kwargs" in params:
            params["policy_kwargs"] = merge_policy_kwargs(base.get("policy_kwargs"), params["policy_kwargs"])
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
        self._zoo_trial = trial
        try:
            return super().objective(trial)
        finally:
            self._zoo_trial = None

    def _maybe_normalize(self, env: VecEnv, eval_env: bool) -> VecEnv:
        """
        rl_zoo3's ``VecNormalize`` wrapping, whose return normalization discounts with the trial's sampled
        ``gamma`` (every sampler records it as the trial attribute :data:`~sb3_reinforce.tuning.TRIAL_ATTR_GAMMA`)
        instead of the base entry's: rl_zoo3 reads that discount once, from the entry, before any trial samples its own.
        """
        trial = getattr(self, "_zoo_trial", None)
        gamma = None if trial is None else trial.user_attrs.get(TRIAL_ATTR_GAMMA)
        if gamma is None or not self.normalize:
            return super()._maybe_normalize(env, eval_env)
        entry_kwargs = self.normalize_kwargs
        self.normalize_kwargs = {**entry_kwargs, "gamma": float(gamma)}
        try:
            return super()._maybe_normalize(env, eval_env)
        finally:
            self.normalize_kwargs = entry_kwargs

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
