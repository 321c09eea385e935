"""
rl_zoo3's own tools through the zoo: ``record-video``, ``record-training`` and ``plot`` (``plot_train``,
``plot_from_file``, ``all_plots``), with REINFORCE registered and the loading path of ``enjoy``.

- ``record-video`` runs ``rl_zoo3.record_video`` as :func:`~sb3_reinforce.zoo.commands.enjoy` runs rl_zoo3's
  ``enjoy`` (:func:`~sb3_reinforce.zoo.running.run_zoo_command`): the run's ``config.yml``/``args.yml`` read
  with the safe YAML loader and checked, ``vecnormalize.pkl`` through the restricted unpickler, REINFORCE model
  files through ``REINFORCE.load``, a missing run or another algorithm's model file in one line; ``--trust-code``
  as for ``enjoy``.
- ``record-training`` runs ``rl_zoo3.record_training``; the ``python -m rl_zoo3.record_video`` it starts for every
  model of the run is ``record-video`` above, in this process (same registration and trust). Its ``ffmpeg``
  commands use the binary of ``imageio-ffmpeg`` (``pip install 'sb3_reinforce[video]'``) when none is on ``PATH``.
- ``plot train|from-file|all`` runs ``rl_zoo3.plots``'s function; ``--save FILE`` writes the figures instead of
  showing them. ``from-file`` reads its pickle with the restricted unpickler (``--trust-code``: ``pickle.load``).
"""

import argparse
import contextlib
import importlib
import os
import shlex
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sb3_reinforce.common.safety import UsageError, atomic_write, check_input_file
from sb3_reinforce.zoo.running import _argv, _trust_code_flag, _with_default_algo, run_rl_zoo3_script, run_zoo_command
from sb3_reinforce.zoo.safe_loading import _SafePickle, _SafeYaml

__all__ = ["ToolError", "plot", "record_training", "record_video"]


class ToolError(RuntimeError):
    """A program a tool runs (``ffmpeg``) failed: the CLI prints it as one ``error:`` line, exit status 1."""


# ---------------------------------------------------------------------------------------------------------------------
# record-video, record-training
# ---------------------------------------------------------------------------------------------------------------------


def _record_video(argv: Sequence[str]) -> None:
    """``rl_zoo3.record_video`` with ``argv``, run like ``enjoy`` (the caller decides about ``--trust-code``)."""
    # The script reads the run's args.yml with yaml.UnsafeLoader: its `import yaml` gives the safe loader
    run_zoo_command(
        "sb3-reinforce-zoo record-video", argv, lambda: run_rl_zoo3_script("rl_zoo3.record_video", {"yaml": _SafeYaml()})
    )


@_trust_code_flag
def record_video(argv: Sequence[str] | None = None) -> None:
    """
    rl_zoo3's ``record_video`` (same options, see ``--help``): an mp4 of ``-n`` steps of a trained agent, written
    to ``-o`` (default ``<run folder>/videos``), with REINFORCE registered and ``enjoy``'s safe loading.
    ``--algo`` defaults to ``reinforce``; ``--trust-code`` lets the saved config name any callable.

    :param argv: command-line arguments after ``record-video`` (default: ``sys.argv[2:]``)
    """
    _record_video(sys.argv[2:] if argv is None else argv)


