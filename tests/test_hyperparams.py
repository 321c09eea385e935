"""Safe loading and validation of the rl-zoo hyperparameter files (no training here: fast)."""

import inspect
from pathlib import Path

import optuna
import pytest
import torch as th
import yaml

from sb3_reinforce.common.estimators import baseline_values
from sb3_reinforce.hyperparams import (
    REINFORCE_KEYS,
    ZOO_KEYS,
    HyperparamsError,
    build_model_kwargs,
    default_hyperparams_path,
    format_python_literal,
    load_hyperparams,
    load_hyperparams_file,
    load_yaml,
    parse_python_literal,
    validate_hyperparams_file,
    validate_reinforce_hyperparams,
)
from sb3_reinforce.tuning import convert_reinforce_params, sample_reinforce_params, trial_params_to_yaml_entry
from sb3_reinforce.zoo import parse_cli_value

REPO = Path(__file__).resolve().parent.parent
PACKAGED = default_hyperparams_path("reinforce")
REQUIRED_ENVS = ("CartPole-v1", "Acrobot-v1", "LunarLander-v3", "Pendulum-v1", "KarpathyPong-v0")

VALID = {
    "n_timesteps": 1e5,
    "policy": "MlpPolicy",
    "n_envs": 4,
    "n_episodes": 8,
    "learning_rate": "lin_1e-3",
    "gamma": 0.99,
    "return_mode": "reward_to_go",
    "baseline": "value",
    "gae_lambda": 0.95,
    "normalize_advantage": True,
    "policy_kwargs": "dict(net_arch=dict(pi=[64], vf=[64]), activation_fn=nn.Tanh, optimizer_class=th.optim.RMSprop)",
}


# ------------------------------------------------------------------ the shipped file


def test_packaged_file_is_the_repo_file():
    repo_file = REPO / "zoo_hyperparams" / "reinforce.yml"
    assert PACKAGED.is_file(), PACKAGED
    assert PACKAGED == REPO / "sb3_reinforce" / "hyperparams" / "reinforce.yml"
    # zoo_hyperparams/reinforce.yml is a symlink to the packaged file (or, on a checkout without symlinks, a copy)
    assert repo_file.read_bytes() == PACKAGED.read_bytes()


def test_packaged_file_validates():
    content = validate_hyperparams_file(PACKAGED)
    for env_id in REQUIRED_ENVS:
        assert env_id in content


def test_pong_entry_is_karpathys_configuration():
    from sb3_reinforce.common.buffers import SparseTernaryRolloutBuffer
    from sb3_reinforce.pong.karpathy import KARPATHY_HYPERPARAMS, KarpathyPolicy

    kwargs, zoo = build_model_kwargs(load_hyperparams("reinforce", "KarpathyPong-v0"))
    assert kwargs.pop("policy") is KarpathyPolicy
    assert kwargs["rollout_buffer_class"] is SparseTernaryRolloutBuffer
    assert zoo["env_wrapper"] is None and zoo["frame_stack"] is None and zoo["normalize"] is None
    # The tuned entry differs from the 2016 original only in the keys listed here (the learned baseline with a critic
    # of its own, GAE and the per-point importance weights since sticky actions became the default:
    # docs/pong_candidates.md)
    tuned = {"learning_rate", "n_episodes", "baseline", "gae_lambda", "vf_coef", "importance_weights"}
    tuned |= {"n_critic_updates", "policy_kwargs"}
    original = {key: value for key, value in KARPATHY_HYPERPARAMS.items() if key not in tuned}
    assert {key: value for key, value in kwargs.items() if key not in tuned} == original
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3)
    assert (kwargs["baseline"], kwargs["gae_lambda"], kwargs["vf_coef"]) == ("value", 0.95, 0.5)
    assert kwargs["policy_kwargs"] == {"critic_hidden": 64} and kwargs["n_critic_updates"] == 4
    assert kwargs["importance_weights"] == "segment" and kwargs["reset_on_reward"] is True
    assert KARPATHY_HYPERPARAMS["baseline"] is None and "importance_weights" not in KARPATHY_HYPERPARAMS  # "episode"


