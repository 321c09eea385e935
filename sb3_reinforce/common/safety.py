"""Reliability helpers: atomic file writing, checks of finite values, checks of spaces and model files."""

import contextlib
import os
import pathlib
import re
import secrets
import stat
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import check_for_nested_spaces

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

# Spaces REINFORCE can learn with (a Dict may hold any of the simple observation spaces, not nested)
SIMPLE_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def _names(classes: tuple[type, ...]) -> str:
    return ", ".join(cls.__name__ for cls in classes)


def check_spaces(observation_space: Any, action_space: Any) -> None:
    """
    Raise a clear error for spaces REINFORCE does not support (Sequence, Graph, Text, Tuple, nested Dict, ...):
    ``NotImplementedError`` for a nested Dict (as SB3's algorithms, with SB3's message), ``ValueError`` otherwise.

    :param observation_space: the env's observation space
    :param action_space: the env's action space
    """
    allowed_obs = f"{_names(SIMPLE_OBSERVATION_SPACES)} or a Dict of those"
    if isinstance(observation_space, spaces.Dict):
        try:
            # SB3's own check (what its algorithms raise): NotImplementedError for a Dict/Tuple inside the Dict
            check_for_nested_spaces(observation_space)
        except NotImplementedError as error:
            nested = next(key for key, sub in observation_space.spaces.items() if isinstance(sub, (spaces.Dict, spaces.Tuple)))
            raise NotImplementedError(
                f"{error} env observation_space[{nested!r}]={observation_space.spaces[nested]!r}"
            ) from error
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


# Temporary files of atomic_write: ".<target name>.<8 random characters>.tmp" (tempfile.mkstemp's names match too)
_TEMP_NAME = ".{name}.{token}.tmp"
_TEMP_TOKEN = re.compile(r"[a-z0-9_]{8}")


def _is_temporary_file_of(entry: str, name: str) -> bool:
    prefix, suffix = f".{name}.", ".tmp"
    return (
        entry.startswith(prefix)
        and entry.endswith(suffix)
        and _TEMP_TOKEN.fullmatch(entry[len(prefix) : -len(suffix)]) is not None
    )


def _lock_if_unused(fd: int) -> bool | None:
    """
    Take the exclusive lock of an open file: True if taken, False if another open file (a writer alive) holds it,
    None where files cannot be locked (Windows, some network filesystems).
    """
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _remove_stale_temporary_files(directory: pathlib.Path, name: str) -> None:
    """
    Remove the temporary files of target ``name`` that interrupted writes left. A writer alive holds a lock on
    its temporary file (or, on Windows, keeps it open, which forbids removing it): those are kept, and so is
    everything where files cannot be locked.
    """
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if not _is_temporary_file_of(entry, name):
            continue
        candidate = directory / entry
        if fcntl is None:
            with contextlib.suppress(OSError):
                candidate.unlink()
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            # Still the file that was locked: the name cannot be reused while it exists (O_EXCL)
            if _lock_if_unused(fd) and os.path.samestat(os.fstat(fd), os.lstat(candidate)):
                candidate.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


def _create_temporary_file(directory: pathlib.Path, name: str) -> tuple[int, pathlib.Path]:
    """Create (O_EXCL, mode 0666 less the umask, as ``open()`` does) and lock a new temporary file of ``name``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = directory / _TEMP_NAME.format(name=name, token=secrets.token_hex(4))
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        locked = _lock_if_unused(fd)
        if locked is None:
            return fd, tmp
        # Another save's cleanup may have locked (and removed) it before this lock: then take another name
        with contextlib.suppress(OSError):
            if locked and os.path.samestat(os.fstat(fd), os.lstat(tmp)):
                return fd, tmp
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """
    Write a file atomically: into a temporary file of the same directory, flushed and fsynced, then moved over
    ``path`` with ``os.replace``. If the writer fails (or the process dies), ``path`` keeps its previous content.

    What ``open(path, "wb")`` users expect is kept: a new file gets the mode ``0o666`` less the umask (``0o644``
    under umask ``022``), an existing one keeps its mode; a symlink stays a symlink and its target (resolved, and
    created if missing) gets the new content, its temporary file being next to the target. The owner of an
    existing file is not kept (the file is a new one, owned by the writer).

    Temporary files are named ``.<name>.<8 characters>.tmp``. A dead writer's is removed by the next write to the
    same target, before it creates its own, so at most one is left per target (the last interrupted write's);
    those of writers still running (locked, or open on Windows) are kept.

    :param path: the destination
    :return: a binary file object to write to (context manager)
    """
    target = pathlib.Path(os.path.realpath(path))
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporary_files(directory, target.name)
    fd, tmp = _create_temporary_file(directory, target.name)
    file = os.fdopen(fd, "wb")
    try:
        # An existing file keeps its mode, as open() truncating it would (best effort: some filesystems refuse)
        with contextlib.suppress(OSError):
            mode = os.stat(target).st_mode
            if stat.S_ISREG(mode) and hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), stat.S_IMODE(mode))
        yield file
        file.flush()
        os.fsync(file.fileno())
        if fcntl is None:
            file.close()  # Windows cannot rename an open file
        # Still locked here: no other save's cleanup can remove the file before the rename
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        file.close()
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


class UsageError(ValueError):
    """A user's mistake on a command line (unknown env id, missing file, ...): the CLIs print it as one ``error:`` line."""


def check_env_id(env_id: str) -> None:
    """
    Raise :class:`UsageError` when ``env_id`` is not in gymnasium's registry, with the closest registered ids.

    :param env_id: e.g. ``"CartPole-v1"``
    """
    import difflib

    import gymnasium as gym

    if env_id not in gym.envs.registry:
        # The ids users pass to rl_zoo3: Atari games (ale-py) and rl_zoo3's own envs register on import
        import ale_py
        import rl_zoo3.import_envs  # noqa: F401

        gym.register_envs(ale_py)
    if env_id in gym.envs.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.envs.registry), n=3)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else " (a module registering it may need importing)"
    raise UsageError(f"--env {env_id!r} is not a registered gymnasium env id{hint}")


def check_input_file(path: str | os.PathLike, option: str) -> None:
    """
    Raise :class:`UsageError` when the file a command-line option names does not exist (or is a folder).

    :param path: the file
    :param option: the option, for the message (e.g. ``"--conf-file"``)
    """
    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "no such file"
        raise UsageError(f"{option} {str(path)!r}: {what}")
