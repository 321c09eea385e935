"""
Tuning publishes only what it ran: a study records its budget and search space and refuses workers with other
ones, the trials of killed workers are failed (Optuna's heartbeat), only COMPLETE trials are exported or loaded,
and no trial draws a batch that cannot make an update within the budget.
"""

import argparse
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from sb3_reinforce import tuning
from sb3_reinforce.zoo import ReinforceExperimentManager, main, normalize_storage_url

STUDY = "reinforce-CartPole-v1"
CARTPOLE_MAX_STEPS = 500


def optimize_args(
    logs: Path, storage: str, n_timesteps: int = 1000, n_envs: int = 2, n_trials: int = 1, study: str = STUDY
) -> list[str]:
    args = ["train", "--algo", "reinforce", "--env", "CartPole-v1", "--seed", "0", "--num-threads", "1"]
    args += ["-n", str(n_timesteps), "-f", str(logs), "--optimize", "--storage", storage, "--study-name", study]
    args += ["--n-trials", str(n_trials), "--n-evaluations", "2", "--eval-episodes", "2", "--no-optim-plots"]
    return [*args, "--sampler", "random", "-params", f"n_envs:{n_envs}"]


def refused(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def fits(params: dict, n_timesteps: int, n_envs: int, max_steps: int = CARTPOLE_MAX_STEPS) -> bool:
    """The first update has a complete episode within the budget, even if every episode lasts max_steps."""
    if params.get("n_episodes") is not None:
        # every env must end ceil(n / n_envs) episodes
        return math.ceil(params["n_episodes"] / n_envs) * max_steps * n_envs <= n_timesteps
    # updates every n_steps per env; the first one after max_steps steps per env holds an episode
    return math.ceil(max_steps / params["n_steps"]) * params["n_steps"] * n_envs <= n_timesteps


@pytest.fixture
def storage(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


# 4. budget and search space ----------------------------------------------------------------------------------------


def test_the_study_records_its_budget_and_search_space(tmp_path, storage, capsys):
    main(optimize_args(tmp_path / "logs", storage))
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert study.user_attrs[tuning.STUDY_ATTR_BUDGET] == {
        "algo": "reinforce",
        "env_id": "CartPole-v1",
        "n_timesteps": 1000,
        "n_envs": 2,
        "max_episode_steps": 500,
        "n_evaluations": 2,
        "eval_freq": 500,  # rl_zoo3: int(1000 / 2) // 2 envs = 250 steps per env
        "n_eval_episodes": 2,
        "n_eval_envs": 1,
        "deterministic_eval": True,
    }
    space = study.user_attrs[tuning.STUDY_ATTR_SEARCH_SPACE]
    assert study.user_attrs[tuning.STUDY_ATTR_SEARCH_SPACE_SHA256] == tuning.canonical_sha256(space)
    # 1000 steps, 2 envs, episodes of up to 500 steps: only 1 or 2 episodes per update fit, no n_steps
    assert space["sampled"]["batch_unit"] == {"name": "CategoricalDistribution", "attributes": {"choices": ["episodes"]}}
    assert space["sampled"]["n_episodes"]["attributes"]["choices"] == [1, 2]
    assert "n_steps" not in space["sampled"]
    assert space["sampled"]["learning_rate"] == {
        "name": "FloatDistribution",
        "attributes": {"low": 1e-4, "high": 1e-2, "log": True, "step": None},
    }
    # the fixed part: the base entry without what the sampler sets
    assert space["fixed"]["policy"] == "MlpPolicy" and "learning_rate" not in space["fixed"]
    (trial,) = study.trials
    assert trial.user_attrs[tuning.TRIAL_ATTR_BUDGET] == study.user_attrs[tuning.STUDY_ATTR_BUDGET]


def test_a_worker_with_another_budget_refuses_to_join(tmp_path, storage, capsys):
    main(optimize_args(tmp_path / "logs", storage))
    capsys.readouterr()
    err = refused(capsys, optimize_args(tmp_path / "logs", storage, n_timesteps=2000))
    assert f"Optuna study {STUDY!r}" in err and "does not join it" in err
    assert "budget.n_timesteps: 1000 (study) != 2000 (here)" in err
    assert "budget.eval_freq: 500 (study) != 1000 (here)" in err
    assert "--study-name" in err
    # the batch sizes that fit differ too: named as search-space differences
    assert "search_space.sampled.n_episodes: " in err
    assert len(optuna.load_study(study_name=STUDY, storage=storage).trials) == 1, "the refused worker added a trial"


def test_a_worker_with_another_search_space_refuses_to_join(tmp_path, storage, capsys):
    main(optimize_args(tmp_path / "logs", storage))
    capsys.readouterr()
    study = optuna.load_study(study_name=STUDY, storage=storage)
    space = study.user_attrs[tuning.STUDY_ATTR_SEARCH_SPACE]
    space["sampled"]["learning_rate"]["attributes"]["high"] = 0.1  # as an older sampler's wider space
    study.set_user_attr(tuning.STUDY_ATTR_SEARCH_SPACE, space)
    study.set_user_attr(tuning.STUDY_ATTR_SEARCH_SPACE_SHA256, tuning.canonical_sha256(space))
    err = refused(capsys, optimize_args(tmp_path / "logs", storage))
    assert "search_space.sampled.learning_rate: " in err and "'high': 0.1" in err and "'high': 0.01" in err
    # the base entry's values that the sampler does not set are part of the space: another one is refused as well
    err = refused(capsys, [*optimize_args(tmp_path / "logs", storage), "reset_on_reward:True"])
    assert "search_space.fixed.reset_on_reward: None (study) != True (here)" in err


def test_a_study_with_trials_but_no_recorded_budget_is_refused(tmp_path, storage, capsys):
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=1.0))  # made by an older version or another tool
    err = refused(capsys, optimize_args(tmp_path / "logs", storage))
    assert "has 1 trial(s) but records no budget" in err


