"""
Compare REINFORCE (and variants of it) with PPO, A2C, ... under one evaluation protocol.

Every algorithm x seed is trained with its zoo hyperparameters (REINFORCE: this package's
``hyperparams/reinforce.yml``; other algorithms: rl_zoo3's own files, loaded safely by
:func:`sb3_reinforce.hyperparams.load_hyperparams`) and evaluated on a separate env, deterministically,
every ``--eval-freq`` env steps for ``--eval-episodes`` episodes. Evaluation time is not counted as training time.

Usage::

    python -m sb3_reinforce.compare --env CartPole-v1 --algos reinforce ppo a2c --seeds 5 --timesteps 100000 \\
        --out runs/cartpole --n-jobs 2
    python -m sb3_reinforce.compare variance --env CartPole-v1 --variants total reward_to_go reward_to_go+value

Algorithm syntax (``--algos``)::

    <algo>                                   an rl_zoo3 algorithm (ppo, a2c, ...) or reinforce, zoo settings
    reinforce[:<return_mode>][+<baseline>][+norm|+nonorm]

``return_mode`` and ``baseline`` are names of the estimator registry (``sb3_reinforce.common.estimators``:
``total``/``reward_to_go``; ``none``, ``mean``, ``optimal``, ``time``, ``value``); ``norm``/``nonorm`` switch
``normalize_advantage`` on/off. Parts left out keep the zoo entry's value, e.g.
``reinforce:total``, ``reinforce:reward_to_go+value``, ``reinforce:total+mean+norm``, ``reinforce+nonorm``.

Output (in ``--out``): one CSV per run (``<label>__seed<k>.csv``: timesteps, wall seconds of training,
mean and std of the evaluation return) with its protocol sidecar (``<label>__seed<k>.json``: env, algo spec,
seed, timesteps, evaluation frequency and episodes, sha256 of the hyperparameter entry used, the entry and its
file, package versions, and once finished the CSV's sha256 and final step), ``summary.md`` (table and protocol)
and the plots ``returns_vs_steps.png`` and ``returns_vs_wall.png``.

Resuming: both files are written atomically, the CSV first, then the sidecar saying ``complete``. A run is done
only when its sidecar says so, matches the CSV (sha256, final step) and records the protocol asked for; it is then
skipped. A killed, partial or damaged run is named on stderr and redone from scratch. A finished run made with
another protocol (``timesteps``, ``eval_freq``, ``eval_episodes``, env, algo spec, seed, entry hash) is never mixed
with new ones: the command refuses (exit status 2) naming the runs and the fields that differ, unless
``--rerun-changed`` (redo them) or a new ``--out``. Package versions that differ are reported (stderr and
``summary.md``), not refused. With ``--n-jobs`` > 1 the runs go to worker processes that die with the command,
even when it is SIGKILLed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import dataclasses
import glob
import hashlib
import io
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from sb3_reinforce.common.estimators import RETURN_MODES, parse_estimator_variant, variant_grammar
from sb3_reinforce.common.safety import atomic_write

CSV_FIELDS = ("timesteps", "wall_s", "mean_return", "std_return")


class AlgoSpecError(ValueError):
    """A ``--algos`` token that does not follow the syntax."""


@dataclasses.dataclass(frozen=True)
class AlgoSpec:
    """
    One row of the comparison: an algorithm and the hyperparameters that override its zoo entry.

    :param label: the token as given (used in file names and tables)
    :param algo: ``"reinforce"`` or an rl_zoo3 algorithm name
    :param overrides: hyperparameters replacing the zoo entry's (``return_mode``, ``baseline``,
        ``normalize_advantage``)
    """

    label: str
    algo: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def file_label(self) -> str:
        return self.label.replace(":", "-").replace("+", "_")


def parse_algo_spec(token: str) -> AlgoSpec:
    """
    Parse ``reinforce[:<return_mode>][+<baseline>][+norm|+nonorm]`` or a plain algorithm name.

    :param token: the ``--algos`` token
    :return: the spec
    :raises AlgoSpecError: naming the bad part and the allowed values
    """
    from rl_zoo3 import ALGOS

    text = token.strip()
    head, *mods = text.split("+")
    algo, sep, mode = head.partition(":")
    algo = algo.lower()
    if algo != "reinforce":
        if sep or mods:
            raise AlgoSpecError(
                f"{token!r}: only reinforce takes ':<return_mode>' and '+<option>' parts; "
                f"{algo!r} is used with its zoo settings"
            )
        if algo not in ALGOS:
            raise AlgoSpecError(f"{token!r}: unknown algorithm {algo!r}; use reinforce or one of {', '.join(sorted(ALGOS))}")
        return AlgoSpec(label=algo, algo=algo)
    if sep and not mode:
        raise AlgoSpecError(f"{token!r}: ':' must be followed by a return mode ({', '.join(RETURN_MODES)})")
    try:
        overrides = parse_estimator_variant("+".join([mode, *mods]))
    except ValueError as error:
        raise AlgoSpecError(f"{token!r}: {str(error).split(': ', 1)[1]}") from error
    return AlgoSpec(label=text, algo="reinforce", overrides=overrides)


def run_csv_path(out: str | os.PathLike[str], spec: AlgoSpec, seed: int) -> Path:
    """Where the evaluation curve of one run is written."""
    return Path(out) / f"{spec.file_label}__seed{seed}.csv"


def run_record_path(csv_path: str | os.PathLike[str]) -> Path:
    """The protocol sidecar of a run's CSV (``<run>.json``): the run is done only when it says so."""
    return Path(csv_path).with_suffix(".json")


