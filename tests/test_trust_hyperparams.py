"""
No hyperparameter file runs code (README, rl-zoo section): every name a file can make the program call is imported
only from a trusted package and type-checked after import, its arguments must be plain data, and hostile or broken
YAML fails fast with a clear error. Each hostile file is written as an attacker would, with a payload that creates a
marker file when it runs.
"""

import importlib.util
import io
import os
import pickle
import sys
import uuid
from pathlib import Path

import gymnasium as gym
import optuna
import pytest
import yaml

from sb3_reinforce.hyperparams import (
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    HyperparamsError,
    build_model_kwargs,
    check_hyperparams_code,
    default_hyperparams_path,
    load_hyperparams,
    load_hyperparams_file,
    load_yaml,
    parse_yaml,
    trusted_code,
    validate_hyperparams_file,
    validate_reinforce_hyperparams,
)
from sb3_reinforce.tuning import (
    STUDY_ATTR_ALGO,
    STUDY_ATTR_ENV,
    STUDY_ATTR_HYPERPARAMS,
    sample_reinforce_params,
)
from sb3_reinforce.zoo import main

ENV_ID = "CartPole-v1"
BASE = {"n_timesteps": 200, "policy": "MlpPolicy", "n_envs": 1, "n_episodes": 1}
TINY = ["--env", ENV_ID, "--seed", "0", "--eval-freq", "-1", "--num-threads", "1"]


class _Shell:
    """Unpickling this object runs ``touch marker`` in a shell."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _payload(folder: Path) -> tuple[Path, Path]:
    """A pickle whose loading creates ``folder/hacked``: what a file could run through a trusted function."""
    marker = folder / "hacked"
    pickle_path = folder / "payload.pkl"
    pickle_path.write_bytes(pickle.dumps(_Shell(marker)))
    return pickle_path, marker


#: Stands for the path of the payload pickle in the keys of a hostile entry.
PAYLOAD = "<payload.pkl>"

# What a file names where a class of a kind is expected, each from a trusted package: (key, value, what the value
# is); the refusal names the base class (BASES). The first one unpickles the payload when called.
NOT_CLASSES_OF_THE_KIND = [
    ("callback", [{"stable_baselines3.common.save_util.load_from_pkl": {"path": PAYLOAD}}], "the function"),
    ("env_wrapper", {"stable_baselines3.common.utils.os": {"command": "touch hacked"}}, "the module os"),
    ("env_wrapper", "gymnasium.utils.env_checker.check_env", "the function"),
    ("env_wrapper", [{"stable_baselines3.common.callbacks.CheckpointCallback": {"save_freq": 1}}], "the class"),
    ("vec_env_wrapper", "stable_baselines3.common.env_util.make_vec_env", "the function"),
    ("policy", "stable_baselines3.common.save_util.load_from_pkl", "the function"),
    ("rollout_buffer_class", "stable_baselines3.common.utils.get_device", "the function"),
]
BASES = {
    "callback": "stable_baselines3.common.callbacks.BaseCallback",
    "env_wrapper": "gymnasium.core.Wrapper",
    "vec_env_wrapper": "stable_baselines3.common.vec_env.base_vec_env.VecEnvWrapper",
    "policy": "stable_baselines3.common.policies.BasePolicy",
    "rollout_buffer_class": "stable_baselines3.common.buffers.BaseBuffer",
}


def _not_a_class_case(key: str, value, what: str) -> tuple[str, dict, list[str]]:
    name = value if isinstance(value, str) else next(iter(value[0] if isinstance(value, list) else value))
    described = what if what.startswith("the module") else f"{what} {name}"
    return f"{key} is {described}", {key: value}, [key, f"{name!r} is {described}, not a subclass of {BASES[key]}"]


# (name, extra keys, texts the refusal must contain; the first is the key). Each passes the old module-prefix test.
HOSTILE = [
    *(_not_a_class_case(*case) for case in NOT_CLASSES_OF_THE_KIND),
    (
        "callback is os.system via a trusted module",
        {"callback": "rl_zoo3.utils.os.system"},
        ["callback", "cannot import 'rl_zoo3.utils.os' (for 'rl_zoo3.utils.os.system')"],
    ),
    (
        "callback from a trusted module that runs a script when imported",
        {"callback": "rl_zoo3.benchmark.BaseCallback"},
        ["callback", "the module rl_zoo3.benchmark runs a script when imported"],
    ),
    (
        "activation_fn is not an nn.Module",
        {"policy_kwargs": "dict(net_arch=[8], activation_fn=th.optim.Adam)"},
        ["policy_kwargs", "activation_fn=", "expected a torch.nn.Module subclass"],
    ),
    (
        "features_extractor_class is not a features extractor",
        {"policy_kwargs": "dict(features_extractor_class=nn.ReLU)"},
        ["policy_kwargs", "features_extractor_class=", "expected a BaseFeaturesExtractor subclass"],
    ),
    (
        "callback keyword arguments hold bytes (!!binary)",
        {"callback": [{"stable_baselines3.common.callbacks.CheckpointCallback": {"save_freq": 1, "save_path": b"x"}}]},
        ["callback", "the keyword arguments of", "a bytes object", "only plain data"],
    ),
]
HOSTILE_IDS = [name for name, _, _ in HOSTILE]


def _with_payload(value, pickle_path: Path):
    """``value`` with :data:`PAYLOAD` replaced by the payload's path."""
    if isinstance(value, dict):
        return {key: _with_payload(item, pickle_path) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_payload(item, pickle_path) for item in value]
    return str(pickle_path) if value == PAYLOAD else value


