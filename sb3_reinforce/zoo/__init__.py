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

from sb3_reinforce.zoo.action_spaces import algorithms_supporting, check_action_space
from sb3_reinforce.zoo.cli import main
from sb3_reinforce.zoo.commands import enjoy, export_best, train, validate
from sb3_reinforce.zoo.experiment import ReinforceExperimentManager
from sb3_reinforce.zoo.running import TRUST_CODE_FLAG, register_reinforce, rl_zoo3_algo_path, run_rl_zoo3_script, zoo_patches
from sb3_reinforce.zoo.safe_loading import SafeStoreDict, parse_cli_value, safe_get_saved_hyperparams
from sb3_reinforce.zoo.storage import default_storage_url, normalize_storage_url, optuna_storage
from sb3_reinforce.zoo.tools import plot, record_training, record_video

__all__ = [
    "TRUST_CODE_FLAG",
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
    "rl_zoo3_algo_path",
    "run_rl_zoo3_script",
    "safe_get_saved_hyperparams",
    "train",
    "validate",
    "zoo_patches",
]
