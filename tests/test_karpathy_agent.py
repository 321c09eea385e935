"""Karpathy's Pong agent: architecture, initialization, optimizer, packed storage, training, save/load, example."""

import json
import os
import pathlib
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from rl_zoo3.utils import SimpleLinearSchedule

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.buffers import (
    EpisodeRolloutBuffer,
    PackedTernaryObservations,
    SparseTernaryRolloutBuffer,
    TernaryPackedRolloutBuffer,
    pack_ternary,
    unpack_ternary,
)
from sb3_reinforce.hyperparams import load_hyperparams
from sb3_reinforce.pong.karpathy import KARPATHY_HYPERPARAMS, KarpathyPolicy, SparseInputLinear, karpathy_pong
from sb3_reinforce.pong.vec_env import make_pong_vec_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
OBS_SPACE = spaces.Box(-1, 1, (6400,), np.int8)


def _policy(n_actions: int = 2, single_logit: bool = True) -> KarpathyPolicy:
    return KarpathyPolicy(OBS_SPACE, spaces.Discrete(n_actions), lambda _: 1e-3, single_logit=single_logit)


@pytest.mark.parametrize("n_actions, single_logit, n_out", [(2, True, 1), (2, False, 2), (3, True, 3)])
def test_architecture(n_actions: int, single_logit: bool, n_out: int) -> None:
    policy = _policy(n_actions, single_logit)
    params = dict(policy.named_parameters())
    assert sum(p.numel() for p in params.values()) == 6400 * 200 + 200 * n_out
    assert not any("bias" in name for name in params)
    assert not any(isinstance(m, th.nn.Linear) and m.bias is not None for m in policy.modules())
    assert policy.value_net is None


def test_single_logit_is_sigmoid() -> None:
    policy = _policy()
    obs = th.as_tensor(np.random.default_rng(0).integers(-1, 2, (5, 6400)), dtype=th.int8)
    with th.no_grad():
        hidden = th.relu(obs.float() @ policy.mlp_extractor.policy_net[0].weight)
        logit = hidden @ policy.action_net.linear.weight.T
        probs = policy.get_distribution(obs).distribution.probs
    assert th.allclose(probs[:, 0], th.sigmoid(logit[:, 0]), atol=1e-6)


def test_fast_act_matches_distribution() -> None:
    th.manual_seed(0)
    policy = _policy()
    with th.no_grad():
        policy.action_net.linear.weight.mul_(30)  # spread the probabilities
        obs = th.as_tensor(np.random.default_rng(0).integers(-1, 2, (4000, 6400)), dtype=th.int8)
        actions, log_prob = policy.act(obs)
        distribution = policy.get_distribution(obs)
        # The same bits as the distribution the update evaluates: a fresh step's importance ratio is exactly 1
        assert th.equal(log_prob, distribution.log_prob(actions))
        p_first = distribution.distribution.probs[:, 0]
        # Empirical frequency of action 0 matches the mean probability (binomial standard error ~ 0.008)
        assert abs((actions == 0).float().mean().item() - p_first.mean().item()) < 0.04
        greedy, _ = policy.act(obs, deterministic=True)
        assert th.equal(greedy, distribution.get_actions(deterministic=True))


_CAPABILITY_SCRIPT = """
import hashlib, numpy as np, torch as th
from gymnasium import spaces
from sb3_reinforce.pong.karpathy import KarpathyPolicy
th.set_num_threads(1)
rng = np.random.default_rng(0)
policy = KarpathyPolicy(spaces.Box(-1, 1, (6400,), np.int8), spaces.Discrete(2), lambda _: 1e-3)
with th.no_grad():  # weights from numpy: torch's own normal_ kernel differs between CPU capabilities
    for p in policy.parameters():
        p.copy_(th.as_tensor(rng.normal(0, 3 / np.sqrt(p.shape[0]), p.shape), dtype=th.float32))
    obs = th.as_tensor(np.where(rng.random((2048, 6400)) < 0.004, rng.choice([-1, 1], (2048, 6400)), 0), dtype=th.int8)
    th.manual_seed(0)
    actions, log_prob = policy.act(obs)
print(th.backends.cpu.get_cpu_capability(), hashlib.sha256(actions.numpy().tobytes() + log_prob.numpy().tobytes()).hexdigest())
"""