def test_the_cli_exits_with_status_2_and_no_traceback(tmp_path, storage):
    main(optimize_args(tmp_path / "logs", storage))
    command = [sys.executable, "-m", "sb3_reinforce.zoo", *optimize_args(tmp_path / "logs", storage, n_envs=1)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "budget.n_envs: 2 (study) != 1 (here)" in result.stderr


def test_each_trial_checks_the_study_again(tmp_path, storage):
    # A worker that recorded its budget, then another worker overwrote it (two workers starting together)
    budget = dict(n_timesteps=1000, hyperparams={"n_envs": 2}, n_evaluations=2, n_eval_episodes=2, verbose=0)
    tuning_kwargs = dict(optimize_hyperparameters=True, storage=storage, study_name=STUDY)
    logs = str(tmp_path / "logs")
    manager = ReinforceExperimentManager(argparse.Namespace(), "reinforce", "CartPole-v1", logs, **budget, **tuning_kwargs)
    manager.setup_experiment()
    manager._record_study()
    study = optuna.load_study(study_name=STUDY, storage=storage)
    study.set_user_attr(tuning.STUDY_ATTR_BUDGET, {**study.user_attrs[tuning.STUDY_ATTR_BUDGET], "n_timesteps": 5000})
    with pytest.raises(tuning.StudyError, match=re.escape("budget.n_timesteps: 5000 (study) != 1000 (here)")):
        study.optimize(manager.objective, n_trials=1)
    assert [trial.state for trial in study.trials] == [TrialState.FAIL]


# 5. trials of killed workers ---------------------------------------------------------------------------------------

WORKER = """
import sys
from sb3_reinforce.zoo import ReinforceExperimentManager, main, normalize_storage_url
ReinforceExperimentManager.optuna_heartbeat_interval = 1
ReinforceExperimentManager.optuna_grace_period = 2
main(sys.argv[1:])
"""


def running_trials_with_heartbeat(storage: str, study: str) -> list[int]:
    """
    Numbers of the study's RUNNING trials that recorded a heartbeat. Optuna never fails a trial without one (its
    worker was killed between creating the trial and the first heartbeat), so the test kills only after one.
    """
    from optuna.storages._rdb import models

    rdb = optuna.storages.RDBStorage(normalize_storage_url(storage))
    try:
        with rdb.scoped_session() as session:
            rows = (
                session.query(models.TrialModel.number)
                .join(models.StudyModel)
                .join(models.TrialHeartbeatModel)
                .filter(models.StudyModel.study_name == study, models.TrialModel.state == TrialState.RUNNING)
                .all()
            )
        return [row[0] for row in rows]
    finally:
        rdb.engine.dispose()


def kill_a_worker_mid_trial_then_run_another(tmp_path: Path, storage: str, study: str, capsys, monkeypatch) -> None:
    """
    SIGKILL a worker in the middle of a trial, then run a second worker with the same settings: the dead worker's
    trial must end FAIL (heartbeat older than the grace period), and no trial RUNNING.
    """
    argv = optimize_args(tmp_path / "logs", storage, n_timesteps=4000, n_trials=50, study=study)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 (closed below)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, *argv], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker never started a trial"
            if running_trials_with_heartbeat(storage, study):
                break
            time.sleep(0.2)
        os.kill(worker.pid, signal.SIGKILL)  # in the middle of a trial
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    trials = optuna.load_study(study_name=study, storage=normalize_storage_url(storage)).trials
    killed = [trial.number for trial in trials if trial.state == TrialState.RUNNING]
    assert len(killed) == 1
    time.sleep(3.5)  # longer than the grace period since the dead worker's last heartbeat

    # A second worker with the same settings fails the stale trial before it runs its own
    monkeypatch.setattr(ReinforceExperimentManager, "optuna_heartbeat_interval", 1)
    monkeypatch.setattr(ReinforceExperimentManager, "optuna_grace_period", 2)
    capsys.readouterr()
    main(optimize_args(tmp_path / "logs", storage, n_timesteps=4000, n_trials=1, study=study))
    assert f"trial {killed[0]} of study {study!r} had no heartbeat" in capsys.readouterr().err
    trials = optuna.load_study(study_name=study, storage=normalize_storage_url(storage)).trials
    assert trials[killed[0]].state == TrialState.FAIL
    assert not [trial.number for trial in trials if trial.state == TrialState.RUNNING]
    assert trials[-1].state in (TrialState.COMPLETE, TrialState.PRUNED)


