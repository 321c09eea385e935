"""
One declaration of REINFORCE's allowed argument values (``sb3_reinforce.common.arguments``), read by the
constructor and by the hyperparameter-file validator; the one numeric range check (``common.checks``); the layout
of ``sb3_reinforce.hyperparams`` (one job per module, no import cycle) and of ``common`` (no algorithm import).
"""

import ast
import importlib
import math
from pathlib import Path
from typing import Any

import pytest

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.arguments import REINFORCE_ARGUMENTS, NumberRule
from sb3_reinforce.common.checks import check_number, number_problem
from sb3_reinforce.hyperparams import REINFORCE_KEYS, HyperparamsError, validate_reinforce_hyperparams

PACKAGE = Path(__file__).resolve().parents[1] / "sb3_reinforce"
BASE = {"n_timesteps": 1000, "policy": "MlpPolicy"}


def constructor_error(settings: dict[str, Any]) -> Exception | None:
    """What ``REINFORCE(**settings)`` raises (dotted class paths imported as a file's would be), None if nothing."""
    kwargs: dict[str, Any] = {"policy": "MlpPolicy", **settings}
    for key in ("policy", "rollout_buffer_class"):
        if isinstance(kwargs.get(key), str) and "." in kwargs[key]:
            module, _, name = kwargs[key].rpartition(".")
            kwargs[key] = getattr(importlib.import_module(module), name)
    if isinstance(kwargs.get("policy_kwargs"), str):
        from sb3_reinforce.hyperparams import parse_python_literal

        kwargs["policy_kwargs"] = parse_python_literal(kwargs["policy_kwargs"])
    try:
        REINFORCE(env="CartPole-v1", _init_setup_model=False, **kwargs)
    except (TypeError, ValueError) as error:
        return error
    return None


def file_problems(settings: dict[str, Any]) -> list[str]:
    """The keys ``validate_reinforce_hyperparams`` reports for an entry with ``settings``."""
    try:
        validate_reinforce_hyperparams({**BASE, **settings}, where="f.yml [CartPole-v1]")
    except HyperparamsError as error:
        return [key for key, _ in error.problems]
    return []