def test_an_entry_without_a_learned_baseline_loses_its_critic_settings():
    from sb3_reinforce.hyperparams import without_unused_critic

    entry = load_hyperparams("reinforce", "KarpathyPong-v0")
    assert without_unused_critic(entry) == entry  # baseline: value keeps them
    for baseline in (None, "mean"):
        changed = without_unused_critic({**entry, "baseline": baseline})
        assert not {"gae_lambda", "n_critic_updates"} & set(changed) and changed["policy_kwargs"] == "dict()"
        assert changed["baseline"] == baseline and changed["learning_rate"] == entry["learning_rate"]
        build_model_kwargs(changed)
    kept = without_unused_critic({**entry, "baseline": None, "policy_kwargs": "dict(n_hidden=8, critic_hidden=4)"})
    assert kept["policy_kwargs"] == "dict(n_hidden=8)"
    as_dict = without_unused_critic({**entry, "baseline": None, "policy_kwargs": {"n_hidden": 8, "critic_hidden": 4}})
    assert as_dict["policy_kwargs"] == {"n_hidden": 8}
    # Without a critic key the entry is unchanged, its form included (the compare tool's records hash it)
    no_critic = {"baseline": "mean", "learning_rate": 1e-3, "policy_kwargs": "dict(net_arch=[16])"}
    assert without_unused_critic(no_critic) == no_critic
    assert entry["policy_kwargs"] == "dict(critic_hidden=64)" and entry["gae_lambda"] == 0.95  # not modified


def test_reinforce_keys_match_the_constructor():
    from sb3_reinforce import REINFORCE

    parameters = set(inspect.signature(REINFORCE.__init__).parameters)
    set_by_zoo = {"self", "policy", "env", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model"}
    assert set(REINFORCE_KEYS) == parameters - set_by_zoo
    assert not set(ZOO_KEYS) & set(REINFORCE_KEYS)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_entries_build_a_model(env_id):
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_reinforce import REINFORCE

    kwargs, zoo = build_model_kwargs(load_hyperparams("reinforce", env_id))
    env = make_vec_env(env_id, n_envs=1, wrapper_class=zoo["env_wrapper"], env_kwargs=zoo["env_kwargs"])
    model = REINFORCE(env=env, **kwargs)
    assert zoo["n_timesteps"] > 0
    assert model.policy.optimizer is not None
    env.close()


def test_rl_zoo_files_load():
    # --algo ppo/a2c keep rl_zoo3's own files, loaded safely (not validated as REINFORCE)
    ppo = load_hyperparams("ppo", "CartPole-v1")
    assert ppo["policy"] == "MlpPolicy"
    a2c = load_hyperparams("a2c", "Pendulum-v1")
    assert isinstance(a2c["policy_kwargs"], str)


def test_every_rl_zoo_string_parses_safely():
    # Every string rl_zoo3's own files hand to eval() must be accepted by the safe parser
    folder = default_hyperparams_path("ppo").parent
    count = 0
    for path in sorted(folder.glob("*.yml")):
        for entry in load_hyperparams_file(path).values():
            for key in ("policy_kwargs", "normalize", "replay_buffer_kwargs", "replay_buffer_class", "monitor_kwargs"):
                if isinstance(entry.get(key), str):
                    parse_python_literal(entry[key])
                    count += 1
    assert count > 50


# ------------------------------------------------------------------ safe loading


@pytest.mark.parametrize(
    "document",
    [
        "CartPole-v1: !!python/object/apply:os.system ['touch {marker}']\n",
        "CartPole-v1:\n  policy: !!python/name:os.system\n",
        "CartPole-v1:\n  policy: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "CartPole-v1: !!python/module:os\n",
    ],
)
def test_python_tags_are_rejected(tmp_path, document):
    marker = tmp_path / "hacked"
    path = tmp_path / "evil.yml"
    path.write_text(document.format(marker=marker))
    with pytest.raises(HyperparamsError, match="safely"):
        load_hyperparams("reinforce", "CartPole-v1", path=path)
    assert not marker.exists()


def test_python_config_files_are_rejected(tmp_path):
    path = tmp_path / "config.py"
    path.write_text("import os\nos.system('touch hacked')\nhyperparams = {}\n")
    with pytest.raises(HyperparamsError, match="arbitrary code"):
        load_hyperparams_file(path)


def test_stock_rl_zoo_config_is_readable(tmp_path):
    # Stock rl_zoo3 writes config.yml as an OrderedDict: read as a plain dict, nothing else allowed
    from collections import OrderedDict

    path = tmp_path / "config.yml"
    path.write_text(yaml.dump(OrderedDict([("n_envs", 8), ("policy", "MlpPolicy")])))
    assert "python/object/apply:collections.OrderedDict" in path.read_text()
    assert load_yaml(path) == {"n_envs": 8, "policy": "MlpPolicy"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dict(net_arch=[64, 64])", {"net_arch": [64, 64]}),
        (
            "dict(net_arch=dict(pi=[256], vf=[256]), activation_fn=nn.ReLU)",
            {"net_arch": {"pi": [256], "vf": [256]}, "activation_fn": th.nn.ReLU},
        ),
        (
            "dict(optimizer_class=th.optim.RMSprop, optimizer_kwargs=dict(alpha=0.99, eps=1e-5))",
            {"optimizer_class": th.optim.RMSprop, "optimizer_kwargs": {"alpha": 0.99, "eps": 1e-5}},
        ),
        ("{'norm_obs': False, 'norm_reward': True}", {"norm_obs": False, "norm_reward": True}),
        ("dict(log_std_init=-2, ortho_init=False)", {"log_std_init": -2, "ortho_init": False}),
        ("(1, 'episode')", (1, "episode")),
        ("torch.optim.SGD", th.optim.SGD),
        ("None", None),
    ],
)
def test_literal_parser_accepts(text, expected):
    assert parse_python_literal(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch hacked')",
        "os.system",
        "nn.Module.__subclasses__()",
        "(lambda: 1)()",
        "[x for x in range(3)]",
        "dict(**{'a': 1})",
        "dict(a=open('/etc/passwd'))",
        "1 + 1",
        "nn.ReLU.__init__",
        "b'bytes'",
        "dict(a=1",
    ],
)
def test_literal_parser_rejects(text):
    with pytest.raises(HyperparamsError):
        parse_python_literal(text)