def _write_hostile(folder: Path, keys: dict) -> tuple[Path, Path]:
    pickle_path, marker = _payload(folder)
    path = folder / "hostile.yml"
    path.write_text(yaml.safe_dump({ENV_ID: {**BASE, **_with_payload(keys, pickle_path)}}))
    return path, marker


def _exit_code(capsys, argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


def test_the_payload_is_real(tmp_path):
    # What the other tests refuse would run: rl_zoo3 calls the callback "class" with the file's arguments
    from rl_zoo3.utils import get_callback_list

    path, marker = _write_hostile(tmp_path, HOSTILE[0][1])
    entry = load_hyperparams("reinforce", ENV_ID, path=path, trust_code=True)
    get_callback_list(entry)
    assert marker.exists()


@pytest.mark.parametrize(("name", "keys", "expected"), HOSTILE, ids=HOSTILE_IDS)
def test_hostile_names_are_refused_everywhere(tmp_path, capsys, name, keys, expected):
    path, marker = _write_hostile(tmp_path, keys)
    benchmark_imported = "rl_zoo3.benchmark" in sys.modules

    # validate: the entry is invalid (exit status 1), the reason is given
    code, err = _exit_code(capsys, ["validate", str(path)])
    assert code == 1
    for text in [str(path), f"[{ENV_ID}]", *expected]:
        assert text in err, f"{text!r} not in {err!r}"

    # train refuses before anything runs: no run folder, no model
    logs = tmp_path / "logs"
    code, err = _exit_code(capsys, ["train", *TINY, "-n", "200", "-f", str(logs), "-conf", str(path)])
    assert code == 2
    assert "error: " in err and expected[0] in err and "Traceback" not in err
    assert not (logs / "reinforce" / f"{ENV_ID}_1").exists()

    # the comparison tool's path (load_hyperparams + build_model_kwargs), and build_model_kwargs on its own
    with pytest.raises(HyperparamsError, match=expected[0]):
        build_model_kwargs(load_hyperparams("reinforce", ENV_ID, path=path))
    with pytest.raises(HyperparamsError, match=expected[0]):
        build_model_kwargs(load_hyperparams_file(path)[ENV_ID])
    # the same check for any algorithm's file
    with pytest.raises(HyperparamsError, match=expected[0]):
        load_hyperparams("ppo", ENV_ID, path=path)

    assert not marker.exists()
    assert ("rl_zoo3.benchmark" in sys.modules) == benchmark_imported


def _study_with_base(storage: str, base: dict | None) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, study_name="s", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.set_user_attr(STUDY_ATTR_ALGO, "reinforce")
    study.set_user_attr(STUDY_ATTR_ENV, ENV_ID)
    if base is not None:
        study.set_user_attr(STUDY_ATTR_HYPERPARAMS, base)
    study.optimize(lambda trial: (sample_reinforce_params(trial), 1.0)[1], n_trials=1)


# Left out: policy_kwargs (the trial's own activation_fn replaces the base entry's) and bytes (a study records JSON)
EXPORTED = [case for case in HOSTILE if not case[0].startswith(("activation_fn", "features_extractor", "callback keyword"))]


@pytest.mark.parametrize(("name", "keys", "expected"), EXPORTED, ids=[case[0] for case in EXPORTED])
def test_export_best_never_writes_a_hostile_entry(tmp_path, capsys, name, keys, expected):
    pickle_path, marker = _payload(tmp_path)
    hostile = {**BASE, **_with_payload(keys, pickle_path)}
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # the base entry recorded in the study (a database file anyone may hand over)
    _study_with_base(storage, hostile)
    output = tmp_path / "best.yml"
    code, err = _exit_code(capsys, ["export-best", "--storage", storage, "--study-name", "s", "-o", str(output)])
    assert code == 2 and expected[0] in err
    assert not output.exists()
    # to stdout neither
    code, err = _exit_code(capsys, ["export-best", "--storage", storage, "--study-name", "s"])
    assert code == 2
    assert not marker.exists()


def test_export_best_checks_the_whole_output_file(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study_with_base(storage, dict(BASE))
    pickle_path, marker = _payload(tmp_path)
    # the file it would add the entry to already holds a hostile one: validate would refuse the result
    output = tmp_path / "best.yml"
    output.write_text(yaml.safe_dump({"Acrobot-v1": {**BASE, **_with_payload(HOSTILE[0][1], pickle_path)}}))
    before = output.read_text()
    code, err = _exit_code(capsys, ["export-best", "--storage", storage, "--study-name", "s", "-o", str(output)])
    assert code == 2 and "[Acrobot-v1]" in err and "callback" in err
    assert output.read_text() == before
    # a base entry from --conf-file is checked too
    hostile_conf, _ = _write_hostile(tmp_path, HOSTILE[2][1])
    code, err = _exit_code(
        capsys,
        ["export-best", "--storage", storage, "--study-name", "s", "-conf", str(hostile_conf), "-o", str(tmp_path / "o.yml")],
    )
    assert code == 2 and "env_wrapper" in err and not (tmp_path / "o.yml").exists()
    assert not marker.exists()


@pytest.mark.parametrize("index", [0, 1, 2], ids=[HOSTILE_IDS[i] for i in (0, 1, 2)])
def test_enjoy_refuses_a_hostile_saved_config(tmp_path, capsys, index):
    # A run folder as rl_zoo3 lays it out, with a hostile config.yml: refused before the model is even opened
    pickle_path, marker = _payload(tmp_path)
    run = tmp_path / "logs" / "reinforce" / f"{ENV_ID}_1"
    (run / ENV_ID).mkdir(parents=True)
    (run / f"{ENV_ID}.zip").write_bytes(b"not a model")
    (run / ENV_ID / "config.yml").write_text(yaml.safe_dump({**BASE, **_with_payload(HOSTILE[index][1], pickle_path)}))
    code, err = _exit_code(capsys, ["enjoy", "--env", ENV_ID, "-f", str(tmp_path / "logs"), "--no-render", "-n", "10"])
    assert code == 2 and HOSTILE[index][2][0] in err and "config.yml" in err
    assert not marker.exists()


def test_non_plain_arguments_from_python_are_refused():
    # build_model_kwargs is public: a dict built in Python can hold objects YAML cannot
    cases = [
        (
            {
                "callback": [
                    {"stable_baselines3.common.callbacks.CheckpointCallback": {"save_freq": 1, "save_path": os.system}}
                ]
            },
            "the builtin_function_or_method posix.system: only plain data",
        ),
        ({"env_kwargs": {"render_mode": os.system}}, "env_kwargs holds the builtin_function_or_method posix.system"),
        ({"policy_kwargs": {"net_arch": [8], "activation_fn": os.system}}, "activation_fn=<built-in function system>"),
        ({"policy_kwargs": {"net_arch": [8], "optimizer_kwargs": {"foreach": _Shell(Path("x"))}}}, "a _Shell object"),
        ({"policy": _Shell}, "_Shell, not a subclass of stable_baselines3.common.policies.BasePolicy"),
        ({"learning_rate": _Shell(Path("x"))}, "learning_rate holds a _Shell object"),
    ]
    for keys, expected in cases:
        with pytest.raises(HyperparamsError) as info:
            build_model_kwargs({**BASE, **keys})
        assert expected in str(info.value), (expected, str(info.value))
        assert [key for key, _ in info.value.problems] == list(keys)


# ------------------------------------------------------------------ legitimate files still load


def _entries(algo: str):
    path = default_hyperparams_path(algo)
    return [(algo, path, name) for name in load_hyperparams_file(path)]


@pytest.mark.parametrize("algo", ["ppo", "a2c", "reinforce"])
def test_every_entry_of_the_shipped_files_loads(algo):
    loaded = 0
    for _, path, name in _entries(algo):
        try:
            entry = load_hyperparams(algo, name, path=path)
        except HyperparamsError as error:
            # only an optional package that is not installed here (MiniGrid's wrappers) may be missing
            package = str(error).split("No module named '", 1)[-1].split("'", 1)[0].split(".")[0]
            assert "No module named" in str(error) and importlib.util.find_spec(package) is None, str(error)
            continue
        build_model_kwargs(entry)
        loaded += 1
    # ppo.yml: 44 entries, 12 of them MiniGrid's; a2c.yml: 22; reinforce.yml: 5
    assert loaded >= {"ppo": 32, "a2c": 22, "reinforce": 5}[algo]


def test_the_classes_rl_zoo_files_use_pass():
    entry = {
        "env_wrapper": [
            "stable_baselines3.common.atari_wrappers.AtariWrapper",
            {"sb3_contrib.common.wrappers.TimeFeatureWrapper": {"max_steps": 1000}},
            {"rl_zoo3.wrappers.HistoryWrapper": {"horizon": 2}},
        ],
        "vec_env_wrapper": "stable_baselines3.common.vec_env.VecFrameStack",
        "callback": [
            "rl_zoo3.callbacks.ParallelTrainCallback",
            {"stable_baselines3.common.callbacks.CheckpointCallback": {"save_freq": 10, "save_path": "logs"}},
        ],
        "policy": "sb3_reinforce.pong.karpathy.KarpathyPolicy",
        "rollout_buffer_class": "sb3_reinforce.common.buffers.TernaryPackedRolloutBuffer",
        "replay_buffer_class": "HerReplayBuffer",
        "replay_buffer_kwargs": "dict(goal_selection_strategy='future', n_sampled_goal=4)",
        "policy_kwargs": "dict(activation_fn=nn.ReLU, optimizer_class=RMSpropTFLike, features_extractor_class=NatureCNN)",
        "normalize": "{'norm_obs': True, 'norm_reward': False}",
        "train_freq": [1, "episode"],
    }
    check_hyperparams_code(entry)


# ------------------------------------------------------------------ opting in: trusted prefixes, --trust-code


@pytest.fixture
def lab_module(tmp_path, monkeypatch):
    """A user's module outside the trusted packages; importing it leaves a trace."""
    name = f"lab_{uuid.uuid4().hex[:8]}"
    trace = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(trace)!r}).touch()\n"
        "import gymnasium as gym\n\n\n"
        "class ClipReward(gym.RewardWrapper):\n"
        "    def __init__(self, env, limit=1.0):\n"
        "        super().__init__(env)\n"
        "        self.limit = limit\n\n"
        "    def reward(self, reward):\n"
        "        return max(-self.limit, min(self.limit, reward))\n\n\n"
        "def not_a_wrapper(env, **kwargs):\n"
        "    return env\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("SB3_REINFORCE_TRUSTED_MODULES", raising=False)
    yield name, trace
    sys.modules.pop(name, None)


