"""``python -m sb3_reinforce.zoo COMMAND``: the command table and one ``error:`` line with status 2 for a user's mistake."""

import sys
from collections.abc import Sequence

from sb3_reinforce.common.safety import UsageError
from sb3_reinforce.hyperparams import HyperparamsError
from sb3_reinforce.zoo.commands import enjoy, export_best, train, validate
from sb3_reinforce.zoo.tools import ToolError, plot, record_training, record_video

__all__ = ["main"]

_COMMANDS = {
    "train": train,
    "enjoy": enjoy,
    "record-video": record_video,
    "record-training": record_training,
    "plot": plot,
    "export-best": export_best,
    "validate": validate,
}
_USAGE = (
    f"usage: sb3-reinforce-zoo {{{','.join(_COMMANDS)}}} [options]\n\n"
    "  train            rl_zoo3 train (--algo reinforce by default; --optimize for Optuna)\n"
    "  enjoy            rl_zoo3 enjoy (run a trained agent)\n"
    "  record-video     rl_zoo3 record_video (an mp4 of a trained agent)\n"
    "  record-training  rl_zoo3 record_training (videos of a run's checkpoints, best and final models)\n"
    "  plot             rl_zoo3 plot_train, plot_from_file, all_plots (plot train|from-file|all; --save FILE)\n"
    "  export-best      write the best trial of an Optuna study as a reinforce.yml entry\n"
    "  validate         validate REINFORCE hyperparameter files\n\n"
    "Every command takes --trust-code: let hyperparameter files name any importable callable (by default only\n"
    "classes of the expected kind from trusted packages, with plain-data arguments) and unpickle a run's\n"
    "vecnormalize.pkl (and plot from-file's input) as SB3 does (by default only what VecNormalize.save writes).\n"
    "Run `sb3-reinforce-zoo COMMAND --help` for the options of a command."
)


def main(argv: Sequence[str] | None = None) -> None:
    """
    ``sb3-reinforce-zoo COMMAND [options]``, COMMAND one of ``train``, ``enjoy``, ``record-video``,
    ``record-training``, ``plot``, ``export-best``, ``validate``.

    :param argv: command line without the program name (default: ``sys.argv[1:]``)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in _COMMANDS:
        print(f"error: unknown command {argv[0]!r}: choose from {', '.join(_COMMANDS)} (see --help)", file=sys.stderr)
        raise SystemExit(2)
    if not argv or argv[0] not in _COMMANDS:
        asked = bool(argv) and argv[0] in ("-h", "--help")
        print(_USAGE, file=sys.stdout if asked else sys.stderr)
        if not asked:
            raise SystemExit(2)
        return
    from sb3_reinforce.common.serialization import UntrustedPickleError

    try:
        _COMMANDS[argv[0]](argv[1:])
    except (HyperparamsError, UntrustedPickleError, UsageError) as error:
        # A user's file that cannot be used as it is: one clear message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    except ToolError as error:
        # A program the tool runs failed (not the user's arguments)
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from error
