"""
Policies for REINFORCE: SB3's actor-critic policies whose critic exists only for a value baseline, and the exact
likelihood of gSDE actions that share one exploration matrix (:func:`gsde_segment_log_probs`, :class:`GSDENoise`).
"""

import math
import warnings
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from sb3_reinforce.common.arguments import allowed_policy_kwargs


def gsde_padded_log_probs(
    latent: th.Tensor, residuals: th.Tensor, variances: th.Tensor, epsilon: float
) -> tuple[th.Tensor, th.Tensor]:
    """
    Exact log-likelihood of gSDE actions that share one exploration matrix, as per-step conditionals.

    The ``k`` steps of a segment share the matrix ``E`` (``d x A``, independent entries ``E_ij ~ N(0, var_ij)``) and
    each step adds its own jitter of variance ``epsilon``: ``a_t = mu(s_t) + phi(s_t) E + sqrt(epsilon) z_t``. The
    columns of ``E`` are independent, so per action dimension ``j`` the residuals ``r_j = a_j - mu_j`` of the segment
    are Gaussian with covariance ``C_j = Phi diag(var_j) Phi^T + epsilon I`` (``Phi``: the ``k x d`` stacked features).
    With the Cholesky factor ``C_j = L L^T`` and ``w = L^-1 r_j``, ``log p(r_tj | r_<t,j) = -w_t^2 / 2 - log L_tt -
    log(2 pi) / 2``: row ``t`` of ``L`` and ``w_t`` depend only on the steps ``<= t`` of the segment, and the sum over
    ``t`` is the joint log-density. One step (``k = 1``) gives SB3's per-step marginal, ``N(mu, phi^2 var + epsilon)``.

    :param latent: ``(S, k, d)`` features ``phi(s_t)`` of ``S`` segments of at most ``k`` steps (zero rows after the
        last step of a shorter segment: they do not change the conditionals of the steps before them)
    :param residuals: ``(S, k, A)`` the actions minus their means ``mu(s_t)`` (zero after a segment's last step)
    :param variances: ``(d, A)``, or ``(S, d, A)`` one per segment, the variances of the entries of ``E``
    :param epsilon: variance of the per-step jitter (SB3's ``StateDependentNoiseDistribution.epsilon``)
    :return: ``(S, k)`` conditional log-probabilities (summed over the action dimensions), and ``(S, k)`` the squared
        norm of the gradient of each w.r.t. its step's mean ``mu(s_t)``, ``sum_j (w_tj / L_tt,j)^2``
    """
    dtype = th.float64  # the covariance of k steps can be ill-conditioned in float32
    phi = latent.to(dtype)
    var = variances.to(dtype)
    if var.dim() == 2:
        var = var.unsqueeze(0).expand(phi.shape[0], -1, -1)
    k = phi.shape[1]
    cov = th.einsum("ski,sij,sli->sjkl", phi, var, phi) + epsilon * th.eye(k, dtype=dtype, device=phi.device)
    chol = th.linalg.cholesky(cov)  # (S, A, k, k)
    whitened = th.linalg.solve_triangular(chol, residuals.to(dtype).transpose(1, 2).unsqueeze(-1), upper=False).squeeze(-1)
    diagonal = th.diagonal(chol, dim1=-2, dim2=-1)  # (S, A, k)
    log_probs = (-0.5 * whitened**2 - th.log(diagonal) - 0.5 * math.log(2 * math.pi)).sum(dim=1)
    score_sq = (whitened / diagonal).pow(2).sum(dim=1)
    return log_probs, score_sq


