"""The command line: ``sb3-reinforce-compare`` / ``python -m sb3_reinforce.compare`` (and its ``variance`` sub-command)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sb3_reinforce.common.estimators import variant_grammar
from sb3_reinforce.common.safety import UsageError, check_env_id, check_input_file
from sb3_reinforce.compare.report import write_report
from sb3_reinforce.compare.runs import ProtocolMismatchError, run_comparison
from sb3_reinforce.compare.specs import AlgoSpec, AlgoSpecError, parse_algo_spec

__all__ = ["build_parser", "main"]


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
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "--algos syntax: <algo> (rl_zoo3 name or reinforce, zoo settings) or "
            f"reinforce[:<return_mode>][+<baseline>][+norm|+nonorm]: {variant_grammar().split(', ', 1)[1]}; "
            "e.g. reinforce:total reinforce:reward_to_go+value reinforce:total+mean+norm reinforce+time ppo a2c"
        ),
    )
    parser.add_argument("--env", default="CartPole-v1", help="environment id")
    parser.add_argument("--algos", nargs="+", type=_algo_type, default=["reinforce", "ppo", "a2c"], help="rows")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    parser.add_argument("--timesteps", type=int, default=100_000, help="env steps per run")
    parser.add_argument("--out", default="runs/compare", help="output folder")
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel processes")
    parser.add_argument("--eval-freq", type=int, default=5000, help="evaluate every that many env steps")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation")
    parser.add_argument("--threshold", type=float, default=None, help="return threshold (default: env's)")
    parser.add_argument("--conf-file", default=None, help="REINFORCE hyperparameter file (default: the package's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--rerun-changed",
        action="store_true",
        help="redo the finished runs in --out made with another protocol (default: refuse, naming what differs)",
    )
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
    try:
        # User mistakes: one line and status 2 before anything runs
        check_env_id(args.env)
        if args.conf_file is not None:
            check_input_file(args.conf_file, "--conf-file")
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    specs = [spec if isinstance(spec, AlgoSpec) else parse_algo_spec(spec) for spec in args.algos]
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"--algos: duplicate rows {labels}")
    try:
        results = run_comparison(
            args.env,
            specs,
            list(range(args.seeds)),
            args.timesteps,
            args.out,
            eval_freq=args.eval_freq,
            eval_episodes=args.eval_episodes,
            n_jobs=args.n_jobs,
            hyperparams_path=args.conf_file,
            progress=not args.no_progress,
            rerun_changed=args.rerun_changed,
        )
    except ProtocolMismatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    markdown, _ = write_report(args.env, results, args.out, args.threshold)
    print(markdown)
    return 0
