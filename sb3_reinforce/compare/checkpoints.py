"""
The checkpoint of a run in progress (``<label>__seed<k>.ckpt/``): the model, the env's ``VecNormalize`` statistics
(if any) and the run's progress (evaluation rows so far, training time, ``num_timesteps``, episodes), so that a run
killed in the middle continues from it when the same comparison is started again.

Every file is written atomically (:func:`sb3_reinforce.common.safety.atomic_write`). The model and the statistics
of a checkpoint go to files named by its generation, then ``state.json`` (written last) points to them with their
sha256, then the files of the previous generation are removed: a kill at any moment leaves ``state.json`` and the
files it names intact, those of the last checkpoint or of the one before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

from sb3_reinforce.common.checks import number_problem
from sb3_reinforce.common.safety import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "RunProgress",
    "checkpoint_dir",
    "read_checkpoint",
    "remove_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
_STATE = "state.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (damaged, another protocol, another format)."""


@dataclasses.dataclass
class RunProgress:
    """
    Where a run stands.

    :param rows: evaluation rows so far, ``(timesteps, wall_s, mean_return, std_return)``
    :param train_s: training time so far (seconds, evaluations and checkpoints not counted)
    :param num_timesteps: env steps so far (the model's ``num_timesteps`` at the checkpoint)
    :param episodes: training episodes completed so far
    :param next_eval: env step of the next evaluation
    :param resumes: how many times the run was resumed from a checkpoint
    :param checkpoint_s: training time at the last checkpoint
    :param generation: number of the last checkpoint written (0: none)
    """

    rows: list[tuple[int, float, float, float]] = dataclasses.field(default_factory=list)
    train_s: float = 0.0
    num_timesteps: int = 0
    episodes: int = 0
    next_eval: int = 0
    resumes: int = 0
    checkpoint_s: float = 0.0
    generation: int = 0


