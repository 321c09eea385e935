"""Tests of the Pong evaluation protocol (sb3_reinforce.pong.evaluation) and of the example's use of it."""

import json
import pathlib

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO

from sb3_reinforce import REINFORCE
from sb3_reinforce.compare import machine_description
from sb3_reinforce.hyperparams.building import EVAL_SEED_OFFSET
from sb3_reinforce.pong import PONG_EVAL_SEED_BASE, PongEvaluation, evaluate_pong, karpathy_pong, make_pong_vec_env
from sb3_reinforce.pong.evaluation import MAX_EVAL_GAMES, check_held_out, pong_evaluation_seeds, training_ale_seeds
from tests.scripts import load_script

ROOT = pathlib.Path(__file__).parents[1]
#: ALE seeds are below 2**31 - 1; PongVecEnv reduces a larger seed modulo it
MAX_ALE_SEED = 2**31 - 1
#: 400 emulator frames: 100 steps per game, for the tests of the machinery (a whole game is 764+ steps)
SHORT = dict(max_num_frames_per_episode=400)


@pytest.fixture(scope="module")
def model() -> REINFORCE:
    th.set_num_threads(1)
    return karpathy_pong(n_envs=2, seed=0)


class Recorder:
    """A model seen from outside: forwards ``predict`` (and what evaluate_pong reads) and records what it was shown."""

    def __init__(self, model: REINFORCE) -> None:
        self.model = model
        self.observation_space, self.action_space = model.observation_space, model.action_space
        self.seed, self.n_envs = model.seed, model.n_envs
        self.calls: list[tuple[bool, np.ndarray, np.ndarray]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        actions, state = self.model.predict(observation, state, episode_start, deterministic)
        self.calls.append((deterministic, observation.copy(), np.asarray(actions).copy()))
        return actions, state

    def games(self, deterministic: bool) -> tuple[np.ndarray, np.ndarray]:
        """Observations ``(steps, games, 6400)`` and actions ``(steps, games)`` of the greedy or stochastic games."""
        calls = [(obs, actions) for greedy, obs, actions in self.calls if greedy == deterministic]
        return np.stack([obs for obs, _ in calls]), np.stack([actions for _, actions in calls])


# ---------------------------------------------------------------------------------------------------------------------
# Seeds: held out from every training seed
# ---------------------------------------------------------------------------------------------------------------------


def test_evaluation_seeds_are_a_fixed_range_disjoint_from_the_projects_training_seeds():
    assert PONG_EVAL_SEED_BASE == 2**30
    assert pong_evaluation_seeds(10) == tuple(range(2**30, 2**30 + 10))
    assert pong_evaluation_seeds(MAX_EVAL_GAMES)[-1] < MAX_ALE_SEED  # all valid ALE seeds, none reduced
    evaluation = set(pong_evaluation_seeds(MAX_EVAL_GAMES))
    # compare (seeds 0..N-1), the zoo and the example (--seed, plus the example's resume offsets) with the zoo entry's
    # 16 games, and the evaluation envs during training (seed + EVAL_SEED_OFFSET)
    for seed in [*range(100), 10**6, *(s + EVAL_SEED_OFFSET for s in range(100))]:
        assert not training_ale_seeds(seed, 16) & evaluation
    # both ALE seeds of a training seed: PongVecEnv's (the seed) and gymnasium's AtariEnv's (a SeedSequence word)
    assert training_ale_seeds(1, 1) == {1, 1_731_038_949}


def test_the_wrapped_seed_really_replays_an_evaluation_game():
    # PongVecEnv reduces seeds modulo 2**31 - 1: this training seed plays the first evaluation game exactly
    actions = np.random.default_rng(0).integers(0, 2, size=(200, 1))
    games = []
    for seed in (PONG_EVAL_SEED_BASE, PONG_EVAL_SEED_BASE + MAX_ALE_SEED):
        env = make_pong_vec_env(n_envs=1, seed=seed)
        games.append(np.stack([env.reset()] + [env.step(a)[0] for a in actions]))
        env.close()
    np.testing.assert_array_equal(games[0], games[1])
    assert PONG_EVAL_SEED_BASE in training_ale_seeds(PONG_EVAL_SEED_BASE + MAX_ALE_SEED, 1)


@pytest.mark.parametrize(
    "training_seed, shown",
    [
        (PONG_EVAL_SEED_BASE, "training_seed=1073741824"),
        (PONG_EVAL_SEED_BASE + 9, "training_seed=1073741833"),  # the last of 10 games
        # the model has 2 envs: the second one got PONG_EVAL_SEED_BASE
        (PONG_EVAL_SEED_BASE - 1, "training_seed=1073741823"),
        (PONG_EVAL_SEED_BASE + MAX_ALE_SEED, "evaluation seeds \\[1073741824, 1073741825\\]"),  # reduced modulo 2**31 - 1
        (np.int64(PONG_EVAL_SEED_BASE + 3), "training_seed=np.int64"),
        ([0, 5, PONG_EVAL_SEED_BASE + 3], "training_seed=1073741827"),
        (range(PONG_EVAL_SEED_BASE - 4, PONG_EVAL_SEED_BASE + 2), "training_seed=1073741823 .* seeds \\[1073741824\\]"),
    ],
)
def test_a_training_seed_among_the_evaluation_seeds_is_refused(model, training_seed, shown):
    with pytest.raises(ValueError, match=shown) as error:
        evaluate_pong(model, training_seed=training_seed)
    assert "held-out seeds are 1073741824..1073741833" in str(error.value)


def test_training_seeds_next_to_the_evaluation_seeds_are_accepted(model):
    # refused, not shifted: only seeds whose games played an evaluation seed; the evaluation seeds stay the same
    for seed in (PONG_EVAL_SEED_BASE - 2, PONG_EVAL_SEED_BASE + 10):
        # the model's seed (0) and the given one, 2 envs each, in both seed schemes
        assert check_held_out(model, 10, training_seed=seed) == 8
    with pytest.raises(ValueError, match="training_seed=1073741834"):
        check_held_out(model, 11, training_seed=PONG_EVAL_SEED_BASE + 10)
    with pytest.raises(ValueError, match="training_seed=1073741834"):
        evaluate_pong(model, n_games=11, training_seed=PONG_EVAL_SEED_BASE + 10)


def test_the_models_own_seed_is_checked_even_after_save_and_load(tmp_path):
    careless = karpathy_pong(n_envs=1, seed=PONG_EVAL_SEED_BASE + 4)
    with pytest.raises(ValueError, match="the model's seed=1073741828"):
        evaluate_pong(careless)
    careless.save(tmp_path / "model.zip")
    loaded = REINFORCE.load(tmp_path / "model.zip", device="cpu")
    with pytest.raises(ValueError, match="the model's seed=1073741828"):
        evaluate_pong(loaded)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_games=5), ValueError, r"n_games=5 is not allowed: expected an integer in \[10, 100000\]"),
        (dict(n_games=9), ValueError, "n_games=9"),
        (dict(n_games=10.0), TypeError, "n_games=10.0"),
        (dict(n_games=MAX_EVAL_GAMES + 1), ValueError, "n_games=100001"),
        (dict(training_seed=-1), ValueError, "training_seed=-1"),
        (dict(training_seed="0"), TypeError, "training_seed='0'"),
        (dict(training_seed=True), TypeError, "training_seed=True"),
        (dict(training_seed=[1, 2.5]), TypeError, "training_seed=2.5"),
        (dict(repeat_action_probability=1.5), ValueError, "repeat_action_probability=1.5"),
        (dict(max_num_frames_per_episode=0), ValueError, "max_num_frames_per_episode=0"),
        (dict(observations="pixels"), ValueError, "observations='pixels' is not allowed: choose from karpathy, atari"),
        # a difference-frame agent is not one of the Atari pipeline
        (dict(observations="atari"), ValueError, r"observations='atari' needs an agent of AtariWrapper frames"),
    ],
)
def test_bad_arguments_are_refused_before_any_game(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        evaluate_pong(model, **kwargs)


def test_a_model_of_another_env_is_refused():
    cartpole = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64, device="cpu")
    with pytest.raises(ValueError, match=r"model must be an agent of KarpathyPong-v0 .* got PPO"):
        evaluate_pong(cartpole)