# protocol ---------------------------------------------------------------------------------------------


class RunFileError(ValueError):
    """A run's CSV or sidecar that is missing, damaged, or does not match the other."""


class ProtocolMismatchError(ValueError):
    """Finished runs in ``--out`` were made with another protocol than the one asked for."""


#: Packages whose versions every run records (``None`` when not installed).
VERSION_PACKAGES = ("sb3_reinforce", "stable_baselines3", "torch", "gymnasium", "rl_zoo3", "numpy")
#: Fields of the protocol that must be equal for a finished run to be reused (versions are only reported).
PROTOCOL_FIELDS = ("env_id", "algo", "seed", "timesteps", "eval_freq", "eval_episodes", "hyperparams_sha256")
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


def resolve_entry(spec: AlgoSpec, env_id: str, hyperparams_path: str | None = None) -> tuple[dict[str, Any], Path]:
    """
    The hyperparameter entry a run trains with: the zoo entry of ``env_id`` plus the spec's overrides.

    :param spec: the row
    :param env_id: environment id
    :param hyperparams_path: REINFORCE hyperparameter file (other algorithms always use rl_zoo3's own)
    :return: ``(entry, file it was read from)``
    """
    from sb3_reinforce.hyperparams import default_hyperparams_path, load_hyperparams

    path = Path(hyperparams_path) if hyperparams_path is not None and spec.algo == "reinforce" else None
    entry = load_hyperparams(spec.algo, env_id, path=path)
    entry.update(spec.overrides)
    if spec.algo == "reinforce" and entry.get("baseline") != "value":
        entry.pop("gae_lambda", None)  # GAE needs the value baseline
    return entry, (path or default_hyperparams_path(spec.algo)).resolve()