KARPATHY = "sb3_reinforce.pong.karpathy.KarpathyPolicy"
# Settings on which the constructor and the validator used to disagree, and others at the limits
AGREEMENT = [
    # accepted by the old validator, refused by the constructor
    ("policy-sb3-class", {"policy": "stable_baselines3.common.policies.ActorCriticPolicy"}, False),
    ("buffer-sb3-class", {"rollout_buffer_class": "stable_baselines3.common.buffers.RolloutBuffer"}, False),
    ("karpathy-net_arch", {"policy": KARPATHY, "policy_kwargs": "dict(net_arch=[8])"}, False),
    ("karpathy-activation", {"policy": KARPATHY, "policy_kwargs": "dict(activation_fn=nn.Tanh)"}, False),
    # refused by the old validator, accepted by the constructor
    ("karpathy-n_hidden", {"policy": KARPATHY, "policy_kwargs": "dict(n_hidden=16, single_logit=False)"}, True),
    ("baseline-none-name", {"baseline": "none"}, True),
    # the same either way
    ("mlp-net_arch", {"policy_kwargs": "dict(net_arch=dict(pi=[8], vf=[8]), ortho_init=False)"}, True),
    ("mlp-use_sde", {"policy_kwargs": "dict(use_sde=True)"}, False),
    ("mlp-unknown-key", {"policy_kwargs": "dict(net_arhc=[8])"}, False),
    ("episode-buffer", {"rollout_buffer_class": "sb3_reinforce.common.buffers.TernaryPackedRolloutBuffer"}, True),
    ("gamma-one", {"gamma": 1}, True),
    ("gamma-above", {"gamma": 1.01}, False),
    ("gae_lambda-with-value", {"baseline": "value", "gae_lambda": 0.0}, True),
    ("gae_lambda-without-value", {"baseline": "time", "gae_lambda": 0.5}, False),
    ("n_critic_updates-with-value", {"baseline": "value", "n_critic_updates": 8}, True),
    ("n_critic_updates-without-value", {"baseline": "mean", "n_critic_updates": 8}, False),
    ("n_critic_updates-one-without-value", {"n_critic_updates": 1}, True),
    ("n_critic_updates-zero", {"baseline": "value", "n_critic_updates": 0}, False),
    ("n_critic_updates-float", {"baseline": "value", "n_critic_updates": 2.5}, False),
    ("importance_weights-segment-points", {"importance_weights": "segment", "reset_on_reward": True}, True),
    ("importance_weights-segment-alone", {"importance_weights": "segment"}, False),
    ("importance_weights-none-string", {"importance_weights": "none"}, True),
    ("importance_weights-null", {"importance_weights": None}, False),
    ("n_episodes-null", {"n_episodes": None, "max_grad_norm": None}, True),
    ("n_steps-float", {"n_steps": 8.0}, False),
    ("learning_rate-zero", {"learning_rate": 0}, False),
    ("ent_coef-negative", {"ent_coef": -0.5}, True),
    ("ent_coef-nan", {"ent_coef": math.nan}, False),
    ("vf_coef-zero", {"vf_coef": 0}, True),
    ("stats_window_size-zero", {"stats_window_size": 0}, False),
    ("normalize_advantage-int", {"normalize_advantage": 0}, False),
    ("return_mode-typo", {"return_mode": "reward-to-go"}, False),
    ("rollout_buffer_kwargs-list", {"rollout_buffer_kwargs": []}, False),
    # gSDE's arguments (added after the table): declared there, so both read them
    ("use_sde-string", {"use_sde": "yes"}, False),
    ("sde_sample_freq-zero-with-sde", {"use_sde": True, "sde_sample_freq": 0}, False),
    ("sde_sample_freq-float", {"sde_sample_freq": 1.5}, False),
    ("sde_sample_freq-unused-without-sde", {"use_sde": False, "sde_sample_freq": -1}, True),
]


@pytest.mark.parametrize(("settings", "allowed"), [case[1:] for case in AGREEMENT], ids=[case[0] for case in AGREEMENT])
def test_the_constructor_and_the_file_validator_agree(settings: dict[str, Any], allowed: bool) -> None:
    error = constructor_error(settings)
    problems = file_problems(settings)
    assert (error is None) == allowed, error
    assert (problems == []) == allowed, problems
    if not allowed:
        # the validator names the key the constructor names
        assert len(problems) == 1 and problems[0] in str(error), (problems, error)


def test_one_declaration_changes_both(monkeypatch) -> None:
    monkeypatch.setitem(REINFORCE_ARGUMENTS, "gamma", NumberRule(0.0, 0.5))
    with pytest.raises(ValueError, match=r"gamma=0.9 is not allowed: expected a number in \[0.0, 0.5\]"):
        REINFORCE("MlpPolicy", "CartPole-v1", gamma=0.9, _init_setup_model=False)
    with pytest.raises(HyperparamsError, match=r"gamma: 0.9 is not allowed: expected a number in \[0, 0.5\]"):
        validate_reinforce_hyperparams({**BASE, "gamma": 0.9})


def test_every_constructor_argument_has_one_rule() -> None:
    import inspect

    arguments = set(inspect.signature(REINFORCE.__init__).parameters) - {"self", "env", "_init_setup_model"}
    # An argument added to the constructor without a rule would be checked by hand, or not at all, in the file
    assert arguments == set(REINFORCE.argument_rules())


def test_every_file_key_of_the_algorithm_has_a_rule() -> None:
    rules = REINFORCE.argument_rules()
    assert set(REINFORCE_KEYS) <= set(rules)
    assert next(iter(rules)) == "policy"  # the policy first: policy_kwargs are checked for its class
    assert {"verbose", "seed", "device", "tensorboard_log"} <= set(rules) - set(REINFORCE_KEYS)  # the command line's


