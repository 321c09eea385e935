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
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

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
        keys = sorted(set(state.get("protocol") or {}) | set(protocol))
        differ = [key for key in keys if (state.get("protocol") or {}).get(key) != protocol.get(key)]
        raise CheckpointError(f"{state_path}: made with another protocol ({', '.join(differ)} differ)")
    paths = {}
    try:
        for key, entry in state["files"].items():
            path = directory / entry["name"]
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise CheckpointError(f"{path} does not match {_STATE} (sha256 differs: damaged)")
            paths[key] = path
        progress = RunProgress(**state["progress"])
        progress.rows = [tuple(row) for row in progress.rows]  # type: ignore[misc]
    except OSError as error:
        raise CheckpointError(f"{directory}: a checkpoint file cannot be read ({error})") from None
    except (KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{state_path}: incomplete checkpoint ({error!r})") from None
    if "model" not in paths:
        raise CheckpointError(f"{state_path}: names no model file")
    return progress, paths


def restore_checkpoint(model: Any, env: VecEnv, paths: dict[str, Path]) -> Any:
    """
    The model of a checkpoint, on ``env``, with the checkpoint's ``VecNormalize`` statistics put into ``env``'s.

    :param model: a model of the run's class (built from its entry; only its class is used)
    :param env: the run's training env, as built for it
    :param paths: the files of :func:`read_checkpoint`
    :return: the loaded model
    """
    from sb3_reinforce.common.serialization import load_vec_normalize

    normalization = unwrap_vec_normalize(env)
    if normalization is not None:
        if "vecnormalize" not in paths:
            raise CheckpointError(f"{paths['model'].parent}: the env is normalized and the checkpoint has no statistics")
        # The restricted unpickler of the project (only what VecNormalize.save() writes)
        saved = load_vec_normalize(paths["vecnormalize"], normalization.venv)
        normalization.obs_rms, normalization.ret_rms = saved.obs_rms, saved.ret_rms
    return type(model).load(paths["model"], env=env, device="cpu")


def remove_checkpoint(directory: Path) -> None:
    """Remove a run's checkpoint folder (once the run is complete, or when it cannot be resumed from)."""
    shutil.rmtree(directory, ignore_errors=True)