def _cpu_capabilities() -> list[str]:
    """The values of ``ATEN_CPU_CAPABILITY`` this CPU can run (``default`` always, ``avx2``, ``avx512``)."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")  # read at collection (skipif): absent on macOS and Windows
    cpu_flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    return ["default"] + [name for name, flag in (("avx2", "avx2"), ("avx512", "avx512f")) if flag in cpu_flags]


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64", reason="torch's x86 CPU capabilities")
def test_collection_log_probs_do_not_depend_on_the_cpu_capability() -> None:
    # torch picks vectorized kernels by CPU (ATEN_CPU_CAPABILITY): softplus and sigmoid round differently with
    # and without AVX-512, and a behaviour log-probability one bit off made a seed train differently from one
    # machine to the next (through the importance weights). act's log-probabilities and actions must not move.
    hashes = {}
    for capability in _cpu_capabilities():
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
        out = subprocess.run([sys.executable, "-c", _CAPABILITY_SCRIPT], env=env, capture_output=True, text=True, check=True)
        reported, digest = out.stdout.split()
        assert reported.lower() == capability  # the capability was really used
        hashes[capability] = digest
    assert len(set(hashes.values())) == 1, hashes


_TRAINING_SCRIPT = """
import hashlib, torch as th
from sb3_reinforce.pong.karpathy import karpathy_pong
th.set_num_threads(1)
model = karpathy_pong(seed=0).learn(20_000)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.policy.parameters())).hexdigest()
print(th.backends.cpu.get_cpu_capability(), model._n_updates, digest)
"""


@pytest.mark.skipif("avx512" not in _cpu_capabilities(), reason="needs a CPU with AVX-512 to compare it with AVX2")
def test_a_seed_trains_the_same_with_and_without_avx512() -> None:
    # The entry's own training (16 envs, sticky actions, critic, GAE, carried steps' importance weights), 4 updates, on
    # torch's AVX2 and AVX-512 kernels (MKL told the same): the same weights, bit for bit
    results = []
    for capability, mkl in (("avx2", "AVX2"), ("avx512", "AVX512")):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "MKL_ENABLE_INSTRUCTIONS": mkl}
        out = subprocess.run([sys.executable, "-c", _TRAINING_SCRIPT], env=env, capture_output=True, text=True, check=True)
        results.append(out.stdout.split())
    assert [r[0] for r in results] == ["AVX2", "AVX512"]
    assert int(results[0][1]) >= 4
    assert results[0][1:] == results[1][1:]


@pytest.mark.parametrize("density", [0.0, 0.004, 0.05, 0.5])
def test_sparse_input_linear_matches_dense(density: float) -> None:
    # Below max_density only the non-zero inputs are read (embedding bags); above it the dense product is used.
    # Both must give the dense values and gradients, all-zero rows included.
    rng = np.random.default_rng(0)
    layer = SparseInputLinear(6400, 200)
    with th.no_grad():
        layer.weight.normal_(0, 1 / 80)
    signs = rng.choice(np.array([-1, 1], dtype=np.int8), (64, 6400))
    obs = th.as_tensor(np.where(rng.random((64, 6400)) < density, signs, 0).astype(np.int8))
    obs[3] = 0
    out = layer(obs)
    dense = obs.float() @ layer.weight
    th.testing.assert_close(out, dense, atol=1e-5, rtol=1e-5)
    upstream = th.as_tensor(rng.normal(size=(64, 200)), dtype=th.float32)
    (out * upstream).sum().backward()
    th.testing.assert_close(layer.weight.grad, obs.float().T @ upstream, atol=1e-4, rtol=1e-4)
    assert th.equal(out[3], th.zeros(200))


def test_policy_on_real_frames_matches_dense_network() -> None:
    # The policy's log-probabilities on real difference frames equal Karpathy's dense forward pass
    policy = _policy()
    obs = th.as_tensor(_real_frames(100).reshape(-1, 6400))
    actions = th.as_tensor(np.random.default_rng(0).integers(0, 2, len(obs)))
    _, log_prob, _, _ = policy.evaluate(obs, actions)
    with th.no_grad():
        logit = th.relu(obs.float() @ policy.mlp_extractor.policy_net[0].weight) @ policy.action_net.linear.weight.T
        p_up = th.sigmoid(logit[:, 0])
    expected = th.where(actions == 0, th.log(p_up), th.log1p(-p_up))
    th.testing.assert_close(log_prob.detach(), expected, atol=1e-5, rtol=1e-5)


def test_init_scale() -> None:
    policy = _policy()
    w1 = policy.mlp_extractor.policy_net[0].weight
    w2 = policy.action_net.linear.weight
    assert abs(w1.std().item() - 1 / np.sqrt(6400)) < 0.02 / np.sqrt(6400)
    assert abs(w1.mean().item()) < 0.01 / np.sqrt(6400)
    assert 0.5 / np.sqrt(200) < w2.std().item() < 1.5 / np.sqrt(200)


def test_optimizer_and_hyperparams() -> None:
    policy = _policy()
    optimizer = policy.optimizer
    assert isinstance(optimizer, th.optim.RMSprop)
    group = optimizer.param_groups[0]
    assert group["alpha"] == 0.99 and group["eps"] == 1e-5 and group["lr"] == 1e-3
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 2
    assert KARPATHY_HYPERPARAMS["gamma"] == 0.99
    assert KARPATHY_HYPERPARAMS["reset_on_reward"] is True
    assert KARPATHY_HYPERPARAMS["baseline"] is None
    assert KARPATHY_HYPERPARAMS["max_grad_norm"] is None


def _real_frames(n_steps: int = 300, n_envs: int = 2) -> np.ndarray:
    env = make_pong_vec_env(n_envs=n_envs, seed=0)
    frames = [env.reset()]
    rng = np.random.default_rng(0)
    for _ in range(n_steps):
        frames.append(env.step(rng.integers(0, 2, n_envs))[0])
    env.close()
    return np.stack(frames)


def test_pack_round_trip_real_frames() -> None:
    frames = _real_frames()
    assert (frames != 0).any() and (frames == -1).any() and (frames == 1).any()
    packed = pack_ternary(frames)
    assert packed.shape == (*frames.shape[:2], 1600) and packed.dtype == np.uint8
    unpacked = unpack_ternary(packed, 6400)
    assert unpacked.dtype == np.int8
    np.testing.assert_array_equal(unpacked, frames)
    lazy = PackedTernaryObservations(packed.reshape(-1, 1600), (6400,), np.int8)
    np.testing.assert_array_equal(lazy[3:17], frames.reshape(-1, 6400)[3:17])
    np.testing.assert_array_equal(lazy[np.array([5, 2])], frames.reshape(-1, 6400)[[5, 2]])


def test_packed_buffer_batch_identical() -> None:
    n_envs = 2
    frames = _real_frames(200, n_envs)
    kwargs = dict(observation_space=OBS_SPACE, action_space=spaces.Discrete(2), n_envs=n_envs)
    plain, packed = EpisodeRolloutBuffer(16, **kwargs), TernaryPackedRolloutBuffer(16, **kwargs)
    assert packed.bytes_per_step < plain.bytes_per_step
    assert packed.observations.shape[-1] == 1600
    rng = np.random.default_rng(1)
    for t, obs in enumerate(frames):
        done = np.array([t % 37 == 36, t % 53 == 52])
        args = (obs, rng.integers(0, 2, (n_envs, 1)), rng.normal(size=n_envs), rng.normal(size=n_envs), done, 0)
        plain.add(*args)
        packed.add(*args)
    batch_plain, batch_packed = plain.pop_episodes(5), packed.pop_episodes(5)
    assert batch_packed.n_steps == batch_plain.n_steps > 0
    np.testing.assert_array_equal(batch_packed.observations[:], batch_plain.observations)
    for name in ("actions", "rewards", "log_probs", "episode_starts", "episode_lengths"):
        np.testing.assert_array_equal(getattr(batch_packed, name), getattr(batch_plain, name))
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}"):
        packed.add(np.full((n_envs, 6400), 2, np.int8), np.zeros((n_envs, 1)), np.zeros(n_envs), np.zeros(n_envs), done, 0)


def test_training_update_changes_weights() -> None:
    th.manual_seed(0)
    model = karpathy_pong(n_envs=4, seed=0, n_episodes=1)
    assert isinstance(model.rollout_buffer, SparseTernaryRolloutBuffer)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(4 * 1000)  # a random agent's shortest games last ~800 steps
    assert model._n_updates >= 1
    after = list(model.policy.parameters())
    assert all(not th.equal(b, a) for b, a in zip(before, after, strict=True))
    assert all(th.isfinite(a).all() for a in after)


def test_save_load_same_predictions(tmp_path: pathlib.Path) -> None:
    model = karpathy_pong(n_envs=2, seed=3)
    obs = _real_frames(20, 2).reshape(-1, 6400)
    path = tmp_path / "karpathy.zip"
    model.save(path)
    loaded = REINFORCE.load(path, device="cpu")
    assert isinstance(loaded.policy, KarpathyPolicy)
    assert loaded.policy.single_logit and loaded.policy.n_hidden == 200
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    for p, q in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(p, q)
    assert loaded.rollout_buffer_class is SparseTernaryRolloutBuffer


def test_example_help() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pong_karpathy.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--resume" in result.stdout and "--play" in result.stdout and "--minutes" in result.stdout


def _example(*args: str, succeeds: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pong_karpathy.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if succeeds:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def _csv_rows(path: pathlib.Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[1:]]


def test_example_train_resume_plot_play(tmp_path) -> None:
    run_dir = tmp_path / "run"
    common = ["--run-dir", str(run_dir), "--n-envs", "2", "--n-episodes", "1", "--no-progress-bar", "--quiet"]
    common += ["--eval-games", "0"]  # the final evaluation: tests/test_pong_evaluation.py
    _example(*common, "--timesteps", "2500", "--checkpoint-every", "1")
    rows = _csv_rows(run_dir / "episodes.csv")
    progress = json.loads((run_dir / "progress.json").read_text())
    assert rows and progress["episode"] == len(rows) and int(rows[-1][0]) == len(rows)
    assert progress["running_reward"] == pytest.approx(float(rows[-1][4]), abs=1e-4)
    steps_before = REINFORCE.load(run_dir / "latest.zip").num_timesteps
    # A row written after the last checkpoint (the run was killed in between) must not survive a resume
    with open(run_dir / "episodes.csv", "a") as file:
        file.write(f"{len(rows) + 1},999.0,999999,-21.0,-21.0000\n")
    result = _example(*common, "--timesteps", "5000", "--resume")  # the run's budget: about 2500 more
    assert "dropping 1 episodes.csv rows" in result.stdout
    resumed = _csv_rows(run_dir / "episodes.csv")
    assert resumed[: len(rows)] == rows
    assert [int(row[0]) for row in resumed] == list(range(1, len(resumed) + 1))
    assert len(resumed) > len(rows) and all(row[1] != "999.0" for row in resumed)
    steps_after = REINFORCE.load(run_dir / "latest.zip").num_timesteps
    # --timesteps is the whole run's: SB3's learn(n, reset_num_timesteps=False) alone would have trained 5000 more
    assert steps_before < steps_after <= 5000 + 1, (steps_before, steps_after)  # budget: within n_envs - 1 steps
    # A resume whose budget is spent trains nothing (it used to train the whole budget again)
    result = _example(*common, "--timesteps", "5000", "--resume")
    assert "the run's budget is spent" in result.stdout
    assert REINFORCE.load(run_dir / "latest.zip").num_timesteps == steps_after
    assert len(_csv_rows(run_dir / "episodes.csv")) == len(resumed)

    _example("--run-dir", str(run_dir), "--plot", str(tmp_path / "curve.png"))
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    video = tmp_path / "play.mp4"
    result = _example("--play", str(run_dir / "latest.zip"), "--video", str(video), "--max-play-steps", "150")
    assert "play episode 1" in result.stdout and video.stat().st_size > 1_000


def test_example_options_reach_the_model_and_bad_ones_stop_before_training(tmp_path) -> None:
    run_dir = tmp_path / "run"
    common = ["--run-dir", str(run_dir), "--n-envs", "2", "--n-episodes", "1", "--no-progress-bar", "--quiet"]
    common += ["--eval-games", "0", "--timesteps", "600"]
    _example(*common, "--gae-lambda", "0.8", "--ent-coef", "0.01", "--learning-rate", "0.0005", "--critic-hidden", "16",
             "--n-critic-updates", "2")  # fmt: skip
    model = REINFORCE.load(run_dir / "latest.zip", device="cpu")
    assert (model.gae_lambda, model.ent_coef, model.learning_rate, model.n_episodes) == (0.8, 0.01, 0.0005, 1)
    assert model.policy.critic_hidden == 16 and model.n_critic_updates == 2
    # lin_<value>: the rl-zoo schedule, from the value at the start to 0 at --timesteps
    _example(*common, "--run-dir", str(tmp_path / "lin"), "--learning-rate", "lin_0.002", "--timesteps", "3000")
    model = REINFORCE.load(tmp_path / "lin" / "latest.zip", device="cpu")
    assert isinstance(model.learning_rate, SimpleLinearSchedule) and model.learning_rate(1.0) == 0.002
    assert model._n_updates >= 1 and 0 < model.policy.optimizer.param_groups[0]["lr"] < 0.002 * 0.9  # it decayed
    # Without --timesteps the run is the entry's n_timesteps long, and that is where a lin_ schedule ends
    no_budget = [arg for arg in common if arg not in ("--timesteps", "600")]
    _example(*no_budget, "--run-dir", str(tmp_path / "default"), "--minutes", "0.05")
    model = REINFORCE.load(tmp_path / "default" / "latest.zip", device="cpu")
    assert model._total_timesteps == int(load_hyperparams("reinforce", "KarpathyPong-v0")["n_timesteps"])
    # --n-steps: an update every N steps of each env, on the episodes complete by then, in place of --n-episodes
    by_steps = [arg for arg in common if arg not in ("--n-episodes", "1")]
    _example(*by_steps, "--run-dir", str(tmp_path / "steps"), "--n-steps", "300", "--timesteps", "2400")
    model = REINFORCE.load(tmp_path / "steps" / "latest.zip", device="cpu")
    assert (model.n_episodes, model.n_steps) == (None, 300) and model._n_updates >= 1  # the first games last 800+ steps
    result = _example(*common, "--run-dir", str(tmp_path / "both"), "--n-steps", "300", succeeds=False)
    assert "--n-steps" in result.stderr and "--n-episodes" in result.stderr and not (tmp_path / "both").exists()
    result = _example(*common, "--run-dir", str(tmp_path / "bad_lin"), "--learning-rate", "lin_fast", succeeds=False)
    assert "--learning-rate" in result.stderr and "lin_<value>" in result.stderr and not (tmp_path / "bad_lin").exists()
    # Another baseline takes the entry's critic away with its value baseline (critic_hidden 64, GAE 0.95, 4 steps)
    _example(*common, "--run-dir", str(tmp_path / "mean"), "--baseline", "mean")
    model = REINFORCE.load(tmp_path / "mean" / "latest.zip", device="cpu")
    assert (model.baseline, model.gae_lambda, model.n_critic_updates, model.policy.critic_hidden) == ("mean", 1.0, 1, 0)
    # GAE needs the learned V(s): refused with the parameter named, and nothing is written
    bad_dir = tmp_path / "bad"
    bad_args = ["--run-dir", str(bad_dir), "--quiet", "--baseline", "none", "--gae-lambda", "0.8", "--no-progress-bar"]
    result = _example(*bad_args, succeeds=False)
    assert result.returncode != 0 and "gae_lambda=0.8" in result.stderr and "baseline" in result.stderr
    assert not (bad_dir / "latest.zip").exists() and not (bad_dir / "episodes.csv").exists()
    result = _example(*bad_args[:-3], "--n-critic-updates", "4", "--no-progress-bar", succeeds=False)
    assert "n_critic_updates=4" in result.stderr and not (bad_dir / "latest.zip").exists()


def test_value_head_reads_the_shared_hidden_layer_and_learns(tmp_path) -> None:
    """baseline='value': one linear head on the hidden layer (no dense 6400-input critic), trained, saved, loaded."""
    policy = KarpathyPolicy(OBS_SPACE, spaces.Discrete(2), lambda _: 1e-3, value_baseline=True)
    params = dict(policy.named_parameters())
    assert sum(p.numel() for p in params.values()) == 6400 * 200 + 200 + (200 + 1)
    obs = th.as_tensor(np.random.default_rng(0).integers(-1, 2, (4, 6400)), dtype=th.int8)
    with th.no_grad():
        hidden = policy.hidden(obs)
        expected = hidden @ policy.value_net.weight.T + policy.value_net.bias
        assert th.allclose(policy.predict_values(obs), expected, atol=1e-6)
        values, log_prob, _, _ = policy.evaluate(obs, th.zeros(4, dtype=th.long))
        assert th.allclose(values, expected.flatten(), atol=1e-6) and log_prob.shape == (4,)
        actions, forward_values, _ = policy(obs)
        assert th.allclose(forward_values, expected, atol=1e-6) and actions.shape == (4,)

    env = make_pong_vec_env(n_envs=2, seed=0)
    model = REINFORCE(
        KarpathyPolicy, env, n_episodes=2, baseline="value", reset_on_reward=True, learning_rate=1e-3, seed=0, device="cpu"
    )
    head_before = model.policy.value_net.weight.detach().clone()
    hidden_before = model.policy.mlp_extractor.policy_net[0].weight.detach().clone()
    model.learn(3000)
    assert model._n_updates >= 1
    # the value loss moved the head, and the shared layer was updated too
    assert not th.equal(model.policy.value_net.weight, head_before)
    assert not th.equal(model.policy.mlp_extractor.policy_net[0].weight, hidden_before)
    model.save(tmp_path / "pong_value")
    loaded = REINFORCE.load(tmp_path / "pong_value", device="cpu")
    assert loaded.policy.value_baseline and th.equal(loaded.policy.value_net.weight, model.policy.value_net.weight)
    env.close()


def test_critic_of_its_own_leaves_the_policy_to_the_policy_step(tmp_path) -> None:
    """
    critic_hidden > 0: V(s) from its own sparse network (not the policy's hidden layer). The extra critic steps of
    n_critic_updates move only the critic: over those steps the policy's weights stay bit for bit.
    """
    policy = KarpathyPolicy(OBS_SPACE, spaces.Discrete(2), lambda _: 1e-3, value_baseline=True, critic_hidden=16)
    assert sum(p.numel() for p in policy.parameters()) == 6400 * 200 + 200 + 6400 * 16 + (16 + 1)
    obs = th.as_tensor(np.random.default_rng(0).integers(-1, 2, (4, 6400)), dtype=th.int8)
    with th.no_grad():
        critic_hidden = th.relu(obs.float() @ policy.mlp_extractor.value_net[0].weight)
        expected = critic_hidden @ policy.value_net.weight.T + policy.value_net.bias
        assert th.allclose(policy.predict_values(obs), expected, atol=1e-5)
        values, _, _, _ = policy.evaluate(obs, th.zeros(4, dtype=th.long))
        assert th.allclose(values, expected.flatten(), atol=1e-5)

    env = make_pong_vec_env(n_envs=2, seed=0)
    kwargs = dict(n_episodes=2, baseline="value", reset_on_reward=True, learning_rate=1e-3, seed=0, device="cpu")
    model = REINFORCE(KarpathyPolicy, env, policy_kwargs=dict(critic_hidden=16), n_critic_updates=3, **kwargs)
    model.learn(3000)
    assert model._n_updates >= 1
    batch = next(model.collect_batches(env, 2, 1))
    model.compute_policy_gradient(batch)
    policy_params = {name: p.detach().clone() for name, p in model.policy.named_parameters() if "value" not in name}
    critic_params = {name: p.detach().clone() for name, p in model.policy.named_parameters() if "value" in name}
    assert set(critic_params) == {"mlp_extractor.value_net.0.weight", "value_net.weight", "value_net.bias"}
    loss_before = model._fit_critic(batch, model._value_targets, 1)
    loss_after = model._fit_critic(batch, model._value_targets, 1)
    assert loss_after < loss_before
    for name, value in model.policy.named_parameters():
        assert th.equal(value, policy_params[name]) if name in policy_params else not th.equal(value, critic_params[name])
    model.save(tmp_path / "pong_critic")
    loaded = REINFORCE.load(tmp_path / "pong_critic", device="cpu")
    assert loaded.policy.critic_hidden == 16
    with th.no_grad():
        assert th.equal(loaded.policy.predict_values(obs), model.policy.predict_values(obs))
    env.close()
    # A critic needs a value baseline: refused, naming the parameter, before anything trains
    with pytest.raises(ValueError, match="critic_hidden=16 needs baseline='value'"):
        REINFORCE(KarpathyPolicy, make_pong_vec_env(n_envs=1, seed=0), policy_kwargs=dict(critic_hidden=16), device="cpu")
    with pytest.raises(ValueError, match="critic_hidden"):
        KarpathyPolicy(OBS_SPACE, spaces.Discrete(2), lambda _: 1e-3, value_baseline=True, critic_hidden=-1)


def test_example_plots_several_seeds_on_one_figure(tmp_path) -> None:
    import matplotlib.image

    header = "episode,wall_seconds,timesteps,reward,running_reward\n"
    for seed, rewards in enumerate(([-21.0, -19.0, -20.0], [-21.0, -21.0, -15.0])):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        rows = [f"{i + 1},{10.0 * (i + 1)},{1000 * (i + 1)},{r},{r}\n" for i, r in enumerate(rewards)]
        (run / "episodes.csv").write_text(header + "".join(rows))
    png = tmp_path / "seeds.png"
    result = _example("--run-dir", str(tmp_path / "seed0"), "--plot", str(png), "--also-plot", str(tmp_path / "seed1"))
    assert f"plot: {png}" in result.stdout
    assert matplotlib.image.imread(png).shape[:2] == (400, 1500)  # three panels: episodes, env steps, minutes
    # A run with no episode yet is named, not plotted as an empty curve
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "episodes.csv").write_text(header)
    failed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pong_karpathy.py"), "--run-dir", str(tmp_path / "seed0"), "--plot",
         str(tmp_path / "x.png"), "--also-plot", str(tmp_path / "empty")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert failed.returncode == 1 and "no episodes yet" in failed.stderr and not (tmp_path / "x.png").exists()
