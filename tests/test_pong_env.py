"""Tests of the fast vectorized Pong (sb3_reinforce.pong) against the gymnasium wrapper chain and SB3's VecEnv API."""

import gc
import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import A2C
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor, is_vecenv_wrapped

from sb3_reinforce.pong.vec_env import PongVecEnv, make_pong_vec_env
from sb3_reinforce.pong.wrappers import DifferenceFrame, KarpathyPreprocess, PongUpDown, make_karpathy_pong_env
from tests.scripts import load_script

#: The ALE seed gymnasium's AtariEnv derives from reset(seed=1): numpy.random.SeedSequence(1).generate_state(2)[1]
GYM_SEED_1_ALE_SEED = 1_731_038_949


#: The deterministic emulator, for the tests of exact equality with the gymnasium chain whatever the seeds
DETERMINISTIC = dict(repeat_action_probability=0.0)


def make_reference(n_envs: int, **kwargs) -> DummyVecEnv:
    """The gymnasium chain (ALE/Pong-v5 + KarpathyPreprocess + DifferenceFrame + PongUpDown) + Monitor in a DummyVecEnv."""
    return DummyVecEnv([lambda: Monitor(make_karpathy_pong_env(**kwargs)) for _ in range(n_envs)])


def assert_same_step(fast, reference) -> None:
    obs, rewards, dones, infos = fast
    expected, expected_rewards, expected_dones, expected_infos = reference
    assert obs.dtype == np.int8 and obs.shape == expected.shape
    np.testing.assert_array_equal(obs, expected)
    np.testing.assert_array_equal(rewards, expected_rewards)
    np.testing.assert_array_equal(dones, expected_dones)
    for i, (info, expected_info) in enumerate(zip(infos, expected_infos, strict=True)):
        assert info["TimeLimit.truncated"] == expected_info["TimeLimit.truncated"]
        assert ("episode" in info) == ("episode" in expected_info) == bool(dones[i])
        if dones[i]:
            assert not obs[i].any()
            assert info["episode"]["r"] == expected_info["episode"]["r"]
            assert info["episode"]["l"] == expected_info["episode"]["l"]
            assert isinstance(info["episode"]["t"], float)
            terminal, expected_terminal = info["terminal_observation"], expected_info["terminal_observation"]
            assert terminal.dtype == np.int8 and terminal.shape == (6400,)
            # ale-py 0.12.1's vector env does not refresh the screen on the last step of an episode: the
            # terminal difference frame is then all zeros (documented in PongVecEnv)
            assert np.array_equal(terminal, expected_terminal) or not terminal.any()


def test_same_observations_as_gym_chain_over_full_episodes():
    n_envs = 2
    fast = make_pong_vec_env(n_envs=n_envs, seed=0, **DETERMINISTIC)
    reference = make_reference(n_envs, **DETERMINISTIC)
    reference.seed(0)
    assert isinstance(fast, VecEnv)
    assert fast.observation_space == reference.observation_space == gym.spaces.Box(-1, 1, (6400,), np.int8)
    assert fast.action_space == reference.action_space == gym.spaces.Discrete(2)
    np.testing.assert_array_equal(fast.reset(), reference.reset())

    rng = np.random.default_rng(0)
    episodes = np.zeros(n_envs, dtype=int)
    moving = 0
    returns: list[list[float]] = [[] for _ in range(n_envs)]
    lengths: list[list[int]] = [[] for _ in range(n_envs)]
    for _ in range(1400):
        actions = rng.integers(0, 2, size=n_envs)
        step = fast.step(actions)
        assert_same_step(step, reference.step(actions))
        episodes += step[2]
        moving += int(step[0].any())
        for i in np.flatnonzero(step[2]):
            returns[i].append(float(step[3][i]["episode"]["r"]))
            lengths[i].append(int(step[3][i]["episode"]["l"]))
        if episodes.min() >= 1:
            break
    # every env played a whole game (21 points) and was auto-reset
    assert episodes.min() >= 1
    assert moving > 500
    assert all(len(r) >= 1 and -21 <= r[0] < 0 for r in returns)
    assert lengths == reference.env_method("get_episode_lengths")
    fast.close()
    reference.close()