def gsde_segment_log_probs(
    latent: th.Tensor,
    mean: th.Tensor,
    actions: th.Tensor,
    variances: th.Tensor,
    segment_starts: np.ndarray,
    epsilon: float,
) -> tuple[th.Tensor, th.Tensor]:
    """
    :func:`gsde_padded_log_probs` of a flat batch: ``log p(a_t | s_t, earlier steps of t's segment)`` for every step.

    :param latent: ``(n, d)`` features ``phi(s_t)`` (differentiable: the gradient flows through the covariance too)
    :param mean: ``(n, A)`` means ``mu(s_t)``
    :param actions: ``(n, A)`` actions taken (before clipping to the bounds)
    :param variances: ``(d, A)`` variances of the exploration matrix's entries
    :param segment_starts: ``(n,)`` True on the first step of every segment (one exploration matrix each); the
        first step must be one
    :param epsilon: variance of the per-step jitter
    :return: ``(n,)`` conditional log-probabilities and ``(n,)`` squared score norms w.r.t. the means
    """
    starts = np.asarray(segment_starts, dtype=bool)
    if len(starts) == 0:
        empty = mean.new_zeros(0)
        return empty, empty
    if not starts[0]:
        raise ValueError("the first step of a gSDE batch must start a segment")
    segment = np.cumsum(starts) - 1
    position = np.arange(len(starts)) - np.flatnonzero(starts)[segment]
    n_segments, k = int(segment[-1]) + 1, int(position.max()) + 1
    index = (th.as_tensor(segment, device=mean.device), th.as_tensor(position, device=mean.device))
    padded_latent = latent.new_zeros((n_segments, k, latent.shape[1])).index_put(index, latent)
    padded_residuals = mean.new_zeros((n_segments, k, mean.shape[1])).index_put(index, actions - mean)
    log_probs, score_sq = gsde_padded_log_probs(padded_latent, padded_residuals, variances, epsilon)
    return log_probs[index].to(mean.dtype), score_sq[index].to(mean.dtype)


