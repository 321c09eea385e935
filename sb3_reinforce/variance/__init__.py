"""
Gradient-variance diagnostic: how noisy is each REINFORCE estimator for one fixed policy?

For a policy snapshot (a REINFORCE model), :func:`gradient_variance` samples ``n_batches`` batches of
``n_episodes`` complete episodes with that policy, by the model's own collection
(:meth:`REINFORCE.collect_batches`, one env), and computes for every variant (return mode / baseline / advantage
normalization) the batch's policy-gradient estimate with :meth:`REINFORCE.compute_policy_gradient` of the SAME
model, the variant's settings given as overrides. All variants see the same batches (common random numbers). Per
variant it reports the variance of the estimate (trace of its covariance over batches), the variance relative to
the squared norm of the mean gradient (scale-free, comparable across normalized and unnormalized variants) and the
mean cosine similarity of the batch estimates to the mean gradient.

Python API::

    from sb3_reinforce import REINFORCE
    from sb3_reinforce.variance import gradient_variance, variance_table, plot_variance

    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0)  # or REINFORCE.load("snapshot.zip")
    results = gradient_variance(model, "CartPole-v1", ["total", "reward_to_go", "reward_to_go+mean"], n_batches=50)
    print(variance_table(results))
    plot_variance(results, "variance.png")

CLI: ``python -m sb3_reinforce.compare variance --env CartPole-v1 --variants total reward_to_go ...``
(``--model snapshot.zip`` to study a saved policy, ``--train-steps N`` to first train the zoo model N steps;
default: a freshly initialized policy with the zoo's network). It writes ``variance.md`` (the env, batches,
episodes per batch, seed and snapshot, then the table) and ``variance.png``. The batches are sampled on one env
built from the env's zoo entry as the training envs are (``env_kwargs``, wrappers, ``frame_stack``, ``normalize``;
the fast env for ``KarpathyPong-v0``), with frozen normalization statistics: the fresh model's own, or for a
snapshot of an entry that normalizes, the file given with ``--vecnormalize`` (the zoo's ``vecnormalize.pkl``).

Variant syntax: ``<return_mode>[+<baseline>][+norm|+nonorm]`` (a ``reinforce:`` prefix is accepted), e.g.
``total``, ``reward_to_go+value``, ``total+mean+norm``. Parts left out: ``reward_to_go``, no baseline, no
normalization. A variant whose baseline needs a critic (``value``) needs a snapshot that has one (a model made with
``baseline="value"``); on a snapshot without one it is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.buffers import EpisodeBatch
from sb3_reinforce.common.checks import check_number
from sb3_reinforce.common.estimators import get_baseline, parse_estimator_variant, variant_grammar
from sb3_reinforce.common.safety import atomic_write

__all__ = [
    "VarianceResult",
    "build_parser",
    "check_variants",
    "describe_snapshot",
    "gradient_variance",
    "main",
    "parse_variant",
    "plot_variance",
    "sampling_env",
    "variance_markdown",
    "variance_table",
]


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


def check_variants(model: REINFORCE, variants: Sequence[str]) -> dict[str, dict[str, Any]]:
    """
    The settings of every variant (:func:`parse_variant`), checked against the snapshot.

    :param model: the policy snapshot
    :param variants: the variant strings
    :return: ``{variant: settings}``
    :raises ValueError: a variant that does not parse, or whose baseline needs a critic the snapshot does not have
    """
    if not isinstance(model, REINFORCE):
        raise TypeError(f"the snapshot must be a REINFORCE model (e.g. REINFORCE.load(path)), got {type(model).__name__}")
    if not variants:
        raise ValueError("variants is empty: give at least one, e.g. ['total', 'reward_to_go']")
    checked = {}
    for variant in variants:
        settings = parse_variant(variant)
        if get_baseline(settings["baseline"]).needs_values and not model.policy.value_baseline:
            raise ValueError(
                f"variant {variant!r} needs a critic V(s) and the policy snapshot has none (it was made with "
                f"baseline={model.baseline!r}): use a snapshot trained with baseline='value', or leave the variant out"
            )
        checked[variant] = settings
    return checked


def _sampling_env(env: str | gym.Env | VecEnv, seed: int) -> tuple[VecEnv, bool]:
    """One env to sample the batches on, seeded; and whether it was made here (then it is closed after)."""
    if isinstance(env, str):
        from sb3_reinforce.hyperparams.building import make_zoo_vec_env

        return make_zoo_vec_env(env, n_envs=1, seed=seed), True
    if isinstance(env, VecEnv):
        if env.num_envs != 1:
            # With several envs a batch is the first episodes to end: short episodes would be over-represented
            raise ValueError(f"env must hold one env (the batches are consecutive episodes of it), got {env.num_envs}")
        vec_env = env
    elif isinstance(env, gym.Env):
        vec_env = DummyVecEnv([lambda: env])
    else:
        raise TypeError(f"env must be an env id, a gymnasium env or a VecEnv of one env, got {type(env).__name__}")
    vec_env.seed(seed)
    return vec_env, False


def _policy_gradient(model: REINFORCE, batch: EpisodeBatch, settings: dict[str, Any]) -> np.ndarray:
    """The per-episode policy-gradient estimate of ``batch`` with the variant's settings, flat."""
    model.policy.zero_grad()
    # the REINFORCE term only: no entropy bonus, no value loss (which could reach a shared features extractor)
    model.compute_policy_gradient(batch, ent_coef=0.0, vf_coef=0.0, **settings)
    grads = [
        (p.grad if p.grad is not None else th.zeros_like(p)).flatten()
        for name, p in model.policy.named_parameters()
        if "value_net" not in name
    ]
    # the loss is -(1/n_steps) sum_t Psi_t grad log pi: rescale to the per-episode estimate of grad J
    return -th.cat(grads).cpu().numpy() * batch.n_steps / batch.n_episodes


