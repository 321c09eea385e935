"""
The files of one run: its evaluation curve (``<label>__seed<k>.csv``) and its protocol sidecar
(``<label>__seed<k>.json``), written atomically, read back and checked against each other and against the
protocol asked for.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sb3_reinforce.common.safety import atomic_write
from sb3_reinforce.compare.specs import AlgoSpec

__all__ = [
    "CSV_FIELDS",
    "PROTOCOL_FIELDS",
    "RECORD_FORMAT",
    "VERSION_PACKAGES",
    "RunFileError",
    "check_run",
    "hyperparams_sha256",
    "load_run",
    "machine_description",
    "package_versions",
    "read_curve",
    "resolve_entry",
    "run_csv_path",
    "run_protocol",
    "run_record_path",
    "run_timesteps",
    "write_curve",
    "write_record",
]

#: Columns of a run's CSV.
CSV_FIELDS = ("timesteps", "wall_s", "mean_return", "std_return")


def run_csv_path(out: str | os.PathLike[str], spec: AlgoSpec, seed: int) -> Path:
    """Where the evaluation curve of one run is written."""
    return Path(out) / f"{spec.file_label}__seed{seed}.csv"


def run_record_path(csv_path: str | os.PathLike[str]) -> Path:
    """The protocol sidecar of a run's CSV (``<run>.json``): the run is done only when it says so."""
    return Path(csv_path).with_suffix(".json")


class RunFileError(ValueError):
    """A run's CSV or sidecar that is missing, damaged, or does not match the other."""


#: Packages whose versions every run records (``None`` when not installed).
VERSION_PACKAGES = ("sb3_reinforce", "stable_baselines3", "torch", "gymnasium", "rl_zoo3", "numpy")
#: Fields of the protocol that must be equal for a finished run to be reused (versions are only reported).
#: ``minutes`` (the wall-clock budget), ``train_env_id`` (a row trained on another env, ``<algo>@<env id>``) and
#: ``evaluation`` (``"pong"``: the Pong protocol) are only recorded when they apply.
PROTOCOL_FIELDS = (
    "env_id",
    "train_env_id",
    "algo",
    "seed",
    "timesteps",
    "minutes",
    "eval_freq",
    "eval_episodes",
    "evaluation",
    "hyperparams_sha256",
)
RECORD_FORMAT = 1


