"""REINFORCE (Monte-Carlo policy gradient) as a Stable-Baselines3 on-policy algorithm."""

import io
import numbers
import pathlib
import pickle
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance, obs_as_tensor, update_learning_rate
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.arguments import REINFORCE_ARGUMENTS, ArgumentRule, PolicyRule, check_gsde
from sb3_reinforce.common.buffers import EpisodeBatch, EpisodeRolloutBuffer
from sb3_reinforce.common.estimators import Baseline, carried_importance_weights, get_baseline, policy_gradient_weights
from sb3_reinforce.common.returns import steps_in_segment
from sb3_reinforce.common.safety import (
    atomic_write,
    check_finite_env_output,
    check_finite_gradients,
    check_model_file,
    check_spaces,
    model_path,
)
from sb3_reinforce.common.serialization import (
    UntrustedPickleError,
    decode_model_data,
    other_algorithm_message,
    read_model_data,
)
from sb3_reinforce.reinforce.policies import CnnPolicy, GSDENoise, MlpPolicy, MultiInputPolicy, REINFORCEPolicy

SelfREINFORCE = TypeVar("SelfREINFORCE", bound="REINFORCE")


class _ModelSetting:
    """The type of :data:`MODEL_SETTING`."""

    def __repr__(self) -> str:
        return "MODEL_SETTING"


#: Default of the overrides of :meth:`REINFORCE.compute_policy_gradient`: the model's own setting (a sentinel,
#: as ``baseline=None`` is a setting of its own).
MODEL_SETTING: Any = _ModelSetting()

# Timesteps per env between two logger tables with learn()'s default log_interval: PPO's default rollout
# (n_steps=2048, log_interval=1), whatever the batch size of REINFORCE.
_DEFAULT_LOG_STEPS = 2048

# Observation bytes per training chunk: bounds the memory of one forward/backward pass (Pong batches can
# hold 100k+ steps of 6400 inputs).
_CHUNK_BYTES = 2**26


def _checked_learning_rate(schedule: Schedule, progress_remaining: float) -> float:
    """
    The learning rate ``schedule`` gives at ``progress_remaining``, as a float, or a ``TypeError``/``ValueError``
    naming ``learning_rate``: it must be a finite number >= 0 (0 is allowed: a linear schedule reaches it at the
    end of training, and a warm-up may start there).

    :param schedule: the learning-rate schedule (an SB3 ``FloatSchedule`` is unwrapped, so that a schedule
        returning a bool or a str is not silently cast to float)
    :param progress_remaining: from 1 (start of training) to 0 (end)
    :return: the learning rate
    """
    raw = schedule.value_schedule if isinstance(schedule, FloatSchedule) else schedule
    value = raw(progress_remaining)
    where = f"at progress_remaining={progress_remaining!r}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"learning_rate schedule returned {value!r} ({type(value).__name__}) {where}: it must return a number")
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"learning_rate schedule returned {value!r} {where}: allowed [0, inf) (finite). The weights were not updated."
        )
    return float(value)