def test_untrusted_packages_are_not_even_imported(lab_module):
    name, trace = lab_module
    with pytest.raises(HyperparamsError, match="is not from a trusted package"):
        check_hyperparams_code({"env_wrapper": f"{name}.ClipReward"})
    assert not trace.exists() and name not in sys.modules


def test_trusted_modules_variable_extends_the_prefixes_but_keeps_the_type_check(lab_module, monkeypatch):
    name, trace = lab_module
    # a prefix is a package: "lab" does not trust "lab_1234"
    monkeypatch.setenv("SB3_REINFORCE_TRUSTED_MODULES", "lab")
    with pytest.raises(HyperparamsError, match="is not from a trusted package"):
        check_hyperparams_code({"env_wrapper": f"{name}.ClipReward"})
    assert not trace.exists()
    monkeypatch.setenv("SB3_REINFORCE_TRUSTED_MODULES", f"other_lab., {name}")
    check_hyperparams_code({"env_wrapper": [{f"{name}.ClipReward": {"limit": 0.5}}]})
    assert trace.exists()
    with pytest.raises(HyperparamsError, match=f"the function {name}.not_a_wrapper, not a subclass of gymnasium.core.Wrapper"):
        check_hyperparams_code({"env_wrapper": f"{name}.not_a_wrapper"})


