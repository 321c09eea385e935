"""The rl-zoo entry point: train / enjoy / optimize / export-best with tiny budgets (run in-process)."""

import argparse
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from sb3_reinforce.hyperparams import load_hyperparams, load_yaml, schedule_from_entry, validate_hyperparams_file
from sb3_reinforce.zoo import ReinforceExperimentManager, default_storage_url, main, register_reinforce

TINY = ["--env", "CartPole-v1", "--seed", "0", "--eval-freq", "-1", "--num-threads", "1"]


def _run_dir(logs: Path, algo: str, env_id: str = "CartPole-v1", run: int = 1) -> Path:
    return logs / algo / f"{env_id}_{run}"


def _assert_plain_yaml(path: Path) -> dict:
    text = path.read_text()
    assert "!!python" not in text, text
    return yaml.safe_load(text)


def test_train_then_enjoy_reinforce(tmp_path, capsys):
    logs = tmp_path / "logs"
    main(["train", "--algo", "reinforce", *TINY, "-n", "600", "-f", str(logs), "-params", "n_envs:2", "n_episodes:2"])
    run = _run_dir(logs, "reinforce")
    assert (run / "CartPole-v1.zip").is_file()
    config = _assert_plain_yaml(run / "CartPole-v1" / "config.yml")
    assert config["n_envs"] == 2 and config["n_episodes"] == 2
    shipped = load_hyperparams("reinforce", "CartPole-v1")
    assert config["learning_rate"] == shipped["learning_rate"] and config["return_mode"] == shipped["return_mode"]
    assert config["policy_kwargs"].startswith("dict(")
    args = _assert_plain_yaml(run / "CartPole-v1" / "args.yml")
    assert args["algo"] == "reinforce" and args["n_timesteps"] == 600
    assert (run / "CartPole-v1" / "command.txt").is_file()
    capsys.readouterr()

    # --algo defaults to reinforce
    main(["enjoy", "--env", "CartPole-v1", "-f", str(logs), "--no-render", "-n", "300", "--seed", "0"])
    out = capsys.readouterr().out
    assert "Mean reward" in out

    # enjoy reads the saved config safely: a Python tag is refused, not executed
    marker = tmp_path / "hacked"
    with open(run / "CartPole-v1" / "config.yml", "a") as file:
        file.write(f"evil: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SystemExit) as info:
        main(["enjoy", "--env", "CartPole-v1", "-f", str(logs), "--no-render", "-n", "10"])
    assert info.value.code == 2
    assert "safely" in capsys.readouterr().err
    assert not marker.exists()


def test_karpathy_pong_trains_on_the_fast_vec_env(tmp_path, capsys, monkeypatch):
    import sb3_reinforce.pong.vec_env
    from sb3_reinforce.pong.karpathy import KarpathyPolicy

    built = []
    factory = sb3_reinforce.pong.vec_env.make_pong_vec_env
    monkeypatch.setattr(
        sb3_reinforce.pong.vec_env, "make_pong_vec_env", lambda **kwargs: built.append(kwargs) or factory(**kwargs)
    )
    logs = tmp_path / "logs"
    args = ["--env", "KarpathyPong-v0", "--seed", "0", "--eval-freq", "-1", "--num-threads", "1", "-f", str(logs)]
    main(["train", *args, "-n", "1600", "-params", "n_envs:2", "n_episodes:1"])
    assert built and built[0]["n_envs"] == 2 and built[0]["seed"] == 0
    run = _run_dir(logs, "reinforce", "KarpathyPong-v0")
    from sb3_reinforce import REINFORCE

    model = REINFORCE.load(run / "KarpathyPong-v0.zip")
    assert isinstance(model.policy, KarpathyPolicy)
    entry_lr = schedule_from_entry("learning_rate", load_hyperparams("reinforce", "KarpathyPong-v0")["learning_rate"])
    assert model.lr_schedule(1.0) == entry_lr(1.0) and model.lr_schedule(0.5) == entry_lr(0.5)
    assert (run / "0.monitor.csv").is_file()  # episode statistics from SB3's VecMonitor
    capsys.readouterr()
    # enjoy plays one game through the gymnasium chain registered under the same id
    main(["enjoy", "--env", "KarpathyPong-v0", "-f", str(logs), "--no-render", "-n", "200", "--seed", "0"])
    assert "Loading" in capsys.readouterr().out


def test_ppo_through_the_same_entry_point(tmp_path, capsys):
    logs = tmp_path / "logs"
    params = ["n_envs:1", "n_steps:64", "batch_size:64", "n_epochs:1"]
    main(["train", "--algo", "ppo", *TINY, "-n", "128", "-f", str(logs), "-params", *params])
    run = _run_dir(logs, "ppo")
    assert (run / "CartPole-v1.zip").is_file()
    config = _assert_plain_yaml(run / "CartPole-v1" / "config.yml")
    assert config["n_steps"] == 64 and config["policy"] == "MlpPolicy"
    capsys.readouterr()
    main(["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "-f", str(logs), "--no-render", "-n", "100"])
    assert "Loading" in capsys.readouterr().out


def test_optimize_with_the_default_sqlite_storage_then_export(tmp_path, capsys):
    logs = tmp_path / "logs"
    main(
        [
            "train",
            *TINY,
            "-n",
            "1000",  # the smallest that fits a batch: 1 episode per update, 2 envs, episodes of up to 500 steps
            "-f",
            str(logs),
            "--optimize",
            "--n-trials",
            "2",
            "--n-evaluations",
            "2",
            "--eval-episodes",
            "2",
            "--no-optim-plots",
            "-params",
            "n_envs:2",
        ]
    )
    assert (logs / "reinforce" / "optuna.db").is_file()
    storage = default_storage_url(str(logs), "reinforce")
    study = optuna.load_study(study_name="reinforce-CartPole-v1", storage=storage)
    assert len(study.trials) == 2
    assert all(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in study.trials)
    # TrialEvalCallback reported the intermediate evaluations (what the pruner decides on)
    assert any(trial.intermediate_values for trial in study.trials)
    assert study.user_attrs["sb3_reinforce:env_id"] == "CartPole-v1"
    capsys.readouterr()

    output = tmp_path / "best.yml"
    main(["export-best", "--storage", storage, "--study-name", "reinforce-CartPole-v1", "-o", str(output)])
    content = validate_hyperparams_file(output)
    entry = content["CartPole-v1"]
    best = study.best_trial
    assert entry["learning_rate"] == pytest.approx(best.params["learning_rate"])
    assert entry["n_envs"] == 2  # the base entry the study ran with (-params included)
    assert entry["n_timesteps"] == load_hyperparams("reinforce", "CartPole-v1")["n_timesteps"]  # not the tuning budget

    # The exported file trains through the zoo
    capsys.readouterr()
    main(["train", *TINY, "-n", "200", "-f", str(logs), "-conf", str(output)])
    config = load_yaml(_run_dir(logs, "reinforce", run=2) / "CartPole-v1" / "config.yml")
    assert config["learning_rate"] == pytest.approx(best.params["learning_rate"])

    # --trial-id loads a trial's hyperparameters from the study (rl_zoo3's HYPERPARAMS_CONVERTER)
    trial = study.trials[0]
    study_args = ["--storage", storage, "--study-name", "reinforce-CartPole-v1", "--trial-id", str(trial.number)]
    main(["train", *TINY, "-n", "200", "-f", str(logs), *study_args])
    config = load_yaml(_run_dir(logs, "reinforce", run=3) / "CartPole-v1" / "config.yml")
    assert config["learning_rate"] == pytest.approx(trial.params["learning_rate"])
    assert isinstance(config["policy_kwargs"], str)


def test_pruning_stops_a_trial(tmp_path):
    register_reinforce()
    manager = ReinforceExperimentManager(
        argparse.Namespace(),
        "reinforce",
        "CartPole-v1",
        str(tmp_path / "logs"),
        n_timesteps=4000,
        eval_freq=-1,
        n_eval_episodes=1,
        hyperparams={"n_envs": 1, "n_episodes": 1},
        optimize_hyperparameters=True,
        storage="memory",
        n_evaluations=4,
        seed=0,
        verbose=0,
        config=None,
    )
    assert manager.storage is None
    assert manager.setup_experiment() is None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1e9))
    study.optimize(manager.objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    # pruned at the first of the 4 evaluations: training stopped early
    assert list(trial.intermediate_values) == [1]


def _error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_invalid_entry_is_reported(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"CartPole-v1": {"n_timesteps": 1000, "policy": "MlpPolicy", "baseline": "meen"}}))
    err = _error(capsys, ["train", *TINY, "-f", str(tmp_path / "logs"), "-conf", str(bad)])
    for text in (str(bad), "[CartPole-v1]", "baseline", "'meen'", "'optimal'"):
        assert text in err
    # same for a command-line override
    err = _error(capsys, ["train", *TINY, "-f", str(tmp_path / "logs"), "-params", "gamma:2"])
    assert "gamma: 2 is not allowed" in err and "command-line" in err


