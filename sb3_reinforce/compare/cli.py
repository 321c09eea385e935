"""The command line: ``sb3-reinforce-compare`` / ``python -m sb3_reinforce.compare`` (and its ``variance`` sub-command)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from sb3_reinforce.common.checks import number_problem
from sb3_reinforce.common.estimators import variant_grammar
from sb3_reinforce.common.safety import UsageError, check_env_id, check_input_file
from sb3_reinforce.compare import ray_backend
from sb3_reinforce.compare.report import write_report
from sb3_reinforce.compare.runs import ProtocolMismatchError, run_comparison
from sb3_reinforce.compare.specs import AlgoSpec, AlgoSpecError, parse_algo_spec
from sb3_reinforce.compare.training import DEFAULT_CHECKPOINT_MINUTES

__all__ = ["HelpFormatter", "build_parser", "main"]

#: The step budget when neither --timesteps nor --minutes is given.
DEFAULT_TIMESTEPS = 100_000


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows every option's default (``(default: ...)``) and keeps the description's line breaks."""


def _algo_type(token: str) -> AlgoSpec:
    try:
        return parse_algo_spec(token)
    except AlgoSpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``sb3-reinforce-compare`` (the comparison; ``variance`` is dispatched before it, by :func:`main`)."""
    import sb3_reinforce.compare as package

    parser = argparse.ArgumentParser(
        prog="sb3-reinforce-compare",
        description=package.__doc__.split("\n\n")[0].strip() + " Sub-command 'variance': gradient-variance diagnostic.",
        formatter_class=HelpFormatter,
        epilog=(
            "--algos syntax: <algo>[@<env id>] (rl_zoo3 name or reinforce, zoo settings) or "
            f"reinforce[:<return_mode>][+<baseline>][+norm|+nonorm][@<env id>]: {variant_grammar().split(', ', 1)[1]}; "
            "@<env id> trains the row on another env, scored by --env's protocol (ppo@ALE/Pong-v5: rl-zoo's Atari "
            "PPO next to --env KarpathyPong-v0's reinforce and ppo rows); "
            "e.g. reinforce:total reinforce:reward_to_go+value reinforce:total+mean+norm reinforce+time ppo a2c"
        ),
    )
    parser.add_argument("--env", default="CartPole-v1", help="environment id")
    parser.add_argument("--algos", nargs="+", type=_algo_type, default=["reinforce", "ppo", "a2c"], help="rows")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help=f"env steps per run (None: {DEFAULT_TIMESTEPS:,}; with --minutes: the zoo entry's n_timesteps, "
        "which is also the horizon of its lin_ schedules)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="wall-clock budget of each run: train until that many minutes of its own training time (evaluations "
        "not counted) have passed, or --timesteps, whichever comes first (None: steps only)",
    )
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=DEFAULT_CHECKPOINT_MINUTES,
        help="training minutes between two checkpoints of a run; a killed comparison started again resumes each "
        "unfinished run from its last checkpoint",
    )
    parser.add_argument("--out", default="runs/compare", help="output folder")
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel processes")
    parser.add_argument("--eval-freq", type=int, default=5000, help="evaluate every that many env steps")
    parser.add_argument(
        "--eval-episodes", type=int, default=10, help="episodes per evaluation (KarpathyPong-v0: games per policy, >= 10)"
    )
    parser.add_argument("--threshold", type=float, default=None, help="return threshold (None: the env's reward_threshold)")
    parser.add_argument("--conf-file", default=None, help="REINFORCE hyperparameter file (None: the package's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--rerun-changed",
        action="store_true",
        help="redo the finished runs in --out made with another protocol (without it: refuse, naming what differs)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write summary.md and the plots from the runs already in --out for --algos x --seeds "
        "(e.g. after two commands shared one --out; the unfinished runs are left out and named)",
    )
    ray_backend.add_arguments(parser)  # --ray-address, --ray-cpus-per-task
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    ``sb3-reinforce-compare [options]``: run the comparison and write its report; ``sb3-reinforce-compare variance
    [options]``: the gradient-variance diagnostic (:mod:`sb3_reinforce.variance`).

    :param argv: the arguments (default: ``sys.argv[1:]``)
    :return: the exit status (2: finished runs with another protocol in ``--out``)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "variance":
        # Imported here only: the comparison itself does not need the variance tool (no import cycle)
        from sb3_reinforce.variance import main as variance_main

        return variance_main(argv[1:])
    args = build_parser().parse_args(argv)
    specs = [spec if isinstance(spec, AlgoSpec) else parse_algo_spec(spec) for spec in args.algos]
    try:
        # User mistakes: one line and status 2 before anything runs
        check_env_id(args.env)
        for spec in specs:
            if spec.env_id is not None:
                try:
                    check_env_id(spec.env_id)
                except UsageError as error:
                    raise UsageError(f"--algos {spec.label!r}: {str(error).removeprefix('--env ')}") from None
        if args.report_only and args.rerun_changed:
            raise UsageError("--report-only trains nothing: it cannot redo runs (--rerun-changed)")
        if args.conf_file is not None:
            check_input_file(args.conf_file, "--conf-file")
        for option, value in (("--minutes", args.minutes), ("--checkpoint-minutes", args.checkpoint_minutes)):
            problem = None if value is None else number_problem(value, 0, math.inf, low_open=True)
            if problem is not None:
                raise UsageError(f"{option} {value:g}: {problem} (minutes)")
        from sb3_reinforce.compare.pong import is_pong
        from sb3_reinforce.pong.evaluation import MIN_EVAL_GAMES

        if is_pong(args.env) and args.eval_episodes < MIN_EVAL_GAMES:
            raise UsageError(f"--eval-episodes {args.eval_episodes}: the Pong protocol plays at least {MIN_EVAL_GAMES} games")
        problem = None if args.timesteps is None else number_problem(args.timesteps, 1, math.inf, integer=True)
        if problem is not None:
            raise UsageError(f"--timesteps {args.timesteps}: {problem}")
        ray_runner = ray_backend.runner_from_args(args)  # --ray-address: connected to the cluster (else None)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    timesteps = DEFAULT_TIMESTEPS if args.timesteps is None and args.minutes is None else args.timesteps
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"--algos: duplicate rows {labels}")
    with ray_backend.running(ray_runner):  # --ray-address: the runs are Ray tasks
        try:
            results = run_comparison(
                args.env,
                specs,
                list(range(args.seeds)),
                timesteps,
                args.out,
                eval_freq=args.eval_freq,
                eval_episodes=args.eval_episodes,
                n_jobs=args.n_jobs,
                hyperparams_path=args.conf_file,
                progress=not args.no_progress,
                rerun_changed=args.rerun_changed,
                minutes=args.minutes,
                checkpoint_minutes=args.checkpoint_minutes,
                report_only=args.report_only,
            )
        except ProtocolMismatchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    # how many runs Ray retried, on which nodes
    extra_sections = ray_runner.summary_markdown() if ray_runner is not None else ""
    markdown, _ = write_report(args.env, results, args.out, args.threshold, extra_sections)
    print(markdown)
    return 0