def test_trust_code_lets_a_custom_wrapper_through(lab_module, tmp_path, capsys):
    name, _ = lab_module
    path = tmp_path / "custom.yml"
    path.write_text(yaml.safe_dump({ENV_ID: {**BASE, "env_wrapper": [{f"{name}.ClipReward": {"limit": 0.5}}]}}))
    # refused by default, by every command
    code, err = _exit_code(capsys, ["validate", str(path)])
    assert code == 1 and "not from a trusted package" in err and "--trust-code" in err
    code, err = _exit_code(capsys, ["train", *TINY, "-n", "100", "-f", str(tmp_path / "logs"), "-conf", str(path)])
    assert code == 2
    with pytest.raises(HyperparamsError):
        load_hyperparams("reinforce", ENV_ID, path=path)

    # the function argument
    entry = load_hyperparams("reinforce", ENV_ID, path=path, trust_code=True)
    _, zoo = build_model_kwargs(entry, trust_code=True)
    assert type(zoo["env_wrapper"](gym.make(ENV_ID))).__name__ == "ClipReward"
    validate_hyperparams_file(path, trust_code=True)
    with trusted_code():
        validate_reinforce_hyperparams(entry)  # what optuna_sampler calls without the argument

    # the command-line flag
    capsys.readouterr()
    main(["validate", "--trust-code", str(path)])
    assert "OK (1 entries)" in capsys.readouterr().out
    logs = tmp_path / "logs"
    main(["train", "--trust-code", *TINY, "-n", "100", "-f", str(logs), "-conf", str(path), "-params", "n_episodes:1"])
    assert (logs / "reinforce" / f"{ENV_ID}_1" / f"{ENV_ID}.zip").is_file()
    capsys.readouterr()
    main(["enjoy", "--trust-code", "--env", ENV_ID, "-f", str(logs), "--no-render", "-n", "20"])
    code, err = _exit_code(capsys, ["enjoy", "--env", ENV_ID, "-f", str(logs), "--no-render", "-n", "20"])
    assert code == 2 and "not from a trusted package" in err

    # export-best with the custom base entry recorded in the study
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study_with_base(storage, yaml.safe_load(path.read_text())[ENV_ID])
    code, _ = _exit_code(capsys, ["export-best", "--storage", storage, "--study-name", "s", "-o", str(tmp_path / "b.yml")])
    assert code == 2 and not (tmp_path / "b.yml").exists()
    main(["export-best", "--trust-code", "--storage", storage, "--study-name", "s", "-o", str(tmp_path / "b.yml")])
    assert load_hyperparams_file(tmp_path / "b.yml")[ENV_ID]["env_wrapper"] == [{f"{name}.ClipReward": {"limit": 0.5}}]