def gradient_variance(
    model: REINFORCE,
    env: str | gym.Env | VecEnv,
    variants: Sequence[str],
    n_batches: int = 50,
    n_episodes: int = 8,
    seed: int = 0,
    gamma: float | None = None,
    return_estimates: bool = False,
) -> list[VarianceResult] | tuple[list[VarianceResult], dict[str, np.ndarray]]:
    """
    Variance of the policy-gradient estimate of several REINFORCE estimators, for one fixed policy.

    The batches are sampled by the model's own collection (:meth:`REINFORCE.collect_batches`) on one env; every
    variant's estimate is the model's :meth:`REINFORCE.compute_policy_gradient` with the variant's settings (and
    no entropy nor value loss), on the same batches.

    :param model: the policy snapshot (a REINFORCE model); its weights, gradients and counters are left as they were
    :param env: env id (the bare env, as ``make_vec_env`` makes it; the fast env for ``KarpathyPong-v0``), gymnasium
        env or VecEnv of one env (e.g. :func:`sampling_env`: the zoo entry's wrappers, a ``VecNormalize`` with the
        snapshot's statistics, ``training=False``), with the model's spaces; an env made here from an id is closed at
        the end
    :param variants: estimator variants, e.g. ``["total", "reward_to_go", "reward_to_go+mean"]``; one whose baseline
        needs a critic is refused when the model has none
    :param n_batches: K >= 2, the number of batches
    :param n_episodes: complete episodes per batch
    :param seed: seeds the env and the action sampling (torch's global generator)
    :param gamma: discount of the estimators (default: the model's)
    :param return_estimates: also return ``{variant: (K, n_params) array of estimates}``
    :return: one :class:`VarianceResult` per variant (and the estimates)
    """
    checked = check_variants(model, variants)
    check_number("n_batches", n_batches, 2, float("inf"), integer=True)
    if gamma is not None:
        check_number("gamma", gamma, 0.0, 1.0)
        checked = {variant: dict(settings, gamma=gamma) for variant, settings in checked.items()}
    vec_env, made_here = _sampling_env(env, seed)
    parameters = list(model.policy.parameters())
    saved_grads = [p.grad for p in parameters]
    estimates: dict[str, list[np.ndarray]] = {variant: [] for variant in checked}
    th.manual_seed(seed)
    try:
        for batch in model.collect_batches(vec_env, n_episodes, n_batches):
            for variant, settings in checked.items():
                estimates[variant].append(_policy_gradient(model, batch, settings))
    finally:
        for p, grad in zip(parameters, saved_grads, strict=True):
            p.grad = grad
        if made_here:
            vec_env.close()
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


def variance_markdown(
    results: Sequence[VarianceResult], env_id: str, n_episodes: int, seed: int, snapshot: str, gamma: float
) -> str:
    """
    ``variance.md``: what was measured (env, batches, episodes per batch, seed, discount, policy snapshot), then
    :func:`variance_table`.

    :param results: :func:`gradient_variance`'s results
    :param env_id: the env the batches were sampled on
    :param n_episodes: complete episodes per batch
    :param seed: the seed of :func:`gradient_variance`
    :param snapshot: the policy snapshot, e.g. its path, or ``"fresh policy (zoo network), trained 20,000 env steps"``
    :param gamma: the discount of the estimators
    :return: markdown
    """
    n_batches = results[0].n_batches if results else 0
    lines = [
        f"# Gradient variance of REINFORCE estimators on {env_id}",
        "",
        f"- env: {env_id}",
        f"- policy snapshot: {snapshot}",
        f"- batches: {n_batches} batches of {n_episodes} complete episodes, sampled with the snapshot on one env; "
        "every variant on the same batches",
        f"- seed: {seed} (env resets and action sampling)",
        f"- gamma: {gamma:g}",
    ]
    # A blank line between the list and the table: without it markdown reads the table as part of the last item
    return "\n".join(lines) + "\n\n" + variance_table(results)


