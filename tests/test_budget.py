"""``learn(total_timesteps)`` is a budget, as SB3's ``while num_timesteps < total_timesteps``: collection stops at it
(at most ``n_envs - 1`` steps past, the rest of the last vector step), episodes still running are continued whole by
the next ``learn(..., reset_num_timesteps=False)``, and the default ``log_interval`` writes tables at a fixed rate in
timesteps whatever the number of updates."""

from typing import Any

import numpy as np
import pytest
import torch as th
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ProgressBarCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor

from sb3_reinforce import REINFORCE

th.set_num_threads(1)

MODES = [{"n_steps": 16}, {"n_episodes": 3}]
MODE_IDS = ["n_steps=16", "n_episodes=3"]


class CountSteps(BaseCallback):
    """Counts ``on_step`` calls (one per vector step) and the progress bar's view of the budget."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _on_step(self) -> bool:
        self.calls += 1
        return True


def cartpole(n_envs: int, **kwargs: Any) -> REINFORCE:
    # make_vec_env: a DummyVecEnv of Monitor-wrapped CartPoles
    return REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs, seed=0), seed=0, device="cpu", **kwargs)


def record_trained_lengths(model: REINFORCE) -> list[int]:
    """Lengths of every episode the model takes out of its buffer to train on (the list fills as it trains)."""
    lengths: list[int] = []
    pop = model.rollout_buffer.pop_episodes

    def recording(n_episodes: int | None = None):
        batch = pop(n_episodes)
        lengths.extend(batch.episode_lengths.tolist())
        return batch

    model.rollout_buffer.pop_episodes = recording  # type: ignore[method-assign]
    return lengths


def monitors(model: REINFORCE) -> list[Monitor]:
    return list(model.env.envs)  # type: ignore[union-attr]


def count_dumps(model: REINFORCE) -> list[int]:
    """Install a silent logger whose ``dump`` calls are recorded (the timestep of each)."""
    logger = Logger(folder=None, output_formats=[])
    dumps: list[int] = []
    dump = logger.dump

    def recording(step: int = 0) -> None:
        dumps.append(step)
        dump(step)

    logger.dump = recording  # type: ignore[method-assign]
    model.set_logger(logger)
    return dumps


@pytest.mark.filterwarnings("ignore::tqdm.TqdmExperimentalWarning")
@pytest.mark.parametrize("n_envs", [1, 8])
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_learn_stops_at_the_budget_and_so_does_the_progress_bar(mode: dict[str, int], n_envs: int) -> None:
    """301 is no multiple of 8, nor of a batch (16 steps x n_envs, or 3 episodes): the run used to go on to the end of
    the batch (384 steps with 8 envs and n_steps=16)."""
    model = cartpole(n_envs, **mode)
    counter, bar = CountSteps(), ProgressBarCallback()
    model.learn(301, callback=CallbackList([counter, bar]))
    assert 301 <= model.num_timesteps < 301 + n_envs
    assert counter.calls * n_envs == model.num_timesteps
    assert bar.pbar.total == 301 and 301 <= bar.pbar.n < 301 + n_envs
    start, counter = model.num_timesteps, CountSteps()
    model.learn(150, callback=counter, reset_num_timesteps=False)
    assert start + 150 <= model.num_timesteps < start + 150 + n_envs
    assert counter.calls * n_envs == model.num_timesteps - start
    # A new count restarts the budget
    model.learn(40, reset_num_timesteps=True)
    assert 40 <= model.num_timesteps < 40 + n_envs


@pytest.mark.parametrize("n_envs", [1, 8])
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_an_episode_running_at_the_budget_is_continued_and_trained_whole(mode: dict[str, int], n_envs: int) -> None:
    """Every episode trained on has the length the Monitor saw it played, the ones spanning two learn calls included:
    a budget that dropped, cut or restarted the running episodes would break this."""
    model = cartpole(n_envs, **mode)
    trained = record_trained_lengths(model)
    model.learn(203)
    running = model.rollout_buffer.incomplete_lengths()
    # The envs stop mid-episode and the buffer holds exactly the steps each Monitor has seen of it
    np.testing.assert_array_equal(running, [len(monitor.rewards) for monitor in monitors(model)])
    assert running.any()
    n_before = sum(len(monitor.get_episode_lengths()) for monitor in monitors(model))
    model.learn(300, reset_num_timesteps=False)
    # The episodes running at the end of the first call ended in the second one
    played = [monitor.get_episode_lengths() for monitor in monitors(model)]
    assert all(len(lengths) > 0 for lengths in played)
    assert sum(len(lengths) for lengths in played) > n_before
    np.testing.assert_array_equal(
        model.rollout_buffer.incomplete_lengths(), [len(monitor.rewards) for monitor in monitors(model)]
    )
    # What is left complete in the buffer (n_episodes: episodes beyond the last batch) is trained on next
    model.rollout_buffer.pop_episodes()
    assert sorted(trained) == sorted(length for lengths in played for length in lengths)
    assert sum(trained) + int(model.rollout_buffer.incomplete_lengths().sum()) == model.num_timesteps


def test_a_budget_reached_before_any_episode_ends_makes_no_update() -> None:
    model = cartpole(1, n_episodes=2)
    weights = [param.detach().clone() for param in model.policy.parameters()]
    model.learn(5)  # a CartPole episode lasts at least 8 steps
    assert model.num_timesteps == 5 and model._n_updates == 0
    assert all(th.equal(a, b) for a, b in zip(weights, model.policy.parameters(), strict=True))
    assert model.rollout_buffer.incomplete_lengths().tolist() == [5]
    trained = record_trained_lengths(model)
    model.learn(400, reset_num_timesteps=False)
    assert model.num_timesteps == 405 and model._n_updates > 0
    # The first episode's first 5 steps, from the first call, were not lost
    assert trained[0] == monitors(model)[0].get_episode_lengths()[0]


def pendulum(n_envs: int = 1) -> REINFORCE:
    # The zoo's Pendulum setting: one 200-step episode per update
    env = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=0)
    return REINFORCE("MlpPolicy", env, n_episodes=n_envs, seed=0, device="cpu", policy_kwargs={"net_arch": [16]})


def test_default_log_interval_writes_a_table_every_2048_steps_per_env_whatever_the_updates() -> None:
    """30 updates of 200 steps: SB3's log_interval=1 wrote 30 tables (5,000 on the zoo's 1e6-step Pendulum run)."""
    model = pendulum()
    dumps = count_dumps(model)
    model.learn(6000)
    assert model._n_updates == 30
    # The first update past 2048 and 4096 timesteps, then the last one
    assert dumps == [2200, 4200, 6000]
    # Continued: multiples of 2048 counted from 0, not from the start of the call (6144 and 8192 here)
    dumps.clear()
    model.learn(2200, reset_num_timesteps=False)
    assert dumps == [6200, 8200]
    # 4 envs, one episode each per update: a table every 2048 * 4 timesteps
    model = pendulum(n_envs=4)
    dumps = count_dumps(model)
    model.learn(10_000)
    assert dumps == [8800, 10_000]


@pytest.mark.parametrize(("log_interval", "expected"), [(1, 20), (7, 2), (None, 0)])
def test_an_explicit_log_interval_counts_iterations_as_in_sb3(log_interval: int | None, expected: int) -> None:
    model = pendulum()
    dumps = count_dumps(model)
    model.learn(4000, log_interval=log_interval)
    assert len(dumps) == expected


@pytest.mark.parametrize(("zoo_log_interval", "expected"), [(-1, [2200, 4000]), (-2, []), (5, [1000, 2000, 3000, 4000])])
def test_rl_zoo_log_interval_reaches_learn(zoo_log_interval: int, expected: list[int]) -> None:
    """rl_zoo3's ``--log-interval``: -1 (its default) leaves learn()'s default, -2 none, N every N iterations."""
    manager = ExperimentManager.__new__(ExperimentManager)
    # The attributes ExperimentManager.learn reads (its constructor parses a whole zoo command line)
    manager.__dict__.update(log_interval=zoo_log_interval, callbacks=[], algo="reinforce", n_envs=1, n_timesteps=4000)
    model = pendulum()
    dumps = count_dumps(model)
    manager.learn(model)
    assert model.num_timesteps == 4000 and dumps == expected


@pytest.mark.parametrize("log_interval", [0, -2, 1.5, True, "10"])
def test_bad_log_interval_is_refused_before_any_step(log_interval: Any) -> None:
    model = cartpole(1)
    with pytest.raises(ValueError, match=r"log_interval must be an integer >= 1.*-1.*None"):
        model.learn(100, log_interval=log_interval)
    assert model.num_timesteps == 0
