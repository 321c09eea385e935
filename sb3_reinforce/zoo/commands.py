"""The zoo's commands ``train``, ``enjoy``, ``export-best`` and ``validate``."""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from sb3_reinforce.common.safety import atomic_write
from sb3_reinforce.hyperparams import (
    HyperparamsError,
    default_hyperparams_path,
    load_hyperparams_file,
    validate_hyperparams_content,
)
from sb3_reinforce.tuning import best_trial_hyperparams
from sb3_reinforce.zoo.running import _TRUST_CODE_HELP, TRUST_CODE_FLAG, _trust_code_flag, run_zoo_command
from sb3_reinforce.zoo.storage import normalize_storage_url

__all__ = ["enjoy", "export_best", "train", "validate"]


@_trust_code_flag
def train(argv: Sequence[str] | None = None) -> None:
    """
    rl_zoo3's ``train`` (all its options, ``--optimize`` included) with REINFORCE registered and safe loading.
    ``--algo`` defaults to ``reinforce``; ``--trust-code`` lets the hyperparameter file name any callable. An
    algorithm that does not support the env's action space is refused before anything is built
    (:func:`~sb3_reinforce.zoo.action_spaces.check_action_space`).

    :param argv: command-line arguments after ``train`` (default: ``sys.argv[2:]``)
    """
    import rl_zoo3.train

    run_zoo_command("sb3-reinforce-zoo train", sys.argv[2:] if argv is None else argv, rl_zoo3.train.train)


@_trust_code_flag
def enjoy(argv: Sequence[str] | None = None) -> None:
    """
    rl_zoo3's ``enjoy`` with REINFORCE registered and safe loading of the saved ``config.yml``/``args.yml``.
    ``--algo`` defaults to ``reinforce``; ``--trust-code`` lets the saved config name any callable.

    :param argv: command-line arguments after ``enjoy`` (default: ``sys.argv[2:]``)
    """
    import rl_zoo3.enjoy

    run_zoo_command("sb3-reinforce-zoo enjoy", sys.argv[2:] if argv is None else argv, rl_zoo3.enjoy.enjoy)


@_trust_code_flag
def export_best(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """
    Export the best trial of a REINFORCE study as a validated hyperparameter-file entry: nothing is written that
    ``validate`` (with the same ``--trust-code``) would refuse.

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
    parser.add_argument(TRUST_CODE_FLAG, action="store_true", help=_TRUST_CODE_HELP)
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
        validate_hyperparams_content({env_id: entry}, where="the exported entry")
        sys.stdout.write(header + yaml.safe_dump({env_id: entry}, sort_keys=False))
    else:
        content: dict[str, Any] = {}
        if os.path.isfile(args.output):
            content = load_hyperparams_file(args.output)
        content[env_id] = entry
        # The whole file is checked as `validate` would (the study's recorded base entry and the file's other entries)
        validate_hyperparams_content(content, where=args.output)
        # Atomically: the file's other entries are never lost to a crash half-way
        with atomic_write(args.output) as file:
            file.write((header + yaml.safe_dump(content, sort_keys=False)).encode())
        print(f"Wrote {env_id} (trial {trial.number}, value {trial.value}) to {args.output}", file=sys.stderr)
    return {env_id: entry}


@_trust_code_flag
def validate(argv: Sequence[str] | None = None) -> None:
    """
    Validate REINFORCE hyperparameter files (default: the packaged ``reinforce.yml``) with the checks ``train`` runs:
    exit status 1 when an entry is invalid, 2 when a file cannot be read (missing, not YAML, over the limits).

    :param argv: file names, and ``--trust-code``
    """
    parser = argparse.ArgumentParser(prog="sb3-reinforce-zoo validate", description="Validate REINFORCE hyperparameter files.")
    parser.add_argument("files", nargs="*", help="YAML files (default: the packaged reinforce.yml)")
    parser.add_argument(TRUST_CODE_FLAG, action="store_true", help=_TRUST_CODE_HELP)
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    status = 0
    for path in args.files or [str(default_hyperparams_path("reinforce"))]:
        try:
            content = load_hyperparams_file(path)
        except HyperparamsError as error:
            print(f"error: {error}", file=sys.stderr)
            status = 2
            continue
        try:
            validate_hyperparams_content(content, where=path)
            print(f"{path}: OK ({len(content)} entries)")
        except HyperparamsError as error:
            print(error, file=sys.stderr)
            status = max(status, 1)
    if status:
        raise SystemExit(status)
