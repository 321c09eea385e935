"""The gradient-variance diagnostic ranks REINFORCE estimators on the enumerable toy MDP as theory says."""

import hashlib

import numpy as np
import pytest
import torch as th

from sb3_reinforce import REINFORCE
from sb3_reinforce.variance import gradient_variance, parse_variant, plot_variance, variance_table
from tests.test_unbiasedness import make_model
from tests.toy_mdp import ToyMDPEnv


@pytest.fixture(scope="module")
def results():
    th.set_num_threads(1)
    model = make_model("total", None)
    weights = [p.detach().clone() for p in model.policy.parameters()]
    variants = ["total", "reward_to_go", "total+mean", "total+optimal", "reward_to_go+mean+norm"]
    out, estimates = gradient_variance(
        model, ToyMDPEnv(), variants, n_batches=120, n_episodes=8, seed=3, gamma=0.9, return_estimates=True
    )
    # the snapshot is not modified
    for before, after in zip(weights, model.policy.parameters(), strict=True):
        assert th.equal(before, after)
    return {r.variant: r for r in out}, estimates


def test_variance_ordering(results):
    by_variant, _ = results
    trace = {name: r.trace_cov for name, r in by_variant.items()}
    # causality: reward-to-go drops terms of zero mean
    assert trace["reward_to_go"] < trace["total"]
    # a baseline removes most of the return offset (+2 per step) on this MDP
    assert trace["total+mean"] < trace["total"]
    assert trace["total+optimal"] < trace["total"]
    cosine = {name: r.mean_cosine for name, r in by_variant.items()}
    assert cosine["total+mean"] > cosine["total"]
    assert cosine["reward_to_go"] > cosine["total"]


def test_outputs(results, tmp_path):
    by_variant, estimates = results
    assert estimates["total"].shape[0] == 120
    table = variance_table(list(by_variant.values()))
    assert table.count("\n") == 2 + len(by_variant)
    assert plot_variance(list(by_variant.values()), tmp_path / "v.png").stat().st_size > 0
    assert all(np.isfinite(r.relative_variance) for r in by_variant.values())


@pytest.mark.parametrize(
    "text, expected",
    [
        ("total", ("total", None, False)),
        ("reward_to_go+value", ("reward_to_go", "value", False)),
        ("reinforce:total+mean+norm", ("total", "mean", True)),
    ],
)
def test_parse_variant(text, expected):
    settings = parse_variant(text)
    assert (settings["return_mode"], settings["baseline"], settings["normalize_advantage"]) == expected


def test_parse_variant_error():
    with pytest.raises(ValueError, match="'bogus'"):
        parse_variant("total+bogus")


# One model for every variant, its own collection, and what the snapshot must have -----------------------------------


def test_a_critic_variant_is_refused_on_a_snapshot_without_critic():
    model = make_model("total", None)
    env = ToyMDPEnv()
    message = r"variant 'reward_to_go\+value' needs a critic V\(s\) and the policy snapshot has none"
    with pytest.raises(ValueError, match=message):
        gradient_variance(model, env, ["total", "reward_to_go+value"], n_batches=2, n_episodes=2)
    assert not hasattr(env, "t"), "the env was used before the variants were checked"


def test_a_critic_variant_uses_the_snapshot_critic():
    model = make_model("total", "value")
    with th.no_grad():
        # a critic that predicts every return exactly would give zero weights: make it predict a constant 6.0
        for name, p in model.policy.named_parameters():
            if "value_net" in name:
                p.zero_()
        model.policy.value_net.bias.fill_(6.0)
    _, estimates = gradient_variance(
        model, ToyMDPEnv(), ["total", "total+value"], n_batches=3, n_episodes=4, seed=1, return_estimates=True
    )
    # total+value: gamma^t (G_t - 6) instead of R(tau): a different estimate on the same batches
    assert not np.allclose(estimates["total"], estimates["total+value"])