# ---------------------------------------------------------------------------------------------------------------------
# The games: seeds, sticky actions, greedy and stochastic
# ---------------------------------------------------------------------------------------------------------------------


def replay(seed: int, actions: np.ndarray) -> np.ndarray:
    """The first 100 observations of the game of ALE seed ``seed`` (sticky actions 0.25) under ``actions``."""
    env = make_pong_vec_env(n_envs=1, seed=seed, max_num_frames_per_episode=400)
    observations = np.stack([env.reset()] + [env.step(actions[step : step + 1])[0] for step in range(99)])
    env.close()
    return observations[:, 0]


def test_each_game_is_played_on_its_seed_with_sticky_actions_reproducibly(model):
    th.manual_seed(123)
    before = th.random.get_rng_state()
    recorder, again = Recorder(model), Recorder(model)
    result = evaluate_pong(recorder, **SHORT)
    assert result.repeat_action_probability == 0.25 and result.frameskip == 4
    assert result.n_games == 10 and result.seeds == tuple(range(PONG_EVAL_SEED_BASE, PONG_EVAL_SEED_BASE + 10))
    observations, actions = recorder.games(deterministic=True)
    assert observations.shape == (100, 10, 6400)
    # Greedy play starts with the same action in every game (all-zero first frames): only sticky actions, drawn
    # by each game's seed, make the 10 games differ
    assert len({observations[:, game].tobytes() for game in range(10)}) == 10
    # Game j is the game of the ALE seed PONG_EVAL_SEED_BASE + j with sticky actions 0.25: replayed from its actions
    for game in (0, 9):
        np.testing.assert_array_equal(replay(PONG_EVAL_SEED_BASE + game, actions[:, game]), observations[:, game])
    # the stochastic games too, on the same seeds (the emulators are reseeded)
    stochastic, stochastic_actions = recorder.games(deterministic=False)
    assert stochastic.shape == (100, 10, 6400)
    np.testing.assert_array_equal(replay(PONG_EVAL_SEED_BASE + 3, stochastic_actions[:, 3]), stochastic[:, 3])
    # the stochastic policy does sample: its actions are not the greedy ones
    assert not np.array_equal(actions, stochastic_actions)
    # 100 steps: every game was cut at the frame limit, and the result says so
    assert result.greedy_truncated == result.stochastic_truncated == 10
    assert result.greedy_lengths == result.stochastic_lengths == (100,) * 10
    assert "games cut at 400 frames before 21 points: 10 greedy, 10 stochastic" in result.format()

    # Reproducible (the stochastic policy's draws are seeded), and the caller's torch generator is left as it was
    assert th.equal(th.random.get_rng_state(), before)
    assert evaluate_pong(again, **SHORT) == result
    for deterministic in (True, False):
        np.testing.assert_array_equal(recorder.games(deterministic)[1], again.games(deterministic)[1])


