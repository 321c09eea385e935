"""
Karpathy's "Pong from Pixels" agent as a REINFORCE configuration.

- :class:`KarpathyPolicy`: 6400 -> 200 ReLU -> P(UP), no biases, weights ``randn / sqrt(fan_in)``, RMSprop
  (``alpha=0.99``, ``eps=1e-5``);
- :data:`KARPATHY_HYPERPARAMS`: the REINFORCE arguments of the original agent (discount 0.99 restarted at every
  point, returns standardized over the batch, no baseline, no gradient clipping, 10 episodes per update,
  learning rate 1e-4);
- :func:`karpathy_pong`: the model with the tuned values of the ``KarpathyPong-v0`` zoo entry, built on the fast
  vectorized Pong of :func:`sb3_reinforce.pong.make_pong_vec_env`.

The tuned entry keeps the original's policy network, returns and optimizer, and changes: learning rate 1e-3 (the
annotated copy of the original and the public reproductions use it), 4 episodes per update instead of 10, a learned
baseline from a critic network of its own (``critic_hidden=64``, fitted with 4 steps per batch) with GAE 0.95, and
the importance weights of the steps carried over an update restarted at every point
(``importance_weights="segment"``); see the README's Pong section for the learning curves they give.
"""

import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn
from torch.nn import functional as F

from sb3_reinforce.common.buffers import SparseTernaryRolloutBuffer, flat_nonzero
from sb3_reinforce.common.checks import check_number
from sb3_reinforce.pong.registration import KARPATHY_PONG_ID
from sb3_reinforce.reinforce.policies import REINFORCEPolicy
from sb3_reinforce.reinforce.reinforce import REINFORCE

__all__ = ["KARPATHY_HYPERPARAMS", "KarpathyPolicy", "SingleLogit", "SparseInputLinear", "karpathy_pong"]

N_HIDDEN = 200


class SingleLogit(nn.Module):
    """
    One bias-free logit ``z`` turned into the two logits ``[z, 0]``: a softmax over them gives
    ``P(action 0) = sigmoid(z)``, exactly Karpathy's single sigmoid output, inside SB3's categorical distribution.

    :param in_features: size of the input
    """

    def __init__(self, in_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, 1, bias=False)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        logit = self.linear(latent)
        return th.cat([logit, th.zeros_like(logit)], dim=-1)


