"""
A 3-state, 2-action, 3-step MDP small enough to enumerate every trajectory, so that the exact expectation of
any policy-gradient estimator can be computed and compared with averages of sampled estimates.
"""

import itertools

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces

N_STATES, N_ACTIONS, HORIZON = 3, 2, 3
# reward r(s, a): a constant offset of +2 makes baselines matter, as returns are far from 0
REWARD = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 1.5]]) + 2.0
SLIP = 0.2  # probability that the next state is uniform instead of (s + a + 1) % 3
START = np.array([0.6, 0.4, 0.0])


def transition_probs(state: int, action: int) -> np.ndarray:
    probs = np.full(N_STATES, SLIP / N_STATES)
    probs[(state + action + 1) % N_STATES] += 1 - SLIP
    return probs


class ToyMDPEnv(gym.Env):
    """The MDP as a gymnasium env (Discrete observations, episodes of exactly ``HORIZON`` steps)."""

    observation_space = spaces.Discrete(N_STATES)
    action_space = spaces.Discrete(N_ACTIONS)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.state = int(self.np_random.choice(N_STATES, p=START))
        return self.state, {}

    def step(self, action):
        reward = float(REWARD[self.state, int(action)])
        self.state = int(self.np_random.choice(N_STATES, p=transition_probs(self.state, int(action))))
        self.t += 1
        return self.state, reward, self.t >= HORIZON, False, {}


def action_log_probs(policy) -> th.Tensor:
    """log pi(a|s) for every state, shape (N_STATES, N_ACTIONS), differentiable w.r.t. the policy."""
    obs = th.arange(N_STATES)
    distribution = policy.get_distribution(obs)
    return th.log_softmax(distribution.distribution.logits, dim=-1)


def enumerate_trajectories():
    """Yield (states, actions, rewards, probability of the env's part) for every trajectory."""
    for s0 in range(N_STATES):
        if START[s0] == 0:
            continue
        for actions in itertools.product(range(N_ACTIONS), repeat=HORIZON):
            for nexts in itertools.product(range(N_STATES), repeat=HORIZON - 1):
                states = (s0, *nexts)
                env_prob = START[s0]
                for t in range(HORIZON - 1):
                    env_prob *= transition_probs(states[t], actions[t])[states[t + 1]]
                rewards = [REWARD[s, a] for s, a in zip(states, actions, strict=True)]
                yield states, actions, rewards, env_prob


def exact_expected_gradient(policy, weight_fn) -> list[th.Tensor]:
    """
    Exact ``E[sum_t grad log pi(a_t|s_t) * Psi_t]`` by enumeration, for ``Psi = weight_fn(rewards)``.

    :param policy: the REINFORCE policy
    :param weight_fn: rewards (list) -> per-step weights (array)
    :return: one tensor per policy parameter
    """
    log_pi = action_log_probs(policy)
    probs = log_pi.detach().exp().numpy()
    surrogate = th.zeros(())
    for states, actions, rewards, env_prob in enumerate_trajectories():
        prob = env_prob * np.prod([probs[s, a] for s, a in zip(states, actions, strict=True)])
        psi = weight_fn(np.array(rewards))
        surrogate = surrogate + prob * sum(log_pi[s, a] * float(w) for s, a, w in zip(states, actions, psi, strict=True))
    params = [p for name, p in policy.named_parameters() if not name.startswith("value_net")]
    return list(th.autograd.grad(surrogate, params))


def exact_return_gradient(policy, gamma: float) -> list[th.Tensor]:
    """grad of J = E[sum_t gamma^t r_t], by differentiating the enumerated expectation."""
    log_pi = action_log_probs(policy)
    objective = th.zeros(())
    for states, actions, rewards, env_prob in enumerate_trajectories():
        log_prob = sum(log_pi[s, a] for s, a in zip(states, actions, strict=True))
        objective = objective + env_prob * th.exp(log_prob) * sum(gamma**t * r for t, r in enumerate(rewards))
    params = [p for name, p in policy.named_parameters() if not name.startswith("value_net")]
    return list(th.autograd.grad(objective, params))


def sample_episodes(probs_per_step: list[np.ndarray], n_episodes: int, rng: np.random.Generator):
    """
    Sample episodes whose step t follows the action probabilities ``probs_per_step[t]`` (N_STATES, N_ACTIONS).

    :return: states, actions, rewards, behaviour log-probs; arrays of shape (n_episodes, HORIZON)
    """
    states = np.zeros((n_episodes, HORIZON), dtype=np.int64)
    actions = np.zeros((n_episodes, HORIZON), dtype=np.int64)
    log_probs = np.zeros((n_episodes, HORIZON))
    state = rng.choice(N_STATES, size=n_episodes, p=START)
    for t in range(HORIZON):
        probs = probs_per_step[t][state]
        action = (rng.random(n_episodes) > probs[:, 0]).astype(np.int64)
        states[:, t], actions[:, t] = state, action
        log_probs[:, t] = np.log(probs[np.arange(n_episodes), action])
        cumulative = np.cumsum(np.stack([transition_probs(s, a) for s, a in zip(state, action, strict=True)]), axis=1)
        state = (rng.random(n_episodes)[:, None] > cumulative).sum(axis=1)
    return states, actions, REWARD[states, actions], log_probs
