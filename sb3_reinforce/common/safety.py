"""Reliability helpers: atomic file writing, checks of finite values, checks of spaces and model files."""

import contextlib
import os
import pathlib
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
import torch as th
from gymnasium import spaces

# Spaces REINFORCE can learn with (a Dict may hold any of the simple observation spaces, not nested)
SIMPLE_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def _names(classes: tuple[type, ...]) -> str:
    return ", ".join(cls.__name__ for cls in classes)


def check_spaces(observation_space: Any, action_space: Any) -> None:
    """
    Raise a clear error for spaces REINFORCE does not support (Sequence, Graph, Text, Tuple, nested Dict, ...).

    :param observation_space: the env's observation space
    :param action_space: the env's action space
    """
    allowed_obs = f"{_names(SIMPLE_OBSERVATION_SPACES)} or a Dict of those"
    if isinstance(observation_space, spaces.Dict):
        for key, sub_space in observation_space.spaces.items():
            if not isinstance(sub_space, SIMPLE_OBSERVATION_SPACES):
                raise ValueError(
                    f"env observation_space[{key!r}]={sub_space!r} is not supported: a Dict observation space may "
                    f"only hold {_names(SIMPLE_OBSERVATION_SPACES)} (no nesting)"
                )
    elif not isinstance(observation_space, SIMPLE_OBSERVATION_SPACES):
        raise ValueError(f"env observation_space={observation_space!r} is not supported: allowed {allowed_obs}")
    if not isinstance(action_space, SUPPORTED_ACTION_SPACES):
        raise ValueError(f"env action_space={action_space!r} is not supported: allowed {_names(SUPPORTED_ACTION_SPACES)}")


def first_non_finite(array: np.ndarray) -> tuple[int, ...] | None:
    """
    Index of the first NaN or infinite value of a float array (None if all are finite or the dtype is not float).

    :param array: the values (an integer array is finite by construction)
    :return: the index, or None
    """
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.complexfloating):
        return None
    finite = np.isfinite(array)
    if finite.all():
        return None
    return tuple(int(i) for i in np.argwhere(~finite)[0])


def check_finite_env_output(what: str, values: np.ndarray | dict[str, np.ndarray], where: str | Callable[[], str]) -> None:
    """
    Raise ``ValueError`` if a batch of env outputs (one row per env) holds NaN or inf, naming the env index.

    :param what: name of the output ("reward", "observation", ...)
    :param values: one row per env (or a dict of such arrays for Dict observations)
    :param where: when it happened, for the message (e.g. ``"at step 12"``), or a function returning it (called only
        to build the error message)
    """
    items = values.items() if isinstance(values, dict) else [(None, values)]
    for key, array in items:
        index = first_non_finite(array)
        if index is not None:
            name = what if key is None else f"{what}[{key!r}]"
            value = np.asarray(array)[index]
            raise ValueError(
                f"env {index[0] if index else 0} returned a non-finite {name} ({value}) "
                f"{where() if callable(where) else where}; the weights were "
                "not updated with it. Fix the environment, or wrap it (e.g. stable_baselines3's VecCheckNan) to find "
                "where the NaN/inf comes from."
            )


def check_finite_gradients(parameters: Iterator[tuple[str, th.nn.Parameter]], loss_stats: dict[str, float]) -> None:
    """
    Raise ``FloatingPointError`` if a loss statistic or a gradient is NaN or infinite.

    :param parameters: ``module.named_parameters()``
    :param loss_stats: scalar statistics of the pass (losses)
    """
    for name, value in loss_stats.items():
        if not np.isfinite(value):
            raise FloatingPointError(
                f"non-finite {name} ({value}): the update was not applied, the weights are unchanged. "
                "Check the rewards' scale, lower learning_rate or set max_grad_norm."
            )
    for name, param in parameters:
        if param.grad is not None and not bool(th.isfinite(param.grad).all()):
            raise FloatingPointError(
                f"non-finite gradient of parameter {name!r}: the update was not applied, the weights are unchanged. "
                "Check the rewards' scale, lower learning_rate or set max_grad_norm."
            )


def model_path(path: str | os.PathLike, suffix: str = "zip") -> pathlib.Path:
    """
    The file SB3 writes for ``path``: ``.zip`` is appended when the path has no suffix.

    :param path: path given to ``save``
    :param suffix: suffix added to a path without one
    :return: the file's path
    """
    path = pathlib.Path(path)
    if path.suffix == "" and suffix:
        path = pathlib.Path(f"{path}.{suffix}")
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """
    Write a file atomically: into a temporary file of the same directory, flushed and fsynced, then moved over
    ``path`` with ``os.replace``. If the writer fails (or the process dies), ``path`` keeps its previous content;
    a dead process may leave a hidden ``.<name>.*.tmp`` file behind, never a half-written ``path``.

    :param path: the destination
    :return: a binary file object to write to (context manager)
    """
    path = pathlib.Path(path)
    directory = path.parent if str(path.parent) else pathlib.Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    # Make the rename itself durable
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def check_model_file(path: str | os.PathLike) -> pathlib.Path:
    """
    Check that ``path`` (or ``path + ".zip"``) is a Stable-Baselines3 model archive before unpickling anything.

    :param path: path given to ``load``
    :return: the existing file's path
    """
    candidate = pathlib.Path(path)
    if not candidate.exists() and candidate.suffix == "":
        candidate = pathlib.Path(f"{path}.zip")
    if not candidate.exists():
        raise FileNotFoundError(f"No model file at {str(path)!r} (nor {str(path)!r} + '.zip')")
    if not candidate.is_file():
        raise ValueError(f"{str(candidate)!r} is not a file, cannot load a model from it")
    if not zipfile.is_zipfile(candidate):
        raise ValueError(f"{str(candidate)!r} is not a model file: not a zip archive written by model.save()")
    try:
        with zipfile.ZipFile(candidate) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{str(candidate)!r} is not a readable model file: {error}") from error
    if bad is not None:
        raise ValueError(f"{str(candidate)!r} is a corrupt model file (bad CRC in {bad!r})")
    missing = {"data", "policy.pth"} - names
    if missing:
        raise ValueError(
            f"{str(candidate)!r} is not a complete Stable-Baselines3 model file (truncated, or not written by "
            f"model.save()): it has no {sorted(missing)}"
        )
    return candidate