class _SubprocessForRecordTraining:
    """
    Stands for the ``subprocess`` module inside ``rl_zoo3.record_training``: its ``python -m rl_zoo3.record_video``
    (which knows no ``reinforce``) is :func:`_record_video` in this process; an error is raised as it is, instead
    of rl_zoo3's ``assert return_code == 0``.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def call(command: Sequence[str], *args: Any, **kwargs: Any) -> int:
        command = list(command)
        if command[1:3] == ["-m", "rl_zoo3.record_video"]:
            _record_video(command[3:])
            return 0
        return subprocess.call(command, *args, **kwargs)


def _ffmpeg() -> str:
    """The ``ffmpeg`` to run: the one on ``PATH``, else the binary of ``imageio-ffmpeg``."""
    found = shutil.which("ffmpeg")
    if found is not None:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise UsageError(
            "record-training needs ffmpeg: install it (apt-get install ffmpeg) or pip install 'sb3_reinforce[video]'"
        ) from error
    return imageio_ffmpeg.get_ffmpeg_exe()


class _OsForRecordTraining:
    """
    Stands for the ``os`` module inside ``rl_zoo3.record_training``: its ``os.system("ffmpeg ...")`` runs
    :func:`_ffmpeg`, and a failure is a :class:`ToolError` (rl_zoo3 ignores the status and reports a video it did
    not write).
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def system(command: str) -> int:
        if command.startswith("ffmpeg "):
            command = shlex.quote(_ffmpeg()) + command[len("ffmpeg") :]
        status = os.system(command)
        if status != 0:
            raise ToolError(f"record-training: this command failed (status {status}): {command}")
        return status


# What record_training writes in its video folder (which it deletes first)
_VIDEO_SUFFIXES = (".mp4", ".gif", ".txt")


