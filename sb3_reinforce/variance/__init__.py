"""
Gradient-variance diagnostic: how noisy is each REINFORCE estimator for one fixed policy?

For a policy snapshot, :func:`gradient_variance` samples ``n_batches`` independent batches of ``n_episodes``
complete episodes with that policy and, for every variant (return mode / baseline / advantage normalization),
computes the batch's policy-gradient estimate with :meth:`REINFORCE.compute_policy_gradient` on a REINFORCE
model holding the SAME policy weights. All variants see the same batches (common random numbers). Per variant it
reports the variance of the estimate (trace of its covariance over batches), the variance relative to the squared
norm of the mean gradient (scale-free, comparable across normalized and unnormalized variants) and the mean
cosine similarity of the batch estimates to the mean gradient.

Python API::

    from sb3_reinforce import REINFORCE
    from sb3_reinforce.variance import gradient_variance, variance_table, plot_variance

    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0)  # or REINFORCE.load("snapshot.zip")
    results = gradient_variance(model, "CartPole-v1", ["total", "reward_to_go", "reward_to_go+mean"], n_batches=50)
    print(variance_table(results))
    plot_variance(results, "variance.png")

CLI: ``python -m sb3_reinforce.compare variance --env CartPole-v1 --variants total reward_to_go ...``
(``--model snapshot.zip`` to study a saved policy, ``--train-steps N`` to first train the zoo model N steps;
default: a freshly initialized policy with the zoo's network).

Variant syntax: ``<return_mode>[+<baseline>][+norm|+nonorm]`` (a ``reinforce:`` prefix is accepted), e.g.
``total``, ``reward_to_go+value``, ``total+mean+norm``. Parts left out: ``reward_to_go``, no baseline, no
normalization. The value baseline uses the snapshot's value net when it has one (else an untrained one, which
is only a noisy baseline).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.buffers import EpisodeBatch
from sb3_reinforce.common.estimators import parse_estimator_variant, variant_grammar
from sb3_reinforce.reinforce.policies import REINFORCEPolicy


@dataclasses.dataclass(frozen=True)
class VarianceResult:
    """
    Statistics of one estimator's batch gradient estimates.

    :param variant: the variant string
    :param trace_cov: trace of the covariance of the estimate over batches
    :param relative_variance: ``trace_cov / ||mean gradient||^2``
    :param mean_cosine: mean cosine similarity of the batch estimates to the mean gradient
    :param mean_norm: norm of the mean gradient
    :param n_batches: number of batches
    """

    variant: str
    trace_cov: float
    relative_variance: float
    mean_cosine: float
    mean_norm: float
    n_batches: int


def parse_variant(text: str) -> dict[str, Any]:
    """
    Parse ``[reinforce:]<return_mode>[+<baseline>][+norm|+nonorm]`` (the registry's grammar,
    :func:`sb3_reinforce.common.estimators.parse_estimator_variant`) into REINFORCE keyword arguments. Parts left
    out: ``reward_to_go``, no baseline, no normalization.

    :raises ValueError: naming the bad part and the allowed values
    """
    settings = parse_estimator_variant(text.removeprefix("reinforce:").removeprefix("reinforce"))
    return {"return_mode": "reward_to_go", "baseline": None, "normalize_advantage": False, **settings}


def _policy_of(snapshot: REINFORCE | REINFORCEPolicy) -> REINFORCEPolicy:
    policy = snapshot.policy if isinstance(snapshot, REINFORCE) else snapshot
    if not isinstance(policy, REINFORCEPolicy):
        raise TypeError(f"expected a REINFORCE model or REINFORCEPolicy, got {type(snapshot).__name__}")
    return policy


def collect_batch(policy: REINFORCEPolicy, env: gym.Env, n_episodes: int, rng_seed: int | None = None) -> EpisodeBatch:
    """
    Sample ``n_episodes`` complete episodes (terminated or truncated) with ``policy`` on a gymnasium env.

    :param policy: the (fixed) policy
    :param env: a gymnasium env (not vectorized)
    :param n_episodes: episodes in the batch
    :param rng_seed: seed of the env's first reset (None: continue its RNG)
    :return: the batch, episode-major, with policy version 0
    """
    observations, actions, rewards, log_probs, lengths = [], [], [], [], []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=rng_seed if episode == 0 else None)
        length, done = 0, False
        while not done:
            obs_tensor, _ = policy.obs_to_tensor(obs)
            with th.no_grad():
                distribution = policy.get_distribution(obs_tensor)
                action = distribution.get_actions(deterministic=False)
                log_prob = distribution.log_prob(action)
            action_np = action.cpu().numpy()[0]
            env_action = action_np
            if isinstance(env.action_space, spaces.Box):
                env_action = np.clip(action_np, env.action_space.low, env.action_space.high)
            elif isinstance(env.action_space, spaces.Discrete):
                env_action = int(action_np)
            next_obs, reward, terminated, truncated, _ = env.step(env_action)
            observations.append(np.asarray(obs))
            actions.append(np.asarray(action_np, dtype=np.float32).reshape(-1))
            rewards.append(float(reward))
            log_probs.append(float(log_prob.item()))
            obs, done, length = next_obs, terminated or truncated, length + 1
        lengths.append(length)
    episode_lengths = np.array(lengths, dtype=np.int64)
    n = int(episode_lengths.sum())
    starts = np.zeros(n, dtype=bool)
    starts[np.cumsum(episode_lengths) - episode_lengths] = True
    obs_array = np.stack(observations)
    if isinstance(env.observation_space, spaces.Discrete):
        obs_array = obs_array.reshape(n, 1)
    return EpisodeBatch(
        observations=obs_array,
        actions=np.stack(actions),
        rewards=np.array(rewards, dtype=np.float32),
        log_probs=np.array(log_probs, dtype=np.float32),
        policy_versions=np.zeros(n, dtype=np.int64),
        episode_starts=starts,
        episode_lengths=episode_lengths,
    )


def _estimator(policy: REINFORCEPolicy, env: gym.Env, variant: str, gamma: float) -> REINFORCE:
    """A REINFORCE model with the variant's settings and a copy of ``policy``'s weights."""
    settings = parse_variant(variant)
    policy_kwargs = dict(policy._get_constructor_parameters())
    for key in ("observation_space", "action_space", "lr_schedule", "value_baseline"):
        policy_kwargs.pop(key, None)
    if policy_kwargs.pop("use_sde", False):
        raise NotImplementedError("gSDE policies are not supported by the variance diagnostic")
    net_arch = policy_kwargs.get("net_arch")
    if settings["baseline"] == "value" and not policy.value_baseline and isinstance(net_arch, dict):
        # the snapshot has no critic: give the (untrained) value net the actor's hidden layers
        policy_kwargs["net_arch"] = dict(pi=list(net_arch.get("pi", [])), vf=list(net_arch.get("pi", [])))
    model = REINFORCE(
        type(policy),
        env,
        gamma=gamma,
        ent_coef=0.0,
        policy_kwargs=policy_kwargs,
        device="cpu",
        **settings,
    )
    own = model.policy.state_dict()
    snapshot = {key: value for key, value in policy.state_dict().items() if key in own and own[key].shape == value.shape}
    missing = [key for key in own if key not in snapshot and "value_net" not in key]
    if missing:
        raise ValueError(f"the snapshot's policy does not match the estimator's network: missing {missing}")
    model.policy.load_state_dict({**own, **snapshot})
    return model


def _flat_policy_gradient(model: REINFORCE, batch: EpisodeBatch) -> np.ndarray:
    model.policy.zero_grad()
    model.compute_policy_gradient(batch)
    grads = [
        (p.grad if p.grad is not None else th.zeros_like(p)).flatten()
        for name, p in model.policy.named_parameters()
        if "value_net" not in name
    ]
    # the loss is -(1/n_steps) sum_t Psi_t grad log pi: rescale to the per-episode estimate of grad J
    return -th.cat(grads).cpu().numpy() * batch.n_steps / batch.n_episodes


def gradient_variance(
    model_or_policy: REINFORCE | REINFORCEPolicy,
    env_id_or_env: str | gym.Env,
    variants: Sequence[str],
    n_batches: int = 50,
    n_episodes: int = 8,
    seed: int = 0,
    gamma: float | None = None,
    return_estimates: bool = False,
) -> list[VarianceResult] | tuple[list[VarianceResult], dict[str, np.ndarray]]:
    """
    Variance of the policy-gradient estimate of several REINFORCE estimators, for one fixed policy.

    :param model_or_policy: the policy snapshot (a REINFORCE model or its policy); it is not modified
    :param env_id_or_env: env id or a (non-vectorized) gymnasium env
    :param variants: estimator variants, e.g. ``["total", "reward_to_go", "reward_to_go+mean"]``
    :param n_batches: K, the number of independent batches
    :param n_episodes: complete episodes per batch
    :param seed: seeds the env and the action sampling
    :param gamma: discount (default: the model's, else 0.99)
    :param return_estimates: also return ``{variant: (K, n_params) array of estimates}``
    :return: one :class:`VarianceResult` per variant (and the estimates)
    """
    policy = _policy_of(model_or_policy)
    if gamma is None:
        gamma = model_or_policy.gamma if isinstance(model_or_policy, REINFORCE) else 0.99
    env = gym.make(env_id_or_env) if isinstance(env_id_or_env, str) else env_id_or_env
    th.manual_seed(seed)
    estimators = {variant: _estimator(policy, env, variant, gamma) for variant in variants}
    estimates: dict[str, list[np.ndarray]] = {variant: [] for variant in variants}
    policy.set_training_mode(False)
    for k in range(n_batches):
        batch = collect_batch(policy, env, n_episodes, rng_seed=seed if k == 0 else None)
        for variant, estimator in estimators.items():
            estimates[variant].append(_flat_policy_gradient(estimator, batch))
    results = []
    arrays = {variant: np.array(values) for variant, values in estimates.items()}
    for variant, values in arrays.items():
        mean = values.mean(axis=0)
        trace = float(values.var(axis=0, ddof=1).sum())
        norm = float(np.linalg.norm(mean))
        cosines = values @ mean / np.maximum(np.linalg.norm(values, axis=1) * norm, 1e-12)
        results.append(
            VarianceResult(
                variant=variant,
                trace_cov=trace,
                relative_variance=trace / max(norm**2, 1e-12),
                mean_cosine=float(cosines.mean()),
                mean_norm=norm,
                n_batches=n_batches,
            )
        )
    return (results, arrays) if return_estimates else results


def variance_table(results: Sequence[VarianceResult]) -> str:
    """Markdown table of :func:`gradient_variance`'s results."""
    lines = [
        "| variant | trace(Cov) | trace(Cov) / ‖mean‖² | mean cosine to mean gradient | ‖mean gradient‖ |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.variant} | {r.trace_cov:.4g} | {r.relative_variance:.4g} | {r.mean_cosine:.3f} | {r.mean_norm:.4g} |"
        )
    return "\n".join(lines) + "\n"


def plot_variance(results: Sequence[VarianceResult], path: str | Path) -> Path:
    """Bar plot of the relative variance and of the mean cosine similarity per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.variant for r in results]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar(names, [r.relative_variance for r in results])
    ax1.set_yscale("log")
    ax1.set_title("trace(Cov) / ||mean gradient||^2 (lower is better)")
    ax2.bar(names, [r.mean_cosine for r in results])
    ax2.set_title("mean cosine to the mean gradient (higher is better)")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sb3_reinforce.compare variance ...``"""
    parser = argparse.ArgumentParser(
        prog="sb3-reinforce-compare variance",
        description="Variance of REINFORCE gradient estimators for one policy snapshot.",
        epilog=f"variant syntax: {variant_grammar()}",
    )
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--model", default=None, help="REINFORCE .zip snapshot (default: fresh policy, zoo net)")
    parser.add_argument(
        "--variants", nargs="+", default=["total", "reward_to_go", "total+mean", "reward_to_go+mean", "reward_to_go+optimal"]
    )
    parser.add_argument("--n-batches", type=int, default=50)
    parser.add_argument("--n-episodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=0, help="first train the fresh zoo model that many env steps")
    parser.add_argument("--out", default="runs/variance", help="folder for variance.md and variance.png")
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    for variant in args.variants:
        try:
            parse_variant(variant)
        except ValueError as error:
            parser.error(str(error))
    if args.model:
        model = REINFORCE.load(args.model, device="cpu")
    else:
        from stable_baselines3.common.env_util import make_vec_env

        from sb3_reinforce.hyperparams import build_model_kwargs, load_hyperparams

        kwargs, zoo = build_model_kwargs(load_hyperparams("reinforce", args.env))
        env = make_vec_env(args.env, n_envs=zoo["n_envs"], seed=args.seed, wrapper_class=zoo["env_wrapper"])
        model = REINFORCE(env=env, seed=args.seed, device="cpu", **kwargs)
        if args.train_steps:
            model.learn(args.train_steps)
    results = gradient_variance(model, args.env, args.variants, args.n_batches, args.n_episodes, args.seed)
    table = variance_table(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "variance.md").write_text(table)
    plot_variance(results, out / "variance.png")
    print(table)
    return 0
