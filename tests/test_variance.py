"""The gradient-variance diagnostic ranks REINFORCE estimators on the enumerable toy MDP as theory says."""

import numpy as np
import pytest
import torch as th

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