# ---------------------------------------------------------------------------------------------------------------------
# The one range check
# ---------------------------------------------------------------------------------------------------------------------


def test_number_problem_writes_every_digit_of_a_bound() -> None:
    assert number_problem(-1, 0, 2**32 - 1, integer=True) == "expected an integer in [0, 4294967295]"
    assert number_problem(2.0, 0.0, 1e-3) == "expected a number in [0, 0.001]"


def test_number_problem_phrases_for_a_file_or_for_python() -> None:
    assert number_problem(2, 0.0, 1.0) == "expected a number in [0, 1]"
    assert number_problem(2, 0.0, 1.0, python=True) == "expected a number in [0.0, 1.0]"
    assert number_problem("x", 1, math.inf, integer=True, optional=True) == "expected an integer in [1, inf) or null"
    assert number_problem("x", 1, math.inf, integer=True, optional=True, python=True).endswith("[1, inf) or None")
    assert number_problem(None, 1, math.inf, optional=True) is None
    assert number_problem(math.inf, -math.inf, math.inf) == "expected a number (finite)"


@pytest.mark.parametrize(
    ("value", "error"), [(True, TypeError), ("1", TypeError), (None, TypeError), (math.nan, ValueError), (0, ValueError)]
)
def test_check_number_names_the_argument(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^rate=.* is not allowed: expected a number in \(0.0, inf\)$"):
        check_number("rate", value, 0.0, math.inf, low_open=True)


# ---------------------------------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------------------------------


def _module_imports(path: Path) -> set[str]:
    """The sb3_reinforce modules ``path`` imports at module level (imports inside functions are not counted)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sb3_reinforce"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("sb3_reinforce"))
    return names


def test_common_does_not_depend_on_the_algorithm_nor_the_tools() -> None:
    for path in sorted((PACKAGE / "common").glob("*.py")):
        foreign = {name for name in _module_imports(path) if not name.startswith("sb3_reinforce.common")}
        assert not foreign, f"{path.name} imports {foreign}"


def test_hyperparams_modules_have_one_job_each_and_no_import_cycle() -> None:
    folder = PACKAGE / "hyperparams"
    modules = {path.stem: path for path in folder.glob("*.py") if path.stem != "__init__"}
    assert {"yaml_files", "literals", "code_check", "validation", "entries", "building"} <= set(modules)
    assert not (folder / "envs.py").exists()
    graph = {}
    for name, path in modules.items():
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, name
        assert " and " not in docstring.splitlines()[0], (name, docstring.splitlines()[0])
        prefix = "sb3_reinforce.hyperparams."
        graph[name] = {imported[len(prefix) :] for imported in _module_imports(path) if imported.startswith(prefix)}
        assert "sb3_reinforce.hyperparams" not in _module_imports(path), f"{name} imports the package, not a module"
    # Topological order exists: every module imports only modules already placed
    placed: list[str] = []
    while len(placed) < len(graph):
        ready = sorted(name for name in graph if name not in placed and graph[name] <= set(placed))
        assert ready, f"import cycle among {sorted(set(graph) - set(placed))}"
        placed.extend(ready)


def test_the_subpackages_import_each_other_without_a_cycle() -> None:
    """The layers of the README's Architecture: no subpackage imports (at module level) one that imports it back."""
    subpackages = sorted(path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists())
    graph: dict[str, set[str]] = {name: set() for name in subpackages}
    for name in subpackages:
        for path in (PACKAGE / name).rglob("*.py"):
            for imported in _module_imports(path):
                target = imported.split(".")[1] if "." in imported else None
                if target in graph and target != name:
                    graph[name].add(target)
    assert graph["common"] == set() and graph["reinforce"] == {"common"}, graph
    placed: list[str] = []
    while len(placed) < len(graph):
        ready = sorted(name for name in graph if name not in placed and graph[name] <= set(placed))
        assert ready, f"import cycle among {sorted(set(graph) - set(placed))}: {graph}"
        placed.extend(ready)
