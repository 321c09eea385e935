"""
The REINFORCE search space spends no trial on a duplicate, trains what export-best writes, and searches the
learning-rate schedule the tuned entries use.
"""

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch as th
import yaml
from rl_zoo3.utils import SimpleLinearSchedule

from sb3_reinforce import REINFORCE
from sb3_reinforce.hyperparams import load_hyperparams, parse_python_literal, validate_reinforce_hyperparams
from sb3_reinforce.tuning import (
    LEAVE_ONE_OUT_BASELINES,
    STUDY_ATTR_HYPERPARAMS,
    TRIAL_ATTR_BUDGET,
    TRIAL_ATTR_GAMMA,
    convert_reinforce_params,
    load_study,
    merge_policy_kwargs,
    reinforce_search_space,
    sample_reinforce_params,
    trial_params_to_yaml_entry,
)
from sb3_reinforce.zoo import main
from tests.scripts import load_script

BUDGET = {"n_timesteps": 200_000, "max_episode_steps": 500}


def sampled_trials(n_trials: int, base: dict | None = None) -> list[tuple[optuna.trial.FrozenTrial, dict]]:
    """``n_trials`` random trials of a study (recording ``base`` as the zoo does), with what the sampler returned."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    if base is not None:
        study.set_user_attr(STUDY_ATTR_HYPERPARAMS, base)
    results = []
    for _ in range(n_trials):
        trial = study.ask()
        trial.set_user_attr(TRIAL_ATTR_BUDGET, BUDGET)
        hyperparams = sample_reinforce_params(trial, 0, 1)
        study.tell(trial, 0.0)
        results.append((study.trials[-1], hyperparams))
    return results


def test_one_episode_batches_draw_no_leave_one_out_baseline():
    # With one episode per update, "mean"/"optimal"/"time" have no other episode and subtract 0: a "none" trial again
    drawn_single, drawn_multi = set(), set()
    for trial, hyperparams in sampled_trials(400):
        if hyperparams.get("n_episodes") == 1:
            assert (hyperparams["baseline"] or "none") not in LEAVE_ONE_OUT_BASELINES, trial.params
            assert "baseline" not in trial.params
            drawn_single.add(hyperparams["baseline"])
        else:
            drawn_multi.add(hyperparams["baseline"])
    assert drawn_single == {None, "value"}
    # larger batches still draw every baseline
    assert drawn_multi == {None, "value", *LEAVE_ONE_OUT_BASELINES}


def test_no_batch_or_learning_rate_known_not_to_learn():
    space = reinforce_search_space(1_000_000, 1, 1000)
    assert max(space["n_episodes"].choices) == 8 and max(space["n_steps"].choices) == 1024
    assert space["learning_rate"].high == pytest.approx(1e-2)
    for _, hyperparams in sampled_trials(100):
        learning_rate = hyperparams["learning_rate"]
        initial = learning_rate.initial_value if isinstance(learning_rate, SimpleLinearSchedule) else learning_rate
        assert 1e-4 <= initial <= 1e-2


def test_trials_keep_the_base_entry_policy_arguments():
    # rl_zoo3's objective replaces the whole policy_kwargs by the sampler's: Pendulum's log_std_init would be lost
    base = load_hyperparams("reinforce", "Pendulum-v1")
    for trial, hyperparams in sampled_trials(30, base):
        policy_kwargs = hyperparams["policy_kwargs"]
        assert policy_kwargs["log_std_init"] == -0.5 and policy_kwargs["ortho_init"] is False
        # what the trial trained is what export-best writes
        exported = parse_python_literal(trial_params_to_yaml_entry(trial.params, base)["policy_kwargs"])
        assert exported == policy_kwargs


def test_a_sampled_adam_drops_the_base_entry_optimizer():
    base = "dict(optimizer_class=th.optim.RMSprop, optimizer_kwargs=dict(alpha=0.9), log_std_init=-1.0)"
    assert merge_policy_kwargs(base, {"net_arch": [8]}) == {"log_std_init": -1.0, "net_arch": [8]}
    merged = merge_policy_kwargs(base, {"optimizer_class": th.optim.RMSprop, "optimizer_kwargs": {"eps": 1e-5}})
    assert merged["optimizer_kwargs"] == {"eps": 1e-5} and merged["log_std_init"] == -1.0
    with pytest.raises(ValueError, match=r"policy_kwargs \[1, 2\] of the base entry: expected a dict"):
        merge_policy_kwargs("[1, 2]", {})


def test_linear_learning_rate_is_searched_and_exported_as_lin():
    base = load_hyperparams("reinforce", "CartPole-v1")
    schedules = set()
    for trial, hyperparams in sampled_trials(40, base):
        schedule = trial.params["lr_schedule"]
        schedules.add(schedule)
        entry = trial_params_to_yaml_entry(trial.params, base)
        validate_reinforce_hyperparams(entry, where="test")
        if schedule == "linear":
            # the model gets rl_zoo3's schedule object; the file gets the string the zoo turns into the same schedule
            assert isinstance(hyperparams["learning_rate"], SimpleLinearSchedule)
            assert hyperparams["learning_rate"](0.5) == pytest.approx(trial.params["learning_rate"] / 2)
            assert entry["learning_rate"] == f"lin_{trial.params['learning_rate']!r}"
            assert float(entry["learning_rate"][4:]) == trial.params["learning_rate"]
        else:
            assert hyperparams["learning_rate"] == entry["learning_rate"] == trial.params["learning_rate"]
    assert schedules == {"constant", "linear"}


def test_trials_of_older_studies_still_convert():
    # trials recorded before lr_schedule and baseline_one_episode existed: constant learning rate, "baseline"
    params = {"learning_rate": 1e-3, "one_minus_gamma": 0.01, "batch_unit": "episodes", "n_episodes": 1}
    params |= {"return_mode": "reward_to_go", "baseline": "mean", "normalize_advantage": True, "ent_coef": 1e-4}
    params |= {"max_grad_norm": 0.5, "net_arch": "small", "activation_fn": "tanh", "optimizer": "adam"}
    hyperparams = convert_reinforce_params(params)
    assert hyperparams["learning_rate"] == 1e-3 and hyperparams["baseline"] == "mean"


def test_zoo_trial_trains_with_the_base_entry_log_std(tmp_path: Path):
    # A real zoo study on Pendulum: the trial's saved model was built with the entry's log_std_init and ortho_init
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    argv = ["train", "--algo", "reinforce", "--env", "Pendulum-v1", "--seed", "0", "--num-threads", "1", "-n", "400"]
    argv += ["-f", str(tmp_path / "logs"), "--optimize", "--storage", storage, "--study-name", "pendulum"]
    argv += ["--n-trials", "1", "--n-evaluations", "2", "--eval-episodes", "1", "--no-optim-plots", "--sampler", "random"]
    argv += ["--optimization-log-path", str(tmp_path / "trials")]
    main(argv)
    (trial,) = optuna.load_study(study_name="pendulum", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    model = REINFORCE.load(tmp_path / "trials" / "trial_0" / "best_model.zip", device="cpu")
    assert model.policy_kwargs["log_std_init"] == -0.5 and model.policy_kwargs["ortho_init"] is False
    entry = yaml.safe_load(
        yaml.safe_dump(trial_params_to_yaml_entry(trial.params, load_hyperparams("reinforce", "Pendulum-v1")))
    )
    assert "log_std_init=-0.5" in entry["policy_kwargs"]
    # Retrained with --trial-id: the same merge, not the sampled policy_kwargs alone
    argv = ["train", "--algo", "reinforce", "--env", "Pendulum-v1", "--seed", "0", "--num-threads", "1", "-n", "400"]
    argv += ["-f", str(tmp_path / "retrained"), "--storage", storage, "--study-name", "pendulum", "--trial-id", "0"]
    main(argv)
    retrained = REINFORCE.load(tmp_path / "retrained" / "reinforce" / "Pendulum-v1_1" / "Pendulum-v1.zip", device="cpu")
    assert retrained.policy_kwargs["log_std_init"] == -0.5 and retrained.policy_kwargs["ortho_init"] is False
    assert retrained.policy_kwargs["net_arch"] == model.policy_kwargs["net_arch"]


def test_zoo_trial_normalizes_returns_with_its_own_gamma(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # rl_zoo3 reads VecNormalize's discount from the base entry (Pendulum: gamma 0.9) before a trial samples its own
    import rl_zoo3.exp_manager
    from stable_baselines3.common.vec_env import VecNormalize

    made: list[VecNormalize] = []

    class RecordedVecNormalize(VecNormalize):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(rl_zoo3.exp_manager, "VecNormalize", RecordedVecNormalize)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    argv = ["train", "--algo", "reinforce", "--env", "Pendulum-v1", "--seed", "0", "--num-threads", "1", "-n", "400"]
    argv += ["-f", str(tmp_path / "logs"), "--optimize", "--storage", storage, "--study-name", "pendulum"]
    argv += ["--n-trials", "2", "--n-evaluations", "1", "--eval-episodes", "1", "--no-optim-plots", "--sampler", "random"]
    main(argv)
    trials = optuna.load_study(study_name="pendulum", storage=storage).trials
    sampled = [trial.user_attrs[TRIAL_ATTR_GAMMA] for trial in trials]
    assert all(abs(gamma - 0.9) > 1e-6 for gamma in sampled)
    # The env rl_zoo3 builds before any trial (to read the action space), then per trial its training env and its
    # evaluation env (no reward normalization there)
    training_envs = [env for env in made if env.norm_reward]
    assert [env.gamma for env in training_envs] == pytest.approx([0.9, *sampled])
    assert load_hyperparams("reinforce", "Pendulum-v1")["gamma"] == 0.9


def zoo_entries_benchmark() -> Any:
    """The module ``benchmarks/zoo_entries.py`` (not a package: loaded from its file)."""
    return load_script("benchmarks/zoo_entries.py")


def test_zoo_entries_retrains_a_killed_run_in_its_own_folder(tmp_path: Path):
    # A run killed before saving leaves <env>_1 without a model: rl_zoo3 would train into <env>_2, and the
    # evaluation, which reads <env>_1, would fail on every rerun of the benchmark
    zoo_entries = zoo_entries_benchmark()
    killed = zoo_entries.run_dir(tmp_path, "reinforce", "CartPole-v1", 0)
    killed.mkdir(parents=True)
    (killed / "0.monitor.csv").write_text("killed\n")
    folder = zoo_entries.train("reinforce", "CartPole-v1", 0, 600, tmp_path, None)
    assert folder == killed and (folder / "CartPole-v1.zip").exists()
    assert not (folder.parent / "CartPole-v1_2").exists()
    assert not (folder / "0.monitor.csv").read_text().startswith("killed")
    # a finished run is reused as it is
    stamp = (folder / "CartPole-v1.zip").stat().st_mtime_ns
    assert zoo_entries.train("reinforce", "CartPole-v1", 0, 600, tmp_path, None) == folder
    assert (folder / "CartPole-v1.zip").stat().st_mtime_ns == stamp


def test_zoo_entries_names_the_log_of_a_failed_training(tmp_path: Path):
    zoo_entries = zoo_entries_benchmark()
    with pytest.raises(
        RuntimeError, match=r"reinforce seed 0 on CartPole-v1: training failed \(exit status 2\), see .*_train\.log"
    ):
        zoo_entries.train("reinforce", "CartPole-v1", 0, 600, tmp_path, str(tmp_path / "no-such-file.yml"))


def test_a_hostile_base_recorded_in_the_study_is_refused_before_training():
    # The sampler now reads the study's recorded policy_kwargs: a crafted study must not get a class past the check
    base = {"policy_kwargs": "dict(features_extractor_class=nn.ReLU)"}
    study = optuna.create_study()
    study.set_user_attr(STUDY_ATTR_HYPERPARAMS, base)
    trial = study.ask()
    with pytest.raises(ValueError, match=r"(?s)base entry of study .*features_extractor_class=.*BaseFeaturesExtractor"):
        sample_reinforce_params(trial)


def test_a_journal_in_a_new_folder_is_created_by_workers_and_read_back(tmp_path: Path):
    from sb3_reinforce.zoo.storage import optuna_storage

    path = str(tmp_path / "studies" / "j.log")
    study = optuna.create_study(study_name="s", storage=optuna_storage(path), direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    loaded = load_study(path, "s")
    assert [t.params for t in loaded.trials] == [t.params for t in study.trials]
    assert loaded.best_value == study.best_value