def hyperparams_sha256(entry: dict[str, Any]) -> str:
    """A stable hash of an entry: sha256 of its canonical JSON (sorted keys, no spaces)."""
    from sb3_reinforce.hyperparams import to_yaml_data

    text = json.dumps(to_yaml_data(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def run_protocol(
    env_id: str,
    spec: AlgoSpec,
    seed: int,
    timesteps: int,
    eval_freq: int,
    eval_episodes: int,
    hyperparams_path: str | None = None,
) -> dict[str, Any]:
    """
    The protocol of one run, as recorded in its sidecar: the :data:`PROTOCOL_FIELDS` under ``"protocol"``, and the
    entry itself, the file it came from and the package versions beside them.

    :return: the record (without the ``status`` and ``result`` parts)
    """
    from sb3_reinforce.hyperparams import to_yaml_data

    entry, path = resolve_entry(spec, env_id, hyperparams_path)
    protocol = dict(
        env_id=env_id,
        algo=dict(label=spec.label, algo=spec.algo, overrides=dict(sorted(spec.overrides.items()))),
        seed=int(seed),
        timesteps=int(timesteps),
        eval_freq=int(eval_freq),
        eval_episodes=int(eval_episodes),
        hyperparams_sha256=hyperparams_sha256(entry),
    )
    return dict(
        format=RECORD_FORMAT,
        protocol=protocol,
        hyperparams_path=str(path),
        hyperparams=to_yaml_data(entry),
        versions=package_versions(),
    )


def _differences(
    done: dict[str, Any], asked: dict[str, Any], keys: Sequence[str], names: tuple[str, str] = ("done", "asked")
) -> list[str]:
    """``key: <done value> (done) != <asked value> (asked)`` for each key whose values differ."""
    return [
        f"{key} {done.get(key)!r} ({names[0]}) != {asked.get(key)!r} ({names[1]})"
        for key in keys
        if done.get(key) != asked.get(key)
    ]


def _write_json(path: Path, record: dict[str, Any]) -> None:
    with atomic_write(path) as file:
        file.write((json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


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
    if final != result["final_step"] or not isinstance(timesteps, int) or final < timesteps:
        raise RunFileError(f"{path}: last step {final:g} is not the recorded final step {result['final_step']} >= {timesteps}")
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


# training ---------------------------------------------------------------------------------------------


def _make_model(spec: AlgoSpec, env_id: str, seed: int, hyperparams_path: str | None = None) -> tuple[Any, Any, Any]:
    """Build (model, train env, eval env) from the zoo entry plus the spec's overrides (:func:`resolve_entry`)."""
    from rl_zoo3 import ALGOS
    from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

    from sb3_reinforce import REINFORCE
    from sb3_reinforce.hyperparams import build_model_kwargs
    from sb3_reinforce.hyperparams.envs import make_zoo_vec_env

    entry, _ = resolve_entry(spec, env_id, hyperparams_path)
    kwargs, zoo = build_model_kwargs(entry)
    if zoo["vec_env_wrapper"] is not None:
        raise NotImplementedError("vec_env_wrapper entries are not supported by the comparison tool")

    def make(n_envs: int, env_seed: int) -> Any:
        env = make_zoo_vec_env(
            env_id,
            n_envs=n_envs,
            seed=env_seed,
            wrapper_class=zoo["env_wrapper"],
            env_kwargs=zoo["env_kwargs"],
            monitor_kwargs=zoo["monitor_kwargs"],
        )
        if zoo["frame_stack"]:
            env = VecFrameStack(env, int(zoo["frame_stack"]))
        return env

    env = make(zoo["n_envs"], seed)
    eval_env = make(1, seed + 10_000)
    if zoo["normalize"] is not None:
        env = VecNormalize(env, **zoo["normalize"])
        eval_env = VecNormalize(eval_env, training=False, **{**zoo["normalize"], "norm_reward": False})
    algo_class = REINFORCE if spec.algo == "reinforce" else ALGOS[spec.algo]
    model = algo_class(env=env, seed=seed, verbose=0, device="cpu", **kwargs)
    return model, env, eval_env


def train_and_evaluate(
    env_id: str,
    spec: AlgoSpec,
    seed: int,
    timesteps: int,
    out: str | os.PathLike[str],
    eval_freq: int = 5000,
    eval_episodes: int = 10,
    hyperparams_path: str | None = None,
) -> Path:
    """
    Train one algorithm x seed and write its evaluation curve to :func:`run_csv_path` and its protocol to the
    sidecar :func:`run_record_path` (both atomically: the CSV first, then the sidecar saying ``complete``).

    The curve has a first point at 0 steps, then one every ``eval_freq`` env steps (at the first callback step at
    or after it) and one at the end. ``wall_s`` is training time only: evaluations pause the clock.

    :return: the CSV path
    """
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    th.set_num_threads(1)
    final = run_csv_path(out, spec, seed)
    record = run_protocol(env_id, spec, seed, timesteps, eval_freq, eval_episodes, hyperparams_path)
    # Until the end, the sidecar says the run is not finished (whatever an earlier run left there)
    _write_json(run_record_path(final), dict(record, status="running", pid=os.getpid()))
    model, env, eval_env = _make_model(spec, env_id, seed, hyperparams_path)
    rows: list[tuple[int, float, float, float]] = []

    def evaluate(steps: int, wall: float) -> None:
        if isinstance(env, VecNormalize):
            sync_envs_normalization(env, eval_env)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
        rows.append((steps, wall, float(mean), float(std)))

    class EvalCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.train_time = 0.0
            self.next_eval = eval_freq
            self.started = 0.0

        def _on_training_start(self) -> None:
            self.started = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.train_time += time.perf_counter() - self.started
                evaluate(self.num_timesteps, self.train_time)
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += eval_freq
                self.started = time.perf_counter()
            return True

        def _on_training_end(self) -> None:
            self.train_time += time.perf_counter() - self.started

    evaluate(0, 0.0)
    callback = EvalCallback()
    model.learn(total_timesteps=timesteps, callback=callback)
    if rows[-1][0] != model.num_timesteps:
        evaluate(model.num_timesteps, callback.train_time)
    env.close()
    eval_env.close()
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_FIELDS)
    writer.writerows(rows)
    data = text.getvalue().encode()
    with atomic_write(final) as file:
        file.write(data)
    result = dict(csv_sha256=hashlib.sha256(data).hexdigest(), final_step=int(rows[-1][0]), n_rows=len(rows))
    _write_json(run_record_path(final), dict(record, status="complete", result=result))
    return final


def _worker(kwargs: dict[str, Any]) -> str:
    return str(train_and_evaluate(**kwargs))


def _kill_self() -> None:
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)


def _watch_parent(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            _kill_self()


def _init_worker(parent_pid: int) -> None:
    """
    Worker initializer: the worker dies with the compare process, even when that one is SIGKILLed (which leaves
    no chance to shut the pool down): ``PR_SET_PDEATHSIG`` on Linux, and a thread polling ``os.getppid()``
    everywhere (a dead parent reparents the worker).
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (copied by fork)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        _kill_self()  # the parent died before the death signal was set
    threading.Thread(target=_watch_parent, args=(parent_pid, 0.5), name="watch-parent", daemon=True).start()


def run_comparison(
    env_id: str,
    specs: Sequence[AlgoSpec],
    seeds: Sequence[int],
    timesteps: int,
    out: str | os.PathLike[str],
    eval_freq: int = 5000,
    eval_episodes: int = 10,
    n_jobs: int = 1,
    hyperparams_path: str | None = None,
    progress: bool = True,
    rerun_changed: bool = False,
) -> dict[str, list[Path]]:
    """
    Train and evaluate every spec x seed in ``n_jobs`` processes, skipping the runs already done with the same
    protocol (:func:`check_run`). A damaged or unfinished run is named on stderr and redone. A finished run made
    with another protocol is never reused: :class:`ProtocolMismatchError` lists what differs, unless
    ``rerun_changed`` (then it is redone). A run whose protocol matches but whose package versions differ is reused,
    with a warning on stderr (``summary.md`` lists the versions of every run).

    :param rerun_changed: redo the finished runs whose protocol differs instead of refusing
    :return: ``{label: [CSV path per seed]}``
    :raises ProtocolMismatchError: finished runs with another protocol, and ``rerun_changed`` is False
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs, changed = [], []
    for spec in specs:
        for seed in seeds:
            path = run_csv_path(out, spec, seed)
            asked = run_protocol(env_id, spec, seed, timesteps, eval_freq, eval_episodes, hyperparams_path)
            status, details = check_run(path, asked)
            if status == "done":
                if details:
                    print(f"warning: {path} reused, made with other package versions: {'; '.join(details)}", file=sys.stderr)
                continue
            if status == "changed":
                changed.append(f"{path}: {'; '.join(details)}")
                if not rerun_changed:
                    continue
                print(f"redoing {path} (--rerun-changed): {'; '.join(details)}", file=sys.stderr)
            elif status == "damaged":
                print(f"redoing {path}: {details[0]}", file=sys.stderr)
            jobs.append(
                dict(
                    env_id=env_id,
                    spec=spec,
                    seed=seed,
                    timesteps=timesteps,
                    out=out,
                    eval_freq=eval_freq,
                    eval_episodes=eval_episodes,
                    hyperparams_path=hyperparams_path,
                )
            )
    if changed and not rerun_changed:
        raise ProtocolMismatchError(
            f"{len(changed)} finished run(s) in {out} were made with another protocol and would be mixed with new ones:\n  "
            + "\n  ".join(changed)
            + "\nPass --rerun-changed to redo them with the protocol asked for, or use a new --out."
        )
    _remove_temporary_files(out, [run_csv_path(out, job["spec"], job["seed"]) for job in jobs])
    n_total = len(specs) * len(seeds)
    _run_jobs(jobs, n_jobs, n_total, progress)
    return {spec.label: [run_csv_path(out, spec, seed) for seed in seeds] for spec in specs}


def _remove_temporary_files(out: Path, csv_paths: Sequence[Path]) -> None:
    """Remove what killed runs about to be redone left behind (``atomic_write``'s hidden temporary files)."""
    for csv_path in csv_paths:
        for name in (csv_path.name, run_record_path(csv_path).name):
            for stale in [*out.glob(f".{glob.escape(name)}.*.tmp"), *out.glob(f"{glob.escape(name)}.tmp*")]:
                with contextlib.suppress(OSError):
                    stale.unlink()


def _run_jobs(todo: list[dict[str, Any]], n_jobs: int, n_total: int, progress: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        disable=not progress,
    ) as bar:
        task = bar.add_task("", total=n_total, completed=n_total - len(todo))

        def done(job: dict[str, Any]) -> None:
            bar.update(task, advance=1, description=f"done {job['spec'].label} seed {job['seed']}")

        if n_jobs <= 1:
            for job in todo:
                bar.update(task, description=f"training {job['spec'].label} seed {job['seed']}")
                _worker(job)
                done(job)
            return
        # spawn: workers are children of this process (their parent-death checks rely on it) and do not inherit
        # this process's threads (the progress bar's) in the middle of a lock
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),))
        with pool, _stop_workers_on_sigterm(pool):
            futures: dict[Future, dict[str, Any]] = {pool.submit(_worker, job): job for job in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                    done(futures[future])


@contextlib.contextmanager
def _stop_workers_on_sigterm(pool: ProcessPoolExecutor) -> Iterator[None]:
    """While active (main thread only), SIGTERM kills the pool's workers, then exits with status 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        # No pool.shutdown() here: the main thread may be inside submit(), holding the pool's lock
        for child in multiprocessing.active_children():
            child.kill()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# summary ----------------------------------------------------------------------------------------------


def _iqm(scores: np.ndarray) -> float:
    from scipy.stats import trim_mean

    return float(trim_mean(scores, 0.25))


def interval_estimates(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """
    IQM and mean of final scores across seeds with 95% percentile-bootstrap CIs (rliable's
    ``get_interval_estimates``).

    :param scores: one final score per seed
    :param reps: bootstrap resamples
    :param seed: seed of the bootstrap
    :return: ``{"iqm": (point, low, high), "mean": (...)}``
    """
    from rliable import library as rly

    scores = np.asarray(scores, dtype=float)
    names = ("iqm", "mean")
    # rliable draws its resamples from numpy's global generator: seed it for reproducible CIs, then restore it
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        points, cis = rly.get_interval_estimates(
            {"x": scores[:, None]}, lambda x: np.array([_iqm(x.ravel()), np.mean(x)]), reps=reps
        )
    finally:
        np.random.set_state(state)
    return {name: (float(points["x"][i]), float(cis["x"][0, i]), float(cis["x"][1, i])) for i, name in enumerate(names)}


def steps_to_threshold(curve: dict[str, np.ndarray], threshold: float) -> float:
    """
    First evaluated env step with mean return >= threshold (inf if never). The evaluation of the untrained policy
    (step 0) does not count: a lucky initialization is not learning.
    """
    hits = np.flatnonzero((curve["mean_return"] >= threshold) & (curve["timesteps"] > 0))
    return float(curve["timesteps"][hits[0]]) if len(hits) else math.inf


def summarize(
    curves: dict[str, list[dict[str, np.ndarray]]], threshold: float, env_id: str = "", reps: int = 2000
) -> tuple[str, list[dict[str, Any]]]:
    """
    The ``summary.md`` table.

    :param curves: ``{label: [curve per seed]}`` (:func:`read_curve`)
    :param threshold: return threshold for "steps to threshold"
    :return: (markdown, one dict of numbers per label)
    """
    rows = []
    for label, runs in curves.items():
        final = np.array([run["mean_return"][-1] for run in runs])
        estimates = interval_estimates(final, reps=reps)
        to_threshold = np.array([steps_to_threshold(run, threshold) for run in runs])
        wall = np.array([run["wall_s"][-1] for run in runs])
        steps = np.array([run["timesteps"][-1] for run in runs])
        rows.append(
            dict(
                label=label,
                n_seeds=len(runs),
                iqm=estimates["iqm"],
                mean=estimates["mean"],
                median_steps_to_threshold=float(np.median(to_threshold)),
                reached=int(np.isfinite(to_threshold).sum()),
                at_threshold_end=int((final >= threshold).sum()),
                wall_s=float(np.mean(wall)),
                fps=float(np.mean(steps / np.maximum(wall, 1e-9))),
            )
        )

    def ci(value: tuple[float, float, float]) -> str:
        return f"{value[0]:.1f} [{value[1]:.1f}, {value[2]:.1f}]"

    lines = [
        f"# {env_id} comparison" if env_id else "# Comparison",
        "",
        f"Final evaluation return over seeds (IQM and mean with 95% bootstrap CI); threshold = {threshold:g}.",
        "",
        "| algo | seeds | final IQM [95% CI] | final mean [95% CI] | median steps to threshold (seeds reached) "
        "| seeds at threshold at end | train wall time (s, mean) | train fps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        median = row["median_steps_to_threshold"]
        median_text = f"{median:,.0f}" if math.isfinite(median) else "not reached"
        lines.append(
            f"| {row['label']} | {row['n_seeds']} | {ci(row['iqm'])} | {ci(row['mean'])} | {median_text} "
            f"({row['reached']}/{row['n_seeds']}) | {row['at_threshold_end']}/{row['n_seeds']} | {row['wall_s']:.1f} "
            f"| {row['fps']:,.0f} |"
        )
    return "\n".join(lines) + "\n", rows


def _band(values: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and 95% bootstrap CI, per column."""
    rng = np.random.default_rng(seed)
    boot = values[rng.integers(0, len(values), size=(reps, len(values)))].mean(axis=1)
    return values.mean(axis=0), np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)