class GSDENoise:
    """
    The gSDE exploration matrices of the collection, one per env, and the log-probability of every action under
    the policy that sampled it given the earlier actions of its segment (:func:`gsde_padded_log_probs`).

    An env gets a fresh matrix ``E ~ N(0, std^2)`` on the first step of each of its episodes and after every
    ``segment_steps`` steps of the episode, the other envs keep theirs. The features, residuals and variances of the
    running segment are kept as they were when each step was taken, so a segment that goes on after an update
    (the policy changed in the middle) still gets the log-probabilities of what really sampled it.

    :param n_envs: number of envs
    :param segment_steps: steps per exploration matrix (``sde_sample_freq``)
    :param latent_dim: size of the features ``phi(s)`` (``latent_sde_dim``)
    :param action_dim: size of the actions
    :param epsilon: variance of the per-step jitter added to every action
    :param device: torch device
    """

    def __init__(
        self, n_envs: int, segment_steps: int, latent_dim: int, action_dim: int, epsilon: float, device: th.device | str
    ):
        self.n_envs, self.segment_steps, self.epsilon = n_envs, segment_steps, epsilon
        self.matrices = th.zeros((n_envs, latent_dim, action_dim), device=device)
        self.variances = th.zeros((n_envs, latent_dim, action_dim), device=device)
        self.latent = th.zeros((n_envs, segment_steps, latent_dim), device=device)
        self.residuals = th.zeros((n_envs, segment_steps, action_dim), device=device)
        #: Steps taken with each env's current matrix
        self.counts = th.full((n_envs,), segment_steps, dtype=th.long, device=device)
        #: Envs that got a fresh matrix at the last step
        self.resampled = np.zeros(n_envs, dtype=bool)

    def step(
        self, episode_starts: np.ndarray, std: th.Tensor, latent: th.Tensor, mean: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Sample the actions of one step of every env.

        :param episode_starts: ``(n_envs,)`` True where this step is the first of an episode
        :param std: ``(d, A)`` current standard deviations of the matrix entries (used for the fresh matrices)
        :param latent: ``(n_envs, d)`` features ``phi(s_t)``
        :param mean: ``(n_envs, A)`` means ``mu(s_t)``
        :return: the actions ``mu + phi E + sqrt(epsilon) z`` and their conditional log-probabilities
        """
        fresh = th.as_tensor(np.asarray(episode_starts, dtype=bool), device=self.counts.device)
        fresh = fresh | (self.counts >= self.segment_steps)
        self.resampled = fresh.cpu().numpy()
        if fresh.any():
            idx = th.nonzero(fresh).flatten()
            self.matrices[idx] = std * th.randn((len(idx), *std.shape), device=std.device)
            self.variances[idx] = std**2
            self.latent[idx] = 0.0
            self.residuals[idx] = 0.0
            self.counts[idx] = 0
        noise = th.bmm(latent.unsqueeze(1), self.matrices).squeeze(1)
        noise = noise + math.sqrt(self.epsilon) * th.randn_like(noise)
        rows = th.arange(self.n_envs, device=self.counts.device)
        self.latent[rows, self.counts] = latent
        self.residuals[rows, self.counts] = noise
        self.counts += 1
        # Rows after the longest running segment are all padding: left out of the factorization
        steps = int(self.counts.max())
        log_probs, _ = gsde_padded_log_probs(self.latent[:, :steps], self.residuals[:, :steps], self.variances, self.epsilon)
        return mean + noise, log_probs[rows, self.counts - 1].to(mean.dtype)


class REINFORCEPolicy(ActorCriticPolicy):
    """
    Policy for REINFORCE. Same constructor and ``policy_kwargs`` as SB3's ``ActorCriticPolicy``
    (``net_arch``, ``activation_fn``, ``ortho_init``, ``optimizer_class``, ``optimizer_kwargs``, ...), plus:

    :param value_baseline: build a value network (used by ``baseline="value"``). Without it the policy has no
        critic at all: no value parameters, no value forward pass. ``net_arch`` may then be a list (actor
        layers) or a dict whose ``vf`` entry is ignored. Set by the algorithm from its ``baseline``.
    """

    #: Constructor arguments a subclass always overrides: REINFORCE rejects them in ``policy_kwargs`` (they would be
    #: ignored), see ``sb3_reinforce.common.arguments``.
    policy_set_kwargs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        *args: Any,
        value_baseline: bool = False,
        **kwargs: Any,
    ):
        self.value_baseline = value_baseline
        if isinstance(net_arch, list) and len(net_arch) > 0 and isinstance(net_arch[0], dict):
            # As SB3's ActorCriticPolicy (same warning), here for the actor-only policy too
            warnings.warn(
                (
                    "As shared layers in the mlp_extractor are removed since SB3 v1.8.0, "
                    "you should now pass directly a dictionary and not a list "
                    "(net_arch=dict(pi=..., vf=...) instead of net_arch=[dict(pi=..., vf=...)])"
                ),
            )
            net_arch = net_arch[0]
        if not value_baseline:
            kwargs["share_features_extractor"] = True
            if net_arch is None:
                # SB3's defaults: no extra layers after NatureCNN, two 64-unit layers otherwise
                net_arch = dict(pi=[] if kwargs.get("features_extractor_class") is NatureCNN else [64, 64], vf=[])
            elif isinstance(net_arch, dict):
                net_arch = dict(pi=list(net_arch.get("pi", [])), vf=[])
            else:
                net_arch = dict(pi=list(net_arch), vf=[])
        super().__init__(observation_space, action_space, lr_schedule, net_arch, *args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(value_baseline=self.value_baseline)
        return data

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        if not self.value_baseline:
            # No critic: remove the value head and rebuild the optimizer without its parameters
            del self.value_net
            self.value_net = None  # type: ignore[assignment]
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def distribution_from_params(self, action_params: th.Tensor, latent_pi: th.Tensor | None = None) -> Distribution:
        """
        The action distribution for the output of ``action_net`` (logits, or the Gaussian mean).

        :param action_params: output of ``self.action_net``
        :param latent_pi: actor latent (only needed for gSDE)
        :return: the distribution
        """
        if isinstance(self.action_dist, DiagGaussianDistribution):
            return self.action_dist.proba_distribution(action_params, self.log_std)
        if isinstance(self.action_dist, (CategoricalDistribution, MultiCategoricalDistribution, BernoulliDistribution)):
            return self.action_dist.proba_distribution(action_logits=action_params)
        if isinstance(self.action_dist, StateDependentNoiseDistribution):
            return self.action_dist.proba_distribution(action_params, self.log_std, latent_pi)
        raise ValueError(f"Invalid action distribution {self.action_dist}")

    def act(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """
        Sample actions for collection: the actor only, no value network.

        :param obs: observations
        :param deterministic: take the mode of the distribution
        :return: actions and their log-probability
        """
        distribution = self.get_distribution(obs)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), log_prob  # type: ignore[misc]

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        if self.value_baseline:
            return super().forward(obs, deterministic)
        actions, log_prob = self.act(obs, deterministic)
        return actions, th.zeros_like(log_prob).unsqueeze(-1), log_prob

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        if not self.value_baseline:
            raise RuntimeError("This policy has no value network (the algorithm's baseline is not 'value')")
        return super().predict_values(obs)

    def evaluate_actions(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        values, log_prob, entropy, _ = self.evaluate(obs, actions)
        return (th.zeros_like(log_prob).unsqueeze(-1) if values is None else values), log_prob, entropy

    def _latents(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor | None]:
        """The actor's latent and the critic's (None without value baseline)."""
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_vf = self.mlp_extractor.forward_critic(features) if self.value_baseline else None
            return self.mlp_extractor.forward_actor(features), latent_vf
        pi_features, vf_features = features
        return self.mlp_extractor.forward_actor(pi_features), self.mlp_extractor.forward_critic(vf_features)

    def evaluate(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor | None, th.Tensor, th.Tensor | None, th.Tensor]:
        """
        Everything a REINFORCE update needs from one forward pass.

        :param obs: observations
        :param actions: actions taken
        :return: values (None without value baseline), log-probabilities, entropy (None where SB3 has no
            closed form) and the action-distribution parameters (``action_net`` output)
        """
        latent_pi, latent_vf = self._latents(obs)
        action_params = self.action_net(latent_pi)
        distribution = self.distribution_from_params(action_params, latent_pi)
        log_prob = distribution.log_prob(actions)
        entropy = distribution.entropy()
        values = self.value_net(latent_vf).flatten() if latent_vf is not None else None
        return values, log_prob, entropy, action_params

    @property
    def latent_sde_dim(self) -> int | None:
        """Size of the features ``phi(s)`` of gSDE (the actor's last layer), None without gSDE."""
        if not isinstance(self.action_dist, StateDependentNoiseDistribution):
            return None
        return self.action_dist.latent_sde_dim

    def sde_std(self) -> th.Tensor:
        """``(latent_sde_dim, action_dim)`` standard deviations of the gSDE exploration matrix's entries."""
        assert isinstance(self.action_dist, StateDependentNoiseDistribution), "sde_std() needs use_sde=True"
        return self.action_dist.get_std(self.log_std)

    def _actor_latent(self, obs: PyTorchObs) -> th.Tensor:
        features = self.extract_features(obs)
        return self.mlp_extractor.forward_actor(features if self.share_features_extractor else features[0])

    def sde_mean_and_latent(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """
        :param obs: observations
        :return: the gSDE means ``mu(s)`` (``action_net`` output) and features ``phi(s)`` (actor latent)
        """
        latent_pi = self._actor_latent(obs)
        return self.action_net(latent_pi), latent_pi

    def evaluate_sde(
        self, obs: PyTorchObs, actions: th.Tensor, segment_starts: np.ndarray
    ) -> tuple[th.Tensor | None, th.Tensor, th.Tensor | None, th.Tensor]:
        """
        :meth:`evaluate` for gSDE: the log-probability of each action given its state and the earlier actions of its
        segment (the steps that shared one exploration matrix), from the joint Gaussian likelihood of the segment
        (:func:`gsde_segment_log_probs`). The gradient flows through the features in the covariance too: it is the
        exact score of the sampling distribution (SB3's A2C/PPO stop it there, ``learn_features=False``).

        :param obs: observations, whole segments
        :param actions: actions taken
        :param segment_starts: True on the first step of every segment
        :return: values (None without value baseline), conditional log-probabilities, SB3's per-step entropy (a
            regularizer only) and the squared score norms w.r.t. the means
        """
        assert isinstance(self.action_dist, StateDependentNoiseDistribution), "evaluate_sde() needs use_sde=True"
        latent_pi, latent_vf = self._latents(obs)
        mean = self.action_net(latent_pi)
        variances = self.sde_std() ** 2
        log_prob, score_sq = gsde_segment_log_probs(
            latent_pi, mean, actions, variances, segment_starts, self.action_dist.epsilon
        )
        entropy = self.distribution_from_params(mean, latent_pi).entropy()
        values = self.value_net(latent_vf).flatten() if latent_vf is not None else None
        return values, log_prob, entropy, score_sq


class REINFORCECnnPolicy(REINFORCEPolicy):
    """
    REINFORCE policy for image observations (NatureCNN features). See :class:`REINFORCEPolicy`.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, *args, **kwargs):
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)


class REINFORCEMultiInputPolicy(REINFORCEPolicy):
    """
    REINFORCE policy for Dict observations (CombinedExtractor features). See :class:`REINFORCEPolicy`.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, *args, **kwargs):
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)


MlpPolicy = REINFORCEPolicy
CnnPolicy = REINFORCECnnPolicy
MultiInputPolicy = REINFORCEMultiInputPolicy

#: ``policy_kwargs`` keys of ``MlpPolicy``, ``CnnPolicy`` and ``MultiInputPolicy`` (read from their signatures,
#: see :func:`sb3_reinforce.common.arguments.allowed_policy_kwargs`).
POLICY_KWARGS: tuple[str, ...] = allowed_policy_kwargs(REINFORCEPolicy)
