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
        (["bogus"], ["unknown command 'bogus'", "train, enjoy"]),
    ],
    ids=["env-id", "conf-file", "trained-agent", "no-entry", "enjoy-folder", "subcommand"],
)
def test_zoo_mistakes_are_one_line_with_status_2(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    line = _error_line(capsys, argv)
    for text in expected:
        assert text in line, line


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