def _checked_record_training_arguments(argv: Sequence[str]) -> list[str]:
    """
    rl_zoo3's ``record_training`` deletes its video folder (``-o``) before recording, and passes the paths to
    ``ffmpeg`` through a shell unquoted: refuse a folder holding anything but its videos, and paths a shell would
    split or interpret. A relative ``-o`` is made absolute (ffmpeg reads the relative paths of its list of videos
    from the list's folder: rl_zoo3 fails on a relative ``-o``).

    :param argv: ``record-training``'s arguments
    :return: the arguments to run it with
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-f", "--folder", default="rl-trained-agents")
    parser.add_argument("-o", "--output-folder", default=None)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--algo", default="reinforce")
    args, rest = parser.parse_known_args(argv)
    # rl_zoo3's parser reads these again: given once each, -o absolute
    argv = [*rest, "-f", args.folder, "--env", args.env, "--algo", args.algo]
    for option, value in (("-f/--folder", os.path.abspath(args.folder)), ("--env", args.env), ("--algo", args.algo)):
        if shlex.quote(value) != value:
            raise UsageError(
                f"record-training {option} {value!r}: rl_zoo3's record_training passes it to ffmpeg through a shell "
                "unquoted; use a path of letters, digits and -_./ only"
            )
    if args.output_folder is None:
        return argv
    output = os.path.abspath(args.output_folder)
    if shlex.quote(output) != output:
        raise UsageError(
            f"record-training -o/--output-folder {output!r}: rl_zoo3's record_training passes it to ffmpeg through a "
            "shell unquoted; use a path of letters, digits and -_./ only"
        )
    if os.path.isdir(output):
        others = sorted(
            entry.name for entry in os.scandir(output) if not (entry.is_file() and entry.name.endswith(_VIDEO_SUFFIXES))
        )
        if others:
            raise UsageError(
                f"record-training -o/--output-folder {output!r} holds other files than videos ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}): rl_zoo3's record_training deletes the folder first; give a "
                "new folder"
            )
    return [*argv, "-o", output]


@_trust_code_flag
def record_training(argv: Sequence[str] | None = None) -> None:
    """
    rl_zoo3's ``record_training`` (same options, see ``--help``): a video of every checkpoint, the best and the
    final model of a run, joined into ``training.mp4`` (``-g``: also a gif) in ``-o`` (default
    ``<run folder>/videos``, deleted first). Each model is recorded by ``record-video`` in this process.
    ``--algo`` defaults to ``reinforce``.

    :param argv: command-line arguments after ``record-training`` (default: ``sys.argv[2:]``)
    """
    argv = _checked_record_training_arguments(sys.argv[2:] if argv is None else argv)
    replaced = {"subprocess": _SubprocessForRecordTraining(), "os": _OsForRecordTraining()}
    try:
        run_zoo_command(
            "sb3-reinforce-zoo record-training", argv, lambda: run_rl_zoo3_script("rl_zoo3.record_training", replaced)
        )
    except AssertionError as error:
        # The script's own check ("The ... folder was not found"), not one of the code it calls
        frames = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(error.__traceback__)]
        if frames and frames[-1].endswith(os.path.join("rl_zoo3", "record_training.py")):
            raise UsageError(f"record-training: {error}") from error
        raise


# ---------------------------------------------------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------------------------------------------------

#: ``plot`` subcommand: (module, function) of rl_zoo3's plot tool
PLOTS = {
    "train": ("rl_zoo3.plots.plot_train", "plot_train"),
    "from-file": ("rl_zoo3.plots.plot_from_file", "plot_from_file"),
    "all": ("rl_zoo3.plots.all_plots", "all_plots"),
}
# rl_zoo3's own names (``rl_zoo3 plot_train``)
_PLOT_ALIASES = {"plot_train": "train", "plot_from_file": "from-file", "all_plots": "all"}

_PLOT_USAGE = (
    "usage: sb3-reinforce-zoo plot {train,from-file,all} [options] [--save FILE]\n\n"
    "  train      rl_zoo3 plot_train: training reward/length/success of the runs in a log folder (monitor files)\n"
    "  from-file  rl_zoo3 plot_from_file: plots and table from the file `plot all -o` writes\n"
    "  all        rl_zoo3 all_plots: evaluation curves of several algorithms and folders (evaluations.npz)\n\n"
    "  --save FILE  write the figures to FILE (several: FILE-1.png, FILE-2.png, ...) instead of showing them\n"
    "Run `sb3-reinforce-zoo plot NAME --help` for the options of rl_zoo3's tool."
)


def _check_plot_arguments(name: str, argv: Sequence[str]) -> None:
    """One-line errors for what rl_zoo3's plot tools answer with a traceback (a missing folder, file or option)."""
    parser = argparse.ArgumentParser(add_help=False)
    if name == "train":
        parser.add_argument("-a", "--algo")
        parser.add_argument("-f", "--exp-folder")
        args, _ = parser.parse_known_args(argv)
        if args.exp_folder is not None and args.algo is not None:
            log_path = os.path.join(args.exp_folder, args.algo)
            if not os.path.isdir(log_path):
                raise UsageError(
                    f"plot train: {log_path!r} is not a folder: -f/--exp-folder is the zoo's log folder (-f of train), "
                    f"which holds {args.algo}/<env>_<n>/ run folders"
                )
    elif name == "all":
        for options in (("-a", "--algos"), ("-e", "--env"), ("-f", "--exp-folders")):
            parser.add_argument(*options, nargs="+")
        args, _ = parser.parse_known_args(argv)
        required = (("-a", "--algos"), ("-e", "--env"), ("-f", "--exp-folders"))
        missing = [f"{short}/{long}" for short, long in required if getattr(args, long[2:].replace("-", "_")) is None]
        if missing:
            raise UsageError(f"plot all: {', '.join(missing)} required")
    else:
        parser.add_argument("-i", "--input")
        parser.add_argument("--merge", nargs="+", default=[])
        args, _ = parser.parse_known_args(argv)
        if args.input is None:
            raise UsageError("plot from-file: -i/--input required (the file `plot all -o NAME` writes, NAME.pkl)")
        check_input_file(args.input if args.input.endswith(".pkl") else args.input + ".pkl", "-i/--input")
        for merged in args.merge:
            check_input_file(merged, "--merge")


def _new_figures(before: set[int]) -> list[int]:
    """Numbers of the figures opened since ``before`` (the caller's own figures are left alone)."""
    import matplotlib.pyplot as plt

    return [number for number in plt.get_fignums() if number not in before]


def _save_figures(path: str, before: set[int]) -> list[str]:
    """Write every figure opened since ``before``: to ``path`` if one, else ``<stem>-<n><suffix>``; close them."""
    import matplotlib.pyplot as plt

    numbers = _new_figures(before)
    target = Path(path)
    written = []
    for index, number in enumerate(numbers, start=1):
        figure = plt.figure(number)
        file = target if len(numbers) == 1 else target.with_name(f"{target.stem}-{index}{target.suffix}")
        with atomic_write(file) as stream:  # a complete image or the previous file, never half a PNG
            figure.savefig(stream, format=file.suffix.lstrip(".") or None)
        print(f"Saved figure {figure.get_label()!r} to {file}")
        written.append(str(file))
        plt.close(figure)
    return written