class SparseInputLinear(nn.Module):
    """
    A bias-free linear layer ``y = x @ weight`` (``weight`` of shape ``(in_features, out_features)``) that reads
    only the non-zero inputs when there are few of them. Difference frames are mostly zeros (a few dozen of the
    6400 pixels move), so summing the weight rows of the non-zero pixels gives the dense product (up to float
    rounding) at a few percent of its cost, forward and backward, and integer inputs are never converted to a
    dense float array.

    Inputs: a dense ``(batch, in_features)`` tensor (on the CPU, 1-byte integer inputs are scanned for non-zeros
    by :func:`sb3_reinforce.common.buffers.flat_nonzero`, faster than ``torch.nonzero``), or a sparse CSR tensor
    of that shape (as :meth:`sb3_reinforce.common.buffers.SparseTernaryObservations.sparse_tensor` gives), whose
    rows are the bags as they are: nothing is made dense. Both give the same sums in the same order.

    :param in_features: size of each input
    :param out_features: size of each output
    :param max_density: above this fraction of non-zero inputs the dense product is used (dense inputs only)
    """

    def __init__(self, in_features: int, out_features: int, max_density: float = 0.1):
        super().__init__()
        self.in_features, self.out_features, self.max_density = in_features, out_features, max_density
        self.weight = nn.Parameter(th.empty(in_features, out_features))

    def forward(self, inputs: th.Tensor) -> th.Tensor:
        if inputs.layout == th.sparse_csr:
            return self._bags(inputs.col_indices(), inputs.crow_indices(), inputs.values())
        if inputs.device.type == "cpu" and inputs.dtype in (th.int8, th.uint8, th.bool) and inputs.shape[0] > 0:
            # Collection's path, once per vector step: few numpy calls, each costs microseconds
            n_rows, n_inputs = inputs.shape
            array = inputs.numpy()
            flat = flat_nonzero(array)
            if len(flat) > self.max_density * n_rows * n_inputs:
                return inputs.to(self.weight.dtype) @ self.weight
            # flat is ascending: row r's bag starts where the flat indices reach r * n_inputs
            offsets = np.searchsorted(flat, np.arange(0, (n_rows + 1) * n_inputs, n_inputs))
            values = array.reshape(-1)[flat].astype(np.float32)
            return self._bags(th.from_numpy(flat % n_inputs), th.from_numpy(offsets), th.from_numpy(values))
        rows, cols = inputs.nonzero(as_tuple=True)  # row-major order: rows come sorted
        if rows.numel() > self.max_density * inputs.numel():
            return inputs.to(self.weight.dtype) @ self.weight
        offsets = th.zeros(inputs.shape[0] + 1, dtype=th.long, device=inputs.device)
        th.cumsum(th.bincount(rows, minlength=inputs.shape[0]), 0, out=offsets[1:])
        return self._bags(cols, offsets, inputs[rows, cols])

    def _bags(self, columns: th.Tensor, offsets: th.Tensor, values: th.Tensor) -> th.Tensor:
        # One bag per observation: sum over its non-zero inputs j of x_j * weight[j] (offsets: n_rows + 1 of them)
        return F.embedding_bag(
            columns.to(self.weight.device),
            self.weight,
            offsets.to(self.weight.device),
            mode="sum",
            per_sample_weights=values.to(self.weight.device, self.weight.dtype),
            include_last_offset=True,
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, max_density={self.max_density}"


class KarpathyPolicy(REINFORCEPolicy):
    """
    Karpathy's Pong network: ``observation (flattened) -> n_hidden ReLU -> action distribution``, no biases,
    every weight drawn from ``N(0, 1) / sqrt(fan_in)``, trained with RMSprop (``alpha=0.99``, ``eps=1e-5``).

    With a ``Discrete(2)`` action space and ``single_logit=True`` (default) the output layer has one unit whose
    logit ``z`` gives ``P(action 0) = sigmoid(z)`` (the original's ``P(UP)``); otherwise the output layer has one
    logit per action (a softmax, ``n_hidden * n_actions`` weights). With ``baseline="value"`` (the algorithm sets
    ``value_baseline``) and ``critic_hidden=0`` (default) a linear value head ``V(s) = w . hidden + b`` reads the same
    hidden layer (one extra layer of ``n_hidden + 1`` parameters, trained with ``vf_coef`` times the value loss, whose
    gradient also moves the policy's hidden layer); with ``critic_hidden > 0`` the critic has its own network,
    ``observation -> critic_hidden ReLU -> V(s)`` (the same sparse input layer), so that the value loss, and the
    extra critic steps of ``n_critic_updates``, leave the policy alone. Without a value baseline there is no critic.

    :param observation_space: Observation space (a flat ``Box``, e.g. the 6400 difference-frame values)
    :param action_space: Action space (``Discrete``)
    :param lr_schedule: Learning rate schedule
    :param n_hidden: number of hidden ReLU units
    :param single_logit: with two actions, one output logit (Bernoulli) instead of two (softmax)
    :param critic_hidden: hidden ReLU units of a critic network of its own (0: a linear value head on the policy's
        hidden layer); only with ``baseline="value"``
    :param kwargs: other ``REINFORCEPolicy`` arguments (``optimizer_class``, ``optimizer_kwargs``, ...)
    """

    #: Training batches may come as sparse CSR tensors (``SparseTernaryRolloutBuffer``): see :meth:`hidden`
    sparse_observations = True
    policy_set_kwargs = ("net_arch", "activation_fn", "ortho_init")  # set below: REINFORCE rejects them in policy_kwargs
    #: Karpathy's optimizer, the default of ``optimizer_class`` (``policy_kwargs`` validation reads it)
    default_optimizer_class: type[th.optim.Optimizer] = th.optim.RMSprop

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        n_hidden: int = N_HIDDEN,
        single_logit: bool = True,
        critic_hidden: int = 0,
        **kwargs: Any,
    ):
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"KarpathyPolicy needs a Discrete action space, got {action_space}")
        check_number("critic_hidden", critic_hidden, 0, math.inf, integer=True)
        self.n_hidden = int(n_hidden)
        self.critic_hidden = int(critic_hidden)
        self.single_logit = bool(single_logit) and int(action_space.n) == 2
        kwargs.setdefault("optimizer_class", self.default_optimizer_class)
        kwargs.setdefault("optimizer_kwargs", dict(alpha=0.99, eps=1e-5))
        kwargs["net_arch"] = [self.n_hidden]
        kwargs["activation_fn"] = nn.ReLU
        kwargs["ortho_init"] = False
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("net_arch", "activation_fn", "ortho_init"):
            data.pop(key, None)
        data.update(n_hidden=self.n_hidden, single_logit=self.single_logit, critic_hidden=self.critic_hidden)
        return data

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        n_inputs = self.features_dim
        # Replace SB3's biased layers by bias-free ones
        self.mlp_extractor.policy_net = nn.Sequential(SparseInputLinear(n_inputs, self.n_hidden), nn.ReLU())
        if self.critic_hidden and not self.value_baseline:
            raise ValueError(f"critic_hidden={self.critic_hidden} needs baseline='value' (a critic); got no value baseline")
        if self.value_baseline and self.critic_hidden:
            # A critic of its own, as sparse as the policy's input layer
            self.mlp_extractor.value_net = nn.Sequential(SparseInputLinear(n_inputs, self.critic_hidden), nn.ReLU())
            self.value_net = nn.Linear(self.critic_hidden, 1)
        elif self.value_baseline:
            # The value head reads the shared hidden layer: drop SB3's separate dense critic layers
            self.mlp_extractor.value_net = nn.Identity()
            self.value_net = nn.Linear(self.n_hidden, 1)
        if self.single_logit:
            self.action_net = SingleLogit(self.n_hidden)
        else:
            self.action_net = nn.Linear(self.n_hidden, int(self.action_space.n), bias=False)  # type: ignore[attr-defined]
        self.reset_karpathy_weights()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def hidden(self, obs: PyTorchObs) -> th.Tensor:
        """
        The hidden ReLU layer on the flattened observations (as they come: a sparse ``int8`` difference frame is
        never converted to a dense float array, see :class:`SparseInputLinear`).

        :param obs: observations, shape ``(batch, ...)``, or a sparse CSR tensor of flattened observations
            ``(batch, n_inputs)`` (a training batch of ``SparseTernaryRolloutBuffer``)
        :return: hidden activations, shape ``(batch, n_hidden)``
        """
        return self.mlp_extractor.policy_net(self._flat(obs))  # type: ignore[union-attr]

    @staticmethod
    def _flat(obs: PyTorchObs) -> th.Tensor:
        return obs if obs.layout == th.sparse_csr else obs.reshape(obs.shape[0], -1)  # a sparse batch is already flat

    def _values(self, obs: PyTorchObs, hidden: th.Tensor | None = None) -> th.Tensor:
        """V(s), shape ``(batch, 1)``, from the critic's own network or from the policy's hidden layer (``hidden``
        when the caller has it already)."""
        if self.critic_hidden:
            return self.value_net(self.mlp_extractor.value_net(self._flat(obs)))  # type: ignore[union-attr]
        return self.value_net(self.hidden(obs) if hidden is None else hidden)

    def get_distribution(self, obs: PyTorchObs) -> Distribution:
        latent_pi = self.hidden(obs)
        return self.distribution_from_params(self.action_net(latent_pi), latent_pi)

    def evaluate(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor | None, th.Tensor, th.Tensor | None, th.Tensor]:
        hidden = self.hidden(obs)
        action_params = self.action_net(hidden)
        distribution = self.distribution_from_params(action_params)
        values = self._values(obs, hidden).flatten() if self.value_baseline else None
        return values, distribution.log_prob(actions), distribution.entropy(), action_params

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        if not self.value_baseline:
            return super().predict_values(obs)  # raises: no value network
        return self._values(obs)

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        actions, log_prob = self.act(obs, deterministic)
        values = self.predict_values(obs) if self.value_baseline else th.zeros_like(log_prob).unsqueeze(-1)
        return actions, values, log_prob

    def act(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """
        Sample actions for collection. With a single logit ``z`` this skips SB3's distribution objects (a third of
        the collection time of the policy): the log-probabilities of the logits ``[z, 0]`` as torch's
        ``Categorical`` computes them (``logits - logsumexp(logits)``, the same bits as :meth:`evaluate` gives), and
        action 0 with probability ``exp(log P(0)) = sigmoid(z)``. Not ``softplus`` and ``sigmoid``: their
        vectorized kernels round differently on CPUs with and without AVX-512 (torch's CPU capability), and a
        behaviour log-probability one bit off changes the importance weights and so every later update: a seed
        would then train differently from one machine to the next.

        :param obs: observations
        :param deterministic: take the most likely action (action 0 on a tie, like ``argmax``)
        :return: actions and their log-probability
        """
        if not self.single_logit:
            return super().act(obs, deterministic)
        logit = self.hidden(obs) @ self.action_net.linear.weight[0]  # type: ignore[union-attr]
        log_normalizer = th.stack([logit, th.zeros_like(logit)], dim=-1).logsumexp(dim=-1)
        actions = (logit < 0).long() if deterministic else (th.rand_like(logit) >= (logit - log_normalizer).exp()).long()
        # log P(0) = z - logsumexp([z, 0]), log P(1) = 0 - logsumexp([z, 0])
        log_prob = th.where(actions == 0, logit, 0.0) - log_normalizer
        return actions, log_prob

    def reset_karpathy_weights(self) -> None:
        """Draw every weight from ``N(0, 1) / sqrt(fan_in)`` (Karpathy's "Xavier" initialization)."""
        with th.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, SparseInputLinear)):
                    module.weight.normal_(0.0, 1.0 / np.sqrt(module.in_features))


