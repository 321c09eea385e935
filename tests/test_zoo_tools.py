"""rl_zoo3's record-video, record-training and plot tools through the zoo, on folders written by the zoo's train."""

import os
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sb3_reinforce.zoo import main

TINY = ["--env", "CartPole-v1", "--seed", "0", "--eval-freq", "-1", "--num-threads", "1"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """A tiny REINFORCE run trained by the zoo (final model and one checkpoint, monitor files of 2 envs)."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("zoo") / "logs"
    params = ["-params", "n_envs:2", "n_episodes:2"]
    main(["train", "--algo", "reinforce", *TINY, "-n", "600", "-f", str(folder), "--save-freq", "600", *params])
    run = folder / "reinforce" / "CartPole-v1_1"
    assert (run / "CartPole-v1.zip").is_file() and (run / "rl_model_600_steps.zip").is_file()
    return folder


def _error_line(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _assert_mp4(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data[4:8] == b"ftyp", (path, len(data))  # an MP4 container


def test_record_video_of_a_reinforce_run(logs, tmp_path):
    out = tmp_path / "videos"
    main(["record-video", "--env", "CartPole-v1", "-f", str(logs), "-n", "200", "-o", str(out), "--no-render"])
    assert [p.name for p in out.iterdir()] == ["final-model-reinforce-CartPole-v1-step-0-to-step-200.mp4"]
    _assert_mp4(next(out.iterdir()))


def test_record_video_reads_the_run_files_as_enjoy_does(logs, tmp_path, capsys):
    # rl_zoo3's record_video reads args.yml with yaml.UnsafeLoader: a Python tag would run here
    run = tmp_path / "logs"
    shutil.copytree(logs, run)
    marker = tmp_path / "hacked"
    with open(run / "reinforce" / "CartPole-v1_1" / "CartPole-v1" / "args.yml", "a") as file:
        file.write(f"evil: !!python/object/apply:os.system ['touch {marker}']\n")
    argv = ["record-video", "--env", "CartPole-v1", "-f", str(run), "-n", "10", "-o", str(tmp_path / "v"), "--no-render"]
    line = _error_line(capsys, argv)
    assert "args.yml" in line and "safely" in line, line
    assert not marker.exists()
    # --algo ppo on the same run: the model is named, nothing is loaded
    (run / "ppo").mkdir()
    (run / "reinforce" / "CartPole-v1_1").rename(run / "ppo" / "CartPole-v1_1")
    line = _error_line(capsys, ["record-video", "--algo", "ppo", "--env", "CartPole-v1", "-f", str(run), "-n", "10"])
    assert "holds a REINFORCE model" in line and "--algo ppo cannot run it" in line, line


def test_record_video_of_a_ppo_run(tmp_path):
    torch.set_num_threads(1)
    logs = tmp_path / "logs"
    params = ["n_envs:1", "n_steps:64", "batch_size:64", "n_epochs:1"]
    main(["train", "--algo", "ppo", *TINY, "-n", "64", "-f", str(logs), "-params", *params])
    out = tmp_path / "videos"
    main(["record-video", "--algo", "ppo", "--env", "CartPole-v1", "-f", str(logs), "-n", "50", "-o", str(out), "--no-render"])
    _assert_mp4(out / "final-model-ppo-CartPole-v1-step-0-to-step-50.mp4")


def test_record_training_with_a_relative_output_folder(logs, tmp_path, monkeypatch):
    # rl_zoo3's record_training fails on a relative -o (ffmpeg reads the list's paths from the list's folder)
    monkeypatch.chdir(tmp_path)
    main(["record-training", "--env", "CartPole-v1", "-f", str(logs), "-n", "30", "-o", "videos"])
    names = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert names == [
        "checkpoint-600-reinforce-CartPole-v1-step-0-to-step-30.mp4",
        "final-model-reinforce-CartPole-v1-step-0-to-step-30.mp4",
        "training.mp4",
    ]
    _assert_mp4(tmp_path / "videos" / "training.mp4")


def test_record_training_does_not_delete_a_folder_of_other_files(logs, tmp_path, capsys):
    # rl_zoo3's record_training starts with shutil.rmtree(-o)
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.md").write_text("mine")
    line = _error_line(capsys, ["record-training", "--env", "CartPole-v1", "-f", str(logs), "-o", str(precious)])
    assert str(precious) in line and "notes.md" in line and "deletes the folder" in line, line
    assert (precious / "notes.md").read_text() == "mine"
    # and a path a shell would split (rl_zoo3 passes it to ffmpeg unquoted)
    line = _error_line(capsys, ["record-training", "--env", "CartPole-v1", "-f", str(logs), "-o", str(tmp_path / "a b")])
    assert "'" + str(tmp_path / "a b") + "'" in line and "shell" in line, line


def test_plot_train_writes_a_png(logs, tmp_path, capsys):
    import matplotlib.pyplot as plt

    image = tmp_path / "curve.png"
    # a figure the caller (or an earlier test in this process) has open is neither saved nor closed
    own = plt.figure()
    main(["plot", "train", "-e", "CartPole-v1", "-f", str(logs), "-w", "2", "--save", str(image)])
    assert plt.fignum_exists(own.number)
    plt.close(own)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 5000
    assert f"Saved figure 'Training Episodic Reward' to {image}" in capsys.readouterr().out
    # fewer episodes than the window: rl_zoo3 would show an empty figure
    line = _error_line(capsys, ["plot", "train", "-e", "CartPole-v1", "-f", str(logs), "--save", str(tmp_path / "x.png")])
    assert "no curve to draw" in line and "reward data for at least -w/--episode-window 100 episodes" in line, line
    assert not (tmp_path / "x.png").exists()
    line = _error_line(capsys, ["plot", "train", "-e", "CartPole-v1", "-f", str(tmp_path / "nothing")])
    assert "nothing" in line and "is not a folder" in line, line


def _evaluations(folder: Path, seeds: int = 2) -> None:
    """evaluations.npz files as EvalCallback writes them (3 evaluations of 2 episodes) in zoo run folders."""
    rng = np.random.default_rng(0)
    for run in range(1, seeds + 1):
        run_dir = folder / "reinforce" / f"CartPole-v1_{run}"
        run_dir.mkdir(parents=True)
        results = rng.uniform(0, 500, size=(3, 2))
        np.savez(run_dir / "evaluations.npz", timesteps=np.array([100, 200, 300]), results=results, ep_lengths=results)


def test_plot_all_then_from_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _evaluations(tmp_path / "logs")
    selection = ["-a", "reinforce", "-e", "CartPole-v1", "-f", "logs"]
    main(["plot", "all", *selection, "-o", "results", "--no-display", "--save", "all.png"])
    assert (tmp_path / "all.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "results.pkl").is_file()
    # plot_from_file's pickle.load goes through the restricted unpickler: what all_plots writes is read
    main(["plot", "from-file", "-i", "results", "--save", "file.png"])
    assert sorted(p.name for p in tmp_path.glob("file-*.png")) == ["file-1.png", "file-2.png"]
    out = capsys.readouterr().out
    assert "Saved figure 'Results CartPole-v1' to file-1.png" in out and "Saved figure 'Sensitivity plot' to file-2.png" in out


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_plot_from_file_runs_no_code(tmp_path, capsys):
    marker = tmp_path / "hacked"
    crafted = tmp_path / "results.pkl"
    crafted.write_bytes(pickle.dumps({"results_table": _RunsCode(marker)}))
    line = _error_line(capsys, ["plot", "from-file", "-i", str(crafted), "--save", str(tmp_path / "x.png")])
    assert "Refused to unpickle" in line and "system is not allowed" in line and "--trust-code" in line, line
    assert not marker.exists()
    line = _error_line(capsys, ["plot", "from-file", "-i", str(tmp_path / "missing")])
    assert "missing.pkl" in line and "no such file" in line, line
    line = _error_line(capsys, ["plot", "bogus"])
    assert line == "error: plot: unknown plot 'bogus': choose from train, from-file, all (see plot --help)"
    line = _error_line(capsys, ["plot", "all", "-e", "CartPole-v1"])
    assert line == "error: plot all: -a/--algos, -f/--exp-folders required"


def test_rl_zoo3_train_has_no_hook_for_another_algorithm(tmp_path, monkeypatch, capsys):
    # rl_zoo3/train.py builds --algo's choices from rl_zoo3.utils.ALGOS (a literal dict) when it builds its parser,
    # and imports --gym-packages only after parse_args(): no module named there can add "reinforce" in time (rl_zoo3
    # declares no entry points either). As `python -m rl_zoo3.train` would run, without the zoo's registration:
    import rl_zoo3.train
    from rl_zoo3.utils import ALGOS

    monkeypatch.delitem(ALGOS, "reinforce", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", "--algo", "reinforce", "--gym-packages", "sb3_reinforce.zoo"])
    with pytest.raises(SystemExit) as info:
        rl_zoo3.train.train()
    assert info.value.code == 2
    assert "argument --algo: invalid choice: 'reinforce'" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_a_plot_that_fails_while_being_written_leaves_the_previous_file(tmp_path, monkeypatch):
    # A crash inside savefig (a full disk, an interrupt) used to leave a truncated PNG where the last good one was
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from sb3_reinforce.zoo.tools import _save_figures

    target = tmp_path / "curve.png"
    target.write_bytes(b"the previous plot")
    before = set(plt.get_fignums())
    plt.figure()
    plt.plot([0, 1], [0, 1])

    def half_written(self, fname, **kwargs):
        if hasattr(fname, "write"):
            fname.write(b"\x89PNG half")
        else:
            Path(fname).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError, match="disk full"):
        _save_figures(str(target), before)
    plt.close("all")
    assert target.read_bytes() == b"the previous plot"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_the_run_files_of_the_zoo_are_replaced_together_or_not_at_all(tmp_path, monkeypatch):
    # config.yml was written before args.yml was even encoded: a failure in between left a new config beside an old
    # args.yml, a pair enjoy would then read as one run
    import argparse

    import yaml

    from sb3_reinforce.zoo.experiment import ReinforceExperimentManager

    for name in ("config.yml", "args.yml", "command.txt"):
        (tmp_path / name).write_text(f"previous {name}")
    manager = ReinforceExperimentManager.__new__(ReinforceExperimentManager)
    manager.params_path = str(tmp_path)
    manager.save_path = str(tmp_path)
    manager.args = argparse.Namespace(env="CartPole-v1", storage=None)
    real_dump = yaml.safe_dump

    def dump_fails_on_args(data, *args, **kwargs):
        if "env" in data:
            raise yaml.representer.RepresenterError("cannot represent an object")
        return real_dump(data, *args, **kwargs)

    monkeypatch.setattr(yaml, "safe_dump", dump_fails_on_args)
    with pytest.raises(yaml.representer.RepresenterError):
        manager._save_config({"policy": "MlpPolicy"})
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        name: f"previous {name}" for name in ("config.yml", "args.yml", "command.txt")
    }
    monkeypatch.setattr(yaml, "safe_dump", real_dump)
    manager._save_config({"policy": "MlpPolicy"})
    assert yaml.safe_load((tmp_path / "config.yml").read_text()) == {"policy": "MlpPolicy"}
    assert yaml.safe_load((tmp_path / "args.yml").read_text()) == {"env": "CartPole-v1", "storage": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["args.yml", "command.txt", "config.yml"]