def test_the_trial_of_a_killed_worker_is_failed_not_left_running(tmp_path, storage, capsys, monkeypatch):
    kill_a_worker_mid_trial_then_run_another(tmp_path, storage, STUDY, capsys, monkeypatch)


# 6. only COMPLETE trials are exported or loaded ---------------------------------------------------------------------

PARAMS = {
    "learning_rate": 1e-3,
    "one_minus_gamma": 0.01,
    "batch_unit": "episodes",
    "n_episodes": 2,
    "return_mode": "reward_to_go",
    "baseline": "mean",
    "normalize_advantage": True,
    "ent_coef": 1e-6,
    "max_grad_norm": 0.5,
    "net_arch": "tiny",
    "activation_fn": "tanh",
    "optimizer": "adam",
}


def make_study(storage: str, states: list[tuple[TrialState, float | None]]) -> optuna.Study:
    """A REINFORCE study as the zoo leaves it, with one trial per (state, value)."""
    from sb3_reinforce.hyperparams import load_hyperparams

    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    study.set_user_attr(tuning.STUDY_ATTR_ALGO, "reinforce")
    study.set_user_attr(tuning.STUDY_ATTR_ENV, "CartPole-v1")
    study.set_user_attr(tuning.STUDY_ATTR_HYPERPARAMS, load_hyperparams("reinforce", "CartPole-v1"))
    space = tuning.reinforce_search_space()
    distributions = {name: space[name] for name in PARAMS}
    for number, (state, value) in enumerate(states):
        if state == TrialState.RUNNING:
            trial = study.ask()
            trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True)  # killed while sampling: partial params
            continue
        params = {**PARAMS, "learning_rate": 1e-3 * (number + 1)}
        study.add_trial(optuna.trial.create_trial(state=state, value=value, params=params, distributions=distributions))
    return study