def plot_curves(
    curves: dict[str, list[dict[str, np.ndarray]]], out: str | os.PathLike[str], threshold: float | None
) -> list[Path]:
    """
    Plot mean eval return (95% bootstrap CI band over seeds) vs env steps and vs training wall-clock time.

    :return: the two PNG paths
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for x_key, x_label, name in (
        ("timesteps", "env steps", "returns_vs_steps.png"),
        ("wall_s", "training wall-clock time (s)", "returns_vs_wall.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, runs in curves.items():
            end = float(np.median([run[x_key][-1] for run in runs]))
            grid = np.linspace(0.0, end, 100)
            values = np.stack([np.interp(grid, run[x_key], run["mean_return"]) for run in runs])
            mean, low, high = _band(values)
            ax.plot(grid, mean, label=label)
            ax.fill_between(grid, low, high, alpha=0.2)
        if threshold is not None and math.isfinite(threshold):
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel(x_label)
        ax.set_ylabel("eval return (deterministic)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(out) / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def default_threshold(env_id: str) -> float:
    """The env's ``reward_threshold`` (inf when it has none)."""
    import gymnasium as gym

    value = gym.spec(env_id).reward_threshold
    return math.inf if value is None else float(value)


def _one_or_all(values: dict[str, list[str]], fmt: Any = str) -> str:
    """``value`` when every run has the same one, else each value with the runs that have it."""
    if len(values) == 1:
        return fmt(next(iter(values)))
    return "differs between runs: " + "; ".join(f"{fmt(value)} ({', '.join(runs)})" for value, runs in values.items())


