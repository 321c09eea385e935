"""
rl-zoo entry point with REINFORCE registered next to rl_zoo3's algorithms.

Usage::

    python -m sb3_reinforce.zoo train --algo reinforce --env CartPole-v1
    python -m sb3_reinforce.zoo enjoy --algo reinforce --env CartPole-v1 -f logs/
    python -m sb3_reinforce.zoo train --algo reinforce --env CartPole-v1 --optimize --n-trials 20 -n 50000
    python -m sb3_reinforce.zoo export-best --storage sqlite:///logs/reinforce/optuna.db \\
        --study-name reinforce-CartPole-v1 -o my_hyperparams.yml
    python -m sb3_reinforce.zoo validate zoo_hyperparams/reinforce.yml
    python -m sb3_reinforce.zoo record-video --algo reinforce --env CartPole-v1 -f logs/ -n 1000
    python -m sb3_reinforce.zoo record-training --algo reinforce --env CartPole-v1 -f logs/
    python -m sb3_reinforce.zoo plot train --algo reinforce --env CartPole-v1 -f logs/ --save curve.png

``train``, ``enjoy``, ``record-video``, ``record-training`` and ``plot`` (``train``/``from-file``/``all``) are
rl_zoo3's own tools (same options, see ``--help``; :mod:`sb3_reinforce.zoo.tools`), run with:

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
  ``--storage postgresql://user:password@host/db`` for several machines, ``--storage memory`` for no storage;
- an algorithm that does not support the env's action space refused in one line before anything is built
  (:mod:`sb3_reinforce.zoo.action_spaces`).

``python -m rl_zoo3.train --algo reinforce`` cannot work: rl_zoo3's parser takes ``--algo``'s choices from
``rl_zoo3.utils.ALGOS`` when it is built and imports ``--gym-packages`` only after parsing, and rl_zoo3 reads no
entry points; as rl_zoo3's own guide does for SBX, this package runs rl_zoo3's code with its algorithm registered.

Modules: :mod:`~sb3_reinforce.zoo.cli` (the command table), :mod:`~sb3_reinforce.zoo.commands` (train, enjoy,
export-best, validate), :mod:`~sb3_reinforce.zoo.tools` (record-video, record-training, plot),
:mod:`~sb3_reinforce.zoo.running` (registration, patches, argument checks), :mod:`~sb3_reinforce.zoo.experiment`
(the experiment manager), :mod:`~sb3_reinforce.zoo.safe_loading`, :mod:`~sb3_reinforce.zoo.storage` (Optuna) and
:mod:`~sb3_reinforce.zoo.action_spaces`.
"""

# The names of the single-module layout (before the split into one-job modules), all still importable from here
import argparse  # noqa: F401
import contextlib  # noqa: F401
import functools  # noqa: F401
import importlib  # noqa: F401
import os  # noqa: F401
import re  # noqa: F401
import sys  # noqa: F401
import time  # noqa: F401
from collections.abc import Callable, Iterator, Sequence  # noqa: F401
from pathlib import Path  # noqa: F401
from typing import Any  # noqa: F401

import yaml  # noqa: F401
from rl_zoo3.exp_manager import ExperimentManager  # noqa: F401
from stable_baselines3.common.vec_env import VecEnv  # noqa: F401

from sb3_reinforce.common.safety import UsageError, atomic_write, check_env_id, check_input_file  # noqa: F401
from sb3_reinforce.common.serialization import other_algorithm_message  # noqa: F401
from sb3_reinforce.hyperparams import (  # noqa: F401
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
from sb3_reinforce.hyperparams.building import make_vec_env_from_entry  # noqa: F401
from sb3_reinforce.pong.registration import KARPATHY_PONG_ID  # noqa: F401
from sb3_reinforce.tuning import (  # noqa: F401
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
from sb3_reinforce.zoo.action_spaces import algorithms_supporting, check_action_space
from sb3_reinforce.zoo.cli import _COMMANDS, main  # noqa: F401
from sb3_reinforce.zoo.commands import enjoy, export_best, train, validate
from sb3_reinforce.zoo.experiment import ReinforceExperimentManager, _differences  # noqa: F401
from sb3_reinforce.zoo.running import (  # noqa: F401
    _ENV_MODULES,
    _TRUST_CODE_HELP,
    TRUST_CODE_FLAG,
    _argv,
    _check_zoo_arguments,
    _checked_get_model_path,
    _import_env_modules,
    _trust_code_flag,
    _with_default_algo,
    register_reinforce,
    rl_zoo3_algo_path,
    run_rl_zoo3_script,
    zoo_patches,
)
from sb3_reinforce.zoo.safe_loading import (  # noqa: F401
    SafeStoreDict,
    _parse_literal_keys,
    _safe_vec_normalize_load,
    _SafePickle,
    _SafeYaml,
    parse_cli_value,
    safe_get_saved_hyperparams,
)
from sb3_reinforce.zoo.storage import (  # noqa: F401
    _MEMORY_STORAGE,
    _hide_password,
    _OptunaForZoo,
    _report_stale_trial,
    default_storage_url,
    normalize_storage_url,
    optuna_storage,
)
from sb3_reinforce.zoo.tools import plot, record_training, record_video

__all__ = [
    "ReinforceExperimentManager",
    "SafeStoreDict",
    "algorithms_supporting",
    "check_action_space",
    "default_storage_url",
    "enjoy",
    "export_best",
    "main",
    "normalize_storage_url",
    "optuna_storage",
    "parse_cli_value",
    "plot",
    "record_training",
    "record_video",
    "register_reinforce",
    "run_rl_zoo3_script",
    "safe_get_saved_hyperparams",
    "train",
    "validate",
    "zoo_patches",
]