def plot_variance(results: Sequence[VarianceResult], path: str | Path) -> Path:
    """Bar plot of the relative variance and of the mean cosine similarity per variant, written atomically."""
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
    with atomic_write(path) as file:
        fig.savefig(file, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    return path


def _entry_settings(env_id: str) -> dict[str, Any] | None:
    """The zoo settings of the shipped entry of ``env_id`` (:func:`build_model_kwargs`), None if it has none."""
    from sb3_reinforce.hyperparams import build_model_kwargs, default_hyperparams_path, load_hyperparams
    from sb3_reinforce.hyperparams.entries import load_hyperparams_file

    if env_id not in load_hyperparams_file(default_hyperparams_path("reinforce")):
        return None
    return build_model_kwargs(load_hyperparams("reinforce", env_id))[1]


def _statistics_needed(env_id: str) -> str:
    import json

    from sb3_reinforce.hyperparams import default_hyperparams_path, load_hyperparams

    normalize = json.dumps(load_hyperparams("reinforce", env_id)["normalize"])
    return (
        f"the zoo entry of {env_id} ({default_hyperparams_path('reinforce')}) normalizes (normalize: {normalize}): give "
        "the VecNormalize statistics the snapshot was trained with (--vecnormalize, e.g. the zoo's <log "
        f"folder>/reinforce/{env_id}_<n>/{env_id}/vecnormalize.pkl), or --vecnormalize none for a snapshot trained "
        "without normalization"
    )


def sampling_env(
    env_id: str, seed: int, model: REINFORCE | None = None, statistics: str | os.PathLike[str] | None = None
) -> VecEnv:
    """
    One env to sample the batches on, built as the policy's training envs were: from the zoo entry of ``env_id``
    when the shipped file has one (``env_kwargs``, wrappers, ``frame_stack``, ``normalize``; the fast env for
    ``KarpathyPong-v0``), else the bare env. Its ``VecNormalize`` statistics are frozen (``training=False``): those
    of the file ``statistics`` (written by ``VecNormalize.save``, e.g. the zoo's ``vecnormalize.pkl``; loaded by the
    project's restricted unpickler), else those of ``model``'s env. An entry that normalizes needs one of them,
    or ``statistics="none"`` for a policy trained without normalization: with other statistics than the policy's
    the batches would not be the observations it was trained on.

    :param env_id: environment id
    :param seed: seed of the env
    :param model: a model whose env holds the statistics (the CLI's fresh zoo model)
    :param statistics: a ``vecnormalize.pkl`` of the snapshot, or ``"none"``: no ``VecNormalize`` whatever the entry
    :return: the env (one environment)
    :raises ValueError: the entry normalizes and neither statistics nor a normalized ``model`` env is given
    """
    from stable_baselines3.common.vec_env import sync_envs_normalization, unwrap_vec_normalize

    from sb3_reinforce.common.serialization import load_vec_normalize
    from sb3_reinforce.hyperparams.building import make_vec_env_from_entry, make_zoo_vec_env

    def frozen(venv: VecEnv) -> VecEnv:
        assert statistics is not None
        return venv if statistics == "none" else load_vec_normalize(statistics, venv)

    normalize_env = frozen if statistics is not None else None
    zoo = _entry_settings(env_id)
    if zoo is None:
        env = make_zoo_vec_env(env_id, n_envs=1, seed=seed)
        env = normalize_env(env) if normalize_env is not None else env
    else:
        trained_on = None if model is None else unwrap_vec_normalize(model.get_env())
        if zoo["normalize"] is not None and statistics is None and trained_on is None:
            raise ValueError(_statistics_needed(env_id))
        env = make_vec_env_from_entry(env_id, zoo, n_envs=1, seed=seed, normalize_env=normalize_env)
    normalization = unwrap_vec_normalize(env)
    if normalization is not None:
        if statistics is None and model is not None and unwrap_vec_normalize(model.get_env()) is not None:
            sync_envs_normalization(model.get_env(), env)
        normalization.training = False
    return env


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``sb3-reinforce-compare variance`` (``--help`` shows every default)."""
    parser = argparse.ArgumentParser(
        prog="sb3-reinforce-compare variance",
        description="Variance of REINFORCE gradient estimators for one policy snapshot.",
        epilog=f"variant syntax: {variant_grammar()}",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--env", default="CartPole-v1", help="environment id (the batches are sampled on one env)")
    parser.add_argument(
        "--model", default=None, help="REINFORCE .zip snapshot (None: a fresh policy with the zoo entry's network)"
    )
    parser.add_argument(
        "--vecnormalize",
        default=None,
        help="with --model: the VecNormalize statistics the snapshot was trained with (the zoo's vecnormalize.pkl), "
        "needed when the env's zoo entry normalizes; 'none': the snapshot was trained without normalization",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["total", "reward_to_go", "total+mean", "reward_to_go+mean", "reward_to_go+optimal"],
        help="estimators to measure, on the same batches",
    )
    parser.add_argument("--n-batches", type=int, default=50, help="number of batches K (>= 2)")
    parser.add_argument("--n-episodes", type=int, default=8, help="complete episodes per batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the env resets and the action sampling")
    parser.add_argument("--train-steps", type=int, default=0, help="first train the fresh zoo model that many env steps")
    parser.add_argument("--out", default="runs/variance", help="folder for variance.md and variance.png")
    return parser


def describe_snapshot(
    model: REINFORCE, path: str | None, env_id: str, seed: int, train_steps: int, statistics: str | None = None
) -> str:
    """
    The policy snapshot, as ``variance.md`` states it: the file (with the env steps its model was trained, its
    ``num_timesteps``, and its sha256; and the normalization statistics file, with its sha256), or the fresh zoo
    policy, untrained or trained ``train_steps`` env steps.
    """
    if path is not None:
        import hashlib

        def sha256(file: str) -> str:
            return hashlib.sha256(Path(file).read_bytes()).hexdigest()

        text = f"file {path} (trained {model.num_timesteps:,} env steps; sha256 {sha256(path)})"
        if statistics == "none":
            return text + ", no normalization (--vecnormalize none)"
        return text + (f", normalization statistics {statistics} (sha256 {sha256(statistics)})" if statistics else "")
    trained = f"trained {model.num_timesteps:,} env steps (--train-steps {train_steps:,})" if train_steps else "untrained"
    return f"fresh policy (zoo network and settings of {env_id}, seed {seed}), {trained}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sb3_reinforce.compare variance ...``"""
    parser = build_parser()
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    for variant in args.variants:
        try:
            parse_variant(variant)
        except ValueError as error:
            parser.error(str(error))
    if args.model and args.train_steps:
        parser.error("--train-steps trains the fresh policy: it cannot be used with --model")
    if args.vecnormalize and not args.model:
        parser.error("--vecnormalize gives the statistics of a --model snapshot: a fresh policy uses its own env's")
    from sb3_reinforce.common.safety import UsageError, check_env_id, check_input_file

    try:
        check_env_id(args.env)
        if args.model:
            check_input_file(args.model, "--model")
            if args.vecnormalize not in (None, "none"):
                check_input_file(args.vecnormalize, "--vecnormalize")
            settings = _entry_settings(args.env)
            missing = args.vecnormalize is None and settings is not None and settings["normalize"] is not None
            env = sampling_env(args.env, args.seed, statistics="none" if missing else args.vecnormalize)
            try:
                # The snapshot must act in the env: its spaces are checked against the env's (a ValueError naming
                # both), before the statistics it needs are asked for
                model = REINFORCE.load(args.model, env=env, device="cpu")
                if missing:
                    raise ValueError(_statistics_needed(args.env))
            except ValueError:
                env.close()
                raise
        else:
            from sb3_reinforce.hyperparams import load_hyperparams
            from sb3_reinforce.hyperparams.building import make_model_from_entry

            entry = load_hyperparams("reinforce", args.env)  # an env without entry: HyperparamsError, a ValueError
            model, _, _ = make_model_from_entry(
                "reinforce", args.env, entry, seed=args.seed, evaluation_env=False, device="cpu"
            )
            if args.train_steps:
                model.learn(args.train_steps)
            env = sampling_env(args.env, args.seed, model=model)
    except (UsageError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        results = gradient_variance(model, env, args.variants, args.n_batches, args.n_episodes, args.seed)
    except ValueError as error:  # a critic variant on a snapshot without critic, a bad number of batches
        parser.error(str(error))
    finally:
        env.close()
    snapshot = describe_snapshot(model, args.model, args.env, args.seed, args.train_steps, args.vecnormalize)
    out = Path(args.out)
    markdown = variance_markdown(results, args.env, args.n_episodes, args.seed, snapshot, model.gamma)
    with atomic_write(out / "variance.md") as file:
        file.write(markdown.encode())
    plot_variance(results, out / "variance.png")
    print(markdown)
    return 0