# ------------------------------------------------------------------ hostile and broken YAML


def _billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return f"{ENV_ID}:\n  n_timesteps: 100\n  policy: MlpPolicy\n  env_kwargs:\n" + "".join(f"    {line}\n" for line in lines)


def _load_error(tmp_path: Path, text: str | bytes, name: str = "broken.yml") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(HyperparamsError) as info:
        load_hyperparams_file(path)
    message = str(info.value)
    assert str(path) in message
    return message


@pytest.mark.timeout(20)
def test_alias_bombs_fail_fast(tmp_path, capsys):
    message = _load_error(tmp_path, _billion_laughs())
    assert f"more than {MAX_YAML_NODES} nodes once aliases are expanded" in message
    # a smaller bomb would still be a million strings: refused as soon as the count passes the limit
    assert "more than" in _load_error(tmp_path, _billion_laughs(levels=6))
    many = "a: &a [1]\nb: [" + ", ".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n"
    assert f"more than {MAX_YAML_ALIASES} alias references" in _load_error(tmp_path, many)
    assert "recursive alias" in _load_error(tmp_path, "a: &a [1, *a]\n")
    # the CLI: one line, exit status 2
    path = tmp_path / "bomb.yml"
    path.write_text(_billion_laughs())
    for argv in (["validate", str(path)], ["train", *TINY, "-f", str(tmp_path / "logs"), "-conf", str(path)]):
        code, err = _exit_code(capsys, argv)
        assert code == 2 and err.count("\n") == 1 and str(path) in err and "alias" in err