def test_the_deterministic_emulator_gives_the_same_greedy_game_on_every_seed(model):
    # the counterpart of the test above: with repeat_action_probability=0.0 the seeds do not matter
    recorder = Recorder(model)
    result = evaluate_pong(recorder, repeat_action_probability=0.0, **SHORT)
    observations, _ = recorder.games(deterministic=True)
    assert len({observations[:, game].tobytes() for game in range(10)}) == 1
    assert result.repeat_action_probability == 0.0 and "sticky actions 0," in result.format()


def test_result_fields_format_and_json():
    result = PongEvaluation(
        greedy_mean=-20.5,
        greedy_std=0.5,
        stochastic_mean=-19.0,
        stochastic_std=1.0,
        greedy_scores=(-21.0, -20.0),
        stochastic_scores=(-20.0, -18.0),
        greedy_lengths=(800, 900),
        stochastic_lengths=(850, 950),
        n_games=2,
        seeds=(PONG_EVAL_SEED_BASE, PONG_EVAL_SEED_BASE + 1),
        repeat_action_probability=0.25,
        frameskip=4,
        max_num_frames_per_episode=108_000,
        greedy_truncated=0,
        stochastic_truncated=0,
        training_seeds_checked=4,
    )
    assert result.format() == (
        "Pong, 2 games per policy (held-out ALE seeds 1073741824..1073741825, sticky actions 0.25, frameskip 4): "
        "greedy -20.5 +- 0.5, stochastic -19.0 +- 1.0 (game score, mean +- std)"
    )
    assert (
        result.markdown_row("REINFORCE") == "| REINFORCE | -20.5 +- 0.5 | -19.0 +- 1.0 | 2 | 1073741824..1073741825 | 0.25 |"
    )
    assert PongEvaluation.MARKDOWN_HEADER.count("|") == 2 * result.markdown_row("x").count("|")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["seeds"] == [PONG_EVAL_SEED_BASE, PONG_EVAL_SEED_BASE + 1] and data["greedy_std"] == 0.5
    assert PongEvaluation(**{key: tuple(v) if isinstance(v, list) else v for key, v in data.items()}) == result