KARPATHY_HYPERPARAMS: dict[str, Any] = dict(
    learning_rate=1e-4,
    n_episodes=10,
    gamma=0.99,
    return_mode="reward_to_go",
    baseline=None,
    normalize_advantage=True,
    reset_on_reward=True,
    ent_coef=0.0,
    max_grad_norm=None,
    rollout_buffer_class=SparseTernaryRolloutBuffer,
)
"""REINFORCE arguments of the 2016 original agent. :func:`karpathy_pong` uses the tuned ``KarpathyPong-v0`` entry
of the zoo file instead; ``karpathy_pong(**KARPATHY_HYPERPARAMS)`` gives the original."""


def karpathy_pong(
    n_envs: int | None = None,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    **overrides: Any,
) -> REINFORCE:
    """
    Karpathy's Pong agent, ready to ``learn``: :class:`KarpathyPolicy` with the hyperparameters of the
    ``KarpathyPong-v0`` entry of ``zoo_hyperparams/reinforce.yml`` (the tuned values; the zoo trains the same
    agent) on ``make_pong_vec_env(n_envs, seed, **env_kwargs)``: sticky actions with probability 0.25 (the
    entry's ``env_kwargs``, as ``ALE/Pong-v5``); ``env_kwargs=dict(repeat_action_probability=0.0)`` trains on
    the deterministic emulator, where the agent can learn the emulator instead of the game.

    .. code-block:: python

        from sb3_reinforce.pong import evaluate_pong
        from sb3_reinforce.pong.karpathy import karpathy_pong

        model = karpathy_pong(seed=0).learn(2_000_000, progress_bar=True)
        print(evaluate_pong(model).format())  # held-out seeds, sticky actions, greedy and stochastic

    :param n_envs: number of Pong games played in parallel (None: the zoo entry's ``n_envs``)
    :param seed: seed of the games (game ``i`` gets ``seed + i``; keep it below ``PONG_EVAL_SEED_BASE = 2**30``,
        the held-out evaluation seeds) and of the network
    :param env_kwargs: arguments of :func:`sb3_reinforce.pong.make_pong_vec_env`, added to the zoo entry's
    :param overrides: REINFORCE arguments replacing the zoo entry's (e.g. ``n_episodes=10``, ``verbose=1``,
        ``device="cpu"``; ``**KARPATHY_HYPERPARAMS`` for the 2016 original); a ``baseline`` without a learned V(s)
        also drops the entry's critic (:func:`~sb3_reinforce.hyperparams.without_unused_critic`)
    :return: the model
    """
    # Imported here: the zoo file names this module's policy, so loading it at import time would be circular
    from sb3_reinforce.hyperparams import load_hyperparams, without_unused_critic
    from sb3_reinforce.hyperparams.building import make_model_from_entry

    entry = load_hyperparams("reinforce", KARPATHY_PONG_ID)
    if "baseline" in overrides:  # the entry's critic goes with its baseline (critic settings given here are kept)
        entry = without_unused_critic({**entry, "baseline": overrides["baseline"]})
    model, _, _ = make_model_from_entry(
        "reinforce",
        KARPATHY_PONG_ID,
        entry,
        seed=seed,
        n_envs=n_envs,
        env_kwargs=env_kwargs,
        evaluation_env=False,
        **{"device": "cpu", **overrides},
    )
    assert isinstance(model, REINFORCE)
    return model