def protocol_markdown(records: dict[str, list[dict[str, Any]]], left_out: Sequence[str] = ()) -> str:
    """
    The ``summary.md`` section stating the protocol the runs were made with (read from their sidecars): env,
    timesteps, evaluation, seeds, package versions and, per algo, the hyperparameter file and entry hash. A field
    that differs between runs lists every value with its runs.

    :param records: ``{label: [sidecar record per run]}`` (:func:`load_run`)
    :param left_out: one message per run that was left out of the report (damaged or unfinished)
    :return: markdown
    """
    fields: dict[str, dict[Any, list[str]]] = {}
    for label, runs in records.items():
        for record in runs:
            protocol = record["protocol"]
            name = f"{label} seed {protocol['seed']}"
            versions = ", ".join(f"{key} {value}" for key, value in sorted((record.get("versions") or {}).items()))
            for key, value in (
                ("env", protocol["env_id"]),
                ("timesteps", protocol["timesteps"]),
                ("evaluation", (protocol["eval_freq"], protocol["eval_episodes"])),
                ("versions", versions or "not recorded"),
            ):
                fields.setdefault(key, {}).setdefault(value, []).append(name)
    lines = ["## Protocol", ""]
    if fields:
        seeds = sorted({record["protocol"]["seed"] for runs in records.values() for record in runs})
        lines += [
            f"- env: {_one_or_all(fields['env'])}",
            f"- env steps per run: {_one_or_all(fields['timesteps'], lambda value: f'{value:,}')}",
            "- evaluation (separate env, deterministic policy): "
            + _one_or_all(fields["evaluation"], lambda value: f"every {value[0]:,} env steps, {value[1]} episode(s)"),
            f"- seeds: {', '.join(str(seed) for seed in seeds)}",
            f"- versions: {_one_or_all(fields['versions'])}",
            "",
            "| algo | seeds | hyperparameter file | entry sha256 (canonical JSON, overrides applied) |",
            "|---|---|---|---|",
        ]
        for label, runs in records.items():
            if not runs:
                continue
            entries: dict[tuple[str, str], list[str]] = {}
            for record in runs:
                key = (record.get("hyperparams_path", "?"), record["protocol"]["hyperparams_sha256"])
                entries.setdefault(key, []).append(f"seed {record['protocol']['seed']}")
            run_seeds = ", ".join(str(record["protocol"]["seed"]) for record in runs)
            if len(entries) == 1:
                ((path, digest),) = entries
                lines.append(f"| {label} | {run_seeds} | {path} | {digest} |")
            else:
                text = "; ".join(f"{digest} ({path}; {', '.join(names)})" for (path, digest), names in entries.items())
                lines.append(f"| {label} | {run_seeds} | differs between runs | {text} |")
    else:
        lines.append("No finished run.")
    if left_out:
        lines += ["", "Runs left out (damaged or unfinished, not counted):", ""]
        lines += [f"- {message}" for message in left_out]
    return "\n".join(lines) + "\n"