# ---------------------------------------------------------------------------------------------------------------------
# The example: sticky training, the protocol in its final report
# ---------------------------------------------------------------------------------------------------------------------


def load_example():
    return load_script("examples/pong_karpathy.py")


def test_example_refuses_fewer_than_10_evaluation_games_before_training(tmp_path):
    example = load_example()
    with pytest.raises(SystemExit, match=r"--eval-games=5 is not allowed: 0 .* or 10 to 100000 games"):
        example.main(["--run-dir", str(tmp_path / "run"), "--eval-games", "5"])
    assert not (tmp_path / "run").exists()


def test_example_trains_sticky_and_resumes_with_the_runs_setting(tmp_path):
    example = load_example()
    run_dir = tmp_path / "run"
    common = ["--run-dir", str(run_dir), "--n-envs", "2", "--n-episodes", "1", "--eval-games", "0", "--quiet"]
    common += ["--no-progress-bar", "--checkpoint-every", "1", "--timesteps", "3000"]
    model = example.main(common)
    assert model.get_env().get_attr("repeat_action_probability") == [0.25, 0.25]
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["repeat_action_probability"] == 0.25 and progress["training_seeds"] == [0]
    assert not (run_dir / "evaluation.json").exists()  # --eval-games 0
    # a resumed run keeps the run's sticky actions and may not change them
    with pytest.raises(SystemExit, match=r"--repeat-action-probability=0.0 is not allowed with --resume: .* 0.25"):
        example.main([*common, "--resume", "--repeat-action-probability", "0.0"])
    resumed = example.main([*common, "--resume", "--timesteps", "6000"])  # the run's budget: 3000 more steps
    assert resumed.get_env().get_attr("repeat_action_probability") == [0.25, 0.25]
    # the resumed games get new seeds (SB3's load would reseed them with the model's seed 0), recorded for evaluation
    episodes = progress["episode"]
    assert json.loads((run_dir / "progress.json").read_text())["training_seeds"] == [0, episodes]
    # the deterministic emulator on request
    deterministic = example.main(
        [*common, "--run-dir", str(tmp_path / "det"), "--timesteps", "200", "--repeat-action-probability", "0.0"]
    )
    assert deterministic.get_env().get_attr("repeat_action_probability") == [0.0, 0.0]


@pytest.mark.slow
def test_example_final_report_is_the_protocol_on_whole_games(tmp_path, capsys):
    # The whole protocol on an (almost) untrained model: 10 whole games per policy (764+ steps each), 20 games in all
    example = load_example()
    run_dir = tmp_path / "run"
    args = ["--run-dir", str(run_dir), "--n-envs", "2", "--timesteps", "64", "--quiet", "--no-progress-bar"]
    model = example.main(args)
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["timesteps"] == model.num_timesteps
    assert evaluation["machine"] == machine_description()
    fields = {k: v for k, v in evaluation.items() if k not in ("timesteps", "machine")}
    result = PongEvaluation(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    assert result.format() in capsys.readouterr().out
    assert result.n_games == 10 and result.seeds == pong_evaluation_seeds(10)
    assert result.repeat_action_probability == 0.25 and result.frameskip == 4 and result.max_num_frames_per_episode == 108_000
    # whole games: each ended at 21 points, none at the frame limit; an untrained agent loses them
    assert result.greedy_truncated == result.stochastic_truncated == 0
    for scores, lengths in (
        (result.greedy_scores, result.greedy_lengths),
        (result.stochastic_scores, result.stochastic_lengths),
    ):
        assert len(scores) == len(lengths) == 10
        assert all(-21 <= score < 0 for score in scores) and all(length >= 21 * 30 for length in lengths)
    assert result.greedy_mean == pytest.approx(np.mean(result.greedy_scores))
    assert result.greedy_std == pytest.approx(np.std(result.greedy_scores))
    assert result.stochastic_mean == pytest.approx(np.mean(result.stochastic_scores))
    assert result.stochastic_std == pytest.approx(np.std(result.stochastic_scores))
    # the model's seed (0) and the example's recorded seeds, 2 envs each, in both seed schemes
    assert result.training_seeds_checked == 4