@pytest.mark.timeout(20)
def test_anchors_and_merge_keys_still_work(tmp_path):
    path = tmp_path / "anchors.yml"
    path.write_text(
        "defaults: &defaults\n  n_timesteps: 100\n  policy: MlpPolicy\n  gamma: 0.9\n"
        f"{ENV_ID}:\n  <<: *defaults\n  gamma: 0.5\n"  # a key overriding a merged one is not a duplicate
    )
    assert load_hyperparams("reinforce", ENV_ID, path=path) == {"n_timesteps": 100, "policy": "MlpPolicy", "gamma": 0.5}


@pytest.mark.timeout(20)
def test_size_cap(tmp_path):
    text = f"{ENV_ID}:\n  n_timesteps: 100\n  policy: MlpPolicy\n"
    padding = "#" * 99 + "\n"
    big = text + padding * ((MAX_YAML_BYTES - len(text)) // len(padding) + 1)
    assert len(big) > MAX_YAML_BYTES
    assert f"larger than {MAX_YAML_BYTES} bytes (1 MiB)" in _load_error(tmp_path, big)
    fits = text + padding * ((MAX_YAML_BYTES - len(text)) // len(padding))
    (tmp_path / "fits.yml").write_text(fits)
    assert len(fits) <= MAX_YAML_BYTES and ENV_ID in load_hyperparams_file(tmp_path / "fits.yml")


@pytest.mark.timeout(20)
def test_depth_cap(tmp_path):
    def nested(levels: int) -> str:
        return f"{ENV_ID}:\n  n_timesteps: 100\n  policy: MlpPolicy\n  env_kwargs: {{x: " + "[" * levels + "]" * levels + "}\n"

    # the file, the entry, its env_kwargs and x's lists: MAX_YAML_DEPTH levels in all
    (tmp_path / "ok.yml").write_text(nested(MAX_YAML_DEPTH - 3))
    value, levels = load_yaml(tmp_path / "ok.yml")[ENV_ID]["env_kwargs"]["x"], 0
    while isinstance(value, list):
        value, levels = (value[0] if value else None), levels + 1
    assert levels == MAX_YAML_DEPTH - 3
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in _load_error(tmp_path, nested(MAX_YAML_DEPTH - 2))
    # far deeper than Python's recursion limit: an error, not a RecursionError
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in _load_error(tmp_path, nested(200_000))
    # depth reached through aliases counts too
    chain = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, MAX_YAML_DEPTH + 1))
    assert f"nested deeper than {MAX_YAML_DEPTH} levels (aliases expanded)" in _load_error(tmp_path, chain)


