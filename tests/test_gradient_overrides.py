"""
``REINFORCE.compute_policy_gradient(batch, **settings)`` computes, on one model, the gradient a model built with
those settings (and the same weights) computes on the same batch; a baseline that needs a critic is refused on a
policy without one; ``collect_batches`` samples with the model's own collection and leaves the model as it was.
"""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.estimators import RETURN_MODES, baseline_values

NET = dict(net_arch=dict(pi=[16], vf=[16]))


def model_with(**settings) -> REINFORCE:
    return REINFORCE("MlpPolicy", "CartPole-v1", policy_kwargs=NET, seed=0, device="cpu", **settings)


# The snapshot's settings: a critic (the value baseline), the others unlike the defaults
OWN = dict(
    return_mode="total",
    baseline="value",
    normalize_advantage=False,
    gamma=0.99,
    gae_lambda=0.9,
    reset_on_reward=False,
    ent_coef=0.05,
    vf_coef=0.5,
)


@pytest.fixture(scope="module")
def snapshot() -> REINFORCE:
    th.set_num_threads(1)
    return model_with(**OWN)


@pytest.fixture(scope="module")
def batch(snapshot):
    env = make_vec_env("CartPole-v1", n_envs=1, seed=7)
    th.manual_seed(7)
    (batch,) = snapshot.collect_batches(env, n_episodes=4, n_batches=1)
    env.close()
    return batch


def gradients(model: REINFORCE, batch, **settings) -> dict[str, np.ndarray]:
    model.policy.zero_grad()
    model.compute_policy_gradient(batch, **settings)
    return {name: p.grad.clone().numpy() for name, p in model.policy.named_parameters() if p.grad is not None}


def built_with(snapshot: REINFORCE, **settings) -> REINFORCE:
    """A model built with the snapshot's settings but ``settings``, holding its weights (its critic too, if it has one)."""
    full = {**OWN, **settings}
    if full["baseline"] != "value":
        full["gae_lambda"] = 1.0  # the constructor allows another one only with the value baseline
    model = model_with(**full)
    own = model.policy.state_dict()
    weights = snapshot.policy.state_dict()
    assert set(own) <= set(weights)
    model.policy.load_state_dict({key: weights[key] for key in own})
    return model


SETTINGS = [
    dict(return_mode=mode, baseline=baseline, normalize_advantage=normalize)
    for mode in RETURN_MODES
    for baseline in baseline_values()
    for normalize in (False, True)
] + [
    dict(return_mode="reward_to_go", baseline="value", gae_lambda=1.0, gamma=0.9, vf_coef=2.0, ent_coef=0.0),
    dict(return_mode="reward_to_go", baseline=None, gamma=1.0, reset_on_reward=True, ent_coef=-0.1),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda settings: "-".join(f"{k}={v}" for k, v in settings.items()))
def test_override_gives_the_gradient_of_a_model_built_with_it(snapshot, batch, settings):
    expected = gradients(built_with(snapshot, **settings), batch)
    got = gradients(snapshot, batch, **settings)
    assert np.abs(expected["action_net.weight"]).max() > 1e-4  # a real gradient, not zeros on both sides
    # every parameter of the model built with the settings (no critic there unless baseline='value')
    for name, grad in expected.items():
        np.testing.assert_allclose(got[name], grad, rtol=1e-5, atol=1e-7, err_msg=name)
    if settings["baseline"] != "value":
        assert not any("value_net" in name for name in expected)


def test_override_is_for_one_call_only(snapshot, batch):
    own = gradients(snapshot, batch)
    gradients(snapshot, batch, return_mode="reward_to_go", baseline=None, normalize_advantage=True, gamma=0.5)
    assert (snapshot.return_mode, snapshot.baseline, snapshot.normalize_advantage, snapshot.gamma) == (
        "total",
        "value",
        False,
        0.99,
    )
    again = gradients(snapshot, batch)
    for name, grad in own.items():
        np.testing.assert_array_equal(again[name], grad)
    # baseline=None is a setting of its own, not "the model's"
    none = gradients(snapshot, batch, baseline=None)
    assert not np.allclose(none["action_net.weight"], own["action_net.weight"])


def test_a_critic_baseline_is_refused_without_critic(batch):
    model = model_with(baseline="mean")
    assert not model.policy.value_baseline
    model.policy.zero_grad()
    with pytest.raises(ValueError, match=r"baseline='value' needs a critic V\(s\), and this model's policy has none"):
        model.compute_policy_gradient(batch, baseline="value")
    assert all(p.grad is None for p in model.policy.parameters()), "a refused call must not touch the gradients"