class REINFORCE(OnPolicyAlgorithm):
    """
    REINFORCE: Monte-Carlo policy gradient (Williams, 1992), with a selectable return weighting and baseline.

    The gradient estimate is ``sum_t grad log pi(a_t|s_t) * Psi_t`` over complete episodes; ``Psi_t`` is chosen
    by ``return_mode`` and ``baseline`` (see ``sb3_reinforce.common.estimators``). Steps of episodes still running
    when an update happens are kept and used once their episode ends, weighted by per-decision importance
    ratios for having been collected by an older policy.

    Reliability: every constructor argument and the env's spaces are validated before any env step; a NaN or
    inf reward/observation raises a ``ValueError`` naming the env and step before it reaches the buffer, and a
    non-finite loss or gradient raises a ``FloatingPointError`` without touching the weights. A learning rate
    (constant, or returned by the schedule at any update) that is NaN, inf, negative or not a number raises an
    error naming ``learning_rate`` before the optimizer steps. After any of these errors ``learn`` can be called
    again (see :meth:`train` and :meth:`collect_rollouts` for what is kept). ``save`` is atomic (see :meth:`save`
    for what a checkpoint holds and what a resume redoes).

    gSDE (``use_sde=True``): the action of env ``i`` at step ``t`` is ``mu(s_t) + phi(s_t) E_i + sqrt(eps) z_t``
    (``phi``: the actor's last latent layer, ``E_i``: that env's exploration matrix, entries ``N(0, std^2)`` with the
    learned std, ``z_t`` a standard normal jitter of SB3's ``epsilon=1e-6`` variance, which SB3's log-probability
    assumes too). Each env draws a fresh ``E_i`` on the first step of each of its episodes and after every
    ``sde_sample_freq`` steps counted from that first step, without touching the other envs; not at updates nor at
    rollout starts, so a segment of steps sharing one matrix never spans two episodes and always starts at a
    multiple of ``sde_sample_freq`` in its episode. The actions of a segment are correlated (they share ``E_i``), so
    the product of SB3's per-step marginal densities is not their likelihood, and a REINFORCE estimator built on it
    is biased for ``sde_sample_freq > 1`` (``tests/test_gsde.py`` measures it). REINFORCE uses the exact
    likelihood: per step, the log-density of the action given its state and the earlier actions of its segment,
    from the segment's joint Gaussian (covariance ``Phi diag(std^2) Phi^T + eps I`` per action dimension, by
    Cholesky; see ``sb3_reinforce.reinforce.policies.gsde_padded_log_probs``). These sum to the trajectory's
    log-likelihood and each depends only on the past, so the policy-gradient theorem for history-dependent
    policies makes every return mode and baseline unbiased, as without gSDE; the gradient also flows through
    ``phi`` in the covariance (the exact score; SB3 stops it there). ``sde_sample_freq=1`` is SB3's per-step
    marginal. More steps per matrix than ``latent_sde_dim`` would make the likelihood singular: refused before any
    env step. Steps of an episode carried over an update keep the log-probability of what sampled them (the old
    policy, and the old std of their matrix), so their importance weights stay exact. The entropy bonus uses SB3's
    per-step entropy (a regularizer only). ``predict()`` samples with SB3's own noise (``policy.reset_noise()``),
    not the collection's matrices.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The learning rate (a number > 0, numpy scalars included), or a function of the current
        progress remaining (from 1 to 0, clamped there) returning a finite number >= 0
    :param n_steps: Steps collected per env between updates when ``n_episodes`` is None; the update uses every
        episode completed so far (episodes still running wait for the next update)
    :param n_episodes: If given, update after every ``n_episodes`` complete episodes (counted over all envs),
        and ``n_steps`` is ignored
    :param gamma: Discount factor
    :param return_mode: ``"reward_to_go"`` (step t weighted by the discounted return from t on) or ``"total"``
        (every step weighted by the whole discounted episode return R(tau))
    :param baseline: None, ``"mean"`` (mean return of the other episodes of the batch), ``"optimal"`` (the
        variance-minimizing constant ``sum |g|^2 R / sum |g|^2``, g the per-step score gradient w.r.t. the action
        distribution parameters), ``"time"`` (mean return at the same time index over the other episodes) or
        ``"value"`` (learned V(s), regressed on the Monte-Carlo returns); the registry is
        ``sb3_reinforce.common.estimators.BASELINES``
    :param gae_lambda: GAE lambda for ``baseline="value"``; 1 gives the Monte-Carlo return minus V(s)
    :param normalize_advantage: Standardize the weights ``Psi_t`` over the batch (a constant batch gives zeros)
    :param reset_on_reward: Restart the discounted return at every non-zero reward (Karpathy's Pong: each point is
        its own game)
    :param ent_coef: Entropy coefficient for the loss calculation
    :param vf_coef: Value function coefficient for the loss calculation (``baseline="value"`` only)
    :param max_grad_norm: The maximum value for the gradient clipping (None: no clipping)
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE) instead of action noise (Box
        action spaces only). See "gSDE" above for when the exploration matrix is resampled and which likelihood the
        gradient uses
    :param sde_sample_freq: With ``use_sde``: the number of steps of an episode that share one exploration matrix,
        an int in ``[1, latent_sde_dim]`` (the size of the actor's last layer, 64 by default). Unlike SB3, -1 (one
        matrix per rollout) is refused, and the default is 4. Ignored without ``use_sde``
    :param rollout_buffer_class: Rollout buffer class to use (an ``EpisodeRolloutBuffer`` subclass)
    :param rollout_buffer_kwargs: Keyword arguments for the rollout buffer, e.g. ``max_episode_steps``
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation: the keyword arguments of
        the policy class's ``__init__`` (SB3's ``ActorCriticPolicy`` ones for the built-in policies), less those
        REINFORCE sets itself (see ``sb3_reinforce.common.arguments``); checked before any env step
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or wrappers used), 2 for
        debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param importance_weights: How the steps of an episode still running at an update are weighted once it ends
        (``sb3_reinforce.common.estimators.IMPORTANCE_WEIGHTS``): ``"episode"`` (per-decision ratios multiplied from
        the episode's first step: exact), ``"segment"`` (multiplied from the first step of the step's point, with
        ``reset_on_reward=True``: it leaves out how the older policy changed where the point starts, and keeps long
        episodes from multiplying hundreds of ratios) or ``"none"`` (no correction)
    :param n_critic_updates: Gradient steps on the value loss per batch (``baseline="value"`` only): the first
        together with the policy step, the others on the value loss alone, on the same batch and the same targets
        (computed before any step, as the advantages are). As Spinning Up's VPG (``train_v_iters``) and
        sb3-contrib's TRPO fit their critic: the policy step is unchanged, the next batch's baseline is better fitted
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: REINFORCEPolicy
    rollout_buffer: EpisodeRolloutBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[REINFORCEPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 256,
        n_episodes: int | None = None,
        gamma: float = 0.99,
        return_mode: str = "reward_to_go",
        baseline: str | None = None,
        gae_lambda: float = 1.0,
        normalize_advantage: bool = True,
        reset_on_reward: bool = False,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = 4,
        rollout_buffer_class: type[EpisodeRolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        importance_weights: str = "episode",
        n_critic_updates: int = 1,
        _init_setup_model: bool = True,
    ):
        self._validate_arguments(
            policy=policy,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            tensorboard_log=tensorboard_log,
            learning_rate=learning_rate,
            n_steps=n_steps,
            n_episodes=n_episodes,
            gamma=gamma,
            return_mode=return_mode,
            baseline=baseline,
            gae_lambda=gae_lambda,
            normalize_advantage=normalize_advantage,
            reset_on_reward=reset_on_reward,
            importance_weights=importance_weights,
            n_critic_updates=n_critic_updates,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
        )
        if not callable(learning_rate):
            # SB3's FloatSchedule rejects numpy scalars other than np.float64; a plain float is also what is saved
            learning_rate = float(learning_rate)
        if env is not None:
            # Make the env (no reset, no step) and check its spaces before SB3 wraps it: unsupported spaces
            # would otherwise fail deep inside DummyVecEnv or the policy with an unclear message
            env = maybe_make_env(env, verbose)
            check_spaces(getattr(env, "observation_space", None), getattr(env, "action_space", None))
            check_gsde(use_sde, sde_sample_freq, action_space=getattr(env, "action_space", None))
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]
            use_sde=bool(use_sde),
            sde_sample_freq=int(sde_sample_freq),
            rollout_buffer_class=rollout_buffer_class,  # type: ignore[arg-type]
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            device=device,
            seed=seed,
            _init_setup_model=False,
            supported_action_spaces=None,  # checked by check_spaces, with a clearer error
        )
        self.n_episodes = n_episodes
        self.return_mode = return_mode
        self.baseline = baseline
        self.normalize_advantage = normalize_advantage
        self.reset_on_reward = reset_on_reward
        self.importance_weights = importance_weights
        self.n_critic_updates = int(n_critic_updates)
        # The collection's exploration matrices (one per env), made at the first gSDE step
        self._sde_noise: GSDENoise | None = None
        # The critic's targets of the last compute_policy_gradient, for train()'s extra critic steps
        self._value_targets: th.Tensor | None = None
        if _init_setup_model:
            self._setup_model()

    @property
    def _baseline(self) -> Baseline:
        """The registry entry of ``self.baseline``: what it needs from the network (a critic, score norms)."""
        return get_baseline(self.baseline)

    @classmethod
    def argument_rules(cls) -> dict[str, ArgumentRule]:
        """
        The allowed values of every constructor argument, in the order they are checked: ``policy`` (this class's
        :attr:`policy_aliases` or a ``REINFORCEPolicy`` subclass), then
        :data:`sb3_reinforce.common.arguments.REINFORCE_ARGUMENTS`. The hyperparameter-file validator reads the
        same rules.

        :return: ``{argument name: rule}``
        """
        return {"policy": PolicyRule(cls.policy_aliases, REINFORCEPolicy), **REINFORCE_ARGUMENTS}

    @classmethod
    def _validate_arguments(cls, **kwargs: Any) -> None:
        """Reject bad constructor arguments before any env is built or stepped (TypeError/ValueError naming them)."""
        # What the rules depending on another argument see (policy_kwargs: the policy's class, not its name)
        values = dict(kwargs)
        for name, rule in cls.argument_rules().items():
            if name == "learning_rate" and callable(kwargs[name]):
                # A schedule is checked at the start of training here (before any env step) and at every update
                _checked_learning_rate(kwargs[name], 1.0)
            else:
                rule.check(name, kwargs[name], values)
            values[name] = rule.resolve(kwargs[name])

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if self.rollout_buffer_class is None:
            self.rollout_buffer_class = EpisodeRolloutBuffer  # type: ignore[assignment]
        self.rollout_buffer = self._make_rollout_buffer(self.n_steps if self.n_episodes is None else 1024)
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, REINFORCEPolicy)):
            raise TypeError(f"policy must be a REINFORCEPolicy subclass or one of {list(self.policy_aliases)}")
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space,
            self.action_space,
            self.lr_schedule,
            value_baseline=self._baseline.needs_values,
            use_sde=self.use_sde,
            **self.policy_kwargs,
        )
        self.policy = self.policy.to(self.device)
        check_gsde(self.use_sde, self.sde_sample_freq, self.action_space, self.policy.latent_sde_dim)
        self._sde_noise = None
        self._maybe_recommend_cpu("REINFORCEPolicy")
        # Steps per chunk of a training pass, so that huge batches of big observations fit in memory
        obs_bytes = sum(int(np.prod(shape)) for shape in self._obs_shapes()) * 4
        self._train_chunk_steps = max(256, _CHUNK_BYTES // max(obs_bytes, 1))
        if self.use_sde:
            # The segments' covariances (float64, k x k per action dimension, with their Cholesky factors and
            # gradients) bound the chunk as well
            sde_bytes = 8 * 4 * self.sde_sample_freq * int(np.prod(self.action_space.shape))
            self._train_chunk_steps = max(self.sde_sample_freq, min(self._train_chunk_steps, _CHUNK_BYTES // sde_bytes))

    def _excluded_save_params(self) -> list[str]:
        # The collection's exploration matrices are not part of a model (like the envs and the buffer)
        return [*super()._excluded_save_params(), "_sde_noise", "_value_targets"]

    def sde_segment_starts(self, episode_starts: np.ndarray) -> np.ndarray:
        """
        The first step of every segment of steps that shared one gSDE exploration matrix: each episode's first
        step, and every ``sde_sample_freq``-th step after it.

        :param episode_starts: True on the first step of every episode (a flat, episode-major batch)
        :return: True on the first step of every segment
        """
        return steps_in_segment(np.asarray(episode_starts, dtype=bool)) % self.sde_sample_freq == 0

    def _make_rollout_buffer(self, initial_rows: int, n_envs: int | None = None) -> EpisodeRolloutBuffer:
        """
        A new, empty rollout buffer, ``initial_rows`` rows per env (it grows as needed), for ``n_envs`` envs (None:
        the model's).
        """
        return self.rollout_buffer_class(  # type: ignore[misc,return-value]
            initial_rows,
            self.observation_space,
            self.action_space,
            device=self.device,
            n_envs=self.n_envs if n_envs is None else n_envs,
            **self.rollout_buffer_kwargs,
        )

    def _obs_shapes(self) -> list[tuple[int, ...]]:
        if isinstance(self.observation_space, spaces.Dict):
            return [space.shape or (1,) for space in self.observation_space.spaces.values()]
        return [self.observation_space.shape or (1,)]

    def _setup_learn(self, total_timesteps: int, callback: MaybeCallback = None, *args: Any, **kwargs: Any):
        previous_obs = self._last_obs
        result = super()._setup_learn(total_timesteps, callback, *args, **kwargs)
        if self.rollout_buffer.n_envs != self.n_envs:
            # load() with another number of envs: start a fresh buffer
            self.rollout_buffer = self._make_rollout_buffer(self.rollout_buffer.capacity)
        elif self._last_obs is not previous_obs:
            # The envs were reset: episodes in progress can never end
            self.rollout_buffer.drop_incomplete()
        return result

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: EpisodeRolloutBuffer,  # type: ignore[override]
        n_rollout_steps: int,
        *,
        total_timesteps: int | None = None,
    ) -> bool:
        """
        Step every env with the current policy and store the steps, until ``n_episodes`` episodes are complete
        (or ``n_rollout_steps`` steps per env were taken when ``n_episodes`` is None), or, sooner, until
        ``num_timesteps`` reaches ``total_timesteps``: the budget of :meth:`learn`, which a rollout never runs
        past by more than the ``n_envs - 1`` extra steps of the last vector step. Callback order and logging are
        those of ``OnPolicyAlgorithm.collect_rollouts``.

        If anything raises during the collection (a NaN/inf reward or observation, an episode longer than
        ``max_episode_steps``, the env or a callback failing, an interrupt), the envs may have moved past the last
        stored step: the next ``learn()`` resets them, even with ``reset_num_timesteps=False``, and so drops the
        steps of the episodes in progress (which would otherwise be continued by another trajectory). Complete
        episodes stay in the buffer.

        :param env: The training environment
        :param callback: Callback that will be called at each step (and at the beginning and end of the rollout)
        :param rollout_buffer: Buffer to fill with rollouts
        :param n_rollout_steps: Number of experiences to collect per environment (ignored with ``n_episodes``)
        :param total_timesteps: stop once ``num_timesteps`` is at least this (None: no budget)
        :return: True if the rollout finished, False if a callback stopped the training
        """
        try:
            return self._collect_rollouts(env, callback, rollout_buffer, n_rollout_steps, total_timesteps)
        except BaseException:
            # SB3's _setup_learn resets the envs when there is no last observation; ours then drops the
            # incomplete episodes
            self._last_obs = None
            raise

    def _collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: EpisodeRolloutBuffer,
        n_rollout_steps: int,
        total_timesteps: int | None,
    ) -> bool:
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        n_steps = 0
        callback.on_rollout_start()
        bootstrap_timeouts = self._baseline.needs_values
        # NaN/inf from the env must never reach the buffer (and so the weights): checked at every step
        check_finite_env_output("observation", self._last_obs, f"at reset (num_timesteps={self.num_timesteps})")  # type: ignore[arg-type]

        def where() -> str:
            # Only formatted when an error is raised, not at every step
            return f"at step {self.num_timesteps // env.num_envs} (num_timesteps={self.num_timesteps})"

        while True:
            if total_timesteps is not None and self.num_timesteps >= total_timesteps:
                # learn()'s budget: the update uses the episodes complete so far, the running ones wait in the buffer
                break
            if self.n_episodes is not None:
                if rollout_buffer.n_complete_episodes >= self.n_episodes:
                    break
            elif n_steps >= n_rollout_steps:
                break

            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                if self.use_sde:
                    actions, log_probs = self._sde_act(obs_tensor, env.num_envs)
                else:
                    actions, log_probs = self.policy.act(obs_tensor)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                # Sample from an unbounded Gaussian, step with the action clipped to the bounds
                clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            check_finite_env_output("reward", rewards, where)
            check_finite_env_output("observation", new_obs, where)  # type: ignore[arg-type]

            callback.update_locals(locals())
            if not callback.on_step():
                return False

            self._update_info_buffer(infos, dones)
            n_steps += 1

            if bootstrap_timeouts:
                # Time-limit truncation: the episode did not really end, add gamma * V(s_T) like SB3 does
                for idx, done in enumerate(dones):
                    if (
                        done
                        and infos[idx].get("terminal_observation") is not None
                        and infos[idx].get("TimeLimit.truncated", False)
                    ):
                        terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                        with th.no_grad():
                            terminal_value = self.policy.predict_values(terminal_obs)[0]  # type: ignore[arg-type]
                        if not np.isfinite(terminal_value.item()):
                            raise ValueError(
                                f"env {idx}: non-finite value {terminal_value.item()} of the terminal observation {where()} "
                                "(NaN in the terminal observation, or in the value network)"
                            )
                        rewards[idx] += self.gamma * terminal_value.item()

            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                log_probs.cpu().numpy(),
                dones,
                self._n_updates,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _sde_act(self, obs_tensor: Any, n_envs: int) -> tuple[th.Tensor, th.Tensor]:
        """gSDE actions of one step of every env, and their log-probabilities given the earlier steps of their segment."""
        noise = self._sde_noise
        if noise is None or noise.n_envs != n_envs:
            noise = self._sde_noise = GSDENoise(
                n_envs,
                self.sde_sample_freq,
                self.policy.latent_sde_dim,  # type: ignore[arg-type]
                int(np.prod(self.action_space.shape)),  # type: ignore[arg-type]
                self.policy.action_dist.epsilon,  # type: ignore[attr-defined]
                self.device,
            )
            starts = np.ones(n_envs, dtype=bool)  # a fresh matrix for every env
        else:
            assert self._last_episode_starts is not None
            starts = np.asarray(self._last_episode_starts, dtype=bool)
        mean, latent = self.policy.sde_mean_and_latent(obs_tensor)
        actions, log_probs = noise.step(starts, self.policy.sde_std(), latent, mean)
        return actions.reshape((-1, *self.action_space.shape)), log_probs  # type: ignore[misc]

    def _chunks(self, n: int, segment_starts: np.ndarray | None = None) -> list[slice]:
        """Slices of at most ``_train_chunk_steps`` steps; with gSDE segments, cut only where a segment starts."""
        if segment_starts is None:
            step = self._train_chunk_steps
            return [slice(start, min(start + step, n)) for start in range(0, n, step)]
        starts = np.flatnonzero(segment_starts)
        chunks, begin = [], 0
        while begin < n:
            # The last segment start within the chunk's budget (a segment is never longer than the budget)
            limit = begin + self._train_chunk_steps
            end = n if limit >= n else int(starts[np.searchsorted(starts, limit, side="right") - 1])
            if end <= begin:
                raise RuntimeError(f"a gSDE segment of more than {self._train_chunk_steps} steps at step {begin}")
            chunks.append(slice(begin, end))
            begin = end
        return chunks

    def _to_tensors(self, batch: EpisodeBatch, index: slice | np.ndarray) -> tuple[Any, th.Tensor]:
        if isinstance(batch.observations, dict):
            obs_tensor = obs_as_tensor({key: value[index] for key, value in batch.observations.items()}, self.device)
        elif getattr(self.policy, "sparse_observations", False) and hasattr(batch.observations, "sparse_tensor"):
            # Sparse storage (SparseTernaryRolloutBuffer) to a policy that reads sparse tensors: no dense array
            obs_tensor = batch.observations.sparse_tensor(index, self.device)
        else:
            obs_tensor = obs_as_tensor(batch.observations[index], self.device)  # type: ignore[arg-type]
        actions = th.as_tensor(batch.actions[index], device=self.device)
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        return obs_tensor, actions

    def _evaluate_batch(
        self, batch: EpisodeBatch, need_scores: bool
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """No-grad pass: current log-probs, values (value baseline) and squared score norms (optimal baseline)."""
        log_probs, values, score_sq = [], [], []
        segments = self.sde_segment_starts(batch.episode_starts) if self.use_sde else None
        for index in self._chunks(batch.n_steps, segments):
            obs_tensor, actions = self._to_tensors(batch, index)
            if segments is not None:
                # gSDE: the conditional log-probs and their score w.r.t. each step's mean, in closed form
                with th.no_grad():
                    chunk_values, chunk_log_prob, _, chunk_score_sq = self.policy.evaluate_sde(
                        obs_tensor, actions, segments[index]
                    )
                log_probs.append(chunk_log_prob.cpu().numpy())
                if chunk_values is not None:
                    values.append(chunk_values.cpu().numpy())
                score_sq.append(chunk_score_sq.cpu().numpy())
                continue
            with th.no_grad():
                chunk_values, chunk_log_prob, _, action_params = self.policy.evaluate(obs_tensor, actions)
            log_probs.append(chunk_log_prob.cpu().numpy())
            if chunk_values is not None:
                values.append(chunk_values.cpu().numpy())
            if need_scores:
                # Per-step gradient of log pi(a_t|s_t) w.r.t. the distribution parameters of step t: one backward
                # through the distribution only, rows are independent.
                params = action_params.detach().requires_grad_(True)
                with th.enable_grad():
                    log_prob = self.policy.distribution_from_params(params).log_prob(actions)
                    (grad,) = th.autograd.grad(log_prob.sum(), params)
                score_sq.append(grad.pow(2).sum(dim=-1).cpu().numpy())
        return (
            np.concatenate(log_probs),
            np.concatenate(values) if values else None,
            np.concatenate(score_sq) if need_scores else None,
        )

    def _loss_settings(self, **overrides: Any) -> dict[str, Any]:
        """
        The settings of the update's loss: the model's own, where an override is :data:`MODEL_SETTING`, else the
        override, checked by the constructor's rule for it (:meth:`argument_rules`).

        :param overrides: ``return_mode``, ``baseline``, ``normalize_advantage``, ``gamma``, ``gae_lambda``,
            ``reset_on_reward``, ``ent_coef``, ``vf_coef``
        :return: every setting, by name
        :raises ValueError: a bad value (``TypeError`` for a wrong type), or a baseline that needs a critic on a policy
            without one
        """
        given = {name: value for name, value in overrides.items() if value is not MODEL_SETTING}
        settings = {name: getattr(self, name) for name in overrides} | given
        rules = self.argument_rules()
        for name, value in given.items():
            rules[name].check(name, value, settings)
        if get_baseline(settings["baseline"]).needs_values and not self.policy.value_baseline:
            raise ValueError(
                f"baseline={settings['baseline']!r} needs a critic V(s), and this model's policy has none: a critic is "
                f"built only for a model made with baseline='value' (this one: baseline={self.baseline!r})"
            )
        return settings

    def compute_policy_gradient(
        self,
        batch: EpisodeBatch,
        *,
        return_mode: str = MODEL_SETTING,
        baseline: str | None = MODEL_SETTING,
        normalize_advantage: bool = MODEL_SETTING,
        gamma: float = MODEL_SETTING,
        gae_lambda: float = MODEL_SETTING,
        reset_on_reward: bool = MODEL_SETTING,
        ent_coef: float = MODEL_SETTING,
        vf_coef: float = MODEL_SETTING,
    ) -> dict[str, float]:
        """
        Accumulate into the parameters' ``.grad`` the gradient of the REINFORCE loss on ``batch`` (plus the entropy
        and value losses). Does not zero the gradients nor step the optimizer; ``train()`` does.

        Useful on its own to study the estimator: the policy-parameter gradient it leaves is
        ``-(1 / n_steps) * sum_t Psi_t grad log pi(a_t|s_t)`` (with ``ent_coef=0``; with gSDE ``log pi`` is the
        log-probability of ``a_t`` given ``s_t`` and the earlier steps of its segment, see the class docstring).
        Every setting of the loss defaults to the model's own (:data:`MODEL_SETTING`); one given here replaces it
        for this call only, and the
        gradient is then the one a model built with that setting (and the same weights) computes on the same
        batch. The batch's rewards stay those collected: with a critic, a time-limit-truncated episode's last
        reward includes ``gamma * V(s_T)`` (with the model's gamma), whatever the baseline given here.

        :param batch: complete episodes (``EpisodeRolloutBuffer.pop_episodes``)
        :param return_mode: a key of ``sb3_reinforce.common.estimators.RETURN_MODES``
        :param baseline: None or a key of ``BASELINES``; one that needs a critic (``"value"``) is refused when the
            policy has none (a model built without ``baseline="value"``)
        :param normalize_advantage: standardize the weights over the batch
        :param gamma: discount factor
        :param gae_lambda: GAE lambda (value baseline only)
        :param reset_on_reward: restart the discounted return at every non-zero reward
        :param ent_coef: entropy coefficient
        :param vf_coef: value-loss coefficient
        :return: statistics of the pass (losses, batch size, importance weights)
        :raises ValueError: a bad setting (named), or a baseline that needs a critic the policy does not have
        """
        settings = self._loss_settings(
            return_mode=return_mode,
            baseline=baseline,
            normalize_advantage=normalize_advantage,
            gamma=gamma,
            gae_lambda=gae_lambda,
            reset_on_reward=reset_on_reward,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
        )
        carried = batch.policy_versions != self._n_updates
        # Steps whose behaviour log-prob may differ from the current one: the carried steps, and with gSDE every step
        # of an episode with a carried step (a segment that went on after the update is conditioned on old steps)
        reweighted = carried
        if self.use_sde and carried.any():
            episode = np.cumsum(batch.episode_starts) - 1
            reweighted = np.bincount(episode, weights=carried, minlength=batch.n_episodes)[episode] > 0
        estimator = get_baseline(settings["baseline"])
        reweight = carried.any() and self.importance_weights != "none"
        need_eval = estimator.needs_values or estimator.needs_score_norms or reweight
        is_weights = values = score_sq = None
        if need_eval:
            current_log_probs, values, score_sq = self._evaluate_batch(batch, need_scores=estimator.needs_score_norms)
            if reweight:
                log_ratio = np.where(reweighted, current_log_probs - batch.log_probs, 0.0)
                is_weights = carried_importance_weights(
                    self.importance_weights, log_ratio, batch.episode_starts, batch.rewards, settings["reset_on_reward"]
                )
        weights, targets = policy_gradient_weights(
            batch.rewards,
            batch.episode_starts,
            gamma=settings["gamma"],
            return_mode=settings["return_mode"],
            baseline=settings["baseline"],
            reset_on_reward=settings["reset_on_reward"],
            is_weights=is_weights,
            values=values,
            score_sq_norms=score_sq,
            gae_lambda=settings["gae_lambda"],
            normalize=settings["normalize_advantage"],
        )
        weights_t = th.as_tensor(weights, dtype=th.float32, device=self.device)
        targets_t = th.as_tensor(targets, dtype=th.float32, device=self.device)

        n = batch.n_steps
        stats = {"policy_loss": 0.0, "entropy_loss": 0.0, "carried_steps": float(carried.sum())}
        value_loss_sum = 0.0
        segments = self.sde_segment_starts(batch.episode_starts) if self.use_sde else None
        for index in self._chunks(n, segments):
            obs_tensor, actions = self._to_tensors(batch, index)
            if segments is not None:
                chunk_values, log_prob, entropy, _ = self.policy.evaluate_sde(obs_tensor, actions, segments[index])
            else:
                chunk_values, log_prob, entropy, _ = self.policy.evaluate(obs_tensor, actions)
            policy_loss = -(weights_t[index] * log_prob).sum() / n
            # SB3 has no closed-form entropy for some distributions: use -log_prob then, like A2C
            entropy_loss = -(entropy.sum() if entropy is not None else -log_prob.sum()) / n
            loss = policy_loss + settings["ent_coef"] * entropy_loss
            if chunk_values is not None:
                value_loss = (chunk_values - targets_t[index]).pow(2).sum() / n
                loss = loss + settings["vf_coef"] * value_loss
                value_loss_sum += value_loss.item()
            loss.backward()
            stats["policy_loss"] += policy_loss.item()
            stats["entropy_loss"] += entropy_loss.item()
        if is_weights is not None:
            carried_weights = is_weights[carried]
            stats["is_weight_mean"] = float(carried_weights.mean())
            stats["is_weight_median"] = float(np.median(carried_weights))
            stats["is_weight_max"] = float(is_weights.max())
            # Kish's effective sample size of the carried steps, as a fraction of them (1: all weights equal)
            stats["is_weight_ess"] = float(carried_weights.sum() ** 2 / (carried_weights**2).sum() / len(carried_weights))
        if values is not None:
            stats["value_loss"] = value_loss_sum
            stats["explained_variance"] = float(explained_variance(values, targets))
        # What train()'s extra critic steps regress on (None: no critic)
        self._value_targets = targets_t if values is not None else None
        return stats

    def _fit_critic(self, batch: EpisodeBatch, targets: th.Tensor, n_steps: int) -> float:
        """
        ``n_steps`` gradient steps on the value loss alone (``n_critic_updates - 1``). Only the parameters the value
        loss reaches get a gradient; the others' is None, so the optimizer leaves them (and their moments) as they
        are. A non-finite loss or gradient raises ``FloatingPointError`` before that step touches the weights.

        :return: the value loss before the last step
        """
        n = batch.n_steps
        value_loss_sum = 0.0
        for _ in range(n_steps):
            self.policy.optimizer.zero_grad(set_to_none=True)
            value_loss_sum = 0.0
            for index in self._chunks(n):
                obs_tensor, _ = self._to_tensors(batch, index)
                value_loss = (self.policy.predict_values(obs_tensor).flatten() - targets[index]).pow(2).sum() / n
                (self.vf_coef * value_loss).backward()
                value_loss_sum += value_loss.item()
            self._step_optimizer({"value_loss": value_loss_sum})
        return value_loss_sum

    def _step_optimizer(self, losses: dict[str, float]) -> None:
        """Clip and apply the accumulated gradients; a non-finite loss or gradient raises before touching anything."""
        try:
            # A non-finite loss or gradient must never reach the weights (nor the optimizer's moments)
            check_finite_gradients(self.policy.named_parameters(), losses)
        except FloatingPointError:
            self.policy.optimizer.zero_grad()
            raise
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()

    def collect_batches(self, env: VecEnv, n_episodes: int, n_batches: int) -> Iterator[EpisodeBatch]:
        """
        Sample ``n_batches`` batches of ``n_episodes`` complete episodes on ``env`` with the current policy, without
        updating it: the model's own collection (:meth:`collect_rollouts` into an ``EpisodeRolloutBuffer``, then
        ``pop_episodes``), as ``learn`` makes its batches. The steps of episodes still running when a batch is
        complete stay in the buffer and go to a later batch once their episode ends; the policy does not change in
        between, so every step is on-policy (no importance weights). With a critic (``baseline="value"``) the last
        reward of a time-limit-truncated episode includes ``gamma * V(s_T)``, as in training.

        The model is only borrowed while a batch is collected: when a batch is handed out, its step counter, last
        observation, episode statistics and ``n_episodes`` are as before (the policy is left in evaluation mode).
        Its own envs are not touched, no callback is called, nothing is logged.

        :param env: the env to sample on (reset first), with the model's spaces
        :param n_episodes: complete episodes per batch (over ``env``'s envs, in the order they end)
        :param n_batches: number of batches
        :return: the batches, collected one at a time as they are asked for
        """
        from stable_baselines3.common.utils import check_for_correct_spaces

        from sb3_reinforce.common.checks import check_number

        # Checked now, not at the first batch (the collection itself is a generator)
        check_number("n_episodes", n_episodes, 1, float("inf"), integer=True)
        check_number("n_batches", n_batches, 0, float("inf"), integer=True)
        if not isinstance(env, VecEnv):
            raise TypeError(f"env must be a VecEnv (e.g. DummyVecEnv([lambda: env])), got {type(env).__name__}")
        check_for_correct_spaces(env, self.observation_space, self.action_space)
        return self._collect_batches(env, n_episodes, n_batches)

    def _collect_batches(self, env: VecEnv, n_episodes: int, n_batches: int) -> Iterator[EpisodeBatch]:
        from collections import deque

        from stable_baselines3.common.callbacks import ConvertCallback

        buffer = self._make_rollout_buffer(self.n_steps, n_envs=env.num_envs)
        callback = ConvertCallback(None)
        callback.init_callback(self)
        # What collect_rollouts changes on the model: set for the collection, then given back
        borrowed = (
            "n_episodes",
            "_last_obs",
            "_last_episode_starts",
            "_sde_noise",
            "num_timesteps",
            "ep_info_buffer",
            "ep_success_buffer",
        )
        last_obs, last_starts, sde_noise = env.reset(), np.ones(env.num_envs, dtype=bool), None
        for _ in range(n_batches):
            saved = {name: getattr(self, name) for name in borrowed}
            self.n_episodes, self._last_obs, self._last_episode_starts = n_episodes, last_obs, last_starts
            # gSDE: this env's own exploration matrices, kept from one batch to the next
            self._sde_noise = sde_noise
            self.ep_info_buffer = deque(maxlen=self._stats_window_size)
            self.ep_success_buffer = deque(maxlen=self._stats_window_size)
            try:
                self.collect_rollouts(env, callback, buffer, n_rollout_steps=0)
                last_obs, last_starts, sde_noise = self._last_obs, self._last_episode_starts, self._sde_noise
            finally:
                for name, value in saved.items():
                    setattr(self, name, value)
            yield buffer.pop_episodes(n_episodes)

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        """
        SB3's progress remaining, ``1 - num_timesteps / total_timesteps``, clamped to [0, 1]. The last rollout
        may end past ``total_timesteps`` (by up to ``n_envs - 1`` steps, the rest of its last vector step; a
        ``collect_rollouts`` call without a budget, by more): unclamped, the progress is negative there and a
        linear schedule such as the zoo's ``lin_<value>`` gives a negative learning rate, a step of gradient ascent.
        Clamped, that update gets the schedule's final value (0 for a linear decay).

        :param num_timesteps: current number of timesteps
        :param total_timesteps: the number of timesteps to reach
        """
        super()._update_current_progress_remaining(num_timesteps, total_timesteps)
        self._current_progress_remaining = min(max(self._current_progress_remaining, 0.0), 1.0)

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        """
        Set the optimizers' learning rate from the schedule, as SB3 does, once it is checked: a NaN, inf or
        negative value (or not a number) raises an error naming ``learning_rate``, the value and
        ``progress_remaining``, and no optimizer is changed. 0 is allowed.

        :param optimizers: An optimizer or a list of optimizers.
        """
        learning_rate = _checked_learning_rate(self.lr_schedule, self._current_progress_remaining)
        self.logger.record("train/learning_rate", learning_rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            update_learning_rate(optimizer, learning_rate)

    def train(self) -> None:
        """
        Take the complete episodes out of the buffer (with ``n_episodes``, the first ``n_episodes`` to end, or all of
        them when the budget of :meth:`learn` stopped the collection short) and do one policy-gradient step on them.
        With no complete episode (the budget came first), there is no step.

        What a failed update leaves:

        - a bad learning rate from the schedule (NaN, inf, negative): ``ValueError``/``TypeError`` before anything
          is taken out of the buffer; the weights, the optimizer state and the buffer are unchanged;
        - a non-finite loss or gradient: ``FloatingPointError``; the weights and the optimizer state are
          unchanged, and the batch is discarded (its episodes are out of the buffer, a retry does not see them
          again). The steps of episodes still running (and, with ``n_episodes``, the complete episodes beyond the
          batch) stay in the buffer, so ``learn(..., reset_num_timesteps=False)`` continues with them;
        - a non-finite loss or gradient in one of the extra critic steps (``n_critic_updates > 1``): the same error;
          the policy step and the earlier critic steps are kept, that step and the later ones are not taken.
        """
        self.policy.set_training_mode(True)
        if self.rollout_buffer.n_complete_episodes == 0:
            # No episode has ended yet: keep collecting
            self.logger.record("train/batch_episodes", 0)
            self.logger.record("train/batch_steps", 0)
            self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
            return
        # Checked before the batch leaves the buffer: a bad schedule loses no data
        self._update_learning_rate(self.policy.optimizer)
        batch = self.rollout_buffer.pop_episodes(self.n_episodes)
        self.logger.record("train/batch_episodes", batch.n_episodes)
        self.logger.record("train/batch_steps", batch.n_steps)
        self.policy.optimizer.zero_grad()
        # The critic's targets of this pass, for the extra critic steps (compute_policy_gradient leaves them there)
        self._value_targets = None
        try:
            stats = self.compute_policy_gradient(batch)
            targets = self._value_targets
        finally:
            self._value_targets = None
        self._step_optimizer({key: stats[key] for key in ("policy_loss", "entropy_loss", "value_loss") if key in stats})
        if targets is not None and self.n_critic_updates > 1:
            stats["value_loss_last_step"] = self._fit_critic(batch, targets, self.n_critic_updates - 1)
        self._n_updates += 1

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, value in stats.items():
            self.logger.record(f"train/{key}", value)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """
        Save the model in a zip-file, atomically: written to a temporary file of the same directory, fsynced,
        then renamed over ``path`` (``.zip`` is appended to a path without suffix, like SB3 does). A crash during
        the save leaves the previous file at ``path`` intact, never a half-written one, and at most one hidden
        ``.<name>.*.tmp`` file (removed by the next save to ``path``). ``CheckpointCallback`` calls this method, so
        its checkpoints are atomic too. As with SB3's ``open()``: a new file gets the mode ``0o666`` less the
        umask, an existing one keeps its mode, and a symlink stays a symlink (its target gets the new content);
        see :func:`sb3_reinforce.common.safety.atomic_write`.

        The file holds what SB3 saves: the policy weights, the optimizer state, ``num_timesteps``, ``_n_updates``
        and the hyperparameters. It does not hold the envs nor the steps of episodes in progress: after ``load``
        with an env, ``learn(..., reset_num_timesteps=False)`` resets the envs and continues counting from the
        saved ``num_timesteps``; the episodes that were running at save time are lost (at most one per env).

        :param path: path to the file where the rl agent should be saved (or a file-like, written directly)
        :param exclude: name of parameters that should be excluded in addition to the default ones
        :param include: name of parameters that might be excluded but should be included anyway
        """
        if not isinstance(path, (str, pathlib.Path)):
            super().save(path, exclude=exclude, include=include)
            return
        with atomic_write(model_path(path)) as file:
            super().save(file, exclude=exclude, include=include)  # type: ignore[arg-type]

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfREINFORCE],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        *,
        trusted: bool = False,
        **kwargs: Any,
    ) -> SelfREINFORCE:
        """
        Load a REINFORCE model saved with ``save`` (see ``BaseAlgorithm.load``). Anything else (a file that is not
        a model archive, a corrupt one, another algorithm's model, a model whose spaces differ from ``env``'s)
        raises a ``ValueError`` naming the path and the reason; a missing file raises ``FileNotFoundError``.

        Loading runs no code from the file: SB3 unpickles the model's non-JSON entries (spaces, policy class,
        schedules, ``policy_kwargs``, ...) with ``cloudpickle.loads``, which runs whatever a crafted file holds.
        Here they are decoded with a restricted unpickler (``sb3_reinforce.common.serialization``) that allows only
        what a REINFORCE model holds: gymnasium spaces, numpy arrays and random generators, SB3/sb3_reinforce
        policy, buffer, features-extractor and optimizer classes (``RMSpropTFLike``), torch activation and optimizer
        classes, SB3/rl_zoo3 schedule classes; a class's attributes are never set. Anything else (an ``os.system``
        call, a lambda learning rate, a policy class of your own)
        raises ``UntrustedPickleError`` (a ``ValueError``) naming the entry and the refused global; give the entry
        in ``custom_objects`` (not decoded then) or pass ``trusted=True`` for SB3's behaviour. The weights and
        optimizer state (``.pth`` parts) are loaded by SB3 with ``torch.load(weights_only=True)``.

        :param path: path to the file (or a file-like) where to load the agent from
        :param env: the new environment to run the loaded model on (its spaces must be the saved ones; a str is
            made with ``gymnasium.make``)
        :param device: Device on which the code should run.
        :param custom_objects: Dictionary of objects to replace upon loading: these entries of the file are not
            decoded at all
        :param print_system_info: Whether to print system info from the saved model
        :param force_reset: Force call to ``reset()`` before training
        :param trusted: Unpickle the file's entries with ``cloudpickle`` as SB3 does, any object allowed: only for
            files you trust, as this runs any code they hold
        :param kwargs: extra arguments to change the model when loading
        :return: new model instance with loaded parameters
        """
        if not isinstance(trusted, bool):
            raise TypeError(f"trusted must be True or False, got {trusted!r} ({type(trusted).__name__})")
        if custom_objects is not None and not isinstance(custom_objects, dict):
            raise ValueError(f"custom_objects must be a dict or None, got {type(custom_objects).__name__}")
        if isinstance(path, (str, pathlib.Path)):
            path = check_model_file(path)
        if isinstance(env, str):
            env = maybe_make_env(env, 0)
        source = path
        try:
            # Read the file once: SB3 loads exactly the bytes that were checked (no swap between two reads).
            archive = path.read_bytes() if isinstance(path, pathlib.Path) else path.read()
            source = io.BytesIO(archive)
            json_string = read_model_data(archive)
            # Another algorithm's file (PPO, DQN, ...): say which, read from the JSON (before anything is decoded)
            other = None if json_string is None else other_algorithm_message(json_string, "sb3_reinforce.REINFORCE")
            if other is not None:
                raise ValueError(other)
            if not trusted and json_string is not None:
                # The checked entries go to SB3 as custom_objects, which its json_to_data uses without unpickling.
                custom_objects = {**decode_model_data(json_string, custom_objects), **(custom_objects or {})}
            return super().load(  # type: ignore[return-value]
                source,
                env=env,
                device=device,
                custom_objects=custom_objects,
                print_system_info=print_system_info,
                force_reset=force_reset,
                **kwargs,
            )
        except UntrustedPickleError as error:
            raise UntrustedPickleError(
                f"Cannot load a {cls.__name__} model from {str(path)!r}: {error}", error.refused
            ) from error
        except (
            ValueError,
            TypeError,
            KeyError,
            AssertionError,
            RuntimeError,
            EOFError,
            AttributeError,
            pickle.UnpicklingError,
        ) as error:
            raise ValueError(f"Cannot load a {cls.__name__} model from {str(path)!r}: {error}") from error

    def learn(
        self: SelfREINFORCE,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int | None = -1,
        tb_log_name: str = "REINFORCE",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfREINFORCE:
        """
        Train for ``total_timesteps`` env steps (counted over all envs), as ``OnPolicyAlgorithm.learn``, with
        ``total_timesteps`` a budget: collection stops as soon as ``num_timesteps`` reaches it, in the middle of a
        batch if need be, so that a call ends with ``num_timesteps`` in ``[start + total_timesteps, start +
        total_timesteps + n_envs)`` (the last vector step steps every env). The last update then uses the episodes
        complete so far (fewer than ``n_episodes``, or the steps of fewer than ``n_steps`` rows; no update if none
        ended). The steps of the episodes still running stay in the buffer: ``learn(..., reset_num_timesteps=False)``
        continues those episodes (the envs are not reset) and trains on them whole once they end, while
        ``reset_num_timesteps=True`` resets the envs and drops them.

        :param total_timesteps: The number of env steps to train for (from the current ``num_timesteps`` when
            ``reset_num_timesteps`` is False)
        :param callback: callback(s) called at every step with state of the algorithm
        :param log_interval: when to write the logger's table (stdout with ``verbose=1``, tensorboard, csv):
            ``-1`` (default, also what rl_zoo3's ``--log-interval -1`` leaves) at the first iteration after every
            further ``2048 * n_envs`` timesteps (PPO's default rollout with ``log_interval=1``), whatever the number
            of updates this takes, and at the iteration that reaches ``total_timesteps``; a number ``N >= 1``:
            every ``N`` iterations (collection + update), as SB3 does; None: never
        :param tb_log_name: the name of the run for TensorBoard logging
        :param reset_num_timesteps: whether or not to reset the current timestep number (used in logging)
        :param progress_bar: Display a progress bar using tqdm and rich (it reaches ``total_timesteps``, plus at
            most ``n_envs - 1``)
        :return: the trained model
        """
        if log_interval is not None and (
            isinstance(log_interval, (bool, np.bool_))
            or not isinstance(log_interval, numbers.Integral)
            or (log_interval < 1 and log_interval != -1)
        ):
            raise ValueError(
                f"log_interval must be an integer >= 1 (a table every log_interval iterations), -1 (the default: "
                f"every {_DEFAULT_LOG_STEPS} * n_envs timesteps) or None (no table), got {log_interval!r}"
            )
        iteration = 0
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        assert self.env is not None
        log_steps = _DEFAULT_LOG_STEPS * self.n_envs
        # SB3's loop, with the budget passed to the collection
        while self.num_timesteps < total_timesteps:
            steps_before = self.num_timesteps
            continue_training = self.collect_rollouts(
                self.env, callback, self.rollout_buffer, n_rollout_steps=self.n_steps, total_timesteps=total_timesteps
            )
            if not continue_training:
                break
            iteration += 1
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            if log_interval == -1:
                dump = self.num_timesteps // log_steps > steps_before // log_steps or self.num_timesteps >= total_timesteps
            else:
                dump = log_interval is not None and iteration % log_interval == 0
            if dump:
                assert self.ep_info_buffer is not None
                self.dump_logs(iteration)
            self.train()
        callback.on_training_end()
        return self
