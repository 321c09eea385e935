"""
Compare REINFORCE (and variants of it) with PPO, A2C, ... under one evaluation protocol.

Every algorithm x seed is trained with its zoo hyperparameters (REINFORCE: this package's
``hyperparams/reinforce.yml``; other algorithms: rl_zoo3's own files, loaded safely by
:func:`sb3_reinforce.hyperparams.load_hyperparams`) and evaluated on a separate env, deterministically,
every ``--eval-freq`` env steps for ``--eval-episodes`` episodes. Evaluation time is not counted as training time.

Usage::

    python -m sb3_reinforce.compare --env CartPole-v1 --algos reinforce ppo a2c --seeds 5 --timesteps 100000 \\
        --out runs/cartpole --n-jobs 2
    python -m sb3_reinforce.compare variance --env CartPole-v1 --variants total reward_to_go reward_to_go+mean

Algorithm syntax (``--algos``)::

    <algo>                                   an rl_zoo3 algorithm (ppo, a2c, ...) or reinforce, zoo settings
    reinforce[:<return_mode>][+<baseline>][+norm|+nonorm]

``return_mode`` and ``baseline`` are names of the estimator registry (``sb3_reinforce.common.estimators``:
``total``/``reward_to_go``; ``none``, ``mean``, ``optimal``, ``time``, ``value``); ``norm``/``nonorm`` switch
``normalize_advantage`` on/off. Parts left out keep the zoo entry's value, e.g.
``reinforce:total``, ``reinforce:reward_to_go+value``, ``reinforce:total+mean+norm``, ``reinforce+nonorm``.

Output (in ``--out``): one CSV per run (``<label>__seed<k>.csv``: timesteps, wall seconds of training,
mean and std of the evaluation return) with its protocol sidecar (``<label>__seed<k>.json``: env, algo spec,
seed, timesteps, evaluation frequency and episodes, sha256 of the hyperparameter entry used, the entry and its
file, package versions, and once finished the CSV's sha256 and final step), ``summary.md`` (table and protocol)
and the plots ``returns_vs_steps.png`` and ``returns_vs_wall.png``.

Resuming: both files are written atomically, the CSV first, then the sidecar saying ``complete``. A run is done
only when its sidecar says so, matches the CSV (sha256, final step) and records the protocol asked for; it is then
skipped. A killed, partial or damaged run is named on stderr and redone from scratch. A finished run made with
another protocol (``timesteps``, ``eval_freq``, ``eval_episodes``, env, algo spec, seed, entry hash) is never mixed
with new ones: the command refuses (exit status 2) naming the runs and the fields that differ, unless
``--rerun-changed`` (redo them) or a new ``--out``. Package versions that differ are reported (stderr and
``summary.md``), not refused. With ``--n-jobs`` > 1 the runs go to worker processes that die with the command,
even when it is SIGKILLed.

Modules: :mod:`~sb3_reinforce.compare.specs` (the ``--algos`` rows), :mod:`~sb3_reinforce.compare.records` (a run's
CSV and protocol sidecar), :mod:`~sb3_reinforce.compare.training` (one run), :mod:`~sb3_reinforce.compare.pool`
(workers that die with the command), :mod:`~sb3_reinforce.compare.runs` (the whole comparison),
:mod:`~sb3_reinforce.compare.report` (``summary.md`` and plots), :mod:`~sb3_reinforce.compare.cli`.
"""

from sb3_reinforce.compare.cli import build_parser, main
from sb3_reinforce.compare.records import (
    CSV_FIELDS,
    PROTOCOL_FIELDS,
    RECORD_FORMAT,
    VERSION_PACKAGES,
    RunFileError,
    check_run,
    hyperparams_sha256,
    load_run,
    package_versions,
    read_curve,
    resolve_entry,
    run_csv_path,
    run_protocol,
    run_record_path,
)
from sb3_reinforce.compare.report import (
    default_threshold,
    interval_estimates,
    mean_band,
    plot_curves,
    protocol_markdown,
    steps_to_threshold,
    summarize,
    write_report,
)
from sb3_reinforce.compare.runs import ProtocolMismatchError, run_comparison
from sb3_reinforce.compare.specs import AlgoSpec, AlgoSpecError, parse_algo_spec
from sb3_reinforce.compare.training import train_and_evaluate

__all__ = [
    "CSV_FIELDS",
    "PROTOCOL_FIELDS",
    "RECORD_FORMAT",
    "VERSION_PACKAGES",
    "AlgoSpec",
    "AlgoSpecError",
    "ProtocolMismatchError",
    "RunFileError",
    "build_parser",
    "check_run",
    "default_threshold",
    "hyperparams_sha256",
    "interval_estimates",
    "load_run",
    "main",
    "mean_band",
    "package_versions",
    "parse_algo_spec",
    "plot_curves",
    "protocol_markdown",
    "read_curve",
    "resolve_entry",
    "run_comparison",
    "run_csv_path",
    "run_protocol",
    "run_record_path",
    "steps_to_threshold",
    "summarize",
    "train_and_evaluate",
    "write_report",
]