@pytest.mark.parametrize(
    "settings, error, message",
    [
        (dict(return_mode="sum"), ValueError, "return_mode='sum' is not allowed"),
        (dict(baseline="avg"), ValueError, "baseline='avg' is not allowed"),
        (dict(normalize_advantage="yes"), TypeError, "normalize_advantage='yes' is not allowed"),
        (dict(reset_on_reward=1), TypeError, "reset_on_reward=1 is not allowed"),
        (dict(gamma=1.5), ValueError, r"gamma=1.5 is not allowed: expected a number in \[0"),
        (dict(gamma=float("nan")), ValueError, "gamma=nan"),
        (dict(vf_coef=-1.0), ValueError, "vf_coef=-1.0"),
        (dict(ent_coef=float("inf")), ValueError, "ent_coef=inf"),
        (dict(ent_coef="0"), TypeError, "ent_coef='0'"),
        (dict(baseline="mean", gae_lambda=0.9), ValueError, "gae_lambda=0.9 is not allowed: .*needs baseline='value'"),
    ],
)
def test_bad_overrides_are_named(snapshot, batch, settings, error, message):
    with pytest.raises(error, match=message):
        snapshot.compute_policy_gradient(batch, **settings)


def test_collect_batches_uses_the_model_collection_and_gives_the_model_back(snapshot):
    env = make_vec_env("CartPole-v1", n_envs=1, seed=3)
    before = (snapshot.num_timesteps, snapshot._last_obs, snapshot.n_episodes, snapshot.ep_info_buffer, snapshot._n_updates)
    weights = {key: value.clone() for key, value in snapshot.policy.state_dict().items()}
    batches = snapshot.collect_batches(env, n_episodes=3, n_batches=4)
    steps = 0
    for batch in batches:
        # handed out with the model as it was, between batches too
        assert (snapshot.num_timesteps, snapshot._last_obs, snapshot.n_episodes) == before[:3]
        assert batch.n_episodes == 3 and batch.episode_starts.sum() == 3 and batch.episode_starts[0]
        assert batch.episode_lengths.sum() == batch.n_steps
        assert (batch.policy_versions == snapshot._n_updates).all()  # on-policy: no importance weights
        # a time-limit truncation (500 steps) is bootstrapped by the critic; otherwise the rewards are CartPole's 1s
        assert np.all(batch.rewards[batch.episode_lengths.cumsum()[batch.episode_lengths < 500] - 1] == 1.0)
        steps += batch.n_steps
    assert steps > 12 and snapshot.ep_info_buffer is before[3] and snapshot._n_updates == before[4]
    for key, value in snapshot.policy.state_dict().items():
        assert th.equal(value, weights[key])
    env.close()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_episodes=0, n_batches=1), ValueError, "n_episodes=0"),
        (dict(n_episodes=2.0, n_batches=1), TypeError, "n_episodes=2.0"),
        (dict(n_episodes=1, n_batches=-1), ValueError, "n_batches=-1"),
    ],
)
def test_collect_batches_checks_its_arguments_at_once(snapshot, kwargs, error, message):
    env = make_vec_env("CartPole-v1", n_envs=1)
    with pytest.raises(error, match=message):
        snapshot.collect_batches(env, **kwargs)  # not only when the first batch is asked for
    env.close()


def test_collect_batches_refuses_an_env_with_other_spaces(snapshot):
    env = make_vec_env("MountainCar-v0", n_envs=1)
    with pytest.raises(ValueError, match="Observation spaces do not match"):
        snapshot.collect_batches(env, n_episodes=1, n_batches=1)
    env.close()


class _StopAfterFirstUpdate(BaseCallback):
    """Keeps the weights, optimizer state and logged values as the first update left them, then stops learn()."""

    def _on_rollout_start(self) -> None:
        if self.model._n_updates == 1 and not hasattr(self, "params"):
            self.params = {name: p.detach().clone() for name, p in self.model.policy.named_parameters()}
            state = self.model.policy.optimizer.state
            self.moments = {
                name: state[p]["exp_avg"].clone() for name, p in self.model.policy.named_parameters() if p in state
            }
            self.logged = dict(self.model.logger.name_to_value)

    def _on_step(self) -> bool:
        return not hasattr(self, "params")


def test_extra_critic_steps_fit_the_critic_and_leave_the_policy_step_alone():
    # n_critic_updates=K on the same first batch as K=1: the policy step is the same (actor weights and their Adam
    # moments bit-identical), the K-1 extra steps on the value loss alone move only the critic and lower its loss
    th.set_num_threads(1)
    first = {}
    for k in (1, 6):
        model = model_with(**OWN, n_critic_updates=k, n_episodes=4, learning_rate=0.05)
        first[k] = _StopAfterFirstUpdate()
        model.learn(10_000, callback=first[k])
        assert model._n_updates == 1
    one, six = first[1], first[6]
    critic = ("value_net.", "mlp_extractor.value_net.")
    assert any(name.startswith(critic) for name in one.params)
    for name, weights in one.params.items():
        if name.startswith(critic):
            assert not th.equal(weights, six.params[name]), name
        else:
            assert th.equal(weights, six.params[name]), name
            assert th.equal(one.moments[name], six.moments[name]), name
    assert "train/value_loss_last_step" not in one.logged
    assert six.logged["train/value_loss"] == one.logged["train/value_loss"]
    # The loss before the last of 5 extra steps, against the one before the first (both on the same targets)
    assert six.logged["train/value_loss_last_step"] < 0.95 * six.logged["train/value_loss"]