def test_literal_format_round_trip():
    value = {
        "net_arch": {"pi": [64], "vf": [64]},
        "activation_fn": th.nn.Tanh,
        "optimizer_class": th.optim.RMSprop,
        "optimizer_kwargs": {"alpha": 0.99, "eps": 1e-05},
        "ortho_init": False,
    }
    text = format_python_literal(value)
    assert "nn.Tanh" in text and "th.optim.RMSprop" in text
    assert parse_python_literal(text) == value
    with pytest.raises(HyperparamsError):
        format_python_literal({"fn": print})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.01", 0.01),
        ("8", 8),
        ("mean", "mean"),
        ("lin_1e-3", "lin_1e-3"),
        ("MlpPolicy", "MlpPolicy"),
        ("true", True),
        ("False", False),
        ("null", None),
        ("dict(net_arch=[32])", {"net_arch": [32]}),
        ("nn.ReLU", th.nn.ReLU),
    ],
)
def test_cli_values(text, expected):
    assert parse_cli_value(text) == expected


def test_cli_values_never_run_code(tmp_path):
    marker = tmp_path / "hacked"
    code = f"__import__('os').system('touch {marker}')"
    assert parse_cli_value(code) == code
    assert not marker.exists()


# ------------------------------------------------------------------ validation


def test_valid_entry():
    validate_reinforce_hyperparams(VALID)


# (key, bad value, substrings the message must contain: the key, the value, what is allowed)
BAD_VALUES = [
    ("baseline", "meen", ["baseline", "'meen'", "null, 'mean', 'optimal', 'time', 'value'"]),
    ("gamma", 2, ["gamma", "2", "[0, 1]"]),
    ("gamma", "0.99", ["gamma", "'0.99'", "a number in [0, 1]"]),
    ("return_mode", "sum", ["return_mode", "'sum'", "'reward_to_go', 'total'"]),
    ("n_episodes", 0, ["n_episodes", "0", "an integer in [1, inf)"]),
    ("n_steps", 1.5, ["n_steps", "1.5", "an integer"]),
    ("n_envs", -1, ["n_envs", "-1", "an integer in [1, inf)"]),
    ("learning_rate", -0.1, ["learning_rate", "-0.1", "(0, inf)"]),
    ("learning_rate", "exp_0.1", ["learning_rate", "'exp_0.1'", "lin_<initial value>"]),
    ("gae_lambda", 1.5, ["gae_lambda", "1.5", "[0, 1]"]),
    ("normalize_advantage", "yes", ["normalize_advantage", "'yes'", "true or false"]),
    ("reset_on_reward", 1, ["reset_on_reward", "1", "true or false"]),
    ("ent_coef", float("inf"), ["ent_coef", "inf", "finite"]),
    ("vf_coef", -1, ["vf_coef", "-1", "[0, inf)"]),
    ("max_grad_norm", 0, ["max_grad_norm", "0", "(0, inf)"]),
    ("policy", "FooPolicy", ["policy", "'FooPolicy'", "MlpPolicy, CnnPolicy, MultiInputPolicy"]),
    ("policy_kwargs", "dict(activation_fn=os.system)", ["policy_kwargs", "os.system", "not allowed", "nn.ReLU"]),
    ("policy_kwargs", "dict(net_arch=[64], foo=1)", ["policy_kwargs", "'foo'", "allowed: net_arch"]),
    ("policy_kwargs", "dict(net_arch=[-3])", ["net_arch", "[-3]", "positive ints"]),
    ("policy_kwargs", "dict(optimizer_class=nn.ReLU)", ["optimizer_class", "ReLU", "th.optim.Adam"]),
    ("policy_kwargs", "dict(use_sde=True)", ["use_sde", "allowed"]),
    ("normalize", "dict(norm_obs=True, clip=3)", ["normalize", "clip", "norm_obs"]),
    ("env_wrapper", "os.system", ["env_wrapper", "'os.system'", "trusted"]),
    ("callback", ["rl_zoo3.callbacks.ParallelTrainCallback", "evil.Callback"], ["callback", "evil.Callback", "trusted"]),
    ("n_timesteps", 0, ["n_timesteps", "0", "[1, inf)"]),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES])