@pytest.mark.parametrize("state", [TrialState.FAIL, TrialState.PRUNED, TrialState.RUNNING])
def test_export_refuses_a_trial_that_is_not_complete(tmp_path, storage, capsys, state):
    make_study(storage, [(TrialState.COMPLETE, 10.0), (state, None)])
    output = tmp_path / "best.yml"
    err = refused(capsys, ["export-best", "--storage", storage, "--study-name", STUDY, "--trial-id", "1", "-o", str(output)])
    assert f"Trial 1 of study {STUDY!r} is {state.name}, not COMPLETE" in err
    assert not output.exists()
    err = refused(capsys, ["export-best", "--storage", storage, "--study-name", STUDY, "--trial-id", "7"])
    assert "has no trial number 7 (numbers 0 to 1)" in err


def test_export_picks_the_best_complete_trial(tmp_path, storage, capsys):
    states = [(TrialState.COMPLETE, 10.0), (TrialState.FAIL, None), (TrialState.COMPLETE, 30.0), (TrialState.PRUNED, None)]
    make_study(storage, states)
    output = tmp_path / "best.yml"
    main(["export-best", "--storage", storage, "--study-name", STUDY, "-o", str(output)])
    assert yaml.safe_load(output.read_text())["CartPole-v1"]["learning_rate"] == pytest.approx(3e-3)  # trial 2
    assert "trial 2, value 30.0" in output.read_text()


def test_export_refuses_a_study_without_complete_trial(storage, capsys):
    make_study(storage, [(TrialState.FAIL, None), (TrialState.PRUNED, None), (TrialState.RUNNING, None)])
    err = refused(capsys, ["export-best", "--storage", storage, "--study-name", STUDY])
    assert f"Study {STUDY!r} has no COMPLETE trial (its trials: 1 FAIL, 1 PRUNED, 1 RUNNING)" in err
    err = refused(capsys, ["export-best", "--storage", storage, "--study-name", "no-such-study"])
    assert "There is no study named 'no-such-study'" in err


def test_train_refuses_to_load_a_trial_that_is_not_complete(tmp_path, storage, capsys):
    make_study(storage, [(TrialState.COMPLETE, 10.0), (TrialState.FAIL, None)])
    argv = ["train", "--env", "CartPole-v1", "-n", "200", "-f", str(tmp_path / "logs"), "--eval-freq", "-1"]
    err = refused(capsys, [*argv, "--storage", storage, "--study-name", STUDY, "--trial-id", "1"])
    assert "Trial 1 of study" in err and "is FAIL, not COMPLETE" in err
    assert not (tmp_path / "logs" / "reinforce" / "CartPole-v1_1" / "CartPole-v1.zip").exists()


# 7. batches that fit the budget ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_timesteps, n_envs", [(1000, 2), (3000, 1), (2048, 4), (8000, 8)])
def test_sampled_batches_fit_the_budget(n_timesteps, n_envs):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    budget = {"n_timesteps": n_timesteps, "max_episode_steps": CARTPOLE_MAX_STEPS}
    drawn = set()
    for _ in range(300):
        trial = study.ask()
        trial.set_user_attr(tuning.TRIAL_ATTR_BUDGET, budget)
        params = tuning.sample_reinforce_params(trial, 0, n_envs)
        assert fits(params, n_timesteps, n_envs), params
        drawn.add((params.get("n_episodes"), params.get("n_steps")))
        study.tell(trial, 0.0)
    # every batch that fits is offered (the constraint removes only what cannot update)
    fitting = {(n, None) for n in tuning.N_EPISODES_CHOICES if fits({"n_episodes": n}, n_timesteps, n_envs)}
    fitting |= {(None, n) for n in tuning.N_STEPS_CHOICES if fits({"n_steps": n}, n_timesteps, n_envs)}
    assert {(e, s if e is None else None) for e, s in drawn} == fitting


def test_zoo_trials_draw_only_batches_that_fit(tmp_path, storage, capsys):
    main(optimize_args(tmp_path / "logs", storage, n_timesteps=1000, n_envs=2, n_trials=3))
    trials = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert len(trials) == 3
    for trial in trials:
        assert trial.params["batch_unit"] == "episodes" and trial.params["n_episodes"] in (1, 2), trial.params


def test_a_budget_too_small_for_any_batch_is_refused(tmp_path, storage, capsys):
    err = refused(capsys, optimize_args(tmp_path / "logs", storage, n_timesteps=999, n_envs=2))
    assert "n_timesteps=999 is too small for any batch" in err and "the smallest batch needs 1000 env steps" in err