def test_command_line_values_are_never_evaluated(tmp_path, capsys):
    marker = tmp_path / "hacked"
    code = f"__import__('os').system('touch {marker}')"
    err = _error(capsys, ["train", *TINY, "-f", str(tmp_path / "logs"), "-params", f"policy_kwargs:{code}"])
    assert "policy_kwargs" in err
    assert not marker.exists()


def test_python_config_files_are_refused(tmp_path, capsys):
    marker = tmp_path / "hacked"
    config = tmp_path / "hyperparams.py"
    config.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nhyperparams = {{}}\n")
    err = _error(capsys, ["train", *TINY, "-f", str(tmp_path / "logs"), "-conf", str(config)])
    assert "arbitrary code" in err
    assert not marker.exists()


def test_usage(capsys):
    main(["--help"])
    assert "export-best" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bogus"])
    main(["validate"])
    assert "OK" in capsys.readouterr().out


def test_registration_and_storage_urls(tmp_path):
    import importlib.util

    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.utils import ALGOS

    from sb3_reinforce import REINFORCE
    from sb3_reinforce.tuning import convert_reinforce_params, sample_reinforce_params
    from sb3_reinforce.zoo import normalize_storage_url
    from sb3_reinforce.zoo.storage import _hide_password

    register_reinforce()
    assert ALGOS["reinforce"] is REINFORCE
    assert HYPERPARAMS_SAMPLER["reinforce"] is sample_reinforce_params
    assert HYPERPARAMS_CONVERTER["reinforce"] is convert_reinforce_params

    url = default_storage_url(str(tmp_path / "logs"), "reinforce")
    assert url == f"sqlite:///{tmp_path / 'logs' / 'reinforce' / 'optuna.db'}?timeout=60"
    assert normalize_storage_url(url) == url
    assert normalize_storage_url(None) is None
    postgres = normalize_storage_url("postgresql://user:secret@127.0.0.1/db")
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        assert postgres == "postgresql+psycopg2://user:secret@127.0.0.1/db"
    assert _hide_password(postgres) == postgres.replace("secret", "***")


