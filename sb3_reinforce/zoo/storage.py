"""The Optuna storage of the zoo's ``--optimize``: default SQLite file, PostgreSQL driver, heartbeat, hidden passwords."""

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["default_storage_url", "normalize_storage_url", "optuna_storage"]

_MEMORY_STORAGE = ("memory", ":memory:", "none")


def default_storage_url(log_folder: str, algo: str) -> str:
    """
    The Optuna storage used by ``--optimize`` without ``--storage``: an SQLite file in the log folder, shared by
    every worker process started with the same log folder.

    :param log_folder: the zoo's ``-f/--log-folder``
    :param algo: algorithm name
    :return: an SQLAlchemy URL (with a lock timeout, for concurrent workers)
    """
    folder = Path(log_folder).resolve() / algo
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}?timeout=60"


def normalize_storage_url(storage: str | None) -> str | None:
    """
    SQLAlchemy 2.1 maps ``postgresql://`` to the ``psycopg`` (v3) driver; when only ``psycopg2`` is installed
    (``pip install 'sb3_reinforce[postgres]'``), use it explicitly (``postgresql+psycopg2://``).

    :param storage: an Optuna storage (URL or journal file), or None
    :return: the storage to use
    """
    if storage is None or not storage.startswith(("postgresql://", "postgres://")):
        return storage
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + storage.split("://", 1)[1]
    return storage


def _report_stale_trial(study: Any, trial: Any) -> None:
    print(
        f"Optuna: trial {trial.number} of study {study.study_name!r} had no heartbeat for longer than the grace period "
        "(its worker died): marked FAIL",
        file=sys.stderr,
    )


def optuna_storage(storage: str | None, heartbeat_interval: int | None = 60, grace_period: int | None = 180) -> Any:
    """
    The Optuna storage object the zoo's workers use for a storage URL. For a database (``sqlite:///``,
    ``postgresql://``, ...) an ``RDBStorage`` with Optuna's heartbeat: a running trial records a heartbeat every
    ``heartbeat_interval`` seconds, and a trial whose worker died (killed, machine lost) is marked FAIL by the next
    worker that starts a trial (or by ``optuna.storages.fail_stale_trials``) once ``grace_period`` seconds passed
    without one, instead of staying RUNNING for ever. A ``.log`` journal file has no heartbeat.

    :param storage: storage URL or journal file (None: in memory)
    :param heartbeat_interval: seconds between heartbeats (None: no heartbeat)
    :param grace_period: seconds without heartbeat after which a running trial is failed
    :return: an Optuna storage, or None for in-memory
    """
    import inspect
    import warnings

    import optuna

    from sb3_reinforce.tuning import journal_storage

    if storage is None:
        return None
    journal = journal_storage(storage)
    if journal is not None:
        return journal
    kwargs: dict[str, Any] = {}
    if heartbeat_interval is not None:
        # optuna >= 4.9 renamed failed_trial_callback
        parameters = inspect.signature(optuna.storages.RDBStorage).parameters
        callback = "heartbeat_stale_trial_callback"
        if callback not in parameters:
            callback = "failed_trial_callback"
        kwargs = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period, callback: _report_stale_trial}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(storage, **kwargs)


class _OptunaForZoo:
    """
    Stands for the ``optuna`` module inside ``rl_zoo3.exp_manager`` while the zoo optimizes: ``create_study`` gets
    the manager's storage object (with the heartbeat) instead of the URL rl_zoo3 passes.
    """

    def __init__(self, storage: Any):
        self._storage = storage

    def __getattr__(self, name: str) -> Any:
        import optuna

        return getattr(optuna, name)

    def create_study(self, *args: Any, **kwargs: Any) -> Any:
        import optuna

        if self._storage is not None and isinstance(kwargs.get("storage"), str):
            kwargs["storage"] = self._storage
        return optuna.create_study(*args, **kwargs)


def _hide_password(storage: str | None) -> str | None:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    if storage is None:
        return None
    return re.sub(r"^([a-zA-Z0-9+.-]+://[^:/@]+):[^@]*@", r"\1:***@", storage)
