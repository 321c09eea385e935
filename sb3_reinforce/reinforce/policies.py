"""Policies for REINFORCE: SB3's actor-critic policies whose critic exists only for a value baseline."""

import warnings
from typing import Any, ClassVar

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

    def evaluate(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor | None, th.Tensor, th.Tensor | None, th.Tensor]:
        """
        Everything a REINFORCE update needs from one forward pass.

        :param obs: observations
        :param actions: actions taken
        :return: values (None without value baseline), log-probabilities, entropy (None where SB3 has no
            closed form) and the action-distribution parameters (``action_net`` output)
        """
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_pi = self.mlp_extractor.forward_actor(features)
            latent_vf = self.mlp_extractor.forward_critic(features) if self.value_baseline else None
        else:
            pi_features, vf_features = features
            latent_pi = self.mlp_extractor.forward_actor(pi_features)
            latent_vf = self.mlp_extractor.forward_critic(vf_features)
        action_params = self.action_net(latent_pi)
        distribution = self.distribution_from_params(action_params, latent_pi)
        log_prob = distribution.log_prob(actions)
        entropy = distribution.entropy()
        values = self.value_net(latent_vf).flatten() if latent_vf is not None else None
        return values, log_prob, entropy, action_params


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
