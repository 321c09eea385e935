"""
gSDE (``use_sde=True``): the exact likelihood of actions that share one exploration matrix, an unbiased gradient
with it (and a biased one with SB3's per-step marginal), the resampling of each env's matrix at its episode starts
and every ``sde_sample_freq`` steps, save/load, and the refused settings.

Unbiasedness: exact gradients come from the pathwise (reparameterized) derivative of the expected return of a
differentiable toy problem, averaged over 400,000 episodes; the average of the algorithm's own batch estimates
(``compute_policy_gradient``, 400 batches of 16 episodes, fixed seeds) must be within 4.5 combined standard errors
of it in every parameter coordinate, and SB3's marginal estimator must be more than 8 away in one.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import StateDependentNoiseDistribution
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.buffers import EpisodeBatch
from sb3_reinforce.hyperparams import HyperparamsError
from sb3_reinforce.hyperparams.validation import validate_reinforce_hyperparams
from sb3_reinforce.reinforce.policies import GSDENoise, gsde_padded_log_probs, gsde_segment_log_probs

HORIZON = 4
EPS = 1e-6
N_EPISODES = 16
N_BATCHES = 400


class ToyContinuousEnv(gym.Env):
    """``s' = s + a``, reward ``-(s + a - 1)^2``, observation ``(s, t / HORIZON)``, ``horizon`` steps, ``s_0 ~ N(0, 1/4)``."""

    observation_space = spaces.Box(-10.0, 10.0, (2,), np.float32)
    action_space = spaces.Box(-5.0, 5.0, (1,), np.float32)

    def __init__(self, horizon: int = HORIZON):
        self.horizon = horizon

    def _obs(self) -> np.ndarray:
        return np.array([self.state, self.t / HORIZON], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.state = 0, float(self.np_random.normal(0.0, 0.5))
        return self._obs(), {}

    def step(self, action):
        action = float(np.asarray(action).reshape(-1)[0])
        reward = -((self.state + action - 1.0) ** 2)
        self.state, self.t = self.state + action, self.t + 1
        return self._obs(), reward, self.t >= self.horizon, False, {}


def toy_model(sde_sample_freq: int, **kwargs) -> REINFORCE:
    th.set_num_threads(1)
    model = REINFORCE(
        "MlpPolicy",
        ToyContinuousEnv(),
        use_sde=True,
        sde_sample_freq=sde_sample_freq,
        gamma=1.0,
        normalize_advantage=False,
        policy_kwargs=dict(net_arch=[4], log_std_init=-0.5),
        seed=0,
        device="cpu",
        **kwargs,
    )
    generator = th.Generator().manual_seed(3)
    with th.no_grad():
        # Weights far from ortho_init's near-zero mean: every term of the gradient matters
        for param in model.policy.parameters():
            param.copy_(0.6 * th.randn(param.shape, generator=generator))
        model.policy.log_std.copy_(-0.5 + 0.2 * th.randn(model.policy.log_std.shape, generator=generator))
    return model


def policy_params(model: REINFORCE) -> list[th.Tensor]:
    return [p for name, p in model.policy.named_parameters() if "value_net" not in name]


# ---------------------------------------------------------------------------------------------------------------------
# The likelihood
# ---------------------------------------------------------------------------------------------------------------------


def test_conditionals_sum_to_the_joint_gaussian_density():
    # One segment of 3 steps, 3 features, 2 action dimensions, written out by hand
    phi = th.tensor([[0.5, -1.0, 0.2], [0.1, 0.3, -0.7], [-0.4, 0.8, 0.6]], dtype=th.float64)
    var = th.tensor([[0.3, 1.2], [0.5, 0.2], [0.9, 0.4]], dtype=th.float64)
    residuals = th.tensor([[0.2, -0.5], [-0.3, 0.1], [0.7, 0.4]], dtype=th.float64)
    log_probs, score_sq = gsde_padded_log_probs(phi[None], residuals[None], var, EPS)
    joint, prefix = 0.0, []
    for j in range(2):
        cov = phi @ th.diag(var[:, j]) @ phi.T + EPS * th.eye(3, dtype=th.float64)
        joint += th.distributions.MultivariateNormal(th.zeros(3, dtype=th.float64), cov).log_prob(residuals[:, j])
        # log p(r_t | r_<t) = log N(r_<=t) - log N(r_<t), the marginals of the first t steps
        prefix.append(
            [
                th.distributions.MultivariateNormal(th.zeros(t, dtype=th.float64), cov[:t, :t]).log_prob(residuals[:t, j])
                if t
                else th.tensor(0.0, dtype=th.float64)
                for t in range(4)
            ]
        )
    expected = [sum(prefix[j][t + 1] - prefix[j][t] for j in range(2)) for t in range(3)]
    np.testing.assert_allclose(log_probs[0].numpy(), th.stack(expected).numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(log_probs.sum().item(), joint.item(), rtol=0, atol=1e-10)
    # The score w.r.t. each step's mean, by autograd on the conditionals
    mean = th.zeros(3, 2, dtype=th.float64, requires_grad=True)
    conditionals, _ = gsde_padded_log_probs(phi[None], (residuals - mean)[None], var, EPS)
    for t in range(3):
        (grad,) = th.autograd.grad(conditionals[0, t], mean, retain_graph=True)
        np.testing.assert_allclose(score_sq[0, t].item(), grad[t].pow(2).sum().item(), rtol=1e-10)


def test_flat_segments_and_one_step_segments_are_sb3_marginal():
    rng = th.Generator().manual_seed(0)
    latent, mean, actions = th.randn(7, 3, generator=rng), th.randn(7, 2, generator=rng), th.randn(7, 2, generator=rng)
    log_std = th.randn(3, 2, generator=rng) * 0.3
    var = th.exp(log_std) ** 2
    # Segments [0, 3) [3, 5) [5, 7): each is computed on its own
    starts = np.array([1, 0, 0, 1, 0, 1, 0], dtype=bool)
    flat, _ = gsde_segment_log_probs(latent, mean, actions, var, starts, EPS)
    for begin, end in ((0, 3), (3, 5), (5, 7)):
        own, _ = gsde_padded_log_probs(latent[None, begin:end], (actions - mean)[None, begin:end], var, EPS)
        np.testing.assert_allclose(flat[begin:end].numpy(), own[0].numpy(), rtol=1e-6)
    # One step per segment: SB3's per-step marginal of StateDependentNoiseDistribution
    marginal, _ = gsde_segment_log_probs(latent, mean, actions, var, np.ones(7, dtype=bool), EPS)
    sb3 = StateDependentNoiseDistribution(2)
    sb3.latent_sde_dim = 3
    expected = sb3.proba_distribution(mean, log_std, latent).log_prob(actions)
    np.testing.assert_allclose(marginal.numpy(), expected.numpy(), rtol=1e-5)
    # Correlated steps: the joint is not the product of the marginals
    assert not np.allclose(flat.numpy(), marginal.numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="first step"):
        gsde_segment_log_probs(latent, mean, actions, var, ~starts, EPS)


# ---------------------------------------------------------------------------------------------------------------------
# Unbiasedness
# ---------------------------------------------------------------------------------------------------------------------


def sample_batches(model: REINFORCE, seed: int, old: REINFORCE | None = None, carried_steps: int = 0) -> list[EpisodeBatch]:
    """
    N_BATCHES batches of N_EPISODES episodes, sampled as the collection does (``GSDENoise``, one env per episode).
    The first ``carried_steps`` steps of each episode are taken by ``old`` (as if collected before an update), the
    rest by ``model``, with the matrix of a segment kept across the change.
    """
    th.manual_seed(seed)
    n = N_EPISODES * N_BATCHES
    policy = model.policy
    noise = GSDENoise(n, model.sde_sample_freq, policy.latent_sde_dim, 1, EPS, "cpu")
    state = th.randn(n) * 0.5
    obs, actions, rewards, log_probs = [], [], [], []
    with th.no_grad():
        for t in range(HORIZON):
            actor = old.policy if t < carried_steps else policy
            observation = th.stack([state, th.full_like(state, t / HORIZON)], dim=1)
            mean, latent = actor.sde_mean_and_latent(observation)
            action, log_prob = noise.step(np.full(n, t == 0), actor.sde_std(), latent, mean)
            rewards.append(-((state + action[:, 0] - 1.0) ** 2))
            state = state + action[:, 0]
            obs.append(observation), actions.append(action), log_probs.append(log_prob)
    obs_a, act_a = th.stack(obs, 1).numpy(), th.stack(actions, 1).numpy()
    rew_a, lp_a = th.stack(rewards, 1).numpy(), th.stack(log_probs, 1).numpy()
    versions = np.where(np.arange(HORIZON) < carried_steps, -1, model._n_updates)
    batches = []
    for b in range(N_BATCHES):
        rows = slice(b * N_EPISODES, (b + 1) * N_EPISODES)
        batches.append(
            EpisodeBatch(
                observations=obs_a[rows].reshape(-1, 2),
                actions=act_a[rows].reshape(-1, 1),
                rewards=rew_a[rows].reshape(-1).astype(np.float32),
                log_probs=lp_a[rows].reshape(-1).astype(np.float32),
                policy_versions=np.tile(versions, N_EPISODES).astype(np.int64),
                episode_starts=np.tile(np.arange(HORIZON) == 0, N_EPISODES),
                episode_lengths=np.full(N_EPISODES, HORIZON),
            )
        )
    return batches


def batch_estimates(model: REINFORCE, batches: list[EpisodeBatch]) -> np.ndarray:
    estimates = []
    for batch in batches:
        model.policy.zero_grad()
        model.compute_policy_gradient(batch)
        # the loss is -(1/n) sum_t Psi_t log p: rescale to the per-episode estimate sum_t Psi_t grad log p
        scale = batch.n_steps / batch.n_episodes
        estimates.append(np.concatenate([(-p.grad * scale).flatten().numpy() for p in policy_params(model)]))
    return np.array(estimates)


def exact_gradient(model: REINFORCE, n_episodes: int = 400_000, n_blocks: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """grad E[sum_t r_t] by the pathwise derivative (actions mu + phi E + sqrt(eps) z as functions of the weights)."""
    policy, k = model.policy, model.sde_sample_freq
    generator = th.Generator().manual_seed(12345)
    per_block = n_episodes // n_blocks
    blocks = []
    for _ in range(n_blocks):
        state = th.randn(per_block, generator=generator) * 0.5
        total = th.zeros(per_block)
        for t in range(HORIZON):
            if t % k == 0:
                matrices = policy.sde_std() * th.randn((per_block, *policy.log_std.shape), generator=generator)
            observation = th.stack([state, th.full_like(state, t / HORIZON)], dim=1)
            mean, latent = policy.sde_mean_and_latent(observation)
            jitter = math.sqrt(EPS) * th.randn(per_block, 1, generator=generator)
            action = mean + th.bmm(latent.unsqueeze(1), matrices).squeeze(1) + jitter
            total = total - (state + action[:, 0] - 1.0) ** 2
            state = state + action[:, 0]
        grads = th.autograd.grad(total.mean(), policy_params(model))
        blocks.append(np.concatenate([g.flatten().numpy() for g in grads]))
    blocks_a = np.array(blocks)
    return blocks_a.mean(axis=0), blocks_a.std(axis=0, ddof=1) / np.sqrt(n_blocks)


def z_scores(estimates: np.ndarray, exact: np.ndarray, exact_se: np.ndarray) -> np.ndarray:
    standard_error = np.sqrt(estimates.var(axis=0, ddof=1) / len(estimates) + exact_se**2)
    return (estimates.mean(axis=0) - exact) / np.maximum(standard_error, 1e-12)


@pytest.fixture(scope="module")
def exact_k2():
    return exact_gradient(toy_model(2))


@pytest.mark.parametrize(
    ("return_mode", "baseline"), [("reward_to_go", None), ("total", None), ("reward_to_go", "mean"), ("total", "time")]
)
def test_unbiased_with_shared_matrices(exact_k2, return_mode, baseline):
    model = toy_model(2, return_mode=return_mode, baseline=baseline)
    exact, exact_se = exact_k2
    assert np.abs(exact).max() > 0.1
    z = z_scores(batch_estimates(model, sample_batches(model, seed=1)), exact, exact_se)
    assert np.abs(z).max() < 4.5, f"bias detected: z-scores {np.round(z, 2)}"


def test_sb3_marginal_estimator_is_biased_ours_is_not():
    """The same batches (actions sharing a matrix over 4 steps), weighted by SB3's per-step marginal log-probs
    (a model with sde_sample_freq=1 and the same weights) and by the segment's conditionals."""
    ours = toy_model(4)
    exact, exact_se = exact_gradient(ours)
    batches = sample_batches(ours, seed=2)
    marginal = toy_model(1)
    marginal.policy.load_state_dict(ours.policy.state_dict())
    z_ours = z_scores(batch_estimates(ours, batches), exact, exact_se)
    z_marginal = z_scores(batch_estimates(marginal, batches), exact, exact_se)
    assert np.abs(z_ours).max() < 4.5, f"bias detected: z-scores {np.round(z_ours, 2)}"
    assert np.abs(z_marginal).max() > 8, f"the marginal estimator looks unbiased: {np.round(z_marginal, 2)}"


def test_unbiased_when_a_segment_spans_an_update(exact_k2):
    """The first 3 steps of every episode come from an older policy (other weights and std); the segment [2, 4)
    straddles the update with its old matrix. Importance weights from the stored log-probs correct it."""
    model = toy_model(2)
    old = toy_model(2)
    with th.no_grad():
        for param in old.policy.parameters():
            param.add_(0.15 * th.randn(param.shape, generator=th.Generator().manual_seed(9)))
    exact, exact_se = exact_k2
    batches = sample_batches(model, seed=3, old=old, carried_steps=3)
    z = z_scores(batch_estimates(model, batches), exact, exact_se)
    assert np.abs(z).max() < 4.5, f"bias detected: z-scores {np.round(z, 2)}"
    # Power check: the ratios of the carried steps only (the steps after the update taken as on-policy, their
    # stored log-probs replaced by the current conditionals) are detectably biased
    segments = model.sde_segment_starts(batches[0].episode_starts)
    with th.no_grad():
        current = [
            model.policy.evaluate_sde(th.as_tensor(b.observations), th.as_tensor(b.actions), segments)[1].numpy()
            for b in batches
        ]
    only_carried = [
        b._replace(log_probs=np.where(b.policy_versions < 0, b.log_probs, c)) for b, c in zip(batches, current, strict=True)
    ]
    z_only = z_scores(batch_estimates(model, only_carried), exact, exact_se)
    assert np.abs(z_only).max() > 8, f"ratios of the carried steps only look unbiased: {np.round(z_only, 2)}"


# ---------------------------------------------------------------------------------------------------------------------
# The collection
# ---------------------------------------------------------------------------------------------------------------------


class RecordNoise(BaseCallback):
    def __init__(self):
        super().__init__()
        self.resampled, self.matrices, self.dones = [], [], []

    def _on_step(self) -> bool:
        noise = self.model._sde_noise
        self.resampled.append(noise.resampled.copy())
        self.matrices.append(noise.matrices.clone())
        self.dones.append(np.asarray(self.locals["dones"]).copy())
        return True


def test_each_env_resamples_at_its_episode_starts_and_every_k_steps():
    # Episodes of 3 steps in env 0, 5 in env 1: their boundaries fall at different steps
    env = DummyVecEnv([lambda: ToyContinuousEnv(horizon=3), lambda: ToyContinuousEnv(horizon=5)])
    model = REINFORCE("MlpPolicy", env, use_sde=True, sde_sample_freq=2, n_steps=8, seed=0, device="cpu")
    recorder = RecordNoise()
    model.learn(64, callback=recorder)
    step_in_episode = np.zeros(2, dtype=int)
    for t, (resampled, dones) in enumerate(zip(recorder.resampled, recorder.dones, strict=True)):
        np.testing.assert_array_equal(resampled, step_in_episode % 2 == 0, err_msg=f"step {t}")
        if t > 0:
            changed = (recorder.matrices[t] != recorder.matrices[t - 1]).flatten(1).any(dim=1).numpy()
            np.testing.assert_array_equal(changed, resampled, err_msg=f"step {t}: only resampled envs change")
        step_in_episode = np.where(dones, 0, step_in_episode + 1)
    # Updates happened (every 8 steps) and did not resample: only the episode boundaries did
    assert model._n_updates == 4 and len(recorder.resampled) == 32


def test_stored_log_probs_are_the_training_likelihood():
    """What the collection stores (the behaviour log-prob of each action given its segment) is what training
    recomputes on the popped episodes with the same segments: collection and training agree on the boundaries."""
    model = toy_model(2)
    env = DummyVecEnv([lambda: ToyContinuousEnv(horizon=5), lambda: ToyContinuousEnv(horizon=3)])
    (batch,) = model.collect_batches(env, n_episodes=6, n_batches=1)
    segments = model.sde_segment_starts(batch.episode_starts)
    with th.no_grad():
        _, log_prob, _, _ = model.policy.evaluate_sde(th.as_tensor(batch.observations), th.as_tensor(batch.actions), segments)
    np.testing.assert_allclose(log_prob.numpy(), batch.log_probs, rtol=0, atol=1e-4)
    # Segments of 2 steps from each episode start: [0, 1] [2, 3] [4] for 5 steps
    assert list(np.flatnonzero(segments[:5])) == [0, 2, 4]


def test_training_chunks_never_cut_a_segment():
    """A batch split into training chunks (memory bound) gives the gradient of the batch in one pass: chunks end
    only where a segment starts (a cut would make two segments of one)."""
    model = toy_model(3)
    env = DummyVecEnv([lambda: ToyContinuousEnv(horizon=7)])
    (batch,) = model.collect_batches(env, n_episodes=3, n_batches=1)

    def gradient() -> np.ndarray:
        model.policy.zero_grad()
        model.compute_policy_gradient(batch)
        return np.concatenate([p.grad.flatten().numpy() for p in policy_params(model)])

    whole = gradient()
    # Segments [0, 3) [3, 6) [6, 7) in each episode of 7 steps; chunks of at most 4 steps end at segment starts
    model._train_chunk_steps = 4
    sizes = [c.stop - c.start for c in model._chunks(batch.n_steps, model.sde_segment_starts(batch.episode_starts))]
    assert sizes == [3, 4, 3, 4, 3, 4]
    np.testing.assert_allclose(gradient(), whole, rtol=1e-4, atol=1e-6 * np.abs(whole).max())


def test_mountain_car_smoke_and_save_load_round_trip(tmp_path):
    th.set_num_threads(1)
    env = make_vec_env("MountainCarContinuous-v0", n_envs=2, seed=0)
    model = REINFORCE("MlpPolicy", env, use_sde=True, sde_sample_freq=8, n_episodes=2, seed=0, device="cpu")
    log_std = model.policy.log_std.detach().clone()
    model.learn(2500)
    assert model._n_updates >= 1
    assert model.policy.log_std.shape == (64, 1)
    assert not th.equal(model.policy.log_std.detach(), log_std)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    model.save(tmp_path / "gsde")
    loaded = REINFORCE.load(tmp_path / "gsde", env=env)
    assert (loaded.use_sde, loaded.sde_sample_freq) == (True, 8)
    for key, value in model.policy.state_dict().items():
        assert th.equal(value, loaded.policy.state_dict()[key]), key
    obs = th.as_tensor(np.random.default_rng(0).normal(size=(6, 2)), dtype=th.float32)
    actions = th.as_tensor(np.random.default_rng(1).normal(size=(6, 1)), dtype=th.float32)
    starts = np.array([1, 0, 0, 1, 0, 0], dtype=bool)
    with th.no_grad():
        np.testing.assert_array_equal(
            model.policy.evaluate_sde(obs, actions, starts)[1].numpy(), loaded.policy.evaluate_sde(obs, actions, starts)[1]
        )
    loaded.learn(500, reset_num_timesteps=False)
    assert loaded.num_timesteps >= 3000
    loaded.predict(env.reset(), deterministic=False)


def test_rl_zoo_style_entries():
    validate_reinforce_hyperparams(
        {"n_timesteps": 1000, "policy": "MlpPolicy", "use_sde": True, "sde_sample_freq": 16}, where="entry"
    )
    validate_reinforce_hyperparams({"n_timesteps": 1000, "policy": "MlpPolicy", "use_sde": True}, where="entry")
    with pytest.raises(
        HyperparamsError, match=r"sde_sample_freq: -1 is not allowed: with use_sde: true .*\[1, latent_sde_dim\]"
    ):
        validate_reinforce_hyperparams(
            {"n_timesteps": 1000, "policy": "MlpPolicy", "use_sde": True, "sde_sample_freq": -1}, where="entry"
        )
    with pytest.raises(HyperparamsError, match="use_sde: 'yes' is not allowed: expected true or false"):
        validate_reinforce_hyperparams({"n_timesteps": 1000, "policy": "MlpPolicy", "use_sde": "yes"}, where="entry")


# ---------------------------------------------------------------------------------------------------------------------
# Refused settings
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "kwargs", "error", "pattern"),
    [
        ("CartPole-v1", dict(use_sde=True), ValueError, r"use_sde=True is not allowed with the action space Discrete\(2\)"),
        ("Pendulum-v1", dict(use_sde=True, sde_sample_freq=-1), ValueError, r"sde_sample_freq=-1 .*\[1, latent_sde_dim\]"),
        ("Pendulum-v1", dict(use_sde=True, sde_sample_freq=0), ValueError, r"sde_sample_freq=0 .*\[1, latent_sde_dim\]"),
        ("Pendulum-v1", dict(use_sde=True, sde_sample_freq=65), ValueError, r"sde_sample_freq=65 .*\[1, 64\]"),
        (
            "Pendulum-v1",
            dict(use_sde=True, sde_sample_freq=9, policy_kwargs=dict(net_arch=[32, 8])),
            ValueError,
            r"sde_sample_freq=9 .*\[1, 8\]",
        ),
        ("Pendulum-v1", dict(use_sde=True, sde_sample_freq=2.5), TypeError, r"sde_sample_freq=2.5 .*integer"),
        ("Pendulum-v1", dict(use_sde="yes"), TypeError, r"use_sde='yes' is not allowed: expected a bool"),
        ("Pendulum-v1", dict(use_sde=True, policy_kwargs=dict(squash_output=True)), ValueError, "squash_output"),
    ],
)
def test_refused(env_id, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        REINFORCE("MlpPolicy", env_id, device="cpu", **kwargs)


def test_allowed_range_edges():
    # latent_sde_dim itself is allowed, and so is any sde_sample_freq without gSDE (ignored, as SB3 does)
    REINFORCE("MlpPolicy", "Pendulum-v1", use_sde=True, sde_sample_freq=64, device="cpu")
    REINFORCE("MlpPolicy", "Pendulum-v1", use_sde=True, sde_sample_freq=1, device="cpu")
    REINFORCE("MlpPolicy", "CartPole-v1", use_sde=False, sde_sample_freq=-1, device="cpu")


@pytest.mark.parametrize("policy_kwargs", [dict(full_std=False), dict(use_expln=True, log_std_init=0.5)])
def test_sb3_std_options(policy_kwargs):
    th.set_num_threads(1)
    model = REINFORCE(
        "MlpPolicy", "Pendulum-v1", use_sde=True, n_episodes=1, policy_kwargs=policy_kwargs, seed=0, device="cpu"
    )
    model.learn(400)
    assert model._n_updates == 2
    std = model.policy.sde_std()
    assert std.shape == (64, 1) and th.isfinite(std).all()
    if "full_std" in policy_kwargs:
        assert model.policy.log_std.shape == (64, 1)
