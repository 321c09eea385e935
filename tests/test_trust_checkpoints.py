"""
Checkpoints as an attacker or a careless user sees them: loading a crafted model file runs none of its code, and
saving keeps what ``open()`` users expect (mode from the umask, symlinks, no pile of temporary files).
"""

import base64
import io
import json
import os
import pickle
import re
import signal
import stat
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from rl_zoo3.utils import SimpleLinearSchedule
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.utils import LinearSchedule

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.buffers import SparseTernaryRolloutBuffer
from sb3_reinforce.common.safety import atomic_write
from sb3_reinforce.common.serialization import UntrustedPickleError, load_model, restricted_loads
from sb3_reinforce.hyperparams import default_hyperparams_path, load_hyperparams, load_hyperparams_file
from sb3_reinforce.hyperparams.building import make_model_from_entry
from sb3_reinforce.reinforce.policies import REINFORCEMultiInputPolicy, REINFORCEPolicy


class _RunsShell:
    """Pickles as a call of ``os.system(command)``: what a crafted model file holds."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.system, (self.command,)


def _replace_entries(source: Path, destination: Path, entries: dict[str, Any]) -> Path:
    """Copy a model archive, with the given ``data`` entries replaced by base64 pickles of the given objects."""
    return _replace_pickles(source, destination, {entry: pickle.dumps(obj) for entry, obj in entries.items()})


def _replace_pickles(source: Path, destination: Path, pickles: dict[str, bytes]) -> Path:
    """Copy a model archive, with the given ``data`` entries replaced by the given pickles (base64)."""
    with zipfile.ZipFile(source) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(parts["data"])
    for entry, crafted in pickles.items():
        data[entry] = {":type:": "<class 'object'>", ":serialized:": base64.b64encode(crafted).decode()}
    parts["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(destination, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return destination


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "cartpole.zip"
    REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, seed=0, device="cpu").save(path)
    return path


# loading: nothing of a crafted file runs --------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["observation_space", "action_space", "policy_class", "lr_schedule", "policy_kwargs"])
def test_crafted_entry_is_refused_and_never_run(tmp_path: Path, saved_model: Path, entry: str) -> None:
    marker = tmp_path / "pwned"
    path = _replace_entries(saved_model, tmp_path / "evil.zip", {entry: _RunsShell(f"touch {marker}")})
    with pytest.raises(UntrustedPickleError) as info:
        REINFORCE.load(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert f"entry {entry!r}: {os.system.__module__}.system is not allowed" in message
    assert str(path) in message and f"custom_objects={{{entry!r}: <value>}}" in message and "trusted=True" in message
    assert info.value.refused == {entry: f"{os.system.__module__}.system"}
    assert not marker.exists()
    # the zoo's enjoy loads through ALGOS["reinforce"].load: the same method
    from rl_zoo3.utils import ALGOS

    from sb3_reinforce.zoo import register_reinforce

    register_reinforce()
    with pytest.raises(UntrustedPickleError):
        ALGOS["reinforce"].load(path, custom_objects={}, device="cpu")
    assert not marker.exists()


def test_file_like_and_set_parameters(tmp_path: Path, saved_model: Path) -> None:
    marker = tmp_path / "pwned"
    path = _replace_entries(saved_model, tmp_path / "evil.zip", {"policy_kwargs": _RunsShell(f"touch {marker}")})
    with pytest.raises(UntrustedPickleError, match="entry 'policy_kwargs'") as info:
        REINFORCE.load(io.BytesIO(path.read_bytes()))
    assert pickle.loads(pickle.dumps(info.value)).refused == info.value.refused  # crosses processes intact
    assert REINFORCE.load(io.BytesIO(saved_model.read_bytes())).num_timesteps == 0
    # set_parameters reads only the weights (SB3: load_data=False): the crafted data is never decoded
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu")
    model.set_parameters(str(path))
    assert not marker.exists()


def test_crafted_file_really_runs_code_when_trusted(tmp_path: Path, saved_model: Path) -> None:
    # The control: SB3's loading (trusted=True, what REINFORCE.load did by default before) runs the command
    marker = tmp_path / "pwned"
    path = _replace_entries(saved_model, tmp_path / "evil.zip", {"observation_space": _RunsShell(f"touch {marker}")})
    with pytest.raises(ValueError):  # then fails: the observation space is os.system's exit status
        REINFORCE.load(path, trusted=True)
    assert marker.exists()


@pytest.mark.parametrize("trusted", ["yes", "False", 1, 0, None])
def test_trusted_must_be_a_bool(tmp_path: Path, saved_model: Path, trusted: Any) -> None:
    marker = tmp_path / "pwned"
    path = _replace_entries(saved_model, tmp_path / "evil.zip", {"lr_schedule": _RunsShell(f"touch {marker}")})
    with pytest.raises(TypeError, match=rf"trusted must be True or False, got {trusted!r}"):
        REINFORCE.load(path, trusted=trusted)
    assert not marker.exists()


def test_entry_given_in_custom_objects_is_not_decoded(tmp_path: Path, saved_model: Path) -> None:
    marker = tmp_path / "pwned"
    path = _replace_entries(saved_model, tmp_path / "evil.zip", {"observation_space": _RunsShell(f"touch {marker}")})
    space = gym.make("CartPole-v1").observation_space
    model = REINFORCE.load(path, custom_objects={"observation_space": space})
    assert model.observation_space is space
    assert not marker.exists()
    with pytest.raises(ValueError, match="custom_objects must be a dict or None, got list"):
        REINFORCE.load(path, custom_objects=[("observation_space", space)])  # type: ignore[arg-type]
    assert not marker.exists()


def test_module_of_a_refused_global_is_never_imported(tmp_path: Path, saved_model: Path, monkeypatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Space: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    crafted = b"cevil_module\nSpace\n."  # protocol 0: GLOBAL evil_module.Space, nothing called
    path = _replace_pickles(saved_model, tmp_path / "evil.zip", {"observation_space": crafted})
    with pytest.raises(UntrustedPickleError, match=r"entry 'observation_space': evil_module\.Space is not allowed"):
        REINFORCE.load(path)
    assert not marker.exists()
    assert "evil_module" not in sys.modules


@pytest.mark.parametrize(
    "module, name",
    [
        ("sb3_reinforce.compare.__main__", "REINFORCEPolicy"),  # imported, it runs the compare command line
        ("sb3_reinforce.zoo.__main__", "REINFORCEPolicy"),
        ("sb3_reinforce.variance.__main__", "REINFORCEPolicy"),
        ("stable_baselines3.__main__", "BasePolicy"),  # none there today: refused all the same
        ("sb3_reinforce.__init__", "REINFORCEPolicy"),  # the package's code a second time
    ],
)
def test_script_modules_of_allowed_packages_are_never_imported(
    tmp_path: Path, saved_model: Path, monkeypatch, module: str, name: str
) -> None:
    # A policy class "from" a package the unpickler allows, in a module whose import runs a command line: with
    # this argv the compare tool would print its help and exit, with another one train into any folder
    monkeypatch.setattr(sys, "argv", ["sb3-reinforce-compare", "--help"])
    monkeypatch.delitem(sys.modules, module, raising=False)
    path = _replace_pickles(saved_model, tmp_path / "evil.zip", {"policy_class": f"c{module}\n{name}\n.".encode()})
    with pytest.raises(UntrustedPickleError, match=rf"entry 'policy_class': {re.escape(module)}\.{name} is not allowed"):
        REINFORCE.load(path)
    assert module not in sys.modules


@pytest.mark.parametrize(
    "module, name",
    [
        ("posix", "system"),
        ("os", "system"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("builtins", "open"),
        ("functools", "partial"),
        ("operator", "attrgetter"),
        ("copyreg", "_reconstructor"),
        ("types", "CodeType"),
        ("types", "FunctionType"),
        ("cloudpickle.cloudpickle", "_make_function"),
        ("cloudpickle.cloudpickle", "subimport"),
        ("numpy", "load"),
        ("numpy.lib.npyio", "load"),
        ("numpy.testing", "assert_equal"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("torch.optim.lr_scheduler", "LambdaLR"),  # in torch.optim, but not an optimizer
        ("torch.nn.modules.module", "Module"),
        ("stable_baselines3.common.save_util", "load_from_pkl"),
        ("stable_baselines3.common.vec_env", "SubprocVecEnv"),
        ("sb3_reinforce.common.serialization", "os"),  # a module re-exported by an allowed package
        ("sb3_reinforce.common.safety", "atomic_write"),
        ("sb3_reinforce.reinforce.reinforce", "REINFORCE"),
        ("gymnasium.spaces.box", "Box.__init__"),  # dotted names walk to __globals__
        ("gymnasium.spaces.box", "np"),
        ("gymnasium", "make"),
        ("rl_zoo3.utils", "get_wrapper_class"),
        ("stable_baselines3.common.utils", "get_linear_fn"),  # returns a closure
    ],
)
def test_restricted_unpickler_refuses(module: str, name: str) -> None:
    # Protocol 0 pickles calling the global with a harmless argument: refused before anything is called
    for crafted in (f"c{module}\n{name}\n.".encode(), f"c{module}\n{name}\n(S'x'\ntR.".encode()):
        with pytest.raises(UntrustedPickleError, match=rf"^{module}\.{name} is not allowed$") as info:
            restricted_loads(crafted)
        assert info.value.refused == {None: f"{module}.{name}"}


@pytest.mark.parametrize(
    "module, name",
    [
        ("stable_baselines3.common.utils", "FloatSchedule"),
        ("rl_zoo3.utils", "SimpleLinearSchedule"),
        ("stable_baselines3.common.buffers", "RolloutBuffer"),
        ("sb3_reinforce.common.buffers", "SparseTernaryRolloutBuffer"),
        ("sb3_reinforce.reinforce.policies", "REINFORCEPolicy"),
    ],
)
def test_a_file_cannot_change_an_allowed_class(tmp_path: Path, saved_model: Path, module: str, name: str) -> None:
    # GLOBAL <class>, then BUILD with a slot state: pickle would setattr the class itself, for the whole process
    # (every later schedule, buffer or policy of the process), even though the load then fails
    import importlib

    target = getattr(importlib.import_module(module), name)
    crafted = f"c{module}\n{name}\n(N(S'__call__'\ncbuiltins\nstr\nS'add'\ncbuiltins\nstr\ndtb.".encode()
    path = _replace_pickles(saved_model, tmp_path / "evil.zip", {"lr_schedule": crafted})
    before = dict(vars(target))
    with pytest.raises(UntrustedPickleError, match=rf"entry 'lr_schedule': setting attributes of the class {module}\.{name}"):
        REINFORCE.load(path)
    assert dict(vars(target)) == before
    with pytest.raises(UntrustedPickleError, match="setting attributes of the class"):
        restricted_loads(crafted)
    assert dict(vars(target)) == before


def test_restricted_unpickler_reads_what_cloudpickle_writes() -> None:
    import cloudpickle

    values = [
        gym.spaces.Dict(a=gym.spaces.Box(-1, 1, (3,)), b=gym.spaces.MultiDiscrete([2, 3]), c=gym.spaces.MultiBinary(4)),
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([1, 2], dtype=np.int64)[0],
        np.random.default_rng(3),
        {"activation_fn": th.nn.Tanh, "optimizer_class": th.optim.Adam, "optimizer_kwargs": {"betas": (0.9, 0.99)}},
        SimpleLinearSchedule(1e-3),
        LinearSchedule(1.0, 0.1, 0.5),
        {1, 2},
        frozenset({3}),
        complex(1, 2),
    ]
    for value in values:
        decoded = restricted_loads(cloudpickle.dumps(value))
        assert type(decoded) is type(value)
        if isinstance(value, np.random.Generator):
            assert decoded.bit_generator.state == value.bit_generator.state
        elif isinstance(value, np.ndarray):
            assert decoded.dtype == value.dtype and np.array_equal(decoded, value)
        elif isinstance(value, gym.spaces.Space):
            assert decoded == value
        else:
            assert repr(decoded) == repr(value)


def test_every_class_a_hyperparameter_file_can_name_is_decoded() -> None:
    # What validate/train accept in policy_kwargs, replay_buffer_class, ...: a model trained with it must load
    import cloudpickle

    from sb3_reinforce.hyperparams.literals import _safe_names

    classes = {id(obj): obj for obj in _safe_names().values()}.values()
    assert RMSpropTFLike in classes and th.nn.Mish in classes
    for obj in classes:
        assert restricted_loads(cloudpickle.dumps(obj)) is obj, obj


def test_lambda_learning_rate_needs_custom_objects_or_trust(tmp_path: Path) -> None:
    path = tmp_path / "lambda.zip"
    REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, learning_rate=lambda progress: 1e-3 * progress, device="cpu").save(path)
    with pytest.raises(UntrustedPickleError) as info:
        REINFORCE.load(path)
    message = str(info.value)
    assert "entry 'learning_rate': cloudpickle.cloudpickle._make_function is not allowed (a Python function" in message
    assert "entry 'lr_schedule': cloudpickle.cloudpickle._make_function is not allowed" in message
    assert "custom_objects={'learning_rate': <value>, 'lr_schedule': <value>}" in message
    assert info.value.refused == {
        "learning_rate": "cloudpickle.cloudpickle._make_function",
        "lr_schedule": "cloudpickle.cloudpickle._make_function",
    }

    schedule = SimpleLinearSchedule(1e-3)
    model = REINFORCE.load(path, custom_objects={"learning_rate": schedule, "lr_schedule": schedule}, env="CartPole-v1")
    assert model.lr_schedule(0.5) == pytest.approx(5e-4)
    model.learn(64)
    trusted = REINFORCE.load(path, trusted=True)
    assert trusted.lr_schedule(0.5) == pytest.approx(5e-4)


def _dict_obs_env() -> gym.Env:
    return gym.wrappers.TimeLimit(SimpleMultiObsEnv(random_start=True), 20)


@pytest.mark.parametrize(
    "policy, env, kwargs",
    [
        ("MlpPolicy", "CartPole-v1", {"learning_rate": SimpleLinearSchedule(1e-3)}),  # the zoo's lin_ schedules
        ("MlpPolicy", "CartPole-v1", {"baseline": "value", "learning_rate": LinearSchedule(1e-3, 1e-4, 0.5)}),
        (
            "MlpPolicy",
            "CartPole-v1",
            {
                "baseline": "optimal",
                "policy_kwargs": {
                    "net_arch": {"pi": [16], "vf": [8]},
                    "activation_fn": th.nn.Tanh,
                    "optimizer_class": th.optim.RMSprop,
                    "optimizer_kwargs": {"alpha": 0.99, "eps": 1e-5},
                    "features_extractor_class": FlattenExtractor,
                },
            },
        ),
        ("MlpPolicy", "Pendulum-v1", {"baseline": "mean"}),  # Box actions
        ("MultiInputPolicy", _dict_obs_env, {}),  # Dict observations
        # SB3's own optimizer, which hyperparameter files name (rl_zoo3's a2c.yml: optimizer_class=RMSpropTFLike)
        ("MlpPolicy", "CartPole-v1", {"policy_kwargs": {"optimizer_class": RMSpropTFLike, "optimizer_kwargs": {"eps": 1e-5}}}),
        (
            "MlpPolicy",
            "Pendulum-v1",
            {
                "use_sde": True,
                "sde_sample_freq": 4,
                "policy_kwargs": {"log_std_init": -1.0, "full_std": False, "use_expln": True, "net_arch": [8]},
            },
        ),  # gSDE
    ],
)
def test_project_models_load_by_default(tmp_path: Path, policy: str, env: Any, kwargs: dict[str, Any]) -> None:
    model = REINFORCE(policy, env() if callable(env) else env, n_steps=32, seed=0, device="cpu", **kwargs)
    model.learn(96)
    model.save(tmp_path / "model.zip")
    loaded = REINFORCE.load(tmp_path / "model.zip", device="cpu")
    assert type(loaded.policy) is type(model.policy) and isinstance(loaded.policy, REINFORCEPolicy)
    assert loaded.num_timesteps == model.num_timesteps and loaded.baseline == model.baseline
    assert loaded.observation_space == model.observation_space and loaded.action_space == model.action_space
    assert loaded.lr_schedule(0.3) == model.lr_schedule(0.3)
    for p, q in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(p, q)
    obs = model.observation_space.sample()
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    if policy == "MultiInputPolicy":
        assert isinstance(loaded.policy, REINFORCEMultiInputPolicy)
    loaded.set_env(model.get_env())
    loaded.learn(64, reset_num_timesteps=False)


def test_karpathy_pong_model_loads_by_default(tmp_path: Path) -> None:
    from sb3_reinforce.pong.karpathy import KarpathyPolicy, karpathy_pong

    model = karpathy_pong(n_envs=1, seed=0)
    model.save(tmp_path / "pong.zip")
    loaded = REINFORCE.load(tmp_path / "pong.zip", device="cpu")
    assert type(loaded.policy) is KarpathyPolicy and loaded.rollout_buffer_class is SparseTernaryRolloutBuffer
    for p, q in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(p, q)


@pytest.mark.parametrize("env_id", list(load_hyperparams_file(default_hyperparams_path("reinforce"))))
def test_every_shipped_entry_gives_a_model_that_loads_by_default(tmp_path: Path, env_id: str) -> None:
    # The zoo, the comparison and the Pong example build their models from these entries (KarpathyPong-v0: the
    # Karpathy policy with its value head and the sparse ternary buffer)
    if env_id.startswith("LunarLander"):
        pytest.importorskip("Box2D")
    entry = load_hyperparams("reinforce", env_id)
    model, env, _ = make_model_from_entry("reinforce", env_id, entry, seed=0, n_envs=1, evaluation_env=False, device="cpu")
    model.save(tmp_path / "model.zip")
    env.close()
    loaded = REINFORCE.load(tmp_path / "model.zip", device="cpu")
    assert type(loaded.policy) is type(model.policy) and loaded.rollout_buffer_class is model.rollout_buffer_class
    assert loaded.policy_kwargs == model.policy_kwargs and loaded.baseline == model.baseline
    for p, q in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(p, q)


def test_zoo_trained_model_loads_and_plays_by_default(tmp_path: Path, capsys) -> None:
    from sb3_reinforce.zoo import main

    logs = tmp_path / "logs"
    common = ["--env", "CartPole-v1", "--seed", "0", "-f", str(logs)]
    main(["train", "--algo", "reinforce", *common, "-n", "600", "--eval-freq", "-1", "--num-threads", "1"])
    model = REINFORCE.load(logs / "reinforce" / "CartPole-v1_1" / "CartPole-v1.zip")
    assert isinstance(model.learning_rate, SimpleLinearSchedule)  # the entry's lin_1e-3, decoded safely
    capsys.readouterr()
    main(["enjoy", "--algo", "reinforce", *common, "--no-render", "-n", "200"])
    assert "Loading" in capsys.readouterr().out


def test_other_algorithms_model_still_reported(tmp_path: Path) -> None:
    path = tmp_path / "ppo.zip"
    PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, device="cpu").save(path)
    # Named from the file's data before anything is decoded (tests/test_conventions.py checks A2C too)
    with pytest.raises(ValueError, match=rf"Cannot load a REINFORCE model from {str(path)!r}: this file holds a PPO model"):
        REINFORCE.load(path)


@pytest.mark.parametrize("algo_class, kwargs", [(PPO, {"batch_size": 32}), (A2C, {})], ids=["PPO", "A2C"])
def test_load_model_reads_other_algorithms_files_restricted(tmp_path: Path, algo_class: type, kwargs: dict) -> None:
    # What the comparison resumes its PPO and A2C rows with: SB3's own load would run the crafted entry
    path = tmp_path / "model.zip"
    model = algo_class("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu", **kwargs)
    model.save(path)
    loaded = load_model(algo_class, path, device="cpu")
    assert type(loaded) is algo_class and loaded.lr_schedule(0.5) == model.lr_schedule(0.5)
    for p, q in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(p, q)
    marker = tmp_path / "pwned"
    evil = _replace_entries(path, tmp_path / "evil.zip", {"lr_schedule": _RunsShell(f"touch {marker}")})
    with pytest.raises(UntrustedPickleError) as info:
        load_model(algo_class, evil)
    assert f"Cannot load a {algo_class.__name__} model from {str(evil)!r}: " in str(info.value)
    assert info.value.refused == {"lr_schedule": f"{os.system.__module__}.system"}
    assert not marker.exists()
    with pytest.raises(TypeError, match="trusted must be True or False"):
        load_model(algo_class, evil, trusted="yes")  # type: ignore[arg-type]
    load_model(algo_class, evil, trusted=True)  # SB3's load (the lr_schedule is not called when loading)
    assert marker.exists()


def test_crafted_weights_are_refused(tmp_path: Path, saved_model: Path) -> None:
    # The .pth parts go through torch.load(weights_only=True) (SB3's load_from_zip_file): checked, not assumed
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(saved_model) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    for part in ("policy.pth", "pytorch_variables.pth"):
        path = tmp_path / f"evil-{part}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in parts.items():
                if name == part:
                    with archive.open(name, "w") as file:
                        th.save({"x": _RunsShell(f"touch {marker}")}, file)
                else:
                    archive.writestr(name, content)
        with pytest.raises(ValueError, match=rf"Cannot load a REINFORCE model from {str(path)!r}: .*Weights only load"):
            REINFORCE.load(path)
        model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu")
        with pytest.raises(Exception, match="Weights only load"):
            model.set_parameters(str(path))
        assert not marker.exists()


def test_checked_bytes_are_the_loaded_bytes(tmp_path: Path, saved_model: Path, monkeypatch) -> None:
    # Swapping the file after the check must not get a crafted file past it: the file is read once
    marker = tmp_path / "pwned"
    path = tmp_path / "model.zip"
    path.write_bytes(saved_model.read_bytes())
    evil = _replace_entries(saved_model, tmp_path / "evil.zip", {"lr_schedule": _RunsShell(f"touch {marker}")})
    import stable_baselines3.common.base_class as base_class

    original = base_class.load_from_zip_file

    def swap_then_load(*args: Any, **kwargs: Any) -> Any:
        os.replace(evil, path)
        return original(*args, **kwargs)

    monkeypatch.setattr(base_class, "load_from_zip_file", swap_then_load)
    assert REINFORCE.load(path).num_timesteps == 0
    assert not marker.exists()


# saving: what open() users expect ------------------------------------------------------------------------------


@pytest.fixture
def umask() -> Callable[[int], None]:
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and symlinks")


@POSIX_ONLY
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_file_mode_follows_the_umask(tmp_path: Path, umask: Callable[[int], None], mask: int, mode: int) -> None:
    umask(mask)
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu")
    model.save(tmp_path / "model")
    assert stat.S_IMODE((tmp_path / "model.zip").stat().st_mode) == mode
    with atomic_write(tmp_path / "other.bin") as file:
        file.write(b"x")
    assert stat.S_IMODE((tmp_path / "other.bin").stat().st_mode) == mode


@POSIX_ONLY
def test_overwritten_file_keeps_its_mode(tmp_path: Path, umask: Callable[[int], None]) -> None:
    umask(0o022)
    path = tmp_path / "model.zip"
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu")
    model.save(path)
    path.chmod(0o640)
    model.learn(64)
    model.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert REINFORCE.load(path).num_timesteps == model.num_timesteps


@POSIX_ONLY
def test_symlink_stays_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "runs" / "model-v1.zip"
    link = tmp_path / "links" / "latest.zip"
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu")
    model.save(target)
    link.symlink_to(os.path.relpath(target, link.parent))
    model.learn(64)
    model.save(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert REINFORCE.load(target).num_timesteps == model.num_timesteps
    assert sorted(os.listdir(tmp_path / "links")) == ["latest.zip"]
    assert sorted(os.listdir(tmp_path / "runs")) == ["model-v1.zip"]
    # a dangling link: its target is created, the link kept
    dangling = tmp_path / "links" / "next.zip"
    dangling.symlink_to(tmp_path / "runs" / "new" / "model-v2.zip")
    model.save(dangling)
    assert dangling.is_symlink() and REINFORCE.load(dangling).num_timesteps == model.num_timesteps
    assert (tmp_path / "runs" / "new" / "model-v2.zip").is_file()


def _temporary_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_repeated_killed_saves_leave_at_most_one_temporary_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "model.zip"
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu")
    model.save(path)
    good = path.read_bytes()
    # Another target's temporary file: not this target's to remove
    other = tmp_path / ".model.zip.bak.abcd1234.tmp"
    other.write_bytes(b"other")

    def killed_midway(file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(good[: len(good) // 2])
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    for _ in range(4):
        pid = os.fork()
        if pid == 0:  # the child dies in the middle of its save, cleaning nothing
            try:
                monkeypatch.setattr("stable_baselines3.common.base_class.save_to_zip_file", killed_midway)
                model.save(path)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert path.read_bytes() == good
        stale = [name for name in _temporary_files(tmp_path) if name != other.name]
        assert len(stale) == 1 and stale[0].startswith(".model.zip.")
    # A save raising inside atomic_write removes its own file and the dead writer's
    with pytest.raises(RuntimeError), atomic_write(path) as file:
        file.write(b"half")
        raise RuntimeError("crash")
    assert _temporary_files(tmp_path) == [other.name]
    model.save(path)
    assert _temporary_files(tmp_path) == [other.name]
    assert REINFORCE.load(path).num_timesteps == model.num_timesteps


def test_previous_versions_temporary_files_are_removed(tmp_path: Path) -> None:
    # tempfile.mkstemp's names, as the earlier atomic_write left them
    path = tmp_path / "model.zip"
    for token in ("k2j4_x9q", "a0b1c2d3", "zz__zz__"):
        (tmp_path / f".model.zip.{token}.tmp").write_bytes(b"stale")
    REINFORCE("MlpPolicy", "CartPole-v1", n_steps=32, device="cpu").save(path)
    assert _temporary_files(tmp_path) == []


def test_a_writer_still_running_keeps_its_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    with atomic_write(path) as first:
        first.write(b"first, slow")
        with atomic_write(path) as second:  # another save of the same target meanwhile: leaves the first alone
            second.write(b"second")
        assert path.read_bytes() == b"second"
        assert len(_temporary_files(tmp_path)) == 1
    assert path.read_bytes() == b"first, slow"
    assert _temporary_files(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="needs fcntl")
def test_filesystem_without_locks(tmp_path: Path, monkeypatch) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    path = tmp_path / "file.bin"
    stale = tmp_path / ".file.bin.abcd1234.tmp"  # maybe a writer alive: nothing tells, so it is kept
    stale.write_bytes(b"?")
    with atomic_write(path) as file:
        file.write(b"new")
    assert path.read_bytes() == b"new"
    assert _temporary_files(tmp_path) == [stale.name]


def test_models_saved_before_the_pong_subpackage_still_load():
    """A model saved by 0.1 names ``sb3_reinforce.karpathy.KarpathyPolicy``: the restricted unpickler maps it."""
    import pickle

    from sb3_reinforce.common.serialization import restricted_loads
    from sb3_reinforce.pong.karpathy import KarpathyPolicy

    old = pickle.dumps(KarpathyPolicy, protocol=0).replace(b"sb3_reinforce.pong.karpathy", b"sb3_reinforce.karpathy")
    assert b"sb3_reinforce.karpathy\nKarpathyPolicy" in old
    assert restricted_loads(old) is KarpathyPolicy
