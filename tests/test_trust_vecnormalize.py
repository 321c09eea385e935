"""
A zoo run folder's ``vecnormalize.pkl`` as an attacker or a careless user sees it: loading it (``enjoy``,
``train -i``, ``train`` next to a run folder, ``benchmarks/zoo_entries.py``) runs none of the code a crafted file
holds, unless trusted; the files VecNormalize.save() writes load as with SB3.
"""

import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from sb3_reinforce.common.serialization import UntrustedPickleError, load_vec_normalize
from sb3_reinforce.reinforce.policies import REINFORCEPolicy
from sb3_reinforce.zoo import main, zoo_patches
from tests.test_tuning_space import zoo_entries_benchmark

ENV_ID = "Pendulum-v1"  # its reinforce.yml entry has normalize: true
SYSTEM = f"{os.system.__module__}.system"


class _RunsShell:
    """Pickles as a call of ``os.system(command)``: what a crafted file holds."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.system, (self.command,)


class _CustomVecNormalize(VecNormalize):
    """A user's own VecNormalize subclass: not in the allow-list, loads only when trusted."""


def _pendulum_venv() -> VecEnv:
    return DummyVecEnv([lambda: gym.make(ENV_ID)])


def _stepped(vec_normalize: VecNormalize, n_steps: int = 20) -> VecNormalize:
    """Update the running statistics, as training does."""
    vec_normalize.seed(0)
    vec_normalize.reset()
    vec_normalize.action_space.seed(0)
    for _ in range(n_steps):
        vec_normalize.step(np.array([vec_normalize.action_space.sample() for _ in range(vec_normalize.num_envs)]))
    return vec_normalize