def write_report(
    env_id: str, results: dict[str, list[Path]], out: str | os.PathLike[str], threshold: float | None = None
) -> tuple[str, list[Path]]:
    """
    Write ``summary.md`` (table and protocol) and the plots from the finished runs; return the markdown and the
    plot paths. A run that is not finished (:func:`load_run` fails: damaged CSV, missing or mismatched sidecar) is
    named on stderr and in ``summary.md``, and left out.
    """
    threshold = default_threshold(env_id) if threshold is None else threshold
    curves: dict[str, list[dict[str, np.ndarray]]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    left_out = []
    for label, paths in results.items():
        for path in paths:
            try:
                curve, record = load_run(path)
            except RunFileError as error:
                print(f"left out of the report: {error}", file=sys.stderr)
                left_out.append(str(error))
                continue
            curves.setdefault(label, []).append(curve)
            records.setdefault(label, []).append(record)
    if curves:
        markdown, _ = summarize(curves, threshold, env_id)
    else:
        markdown = f"# {env_id} comparison\n\nNo finished run to summarize.\n"
    markdown += "\n" + protocol_markdown(records, left_out)
    with atomic_write(Path(out) / "summary.md") as file:
        file.write(markdown.encode())
    return markdown, plot_curves(curves, out, threshold) if curves else []


# CLI --------------------------------------------------------------------------------------------------


def _algo_type(token: str) -> AlgoSpec:
    try:
        return parse_algo_spec(token)
    except AlgoSpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sb3-reinforce-compare",
        description=__doc__.split("\n\n")[0].strip() + " Sub-command 'variance': gradient-variance diagnostic.",
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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "variance":
        from sb3_reinforce.variance import main as variance_main

        return variance_main(argv[1:])
    args = build_parser().parse_args(argv)
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