def test_an_env_of_gym_packages_is_known_to_the_checks(tmp_path, monkeypatch):
    # rl_zoo3 imports --gym-packages after its parser; the zoo's env-id check ran before and refused their envs
    module = "sb3r_test_gym_packages_envs"
    (tmp_path / f"{module}.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('SmallCartPole-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv', "
        "max_episode_steps=50)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    conf = tmp_path / "small.yml"
    conf.write_text(yaml.safe_dump({"SmallCartPole-v0": dict(load_hyperparams("reinforce", "CartPole-v1"), n_envs=1)}))
    logs = tmp_path / "logs"
    argv = ["--env", "SmallCartPole-v0", "--gym-packages", module, "-conf", str(conf), "-n", "100", "-f", str(logs)]
    main(["train", *argv, "--seed", "0", "--eval-freq", "-1", "--num-threads", "1"])
    assert (_run_dir(logs, "reinforce", "SmallCartPole-v0") / "SmallCartPole-v0.zip").is_file()


def test_the_public_names_of_the_single_module_layout_stay_importable():
    # sb3_reinforce.zoo was one module; split into one-job modules, it still exposes its public names
    import sb3_reinforce.zoo as zoo
    from sb3_reinforce.zoo.cli import _COMMANDS

    names = [
        "ReinforceExperimentManager", "SafeStoreDict", "TRUST_CODE_FLAG", "default_storage_url", "enjoy", "export_best",
        "main", "normalize_storage_url", "optuna_storage", "parse_cli_value", "register_reinforce", "rl_zoo3_algo_path",
        "safe_get_saved_hyperparams", "train", "validate", "zoo_patches", "record_video", "record_training", "plot",
    ]  # fmt: skip
    assert sorted([*names, "algorithms_supporting", "check_action_space", "run_rl_zoo3_script"]) == sorted(zoo.__all__)
    assert [name for name in zoo.__all__ if not hasattr(zoo, name)] == []
    assert {"train", "enjoy", "export-best", "validate", "record-video", "record-training", "plot"} <= set(_COMMANDS)