@pytest.mark.timeout(20)
def test_duplicate_keys(tmp_path, capsys):
    text = f"{ENV_ID}:\n  n_timesteps: 100\n  policy: MlpPolicy\n  gamma: 0.9\n  gamma: 0.5\n"
    message = _load_error(tmp_path, text)
    assert "duplicate key 'gamma' (first at line 4, again at line 5)" in message
    text = f"{ENV_ID}:\n  n_timesteps: 100\n  policy: MlpPolicy\nAcrobot-v1: {{}}\n{ENV_ID}:\n  n_timesteps: 5\n"
    assert f"duplicate key '{ENV_ID}' (first at line 1, again at line 5)" in _load_error(tmp_path, text)
    code, err = _exit_code(capsys, ["validate", str(tmp_path / "broken.yml")])
    assert code == 2 and err.count("\n") == 1


@pytest.mark.timeout(20)
def test_syntax_errors_give_line_and_column(tmp_path):
    message = _load_error(tmp_path, f"{ENV_ID}:\n  n_timesteps: 100\n   policy: [MlpPolicy\n")
    assert "YAML syntax error at line 3, column 10: mapping values are not allowed here" in message
    assert "Python" not in message
    message = _load_error(tmp_path, f"{ENV_ID}:\n  policy: [MlpPolicy\n  gamma: 0.9\n")
    assert "YAML syntax error at line" in message
    assert "not YAML text" in _load_error(tmp_path, b"CartPole-v1:\n  policy: \xff\xfe\x00\n")


@pytest.mark.timeout(20)
def test_python_tags_are_refused_as_such(tmp_path):
    marker = tmp_path / "hacked"
    message = _load_error(tmp_path, f"{ENV_ID}: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "Python tag '!!python/object/apply:os.system' at line 1, column 14 is refused" in message
    assert not marker.exists()
    # a Python tag on a key is refused too (keys are built early, to find duplicates)
    message = _load_error(tmp_path, "!!python/name:os.system : 1\n")
    assert "Python tag '!!python/name:os.system'" in message
    assert not marker.exists()


@pytest.mark.timeout(20)
def test_missing_file_directory_and_fifo(tmp_path, capsys):
    missing = tmp_path / "nope.yml"
    with pytest.raises(HyperparamsError, match=f"Cannot load {missing}: no such file"):
        load_hyperparams_file(missing)
    folder = tmp_path / "folder.yml"
    folder.mkdir()
    with pytest.raises(HyperparamsError, match=f"Cannot load {folder}: it is a directory, not a YAML file"):
        load_hyperparams_file(folder)
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)  # opening it would block until someone writes
    with pytest.raises(HyperparamsError, match=f"Cannot load {fifo}: not a regular file"):
        load_hyperparams_file(fifo)
    for path in (missing, folder):
        code, err = _exit_code(capsys, ["train", *TINY, "-f", str(tmp_path / "logs"), "-conf", str(path)])
        assert code == 2 and err.count("\n") == 1 and str(path) in err


@pytest.mark.timeout(20)
def test_enjoy_reads_args_yml_with_the_same_limits():
    from sb3_reinforce.zoo.safe_loading import _SafeYaml

    stream = io.StringIO(_billion_laughs())
    stream.name = "args.yml"
    with pytest.raises(HyperparamsError, match=r"args\.yml: more than"):
        _SafeYaml().load(stream, Loader=yaml.UnsafeLoader)
    with pytest.raises(HyperparamsError, match="Python tag"):
        parse_yaml("a: !!python/name:os.system\n", where="args.yml")