def test_the_snapshot_is_given_back_as_it_was():
    model = make_model("total", None)
    before = (model.num_timesteps, model._last_obs, model.n_episodes, model._n_updates, model.ep_info_buffer)
    gradient_variance(model, ToyMDPEnv(), ["total", "reward_to_go+optimal"], n_batches=2, n_episodes=2)
    assert (model.num_timesteps, model._last_obs, model.n_episodes, model._n_updates, model.ep_info_buffer) == before
    assert all(p.grad is None for p in model.policy.parameters())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_batches=1), ValueError, "n_batches=1"),  # one batch has no variance (it was NaN)
        (dict(n_episodes=0), ValueError, "n_episodes=0"),
        (dict(variants=[]), ValueError, "variants is empty"),
        (dict(variants=["total+avg"]), ValueError, "option 'avg'"),
        (dict(gamma=2.0), ValueError, "gamma=2.0"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    arguments = {"variants": ["total"], "n_batches": 2, "n_episodes": 2, **kwargs}
    with pytest.raises(error, match=message):
        gradient_variance(make_model("total", None), ToyMDPEnv(), **arguments)


def test_several_envs_are_refused():
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([ToyMDPEnv, ToyMDPEnv])
    with pytest.raises(ValueError, match="env must hold one env"):
        gradient_variance(make_model("total", None), env, ["total"], n_batches=2)


def test_a_policy_without_its_model_is_refused():
    with pytest.raises(TypeError, match="must be a REINFORCE model"):
        gradient_variance(make_model("total", None).policy, ToyMDPEnv(), ["total"], n_batches=2)


def test_variance_and_compare_do_not_import_each_other():
    import subprocess
    import sys

    code = (
        "import sys, importlib; importlib.import_module({module!r}); "
        "assert not [m for m in sys.modules if m.startswith({other!r})], sorted(sys.modules)"
    )
    variance, compare = "sb3_reinforce.variance", "sb3_reinforce.compare"
    for module, other in ((variance, compare), (compare, variance)):
        subprocess.run([sys.executable, "-c", code.format(module=module, other=other)], check=True, timeout=120)


# The CLI: variance.md says what was measured; both files are written atomically ------------------------------------


def cli(out, *extra: str) -> list[str]:
    sizes = ["--n-batches", "2", "--n-episodes", "2", "--seed", "5"]
    return ["--env", "CartPole-v1", "--variants", "total", "reward_to_go", *sizes, "--out", str(out), *extra]


def test_variance_md_states_the_protocol_and_files_are_replaced_atomically(tmp_path, capsys):
    from sb3_reinforce.variance import main

    out = tmp_path / "out"
    out.mkdir()
    # Earlier files hard-linked elsewhere: an atomic write replaces the name, an in-place write would change both
    for name in ("variance.md", "variance.png"):
        (tmp_path / f"kept-{name}").write_bytes(b"earlier")
        (out / name).hardlink_to(tmp_path / f"kept-{name}")
    assert main(cli(out)) == 0
    text = (out / "variance.md").read_text()
    assert text.startswith("# Gradient variance of REINFORCE estimators on CartPole-v1\n")
    assert "- env: CartPole-v1\n" in text
    assert "- policy snapshot: fresh policy (zoo network and settings of CartPole-v1, seed 5), untrained\n" in text
    assert "- batches: 2 batches of 2 complete episodes" in text and "- seed: 5 " in text
    assert "| total |" in text and "| reward_to_go |" in text
    assert "\n\n| variant |" in text, "the table must follow a blank line, or markdown joins it to the list"
    assert (out / "variance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("variance.md", "variance.png"):
        assert (tmp_path / f"kept-{name}").read_bytes() == b"earlier", f"{name} was written in place"
    assert not [path.name for path in out.iterdir() if path.name.endswith(".tmp")]
    capsys.readouterr()


def test_variance_md_names_the_snapshot(tmp_path, capsys):
    from sb3_reinforce.variance import main

    snapshot = tmp_path / "snapshot.zip"
    REINFORCE("MlpPolicy", "CartPole-v1", seed=0).save(snapshot)
    assert main(cli(tmp_path / "a", "--model", str(snapshot))) == 0
    text = (tmp_path / "a" / "variance.md").read_text()
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    assert f"- policy snapshot: file {snapshot} (trained 0 env steps; sha256 {digest})\n" in text
    assert "- env: CartPole-v1\n" in text and "- batches: 2 batches of 2 complete episodes" in text
    trained = tmp_path / "trained.zip"
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, n_steps=64)
    model.learn(200)
    model.save(trained)
    assert main(cli(tmp_path / "t", "--model", str(trained))) == 0
    text = (tmp_path / "t" / "variance.md").read_text()
    assert f"- policy snapshot: file {trained} (trained {model.num_timesteps:,} env steps; sha256 " in text
    assert model.num_timesteps >= 200
    assert main(cli(tmp_path / "b", "--train-steps", "300")) == 0
    # the zoo entry runs 8 envs: learn(300) stops at the first multiple of 8 at or after it
    assert ", trained 304 env steps (--train-steps 300)\n" in (tmp_path / "b" / "variance.md").read_text()
    with pytest.raises(SystemExit):
        main(cli(tmp_path / "c", "--model", str(snapshot), "--train-steps", "300"))
    assert "--train-steps trains the fresh policy" in capsys.readouterr().err


def test_cli_refuses_a_critic_variant_without_critic(tmp_path, capsys):
    from sb3_reinforce.compare import main

    with pytest.raises(SystemExit) as exit_info:
        main(["variance", "--env", "CartPole-v1", "--variants", "reward_to_go+value", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "variant 'reward_to_go+value' needs a critic" in capsys.readouterr().err
    assert not (tmp_path / "variance.md").exists()


def test_cli_samples_on_the_entry_envs_with_the_model_statistics(tmp_path, monkeypatch):
    """The Pendulum entry normalizes observations: the batches must see them as the policy does, frozen."""
    from stable_baselines3.common.vec_env import unwrap_vec_normalize

    import sb3_reinforce.variance as variance

    seen = {}
    real = variance.gradient_variance

    def spy(model, env, *args, **kwargs):
        normalization = unwrap_vec_normalize(env)
        seen.update(
            training=normalization.training,
            same_mean=np.array_equal(normalization.obs_rms.mean, unwrap_vec_normalize(model.get_env()).obs_rms.mean),
        )
        return real(model, env, *args, **kwargs)

    monkeypatch.setattr(variance, "gradient_variance", spy)
    argv = ["--env", "Pendulum-v1", "--train-steps", "400", "--n-batches", "2", "--n-episodes", "1", "--out", str(tmp_path)]
    argv += ["--variants", "reward_to_go", "reward_to_go+mean"]
    assert variance.main(argv) == 0
    assert seen == {"training": False, "same_mean": True}