def package_versions() -> dict[str, str | None]:
    """Installed versions of :data:`VERSION_PACKAGES`."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for name in VERSION_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def machine_description() -> str:
    """
    The machine a run trained on, as the record reports it (never compared: a run made elsewhere stays valid): CPU
    model, core count and the vector instructions torch's CPU kernels use. Float results, so a seed's curve, can
    differ between machines where an algorithm uses a kernel that rounds differently by CPU. REINFORCE's Pong runs
    did so through ``softplus`` in the policy's collection step, now replaced. A rarer difference between two AVX-512
    machines remains, with its cause not found.
    """
    import platform

    import torch as th

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    return f"{model}, {os.cpu_count()} cores, torch CPU capability {th.backends.cpu.get_cpu_capability()}"


def resolve_entry(spec: AlgoSpec, env_id: str, hyperparams_path: str | None = None) -> tuple[dict[str, Any], Path]:
    """
    The hyperparameter entry a run trains with: the zoo entry of ``env_id`` plus the spec's overrides.

    :param spec: the row
    :param env_id: environment id
    :param hyperparams_path: REINFORCE hyperparameter file (other algorithms always use rl_zoo3's own)
    :return: ``(entry, file it was read from)``
    """
    from sb3_reinforce.compare.pong import pong_entry
    from sb3_reinforce.hyperparams import default_hyperparams_path, load_hyperparams, without_unused_critic

    train_env = spec.train_env_id(env_id)
    given = pong_entry(spec.algo, env_id, train_env)
    if given is not None:
        return given
    path = Path(hyperparams_path) if hyperparams_path is not None and spec.algo == "reinforce" else None
    entry = load_hyperparams(spec.algo, train_env, path=path)
    entry.update(spec.overrides)
    if spec.algo == "reinforce":
        entry = without_unused_critic(entry)
    return entry, (path or default_hyperparams_path(spec.algo)).resolve()


def hyperparams_sha256(entry: dict[str, Any]) -> str:
    """A stable hash of an entry: sha256 of its canonical JSON (sorted keys, no spaces)."""
    from sb3_reinforce.hyperparams import canonical_sha256, to_yaml_data

    return canonical_sha256(to_yaml_data(entry))


def run_protocol(
    env_id: str,
    spec: AlgoSpec,
    seed: int,
    timesteps: int,
    eval_freq: int,
    eval_episodes: int,
    hyperparams_path: str | None = None,
    minutes: float | None = None,
) -> dict[str, Any]:
    """
    The protocol of one run, as recorded in its sidecar: the :data:`PROTOCOL_FIELDS` under ``"protocol"``, and the
    entry itself, the file it came from and the package versions beside them.

    :param timesteps: the step budget (None: the entry's ``n_timesteps``, see :func:`run_timesteps`)
    :param minutes: the wall-clock budget of training, in minutes (None: none)
    :return: the record (without the ``status`` and ``result`` parts)
    """
    from sb3_reinforce.compare.pong import is_pong
    from sb3_reinforce.hyperparams import to_yaml_data

    entry, path = resolve_entry(spec, env_id, hyperparams_path)
    protocol: dict[str, Any] = dict(
        env_id=env_id,
        algo=dict(label=spec.label, algo=spec.algo, overrides=dict(sorted(spec.overrides.items()))),
        seed=int(seed),
        timesteps=run_timesteps(entry, timesteps),
        eval_freq=int(eval_freq),
        eval_episodes=int(eval_episodes),
        hyperparams_sha256=hyperparams_sha256(entry),
    )
    # Recorded only when they apply: the records of runs made before they existed stay valid
    if minutes is not None:
        protocol["minutes"] = float(minutes)
    if spec.train_env_id(env_id) != env_id:
        protocol["train_env_id"] = spec.train_env_id(env_id)
    if is_pong(env_id):
        protocol["evaluation"] = "pong"
    return dict(
        format=RECORD_FORMAT,
        protocol=protocol,
        hyperparams_path=str(path),
        hyperparams=to_yaml_data(entry),
        versions=package_versions(),
        machine=machine_description(),
    )


def run_timesteps(entry: dict[str, Any], timesteps: int | None) -> int:
    """
    The step budget of a run: ``timesteps``, or when None (a run with a wall-clock budget only) the entry's
    ``n_timesteps``, which is also the horizon of its ``lin_`` schedules.
    """
    if timesteps is not None:
        return int(timesteps)
    if "n_timesteps" not in entry:
        raise ValueError("the entry has no n_timesteps: give --timesteps with --minutes")
    return int(float(entry["n_timesteps"]))


def _differences(
    done: dict[str, Any], asked: dict[str, Any], keys: Sequence[str], names: tuple[str, str] = ("done", "asked")
) -> list[str]:
    """``key: <done value> (done) != <asked value> (asked)`` for each key whose values differ."""
    return [
        f"{key} {done.get(key)!r} ({names[0]}) != {asked.get(key)!r} ({names[1]})"
        for key in keys
        if done.get(key) != asked.get(key)
    ]


def write_record(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Write a run's sidecar (JSON, sorted keys), atomically."""
    with atomic_write(path) as file:
        file.write((json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def write_curve(path: str | os.PathLike[str], rows: Sequence[tuple[int, float, float, float]]) -> dict[str, Any]:
    """
    Write a run's evaluation curve (:data:`CSV_FIELDS`, one row per evaluation), atomically.

    :param path: the run's CSV (:func:`run_csv_path`)
    :param rows: ``(timesteps, wall_s, mean_return, std_return)`` per evaluation
    :return: the ``result`` part of the sidecar: the CSV's sha256, final step and number of rows
    """
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_FIELDS)
    writer.writerows(rows)
    data = text.getvalue().encode()
    with atomic_write(path) as file:
        file.write(data)
    return dict(csv_sha256=hashlib.sha256(data).hexdigest(), final_step=int(rows[-1][0]), n_rows=len(rows))


def _parse_csv(path: Path, data: bytes) -> dict[str, np.ndarray]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RunFileError(f"{path}: not a text CSV ({error})") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or tuple(rows[0]) != CSV_FIELDS:
        raise RunFileError(f"{path}: header {rows[0] if rows else None} is not {list(CSV_FIELDS)}")
    values = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(CSV_FIELDS):
            raise RunFileError(f"{path}: line {number} has {len(row)} fields instead of {len(CSV_FIELDS)} (truncated?)")
        try:
            values.append([float(value) for value in row])
        except ValueError:
            raise RunFileError(f"{path}: line {number} holds a value that is not a number: {row}") from None
    if not values:
        raise RunFileError(f"{path}: no evaluation rows")
    array = np.array(values)
    if not np.isfinite(array).all():
        raise RunFileError(f"{path}: non-finite values")
    curve = {key: array[:, i] for i, key in enumerate(CSV_FIELDS)}
    steps = curve["timesteps"]
    if steps[0] != 0 or (len(steps) > 1 and not (np.diff(steps) > 0).all()):
        raise RunFileError(f"{path}: timesteps do not start at 0 and increase")
    return curve


def read_curve(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """
    Read one run's CSV as ``{column: array}``.

    :raises RunFileError: naming the file, when it is missing, truncated or not such a CSV
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RunFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    return _parse_csv(path, data)


def load_run(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """
    Read a finished run: its CSV and its sidecar, checked against each other.

    A run is finished only when its sidecar says ``"status": "complete"``, the CSV's sha256 is the one the sidecar
    records, the CSV parses, and its last row is the recorded final step, at or after the run's ``timesteps``.

    :param path: the run's CSV
    :return: ``(curve, record)``
    :raises RunFileError: naming the file and what is wrong
    """
    path = Path(path)
    record_path = run_record_path(path)
    if not record_path.exists():
        raise RunFileError(f"{record_path} is missing (run killed before it finished, or made by an older version)")
    try:
        record = json.loads(record_path.read_bytes())
    except (OSError, ValueError) as error:
        raise RunFileError(f"{record_path}: not a readable run record ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("protocol"), dict):
        raise RunFileError(f"{record_path}: not a run record (no 'protocol')")
    if record.get("status") != "complete":
        pid = record.get("pid")
        raise RunFileError(f"{record_path}: status {record.get('status')!r}: the run (pid {pid}) never finished")
    result = record.get("result")
    if not isinstance(result, dict) or not {"csv_sha256", "final_step"} <= set(result):
        raise RunFileError(f"{record_path}: no 'result' with csv_sha256 and final_step")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RunFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    curve = _parse_csv(path, data)
    if hashlib.sha256(data).hexdigest() != result["csv_sha256"]:
        raise RunFileError(f"{path} does not match {record_path.name} (sha256 differs: the CSV was changed or damaged)")
    final, timesteps = curve["timesteps"][-1], record["protocol"].get("timesteps")
    minutes = record["protocol"].get("minutes")
    # A run ends at its step budget or, with a wall-clock budget, once that much training time has passed
    out_of_time = isinstance(minutes, (int, float)) and curve["wall_s"][-1] >= 60.0 * minutes
    if final != result["final_step"] or not isinstance(timesteps, int) or (final < timesteps and not out_of_time):
        budget = f">= {timesteps}" + (f" or {minutes:g} min of training" if minutes is not None else "")
        raise RunFileError(f"{path}: last step {final:g} is not the recorded final step {result['final_step']} {budget}")
    return curve, record


def check_run(path: str | os.PathLike[str], asked: dict[str, Any]) -> tuple[str, list[str]]:
    """
    What to do with the run at ``path`` for the protocol ``asked`` (:func:`run_protocol`).

    :return: ``("todo", [])`` nothing there; ``("damaged", [reason])`` partial or broken, to redo; ``("changed",
        differences)`` finished with another protocol; ``("done", version differences)`` finished with this protocol
    """
    path = Path(path)
    if not path.exists() and not run_record_path(path).exists():
        return "todo", []
    try:
        _, record = load_run(path)
    except RunFileError as error:
        return "damaged", [str(error)]
    done, wanted = record["protocol"], asked["protocol"]
    label = done.get("algo", {}).get("label") if isinstance(done.get("algo"), dict) else None
    if (label, done.get("seed")) != (wanted["algo"]["label"], wanted["seed"]):
        # The file name says which run this is: a record of another run (copied, renamed) is not this run's
        return "damaged", [f"{run_record_path(path)} is the record of another run (algo {label!r}, seed {done.get('seed')!r})"]
    differences = _differences(done, wanted, PROTOCOL_FIELDS)
    if differences:
        return "changed", differences
    versions, now = record.get("versions") or {}, asked["versions"]
    return "done", _differences(versions, now, sorted(set(versions) | set(now)), names=("run", "installed"))