def _zoo(command: str, logs: Path, *extra: str) -> None:
    argv = [command, "--algo", "reinforce", "--env", ENV_ID, "--seed", "0", "-f", str(logs)]
    if command == "train":
        argv += ["--eval-freq", "-1", "--num-threads", "1", "--log-interval", "-1"]
    else:
        argv += ["--no-render"]
    try:
        main([*argv, *extra])
    except SystemExit as exit_:
        # The CLI reports a refused file as one line and exit status 2: hand the error itself to the test
        if exit_.code == 2 and isinstance(exit_.__cause__, UntrustedPickleError):
            raise exit_.__cause__ from None
        raise


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log folder of a tiny zoo training run of the Pendulum entry (normalize: true)."""
    logs = tmp_path_factory.mktemp("zoo") / "logs"
    _zoo("train", logs, "-n", "2000")
    assert (logs / "reinforce" / f"{ENV_ID}_1" / ENV_ID / "vecnormalize.pkl").is_file()
    return logs


@pytest.fixture
def run_copy(tmp_path: Path, zoo_run: Path) -> Callable[[bytes], Path]:
    """A copy of the zoo run whose ``vecnormalize.pkl`` holds the given bytes; returns the log folder."""

    def make(content: bytes) -> Path:
        logs = tmp_path / "logs"
        shutil.copytree(zoo_run, logs)
        (logs / "reinforce" / f"{ENV_ID}_1" / ENV_ID / "vecnormalize.pkl").write_bytes(content)
        return logs

    return make


def _stats_file(logs: Path) -> Path:
    return logs / "reinforce" / f"{ENV_ID}_1" / ENV_ID / "vecnormalize.pkl"


def _assert_refused(info: pytest.ExceptionInfo[UntrustedPickleError], path: Path, refused: str) -> None:
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"Refused to unpickle the VecNormalize statistics {str(path)!r}, nothing of the file was run")
    assert f": {refused} is not allowed." in message
    assert "--trust-code" in message and "trusted=True" in message
    assert info.value.refused == {None: refused}


def _same_statistics(a: VecNormalize, b: VecNormalize) -> None:
    assert a.observation_space == b.observation_space and a.action_space == b.action_space
    for name in ("norm_obs", "norm_reward", "training", "clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs_keys"):
        assert getattr(a, name) == getattr(b, name), name
    pairs = [(a.ret_rms, b.ret_rms)]
    if a.norm_obs:
        obs_rms = a.obs_rms if isinstance(a.obs_rms, dict) else {None: a.obs_rms}
        other = b.obs_rms if isinstance(b.obs_rms, dict) else {None: b.obs_rms}
        assert obs_rms.keys() == other.keys()
        pairs += [(obs_rms[key], other[key]) for key in obs_rms]
    for x, y in pairs:
        assert type(x) is type(y) is RunningMeanStd
        assert np.array_equal(x.mean, y.mean) and np.array_equal(x.var, y.var) and x.count == y.count


# what VecNormalize.save() writes loads as with SB3 -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make_venv, kwargs",
    [
        (_pendulum_venv, {}),
        (lambda: DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2), {"gamma": 0.9, "clip_obs": 5.0}),
        (lambda: DummyVecEnv([lambda: gym.make("CartPole-v1")]), {"norm_obs": False}),
        (lambda: DummyVecEnv([SimpleMultiObsEnv]), {"norm_obs_keys": ["vec"]}),  # Dict observations
    ],
)
def test_saved_vec_normalize_loads_by_default(tmp_path: Path, make_venv: Callable[[], VecEnv], kwargs: dict[str, Any]) -> None:
    original = _stepped(VecNormalize(make_venv(), **kwargs))
    path = tmp_path / "vecnormalize.pkl"
    original.save(str(path))
    venv = make_venv()
    loaded = load_vec_normalize(path, venv)
    assert type(loaded) is VecNormalize and loaded.venv is venv and loaded.num_envs == venv.num_envs
    _same_statistics(loaded, original)
    _same_statistics(loaded, VecNormalize.load(str(path), make_venv()))  # SB3's own loader reads the same
    obs = original.get_original_obs()
    normalized, expected = loaded.normalize_obs(obs), original.normalize_obs(obs)
    if isinstance(obs, dict):
        assert all(np.array_equal(normalized[key], expected[key]) for key in obs)
    else:
        assert np.array_equal(normalized, expected)
    _stepped(loaded, 5)  # usable as an env


def test_zoo_trained_run_plays_by_default(zoo_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original_load = VecNormalize.__dict__["load"]
    capsys.readouterr()
    _zoo("enjoy", zoo_run, "-n", "50")
    out = capsys.readouterr().out
    assert "Loading running average" in out and "Loading" in out
    # zoo_patches puts SB3's staticmethod back, as it was
    assert VecNormalize.__dict__["load"] is original_load
    with zoo_patches():
        assert VecNormalize.__dict__["load"] is not original_load
    assert VecNormalize.__dict__["load"] is original_load


# a crafted file runs nothing --------------------------------------------------------------------------------------


def _payloads(marker: Path) -> dict[str, bytes]:
    """Crafted ``vecnormalize.pkl`` contents, each running ``touch marker`` when unpickled by ``pickle.load``."""
    hidden = VecNormalize(_pendulum_venv())
    hidden.obs_rms = _RunsShell(f"touch {marker}")  # the payload inside otherwise genuine statistics
    return {
        "top-level": pickle.dumps(_RunsShell(f"touch {marker}")),
        "inside statistics": pickle.dumps(hidden),
        "protocol 0": pickle.dumps(_RunsShell(f"touch {marker}"), protocol=0),
    }


@pytest.mark.parametrize("payload", ["top-level", "inside statistics", "protocol 0"])
def test_crafted_vecnormalize_is_refused_by_enjoy(tmp_path: Path, run_copy: Callable[[bytes], Path], payload: str) -> None:
    marker = tmp_path / "pwned"
    logs = run_copy(_payloads(marker)[payload])
    original_load = VecNormalize.__dict__["load"]
    with pytest.raises(UntrustedPickleError) as info:
        _zoo("enjoy", logs, "-n", "50")
    _assert_refused(info, _stats_file(logs), SYSTEM)
    assert not marker.exists()
    assert VecNormalize.__dict__["load"] is original_load  # restored after the failure too


def test_crafted_vecnormalize_is_refused_by_train(
    tmp_path: Path, run_copy: Callable[[bytes], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    logs = run_copy(pickle.dumps(_RunsShell(f"touch {marker}")))
    # Continuing a downloaded run (-i): rl_zoo3 loads the run's vecnormalize.pkl before the model
    with pytest.raises(UntrustedPickleError) as info:
        _zoo("train", tmp_path / "new", "-n", "200", "-i", str(logs / "reinforce" / f"{ENV_ID}_1" / f"{ENV_ID}.zip"))
    _assert_refused(info, _stats_file(logs), SYSTEM)
    # Without -i rl_zoo3 looks for <env id>/vecnormalize.pkl in the working directory
    monkeypatch.chdir(_stats_file(logs).parent.parent)
    with pytest.raises(UntrustedPickleError) as info:
        _zoo("train", tmp_path / "new", "-n", "200")
    _assert_refused(info, Path("", ENV_ID, "vecnormalize.pkl"), SYSTEM)
    assert not marker.exists()


def test_zoo_entries_benchmark_refuses_crafted_vecnormalize(tmp_path: Path, zoo_run: Path, run_copy) -> None:
    zoo_entries = zoo_entries_benchmark()
    folder = zoo_run / "reinforce" / f"{ENV_ID}_1"
    deterministic, stochastic = zoo_entries.evaluate("reinforce", ENV_ID, 0, folder, 1)
    assert np.isfinite(deterministic) and np.isfinite(stochastic)
    marker = tmp_path / "pwned"
    logs = run_copy(pickle.dumps(_RunsShell(f"touch {marker}")))
    with pytest.raises(UntrustedPickleError) as info:
        zoo_entries.evaluate("reinforce", ENV_ID, 0, logs / "reinforce" / f"{ENV_ID}_1", 1)
    _assert_refused(info, _stats_file(logs), SYSTEM)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [
        ("builtins", "eval"),
        ("subprocess", "Popen"),
        ("stable_baselines3.common.vec_env.vec_normalize", "pickle"),  # a module a trusted module imported
        ("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize.load"),  # dotted names walk to functions
        ("stable_baselines3.common.running_mean_std", "np"),
        ("gymnasium.spaces.box", "Box.__init__"),
        ("numpy", "load"),  # reads pickles itself (allow_pickle)
        # allowed in a model file, never in VecNormalize statistics
        ("sb3_reinforce.reinforce.policies", "REINFORCEPolicy"),
        ("torch.optim.adam", "Adam"),
        ("stable_baselines3.common.utils", "LinearSchedule"),
        ("rl_zoo3.utils", "SimpleLinearSchedule"),
    ],
)
def test_other_globals_are_refused(tmp_path: Path, module: str, name: str) -> None:
    # Protocol 0 pickles calling the global with a harmless argument: refused before anything is called
    path = tmp_path / "vecnormalize.pkl"
    path.write_bytes(f"c{module}\n{name}\n(S'x'\ntR.".encode())
    with pytest.raises(UntrustedPickleError) as info:
        load_vec_normalize(path, _pendulum_venv())
    _assert_refused(info, path, f"{module}.{name}")


def test_model_file_classes_in_genuine_pickles_are_refused(tmp_path: Path) -> None:
    # Genuine pickles of what a model file may hold: not VecNormalize statistics, refused by name
    for value, refused in [
        (REINFORCEPolicy, "sb3_reinforce.reinforce.policies.REINFORCEPolicy"),
        (th.optim.Adam, "torch.optim.adam.Adam"),
        (LinearSchedule(1.0, 0.1, 0.5), "stable_baselines3.common.utils.LinearSchedule"),
        (_CustomVecNormalize, f"{__name__}._CustomVecNormalize"),
    ]:
        path = tmp_path / "vecnormalize.pkl"
        path.write_bytes(pickle.dumps(value))
        with pytest.raises(UntrustedPickleError) as info:
            load_vec_normalize(path, _pendulum_venv())
        _assert_refused(info, path, refused)


# trusted opt-in -----------------------------------------------------------------------------------------------------


def test_trusted_opt_in(tmp_path: Path, run_copy: Callable[[bytes], Path], capsys: pytest.CaptureFixture[str]) -> None:
    # A user's own VecNormalize subclass: refused by default, loaded with trusted=True / --trust-code
    custom = _stepped(_CustomVecNormalize(_pendulum_venv()))
    logs = run_copy(pickle.dumps(custom))
    path = _stats_file(logs)
    with pytest.raises(UntrustedPickleError) as info:
        load_vec_normalize(path, _pendulum_venv())
    _assert_refused(info, path, f"{__name__}._CustomVecNormalize")
    with pytest.raises(UntrustedPickleError):
        _zoo("enjoy", logs, "-n", "50")
    loaded = load_vec_normalize(path, _pendulum_venv(), trusted=True)
    assert type(loaded) is _CustomVecNormalize
    _same_statistics(loaded, custom)
    capsys.readouterr()
    _zoo("enjoy", logs, "-n", "50", "--trust-code")
    assert "Loading running average" in capsys.readouterr().out
    # Trusted means SB3's pickle.load: a crafted file's code runs (then it is reported as no VecNormalize)
    marker = tmp_path / "ran"
    path.write_bytes(pickle.dumps(_RunsShell(f"touch {marker}")))
    with pytest.raises(ValueError, match=r"holds an object of type int, not a VecNormalize"):
        load_vec_normalize(path, _pendulum_venv(), trusted=True)
    assert marker.exists()


# careless users: clear errors -------------------------------------------------------------------------------------


def _quoted(path: Path) -> str:
    """The path as the error messages quote it, as a regular expression."""
    return re.escape(repr(str(path)))


def test_wrong_files_and_arguments(tmp_path: Path, zoo_run: Path) -> None:
    genuine = _stats_file(zoo_run)
    path = tmp_path / "vecnormalize.pkl"
    cases = [
        (genuine.read_bytes()[:-7], r"not a file written by VecNormalize\.save\(\) \(EOFError"),  # truncated
        (b"", r"not a file written by VecNormalize\.save\(\) \(EOFError"),
        ((zoo_run / "reinforce" / f"{ENV_ID}_1" / f"{ENV_ID}.zip").read_bytes(), r"not a file written by VecNormalize"),
        (pickle.dumps({"obs_rms": [1.0]}), r"the file holds an object of type dict, not a VecNormalize"),
        (pickle.dumps(RunningMeanStd(shape=(3,))), r"the file holds an object of type RunningMeanStd, not a VecNormalize"),
    ]
    for content, match in cases:
        path.write_bytes(content)
        with pytest.raises(ValueError, match=rf"^Cannot load the VecNormalize statistics {_quoted(path)}: {match}"):
            load_vec_normalize(path, _pendulum_venv())
    # Statistics of another env: the observation shapes differ
    wrap_error = rf"^Cannot wrap the env with the VecNormalize statistics {_quoted(genuine)}: .*\(3,\) != \(4,\)$"
    with pytest.raises(ValueError, match=wrap_error):
        load_vec_normalize(genuine, DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    with pytest.raises(TypeError, match=r"^venv must be a VecEnv \(the env to wrap\), got \w*TimeLimit$"):
        load_vec_normalize(genuine, gym.make(ENV_ID))
    with pytest.raises(TypeError, match=r"^trusted must be True or False, got 'yes'"):
        load_vec_normalize(genuine, _pendulum_venv(), trusted="yes")
    with pytest.raises(FileNotFoundError):
        load_vec_normalize(tmp_path / "missing.pkl", _pendulum_venv())


def test_the_cli_reports_a_refused_file_in_one_line_with_status_2(tmp_path: Path, run_copy, capsys) -> None:
    marker = tmp_path / "pwned"
    logs = run_copy(pickle.dumps(_RunsShell(f"touch {marker}")))
    argv = ["enjoy", "--algo", "reinforce", "--env", ENV_ID, "--seed", "0", "-f", str(logs), "--no-render", "-n", "50"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("error: Refused to unpickle the VecNormalize statistics") and "--trust-code" in last_line
    assert not marker.exists()