def checkpoint_dir(csv_path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder of the run whose CSV is ``csv_path``."""
    return Path(csv_path).with_suffix(".ckpt")


def _write_bytes(path: Path, data: bytes) -> str:
    with atomic_write(path) as file:
        file.write(data)
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(directory: Path, protocol: dict[str, Any], model: Any, env: VecEnv, progress: RunProgress) -> None:
    """
    Write a checkpoint of ``model`` (and of ``env``'s ``VecNormalize`` statistics) with ``progress``.

    :param directory: :func:`checkpoint_dir` of the run
    :param protocol: the run's protocol (the ``"protocol"`` of its record): a checkpoint resumes only the same run
    :param model: the model (``model.num_timesteps`` is the step count recorded)
    :param env: its training env
    :param progress: the run's progress; its ``generation`` is advanced
    """
    directory.mkdir(parents=True, exist_ok=True)
    generation = progress.generation + 1
    buffer = io.BytesIO()
    model.save(buffer)
    files = {"model": (f"model-{generation}.zip", buffer.getvalue())}
    normalization = unwrap_vec_normalize(env)
    if normalization is not None:
        # What VecNormalize.save() writes (the statistics, not the envs), atomically
        files["vecnormalize"] = (f"vecnormalize-{generation}.pkl", pickle.dumps(normalization))
    digests = {key: (name, _write_bytes(directory / name, data)) for key, (name, data) in files.items()}
    progress.generation = generation
    progress.num_timesteps = int(model.num_timesteps)
    state = dict(
        format=CHECKPOINT_FORMAT,
        protocol=protocol,
        algo_class=type(model).__name__,
        files={key: dict(name=name, sha256=digest) for key, (name, digest) in digests.items()},
        progress=dataclasses.asdict(progress),
    )
    _write_bytes(directory / _STATE, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())
    kept = {_STATE, *(name for name, _ in digests.values())}
    for path in directory.iterdir():
        if path.name not in kept and not path.name.startswith("."):  # hidden: temporary files of atomic_write
            with contextlib.suppress(OSError):
                path.unlink()


def read_checkpoint(directory: Path, protocol: dict[str, Any]) -> tuple[RunProgress, dict[str, Path]]:
    """
    Read and check a checkpoint: its format, its protocol (the run asked for), the sha256 of its files.

    :param directory: :func:`checkpoint_dir` of the run
    :param protocol: the protocol of the run asked for
    :return: ``(progress, {"model": path, "vecnormalize": path (if any)})``
    :raises CheckpointError: naming what is wrong
    """
    state_path = directory / _STATE
    try:
        state = json.loads(state_path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{state_path} is missing (killed before its first checkpoint)") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{state_path}: not a readable checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{state_path}: not a checkpoint of format {CHECKPOINT_FORMAT}")
    if state.get("protocol") != protocol:
        saved = state.get("protocol") if isinstance(state.get("protocol"), dict) else {}
        differ = [key for key in sorted(set(saved) | set(protocol)) if saved.get(key) != protocol.get(key)]
        raise CheckpointError(f"{state_path}: made with another protocol ({', '.join(differ)} differ)")
    paths = {}
    try:
        for key, entry in state["files"].items():
            name = entry["name"]
            if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
                raise CheckpointError(f"{state_path}: file name {name!r} is not a file of the checkpoint's folder")
            path = directory / name
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise CheckpointError(f"{path} does not match {_STATE} (sha256 differs: damaged)")
            paths[key] = path
        progress = _checked_progress(state_path, state["progress"])
    except OSError as error:
        raise CheckpointError(f"{directory}: a checkpoint file cannot be read ({error})") from None
    except (KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{state_path}: incomplete checkpoint ({error!r})") from None
    if "model" not in paths:
        raise CheckpointError(f"{state_path}: names no model file")
    return progress, paths


def _is_number(value: Any, integer: bool, nonnegative: bool = True) -> bool:
    return number_problem(value, 0 if nonnegative else -math.inf, math.inf, integer=integer) is None


def _checked_progress(state_path: Path, saved: Any) -> RunProgress:
    """
    The :class:`RunProgress` of a checkpoint's state, every field checked (a hand-edited or damaged ``state.json``
    would otherwise crash the resumed run, or put wrong numbers into its record).
    """
    fields = {field.name for field in dataclasses.fields(RunProgress)}
    if not isinstance(saved, dict) or set(saved) != fields:
        keys = sorted(saved) if isinstance(saved, dict) else saved
        raise CheckpointError(f"{state_path}: 'progress' must have the keys {sorted(fields)}, got {keys!r}")
    for name in sorted(fields - {"rows"}):
        if not _is_number(saved[name], integer=name not in ("train_s", "checkpoint_s")):
            kind = "number" if name in ("train_s", "checkpoint_s") else "int"
            raise CheckpointError(f"{state_path}: progress {name}={saved[name]!r} is not a finite {kind} >= 0")
    rows = saved["rows"]
    shape_ok = isinstance(rows, list) and all(isinstance(row, list) and len(row) == 4 for row in rows)
    if not shape_ok or not all(_is_number(row[0], True) and _is_number(row[1], False) for row in rows):
        raise CheckpointError(f"{state_path}: progress rows must be [timesteps, wall_s, mean, std] rows, got {rows!r:.200}")
    returns_ok = all(_is_number(value, integer=False, nonnegative=False) for row in rows for value in row[2:])
    steps = [row[0] for row in rows]
    # Empty before the first evaluation, else from 0 steps on, as train_and_evaluate writes them
    if not returns_ok or steps[:1] not in ([], [0]) or any(b <= a for a, b in itertools.pairwise(steps)):
        raise CheckpointError(f"{state_path}: progress rows do not start at 0 steps and increase, or are not finite")
    progress = RunProgress(**saved)
    progress.rows = [tuple(row) for row in rows]  # type: ignore[misc]
    return progress


def restore_checkpoint(model: Any, env: VecEnv, paths: dict[str, Path]) -> Any:
    """
    The model of a checkpoint, on ``env``, with the checkpoint's ``VecNormalize`` statistics put into ``env``'s.
    Both files are read by the project's restricted unpicklers, whatever the algorithm (SB3's own ``PPO.load``
    would run any code a crafted file holds), and ``env`` is changed only once both have loaded.

    :param model: a model of the run's class (built from its entry; only its class is used)
    :param env: the run's training env, as built for it
    :param paths: the files of :func:`read_checkpoint`
    :return: the loaded model
    :raises CheckpointError: a file cannot be loaded (refused by the unpicklers, or not loadable here), naming it
    """
    from sb3_reinforce.common.serialization import load_model, load_vec_normalize

    normalization = unwrap_vec_normalize(env)
    saved = None
    if normalization is not None:
        if "vecnormalize" not in paths:
            raise CheckpointError(f"{paths['model'].parent}: the env is normalized and the checkpoint has no statistics")
        try:
            saved = load_vec_normalize(paths["vecnormalize"], normalization.venv)
        except (OSError, ValueError, TypeError) as error:  # UntrustedPickleError is a ValueError
            raise CheckpointError(f"{paths['vecnormalize']}: cannot be loaded ({error})") from error
    try:
        loaded = load_model(type(model), paths["model"], env=env, device="cpu")
    except Exception as error:  # whatever SB3 raises for a file it cannot load: the run starts from 0 instead
        raise CheckpointError(f"{paths['model']}: cannot be loaded ({type(error).__name__}: {error})") from error
    if saved is not None:
        normalization.obs_rms, normalization.ret_rms = saved.obs_rms, saved.ret_rms
    return loaded


def remove_checkpoint(directory: Path) -> None:
    """Remove a run's checkpoint folder (once the run is complete, or when it cannot be resumed from)."""
    shutil.rmtree(directory, ignore_errors=True)