def _drew_a_curve(before: set[int]) -> bool:
    import matplotlib.pyplot as plt

    return any(axes.get_lines() for number in _new_figures(before) for axes in plt.figure(number).axes)


@contextlib.contextmanager
def _figures(name: str, argv: Sequence[str], save: str | None) -> Iterator[list[str]]:
    """
    While rl_zoo3's plot tool runs: with ``save``, no window (Agg) and the figures written when the tool would show
    them (or when it ends); ``plot train`` with no curve drawn is a :class:`UsageError` (rl_zoo3 shows an empty
    figure). Yields the files written.
    """
    import matplotlib.pyplot as plt

    written: list[str] = []
    before = set(plt.get_fignums())
    show = plt.show
    backend = plt.get_backend()
    if save is not None:
        plt.switch_backend("agg")

    def checked_show(*args: Any, **kwargs: Any) -> None:
        if name == "train" and not _drew_a_curve(before):
            parser = argparse.ArgumentParser(add_help=False)
            parser.add_argument("-e", "--env", nargs="+", default=[])
            parser.add_argument("-f", "--exp-folder", default="")
            parser.add_argument("-a", "--algo", default="")
            parser.add_argument("-w", "--episode-window", type=int, default=100)
            parser.add_argument("-y", "--y-axis", default="reward")
            args, _ = parser.parse_known_args(argv)
            for number in _new_figures(before):
                plt.close(number)
            raise UsageError(
                f"plot train: no curve to draw: no run folder of --env {' '.join(args.env)} in "
                f"{os.path.join(args.exp_folder, args.algo)!r} has a monitor file with {args.y_axis} data for at least "
                f"-w/--episode-window {args.episode_window} episodes"
            )
        if save is not None:
            written.extend(_save_figures(save, before))
        else:
            show(*args, **kwargs)

    plt.show = checked_show
    try:
        yield written
        if save is not None and not written and _new_figures(before):  # `plot all --no-display` does not show
            written.extend(_save_figures(save, before))
    finally:
        plt.show = show
        if save is not None:
            with contextlib.suppress(ImportError, RuntimeError):  # an interactive backend without a display
                plt.switch_backend(backend)


@_trust_code_flag
def plot(argv: Sequence[str] | None = None) -> list[str]:
    """
    rl_zoo3's plot tools: ``plot train`` (``plot_train``), ``plot from-file`` (``plot_from_file``), ``plot all``
    (``all_plots``), with their options (``plot NAME --help``) and ``--save FILE`` to write the figures instead of
    showing them. ``plot train``'s ``-a/--algo`` defaults to ``reinforce``.

    :param argv: ``NAME [options]`` (default: ``sys.argv[2:]``)
    :return: the image files written (``--save``)
    """
    argv = list(sys.argv[2:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_PLOT_USAGE, file=sys.stdout if argv else sys.stderr)
        if not argv:
            raise SystemExit(2)
        return []
    name = _PLOT_ALIASES.get(argv[0], argv[0])
    if name not in PLOTS:
        raise UsageError(f"plot: unknown plot {argv[0]!r}: choose from {', '.join(PLOTS)} (see plot --help)")
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--save", default=None)
    args, rest = parser.parse_known_args(argv[1:])
    if name == "train":
        rest = _with_default_algo(rest, options=("-a", "--algo"))
    _check_plot_arguments(name, rest)
    module_name, function = PLOTS[name]
    module = importlib.import_module(module_name)
    pickle_module = vars(module).get("pickle")
    with contextlib.ExitStack() as stack:
        stack.enter_context(_argv(f"sb3-reinforce-zoo plot {name}", rest))
        written = stack.enter_context(_figures(name, rest, args.save))
        if pickle_module is not None:
            # plot_from_file's pickle.load of its input (and --merge) files
            module.pickle = _SafePickle()
            stack.callback(setattr, module, "pickle", pickle_module)
        getattr(module, function)()
    return written
