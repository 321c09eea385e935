"""A user's mistake on the zoo command line is one 'error:' line and exit status 2, never a traceback."""

import pytest

from sb3_reinforce.zoo import main


def _error_line(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--env", "CartPol-v1", "-n", "10"], ["'CartPol-v1'", "did you mean", "'CartPole-v1'"]),
        (["train", "--env", "CartPole-v1", "--conf-file", "nope.yml", "-n", "10"], ["nope.yml", "no such file"]),
        (["train", "--env", "CartPole-v1", "-i", "nope.zip", "-n", "10"], ["nope.zip", "no such file"]),
        (["train", "--env", "MountainCarContinuous-v0", "-n", "10"], ["MountainCarContinuous-v0", "validate"]),
        (["enjoy", "--env", "CartPole-v1", "-f", "nofolder", "--no-render"], ["nofolder", "not found"]),
        (["record-video", "--env", "CartPole-v1", "-f", "nofolder", "--no-render"], ["nofolder", "not found"]),
        (["train", "--env", "CartPole-v1", "--env-kwargs", "foo:1", "-n", "10"], ["--env-kwargs", "'foo'"]),
        (["train", "--env", "CartPole-v1", "--gym-packages", "no_such_envs_module", "-n", "10"], ["no_such_envs_module"]),
    ],
    ids=["env-id", "conf-file", "trained-agent", "no-entry", "enjoy-folder", "video-folder", "env-kwargs", "gym-packages"],
)
def test_zoo_mistakes_are_one_line_with_status_2(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    line = _error_line(capsys, argv)
    for text in expected:
        assert text in line, line


def test_export_from_a_missing_journal_leaves_no_file(tmp_path, monkeypatch, capsys):
    # A mistyped journal path must not become an empty journal that a later worker then fills.
    monkeypatch.chdir(tmp_path)
    argv = ["export-best", "--storage", "studies/typo.log", "--study-name", "s", "-o", "best.yml"]
    line = _error_line(capsys, argv)
    assert "'studies/typo.log'" in line and "no Optuna journal file" in line, line
    assert list(tmp_path.iterdir()) == []


def test_unknown_zoo_command_is_one_line_with_status_2(capsys):
    commands = "train, enjoy, record-video, record-training, plot, export-best, validate"
    assert _error_line(capsys, ["bogus"]) == f"error: unknown command 'bogus': choose from {commands} (see --help)"
    # an option where the command should be: the usage, status 2
    with pytest.raises(SystemExit) as info:
        main(["--bogus"])
    assert info.value.code == 2 and "usage: sb3-reinforce-zoo {train,enjoy,record-video," in capsys.readouterr().err


@pytest.mark.parametrize(
    ("algo", "env_id", "expected"),
    [
        (
            "dqn",
            "Pendulum-v1",
            "error: --algo dqn does not support the action space of Pendulum-v1, Box(-2.0, 2.0, (1,), float32); the "
            "algorithms that support it: a2c, ddpg, ppo, sac, td3, ars, crossq, tqc, trpo, ppo_lstm, reinforce",
        ),
        (
            "sac",
            "CartPole-v1",
            "error: --algo sac does not support the action space of CartPole-v1, Discrete(2); the algorithms that "
            "support it: a2c, dqn, ppo, ars, qrdqn, trpo, ppo_lstm, reinforce",
        ),
    ],
)
def test_algorithm_without_the_env_action_space_is_one_line(tmp_path, monkeypatch, capsys, algo, env_id, expected):
    # dqn has no Pendulum entry: the action space, not the missing entry, is what the user needs to hear
    monkeypatch.chdir(tmp_path)
    assert _error_line(capsys, ["train", "--algo", algo, "--env", env_id, "-n", "100"]) == expected
    assert not (tmp_path / "logs").exists()  # no run folder, nothing built


def test_action_space_of_the_env_the_entry_builds(tmp_path, monkeypatch, capsys):
    # LunarLander-v3 is Discrete, the entry's env_kwargs make it continuous: checked on the env built for training
    pytest.importorskip("Box2D")
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "dqn.yml"
    conf.write_text("LunarLander-v3:\n  n_timesteps: 100\n  policy: MlpPolicy\n  env_kwargs: {continuous: true}\n")
    line = _error_line(capsys, ["train", "--algo", "dqn", "--env", "LunarLander-v3", "-conf", str(conf), "--eval-freq", "-1"])
    assert line.startswith("error: --algo dqn does not support the action space of LunarLander-v3, Box(-1.0, 1.0, (2,)"), line
    assert not list(tmp_path.glob("logs/dqn/*/*.zip"))


def test_enjoy_another_algorithm_on_a_reinforce_run(tmp_path, monkeypatch, capsys):
    from sb3_reinforce import REINFORCE

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "logs" / "reinforce" / "CartPole-v1_1"
    run.mkdir(parents=True)
    REINFORCE("MlpPolicy", "CartPole-v1", n_steps=8).save(run / "CartPole-v1.zip")
    argv = ["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "--no-render", "-n", "10"]
    line = _error_line(capsys, argv)
    assert line == "error: The logs/ppo folder was not found; logs has CartPole-v1 runs of reinforce (--algo reinforce)"
    # the same run where a PPO run would be: the file is named, not loaded by PPO.load (SB3's TypeError)
    (tmp_path / "logs" / "reinforce").rename(tmp_path / "logs" / "ppo")
    line = _error_line(capsys, argv)
    model = "logs/ppo/CartPole-v1_1/CartPole-v1.zip"
    assert line.startswith(f"error: {model}: this file holds a REINFORCE model (policy_class "), line
    assert line.endswith(", load it with sb3_reinforce.REINFORCE.load (--algo ppo cannot run it)"), line


def _status_and_error(capsys, main_function, argv):
    status = main_function(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert status == 2 and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--env", "CartPol-v1", "--algos", "reinforce"], ["'CartPol-v1'", "did you mean"]),
        (["--env", "CartPole-v1", "--conf-file", "nope.yml"], ["--conf-file", "no such file"]),
    ],
    ids=["env-id", "conf-file"],
)
def test_compare_mistakes_are_one_line_with_status_2(tmp_path, monkeypatch, capsys, argv, expected):
    from sb3_reinforce.compare import main as compare_main

    monkeypatch.chdir(tmp_path)
    line = _status_and_error(capsys, compare_main, [*argv, "--out", str(tmp_path / "out")])
    assert all(text in line for text in expected), line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_variance_mistakes_are_one_line_with_status_2(tmp_path, monkeypatch, capsys):
    from sb3_reinforce import REINFORCE
    from sb3_reinforce.variance import main as variance_main

    monkeypatch.chdir(tmp_path)
    out = ["--out", str(tmp_path / "v"), "--n-batches", "2"]
    assert "did you mean" in _status_and_error(capsys, variance_main, ["--env", "CartPol-v1", *out])
    assert "no such file" in _status_and_error(capsys, variance_main, ["--env", "CartPole-v1", "--model", "nope.zip", *out])
    assert "MountainCarContinuous-v0" in _status_and_error(capsys, variance_main, ["--env", "MountainCarContinuous-v0", *out])
    # a CartPole snapshot on Acrobot: the spaces differ
    REINFORCE("MlpPolicy", "CartPole-v1", n_steps=8).save(tmp_path / "cartpole.zip")
    line = _status_and_error(capsys, variance_main, ["--env", "Acrobot-v1", "--model", str(tmp_path / "cartpole.zip"), *out])
    assert "cartpole.zip" in line and "space" in line.lower(), line