def test_truncation_and_autoreset():
    # 60 emulator frames: 15 steps per episode at frameskip 4
    n_envs = 3
    fast = make_pong_vec_env(n_envs=n_envs, max_num_frames_per_episode=60, **DETERMINISTIC)
    reference = make_reference(n_envs, max_num_frames_per_episode=60, **DETERMINISTIC)
    np.testing.assert_array_equal(fast.reset(), reference.reset())
    rng = np.random.default_rng(1)
    n_truncated = 0
    for _ in range(40):
        actions = rng.integers(0, 2, size=n_envs)
        step = fast.step(actions)
        assert_same_step(step, reference.step(actions))
        n_truncated += sum(info["TimeLimit.truncated"] for info in step[3])
    assert n_truncated == 2 * n_envs
    fast.close()


def test_seeding_with_sticky_actions():
    def rollout(env: VecEnv, seed: int) -> np.ndarray:
        env.seed(seed)
        observations = [env.reset()]
        actions = np.random.default_rng(0).integers(0, 2, size=(150, env.num_envs))
        observations += [env.step(a)[0] for a in actions]
        return np.stack(observations)

    env = make_pong_vec_env(n_envs=2, repeat_action_probability=0.25)
    assert env.seed(3) == [3, 4]
    first = rollout(env, 3)
    np.testing.assert_array_equal(first, rollout(env, 3))
    assert not np.array_equal(first, rollout(env, 4))
    # the seed argument of the factory is used at the first reset
    other = make_pong_vec_env(n_envs=2, repeat_action_probability=0.25, seed=3)
    observations = [other.reset()] + [other.step(a)[0] for a in np.random.default_rng(0).integers(0, 2, size=(150, 2))]
    np.testing.assert_array_equal(first, np.stack(observations))
    env.close()
    other.close()