def test_bad_values(tmp_path, key, value, expected):
    entry = {**VALID, key: value}
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"CartPole-v1": entry}))
    with pytest.raises(HyperparamsError) as info:
        load_hyperparams("reinforce", "CartPole-v1", path=path)
    message = str(info.value)
    # the file and entry are named, then the key, the value and what is allowed
    assert str(path) in message and "[CartPole-v1]" in message
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"
    assert [problem_key for problem_key, _ in info.value.problems] == [key]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("baselin", ["unknown key 'baselin'", "did you mean 'baseline'", "allowed keys:"]),
        ("clip_range", ["unknown key 'clip_range'", "allowed keys:"]),
        ("seed", ["seed is set by the zoo command line (--seed)"]),
        ("device", ["--device"]),
    ],
)
def test_unknown_keys(key, expected):
    with pytest.raises(HyperparamsError) as info:
        validate_reinforce_hyperparams({**VALID, key: 1}, where="reinforce.yml [CartPole-v1]")
    for text in [*expected, "[CartPole-v1]"]:
        assert text in str(info.value)


def test_gae_lambda_needs_value_baseline():
    with pytest.raises(HyperparamsError, match=r"gae_lambda: .*a value < 1 needs baseline: value"):
        validate_reinforce_hyperparams({**VALID, "baseline": "mean", "gae_lambda": 0.9})
    validate_reinforce_hyperparams({**VALID, "baseline": "mean", "gae_lambda": 1.0})


def test_missing_keys_and_all_problems_at_once():
    with pytest.raises(HyperparamsError) as info:
        validate_reinforce_hyperparams({"gamma": 2, "baseline": "meen"})
    keys = {key for key, _ in info.value.problems}
    assert keys == {"gamma", "baseline", "n_timesteps", "policy"}


def test_file_validation_reports_every_entry(tmp_path):
    path = tmp_path / "two.yml"
    path.write_text(yaml.safe_dump({"CartPole-v1": {**VALID, "gamma": 2}, "Acrobot-v1": {**VALID, "baseline": "meen"}}))
    with pytest.raises(HyperparamsError) as info:
        validate_hyperparams_file(path)
    assert "[CartPole-v1]" in str(info.value) and "[Acrobot-v1]" in str(info.value)
    assert {key for key, _ in info.value.problems} == {"CartPole-v1.gamma", "Acrobot-v1.baseline"}


def test_missing_env_entry():
    with pytest.raises(HyperparamsError, match="No hyperparameters for 'MountainCar-v0'"):
        load_hyperparams("reinforce", "MountainCar-v0")


# ------------------------------------------------------------------ Optuna search space


def test_sampled_trials_export_valid_entries():
    base = load_hyperparams("reinforce", "CartPole-v1")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    sampled = []

    def objective(trial: optuna.Trial) -> float:
        sampled.append(sample_reinforce_params(trial))
        return 0.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=40)
    baselines = set()
    for trial, hyperparams in zip(study.trials, sampled, strict=True):
        if trial.params["lr_schedule"] == "linear":
            # the model gets rl_zoo3's schedule object, a file (and --trial-id) the lin_<x> string
            hyperparams = {**hyperparams, "learning_rate": f"lin_{trial.params['learning_rate']!r}"}
        assert convert_reinforce_params(trial.params) == hyperparams
        entry = trial_params_to_yaml_entry(trial.params, base)
        # what export-best writes is plain YAML that validates again after a round trip
        validate_reinforce_hyperparams(yaml.safe_load(yaml.safe_dump(entry)))
        assert entry["n_timesteps"] == base["n_timesteps"] and entry["n_envs"] == base["n_envs"]
        assert ("n_episodes" in entry) != ("n_steps" in entry)
        baselines.add(entry["baseline"])
    assert baselines == set(baseline_values())
