"""
Compare REINFORCE (and variants of it) with PPO, A2C, ... under one evaluation protocol.

Every algorithm x seed is trained with its zoo hyperparameters (REINFORCE: this package's
``hyperparams/reinforce.yml``; other algorithms: rl_zoo3's own files, loaded safely by
:func:`sb3_reinforce.hyperparams.load_hyperparams`) and evaluated on a separate env, deterministically,
every ``--eval-freq`` env steps for ``--eval-episodes`` episodes. Evaluation time is not counted as training time.

Usage::

    python -m sb3_reinforce.compare --env CartPole-v1 --algos reinforce ppo a2c --seeds 5 --timesteps 100000 \\
        --out runs/cartpole --n-jobs 2
    python -m sb3_reinforce.compare --env KarpathyPong-v0 --algos reinforce ppo ppo@ALE/Pong-v5 --seeds 3 \\
        --minutes 60 --eval-freq 500000 --out runs/pong
    python -m sb3_reinforce.compare variance --env CartPole-v1 --variants total reward_to_go reward_to_go+mean

Algorithm syntax (``--algos``)::

    <algo>[@<env id>]                        an rl_zoo3 algorithm (ppo, a2c, ...) or reinforce, zoo settings
    reinforce[:<return_mode>][+<baseline>][+norm|+nonorm][@<env id>]

``@<env id>`` trains the row on another env than ``--env`` (evaluated with ``--env``'s protocol), e.g.
``ppo@ALE/Pong-v5``, rl-zoo's Atari PPO, next to the ``KarpathyPong-v0`` rows (:mod:`sb3_reinforce.compare.pong`).

``return_mode`` and ``baseline`` are names of the estimator registry (``sb3_reinforce.common.estimators``:
``total``/``reward_to_go``; ``none``, ``mean``, ``optimal``, ``time``, ``value``); ``norm``/``nonorm`` switch
``normalize_advantage`` on/off. Parts left out keep the zoo entry's value, e.g.
``reinforce:total``, ``reinforce:reward_to_go+value``, ``reinforce:total+mean+norm``, ``reinforce+nonorm``.

Output (in ``--out``): one CSV per run (``<label>__seed<k>.csv``: timesteps, wall seconds of training,
mean and std of the evaluation return) with its protocol sidecar (``<label>__seed<k>.json``: env, algo spec,
seed, timesteps, evaluation frequency and episodes, sha256 of the hyperparameter entry used, the entry and its
file, package versions, the machine (CPU, cores, torch CPU capability), and once finished the CSV's sha256 and
final step), ``summary.md`` (table and protocol) and the plots ``returns_vs_steps.png`` and ``returns_vs_wall.png``.

Budgets: ``--timesteps`` env steps and/or ``--minutes`` of each run's own training time (evaluations and
checkpoints not counted; checked at every env step, so a run stops within one step, or one update, of it). With
``--minutes`` alone the step cap is the entry's ``n_timesteps`` (the horizon of its ``lin_`` schedules). The sidecar
records the steps, episodes and training time reached and which budget stopped the run.

Checkpoints: every ``--checkpoint-minutes`` of training a run writes ``<label>__seed<k>.ckpt/`` (model, VecNormalize
statistics, training time, ``num_timesteps``, episodes and evaluation rows so far; atomically, the state last). A
killed comparison started again with the same command resumes each unfinished run from its last checkpoint (the
steps after it are redone: each is counted once); a checkpoint of another protocol, or damaged, is named and the
run starts from 0. The checkpoint is removed once the run is complete.

Resuming finished runs: both files are written atomically, the CSV first, then the sidecar saying ``complete``. A run is done
only when its sidecar says so, matches the CSV (sha256, final step) and records the protocol asked for; it is then
skipped. A killed, partial or damaged run is named on stderr and redone from scratch, unless it has a
checkpoint of the same protocol (then it is resumed, see above). A finished run made with
another protocol (``timesteps``, ``eval_freq``, ``eval_episodes``, env, algo spec, seed, entry hash) is never mixed
with new ones: the command refuses (exit status 2) naming the runs and the fields that differ, unless
``--rerun-changed`` (redo them) or a new ``--out``. Package versions that differ are reported (stderr and
``summary.md``), not refused. With ``--n-jobs`` > 1 the runs go to worker processes that die with the command,
even when it is SIGKILLed.

Modules: :mod:`~sb3_reinforce.compare.specs` (the ``--algos`` rows), :mod:`~sb3_reinforce.compare.records` (a run's
CSV and protocol sidecar), :mod:`~sb3_reinforce.compare.training` (one run), :mod:`~sb3_reinforce.compare.pool`
(workers that die with the command), :mod:`~sb3_reinforce.compare.runs` (the whole comparison),
:mod:`~sb3_reinforce.compare.report` (``summary.md`` and plots), :mod:`~sb3_reinforce.compare.checkpoints` (a run's
checkpoint), :mod:`~sb3_reinforce.compare.pong` (the Pong rows and their scoring), :mod:`~sb3_reinforce.compare.cli`.
"""

from sb3_reinforce.compare.checkpoints import CheckpointError, RunProgress, checkpoint_dir, read_checkpoint
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
    machine_description,
    package_versions,
    read_curve,
    resolve_entry,
    run_csv_path,
    run_protocol,
    run_record_path,
)
from sb3_reinforce.compare.report import (
    BAND_LABEL,
    budget_text,
    curve_figures,
    default_threshold,
    interval_estimates,
    mean_band,
    plot_curves,
    protocol_markdown,
    steps_to_threshold,
    summarize,
    wall_unit,
    write_report,
)
from sb3_reinforce.compare.runs import ProtocolMismatchError, run_comparison
from sb3_reinforce.compare.specs import AlgoSpec, AlgoSpecError, parse_algo_spec
from sb3_reinforce.compare.training import DEFAULT_CHECKPOINT_MINUTES, train_and_evaluate

__all__ = [
    "BAND_LABEL",
    "CSV_FIELDS",
    "DEFAULT_CHECKPOINT_MINUTES",
    "PROTOCOL_FIELDS",
    "RECORD_FORMAT",
    "VERSION_PACKAGES",
    "AlgoSpec",
    "AlgoSpecError",
    "CheckpointError",
    "ProtocolMismatchError",
    "RunFileError",
    "RunProgress",
    "budget_text",
    "build_parser",
    "check_run",
    "checkpoint_dir",
    "curve_figures",
    "default_threshold",
    "hyperparams_sha256",
    "interval_estimates",
    "load_run",
    "machine_description",
    "main",
    "mean_band",
    "package_versions",
    "parse_algo_spec",
    "plot_curves",
    "protocol_markdown",
    "read_checkpoint",
    "read_curve",
    "resolve_entry",
    "run_comparison",
    "run_csv_path",
    "run_protocol",
    "run_record_path",
    "steps_to_threshold",
    "summarize",
    "train_and_evaluate",
    "wall_unit",
    "write_report",
]