class RandomAgent:
    """Minimal object with SB3's ``predict`` signature."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return self.rng.integers(0, 2, size=len(observation)), None


def test_evaluate_policy_uses_episode_statistics():
    env = make_pong_vec_env(n_envs=2, max_num_frames_per_episode=200)
    # SB3's VecMonitor gives the statistics; no sub-environment pretends to be wrapped in a Monitor
    assert is_vecenv_wrapped(env, VecMonitor) and env.env_is_wrapped(Monitor) == [False, False]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not wrapped with a Monitor" warning
        returns, lengths = evaluate_policy(RandomAgent(), env, n_eval_episodes=4, return_episode_rewards=True)
    assert len(returns) == 4 and lengths == [50, 50, 50, 50]
    assert all(-5 <= r <= 5 for r in returns)
    env.close()


def test_sb3_training_logs_episodes():
    env = make_pong_vec_env(n_envs=2, max_num_frames_per_episode=80, seed=0)
    model = A2C("MlpPolicy", env, n_steps=5, policy_kwargs=dict(net_arch=[8]), seed=0)
    model.learn(100)
    assert len(model.ep_info_buffer) >= 4
    assert all(info["l"] == 20 for info in model.ep_info_buffer)
    env.close()


def test_vec_env_api():
    env = make_pong_vec_env(n_envs=3)
    assert env.num_envs == 3 and env.render_mode is None
    assert env.get_attr("frameskip") == [4, 4, 4]
    assert env.get_attr("repeat_action_probability", indices=[1]) == [0.25]  # sticky actions by default
    assert env.get_attr("action_space")[0] == gym.spaces.Discrete(2)
    assert env.has_attr("max_num_frames_per_episode") and not env.has_attr("no_such_attribute")
    env.set_attr("note", "hello", indices=[0, 2])
    assert env.get_attr("note", indices=[0, 2]) == ["hello", "hello"]
    with pytest.raises(AttributeError, match="fixed"):
        env.set_attr("frameskip", 2)
    with pytest.raises(AttributeError, match="no attribute"):
        env.get_attr("note")
    assert env.env_method("get_action_meanings", indices=0) == [["UP", "DOWN"]]
    with pytest.raises(AttributeError, match="no method"):
        env.env_method("render")
    for wrapper in (KarpathyPreprocess, DifferenceFrame, PongUpDown, gym.Wrapper):
        assert env.env_is_wrapped(wrapper) == [True, True, True]
    for wrapper in (Monitor, gym.wrappers.TimeLimit):
        assert env.env_is_wrapped(wrapper) == [False, False, False]

    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, dtype=int))
    env.reset()
    obs, rewards, dones, infos = env.step(np.array([0, 1, 0]))
    assert obs.shape == (3, 6400) and rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 3
    assert env.episode_lengths.tolist() == [1, 1, 1]  # VecMonitor's running episode lengths
    with pytest.raises(AttributeError, match=r"no method 'get_episode_rewards'.*infos\[i\]\['episode'\].*VecMonitor"):
        env.env_method("get_episode_rewards")
    with pytest.raises(ValueError, match="actions"):
        env.step(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="actions"):
        env.step(np.array([0, 1]))
    env.close()
    env.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(3, dtype=int))


def test_karpathy_original_settings():
    env = make_pong_vec_env(n_envs=1, karpathy_original=True)
    assert env.get_attr("frameskip") == [3] and env.get_attr("repeat_action_probability") == [0.25]
    env.close()
    env = make_pong_vec_env(n_envs=1, karpathy_original=True, frameskip=2, repeat_action_probability=0.0)
    assert env.get_attr("frameskip") == [2] and env.get_attr("repeat_action_probability") == [0.0]
    env.close()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_envs=0), ValueError, "n_envs"),
        (dict(n_envs=2.0), TypeError, "n_envs"),
        (dict(frameskip=0), ValueError, "frameskip"),
        (dict(frameskip=(2, 5)), TypeError, "frameskip"),
        (dict(repeat_action_probability=-0.1), ValueError, "repeat_action_probability"),
        (dict(repeat_action_probability="0.25"), TypeError, "repeat_action_probability"),
        (dict(max_num_frames_per_episode=0), ValueError, "max_num_frames_per_episode"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(karpathy_original="yes"), TypeError, "karpathy_original"),
        (dict(num_threads=-1), ValueError, "num_threads"),
        # VecMonitor would raise a KeyError only when the first episode ends
        (dict(info_keywords=("is_success",)), ValueError, "info_keywords"),
        (dict(info_keywords="TimeLimit.truncated"), ValueError, "info_keywords"),
    ],
)
def test_factory_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_pong_vec_env(**kwargs)


def test_vec_monitor_episode_return_is_the_sum_of_a_full_games_rewards():
    n_envs = 2
    env = make_pong_vec_env(n_envs=n_envs, seed=0)
    assert is_vecenv_wrapped(env, VecMonitor)  # the statistics are SB3's VecMonitor's
    env.reset()
    rng = np.random.default_rng(2)
    totals, lengths, points = np.zeros(n_envs), np.zeros(n_envs, dtype=int), np.zeros((n_envs, 2), dtype=int)
    finished: dict[int, tuple] = {}
    for _ in range(3000):
        _, rewards, dones, infos = env.step(rng.integers(0, 2, size=n_envs))
        totals += rewards
        lengths += 1
        points += np.stack([rewards > 0, rewards < 0], axis=1)
        for i in np.flatnonzero(dones).tolist():
            finished.setdefault(i, (infos[i], totals[i], lengths[i], tuple(points[i])))
            totals[i], lengths[i], points[i] = 0.0, 0, 0
        if len(finished) == n_envs:
            break
    assert sorted(finished) == list(range(n_envs))
    for info, total, length, (won, lost) in finished.values():
        # a whole game: one side scored 21 points, no truncation
        assert max(won, lost) == 21 and not info["TimeLimit.truncated"]
        assert info["episode"]["r"] == total == won - lost
        assert info["episode"]["l"] == length > 21
    env.close()


def test_pong_vec_env_leaves_episode_statistics_to_vec_monitor():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "already wrapped with a `Monitor`" warning from VecMonitor
        env = make_pong_vec_env(n_envs=2, max_num_frames_per_episode=40)
    inner = env.venv
    assert isinstance(env, VecMonitor) and isinstance(inner, PongVecEnv) and not isinstance(inner, VecMonitor)
    inner.reset()
    for _ in range(10):
        _, _, dones, infos = inner.step(np.array([0, 1]))
    # the episodes end, PongVecEnv itself writes no statistics
    assert dones.all() and not any("episode" in info for info in infos)
    env.close()


def test_monitor_file_holds_the_episode_statistics(tmp_path):
    from stable_baselines3.common.monitor import load_results

    from sb3_reinforce.hyperparams.building import make_zoo_vec_env
    from sb3_reinforce.pong.registration import KARPATHY_PONG_ID

    env = make_zoo_vec_env(
        KARPATHY_PONG_ID,
        n_envs=2,
        seed=0,
        env_kwargs=dict(max_num_frames_per_episode=40),
        monitor_dir=str(tmp_path),
        monitor_kwargs=dict(info_keywords=("TimeLimit.truncated",)),
    )
    env.reset()
    episodes = []
    for _ in range(25):
        _, _, dones, infos = env.step(np.array([0, 1]))
        episodes += [infos[i]["episode"] for i in np.flatnonzero(dones)]
    env.close()
    # 40 emulator frames: 10 steps per episode, two episodes per env, each one row of the file
    results = load_results(str(tmp_path))
    assert len(episodes) == len(results) == 4
    assert results["l"].tolist() == [episode["l"] for episode in episodes] == [10] * 4
    assert results["r"].tolist() == [episode["r"] for episode in episodes]
    assert results["TimeLimit.truncated"].tolist() == [True] * 4


def test_benchmark_helpers():
    module = load_script("benchmarks/karpathy_reference.py")
    assert module.run_reference(300) > 0
    assert module.raw_vector_env_throughput(2, 20) > 0
    assert module.pong_vec_env_throughput(2, 20) > 0
    raw, fast = module.interleaved_vector_throughputs(2, 10, chunk=5)
    assert raw > 0 and fast > 0


def _os_threads() -> int:
    """Threads of this process now, once the emulators no longer referenced are gone (their threads end with them)."""
    gc.collect()
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts the process's threads in /proc (Linux)")
def test_the_emulator_thread_count_reaches_the_emulator():
    """
    benchmarks' --emulator-threads: the raw env and karpathy_pong's env (through env_kwargs) start that many emulator
    threads; ale-py starts no more than there are cores (so on 2 cores 2, 3 or 16 are one setting), 0 is all cores.
    """
    from sb3_reinforce.pong.karpathy import karpathy_pong

    module = load_script("benchmarks/karpathy_reference.py")
    cores = os.cpu_count() or 1
    if cores > 8:
        pytest.skip("needs more Pong emulators than cores: kept to small machines")
    for num_threads, expected in ((1, 1), (2, min(2, cores)), (cores + 1, cores), (0, cores)):
        before = _os_threads()
        raw = module._make_raw_vector_env(cores + 2, num_threads=num_threads)
        assert _os_threads() - before == expected
        raw.close()
        del raw
    # PongVecEnv passes the value to the same ale-py constructor: one explicit setting and the default show it arrives
    for num_threads, expected in ((1, 1), (0, cores)):
        before = _os_threads()
        model = karpathy_pong(n_envs=cores + 2, seed=0, env_kwargs=dict(num_threads=num_threads))
        assert _os_threads() - before == expected and model.get_env().unwrapped.num_threads == num_threads
        model.get_env().close()
        del model


def test_registered_id_and_zoo_factory(tmp_path):
    import sb3_reinforce  # noqa: F401 - registers KarpathyPong-v0
    from sb3_reinforce.hyperparams.building import make_zoo_vec_env
    from sb3_reinforce.pong.registration import KARPATHY_PONG_ID

    single = gym.make(KARPATHY_PONG_ID)
    # gymnasium's AtariEnv seeds its ALE with a SeedSequence word of the seed, PongVecEnv with the seed itself
    fast = make_zoo_vec_env(KARPATHY_PONG_ID, n_envs=2, seed=GYM_SEED_1_ALE_SEED)
    assert isinstance(fast, VecMonitor) and isinstance(fast.venv, PongVecEnv)
    assert single.observation_space == fast.observation_space and single.action_space == fast.action_space
    # The single env and the vector env play the same game for the same actions, sticky actions included
    obs, _ = single.reset(seed=1)
    vec_obs = fast.reset()
    np.testing.assert_array_equal(obs, vec_obs[0])
    for step in range(120):
        action = step // 7 % 2
        obs, reward, *_ = single.step(action)
        vec_obs, vec_rewards, _, _ = fast.step(np.array([action, action]))
        np.testing.assert_array_equal(obs, vec_obs[0])
        assert reward == vec_rewards[0]
    single.close()
    fast.close()

    logged = make_zoo_vec_env(KARPATHY_PONG_ID, n_envs=1, seed=0, monitor_dir=str(tmp_path))
    assert isinstance(logged, VecMonitor) and (tmp_path / "0.monitor.csv").is_file()
    assert isinstance(logged.venv, PongVecEnv)  # one VecMonitor, not one around another
    logged.close()
    with pytest.raises(ValueError, match="env_wrapper cannot be used with KarpathyPong-v0"):
        make_zoo_vec_env(KARPATHY_PONG_ID, n_envs=1, wrapper_class=PongUpDown)
    assert not isinstance(make_zoo_vec_env("CartPole-v1", n_envs=1).unwrapped, PongVecEnv)


# ---------------------------------------------------------------------------------------------------------------------
# Sticky actions (repeat_action_probability=0.25, ALE/Pong-v5) by default, at every entry point, down to the emulator
# ---------------------------------------------------------------------------------------------------------------------

#: Actions that change often: a sticky action only shows when the chosen action differs from the previous one
SHARED_ACTIONS = np.random.default_rng(5).integers(0, 2, size=300)


def same_actions_games_differ(env: VecEnv) -> bool:
    """Whether the games of a VecEnv (seeded with different seeds) differ when every game gets the same actions."""
    observations = [env.reset()]
    observations += [env.step(np.full(env.num_envs, action))[0] for action in SHARED_ACTIONS]
    frames = np.stack(observations)  # (steps, envs, 6400)
    return any(not np.array_equal(frames[:, 0], frames[:, i]) for i in range(1, env.num_envs))


def single_env_games_differ(make, seeds=(0, 1)) -> bool:
    """Whether two gymnasium envs reset with different seeds differ under the same actions."""
    games = []
    for seed in seeds:
        env = make()
        frames = [env.reset(seed=seed)[0]] + [env.step(int(action))[0] for action in SHARED_ACTIONS]
        games.append(np.stack(frames))
        env.close()
    return not np.array_equal(games[0], games[1])


@pytest.mark.parametrize("entry_point", ["gym.make", "make_karpathy_pong_env"])
def test_single_env_entry_points_are_sticky_by_default(entry_point):
    import sb3_reinforce  # noqa: F401 - registers KarpathyPong-v0
    from sb3_reinforce.pong.registration import KARPATHY_PONG_ID

    def make(**kwargs):
        return gym.make(KARPATHY_PONG_ID, **kwargs) if entry_point == "gym.make" else make_karpathy_pong_env(**kwargs)

    env = make()
    # the ALE's own setting, read back from the emulator
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    if entry_point == "gym.make":
        assert env.spec.kwargs["repeat_action_probability"] == 0.25
    env.close()
    # it acts: the seed draws the sticky actions, so the same actions give different games
    assert single_env_games_differ(make)
    deterministic = make(repeat_action_probability=0.0)
    assert deterministic.unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    deterministic.close()
    assert not single_env_games_differ(lambda: make(repeat_action_probability=0.0))


def test_vector_env_emulator_is_the_ale_with_sticky_actions_025():
    # AtariVectorEnv has no getter for its settings: play the same game on a gymnasium ALE whose setting reads back
    # 0.25 and whose ALE seed is the vector env's; the games are identical only if the vector env's sticky actions
    # are that ALE's (with 0.0 the vector env's game leaves it)
    def same_game(fast: VecEnv) -> bool:
        single = make_karpathy_pong_env()
        assert single.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
        np.testing.assert_array_equal(single.reset(seed=1)[0], fast.reset()[0])
        same = True
        for action in SHARED_ACTIONS:
            same = same and np.array_equal(single.step(int(action))[0], fast.step(np.array([action]))[0][0])
        single.close()
        fast.close()
        return same

    assert same_game(make_pong_vec_env(n_envs=1, seed=GYM_SEED_1_ALE_SEED))
    assert not same_game(make_pong_vec_env(n_envs=1, seed=GYM_SEED_1_ALE_SEED, repeat_action_probability=0.0))


def test_make_pong_vec_env_is_sticky_by_default():
    env = make_pong_vec_env(n_envs=2, seed=0)
    assert env.get_attr("repeat_action_probability") == [0.25, 0.25]
    assert same_actions_games_differ(env)
    env.close()
    env = make_pong_vec_env(n_envs=2, seed=0, repeat_action_probability=0.0)
    assert env.get_attr("repeat_action_probability") == [0.0, 0.0]
    assert not same_actions_games_differ(env)  # the deterministic emulator: the seed does not matter
    env.close()
    # karpathy_original changes the frameskip, not the sticky actions
    env = make_pong_vec_env(n_envs=2, seed=0, karpathy_original=True)
    assert env.get_attr("repeat_action_probability") == [0.25, 0.25] and same_actions_games_differ(env)
    env.close()
    # PongVecEnv itself too
    raw = PongVecEnv(n_envs=2)
    assert raw.get_attr("repeat_action_probability") == [0.25, 0.25]
    raw.seed(0)
    assert same_actions_games_differ(raw)
    raw.close()


def test_zoo_entry_and_zoo_envs_are_sticky(tmp_path):
    import argparse

    from sb3_reinforce.hyperparams import load_hyperparams
    from sb3_reinforce.pong.registration import KARPATHY_PONG_ID
    from sb3_reinforce.zoo import ReinforceExperimentManager

    entry = load_hyperparams("reinforce", KARPATHY_PONG_ID)
    assert entry["env_kwargs"] == {"repeat_action_probability": 0.25}
    # the zoo's own ExperimentManager with the packaged file; the CLI's --env-kwargs replaces the entry's env_kwargs
    # (rl_zoo3), so an --env-kwargs without it must still get the sticky default
    for env_kwargs in (None, {"frameskip": 4}):
        logs = str(tmp_path / "logs")
        manager = ReinforceExperimentManager(
            argparse.Namespace(), "reinforce", KARPATHY_PONG_ID, logs, seed=0, verbose=0, env_kwargs=env_kwargs
        )
        hyperparams, _ = manager.read_hyperparameters()
        _, manager.env_wrapper, _, manager.vec_env_wrapper = manager._preprocess_hyperparams(hyperparams)
        for env in (manager.create_envs(2, no_log=True), manager.create_envs(2, eval_env=True)):
            assert isinstance(env.unwrapped, PongVecEnv)
            assert env.get_attr("repeat_action_probability") == [0.25, 0.25]
            assert same_actions_games_differ(env)
            env.close()


def test_karpathy_pong_is_sticky_by_default():
    import torch as th

    from sb3_reinforce.pong.karpathy import karpathy_pong

    th.set_num_threads(1)
    model = karpathy_pong(n_envs=2, seed=0)
    assert model.get_env().get_attr("repeat_action_probability") == [0.25, 0.25]
    assert same_actions_games_differ(model.get_env())
    deterministic = karpathy_pong(n_envs=2, seed=0, env_kwargs=dict(repeat_action_probability=0.0))
    assert deterministic.get_env().get_attr("repeat_action_probability") == [0.0, 0.0]
    assert not same_actions_games_differ(deterministic.get_env())
