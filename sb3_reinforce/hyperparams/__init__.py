"""
Safe loading and validation of rl-zoo hyperparameter files, and the models they describe.

rl_zoo3 turns strings such as ``"dict(net_arch=[64], activation_fn=nn.ReLU)"`` into objects with ``eval``,
reads saved configs with ``yaml.UnsafeLoader`` and imports and calls any dotted name a file gives as
``env_wrapper``, ``callback``, ``policy``... Here YAML is read with a bounded ``yaml.SafeLoader`` (size, depth,
aliases, duplicate keys: :func:`load_yaml`) and such strings with a small literal parser: numbers, strings,
booleans, ``None``, lists, tuples, dicts, ``dict(key=value, ...)`` and a fixed table of names (activation
functions, optimizers, a few SB3 classes). Every name a file can make the program call is imported only from a
trusted package and must then be a class of the expected kind, with plain-data arguments
(:func:`check_hyperparams_code`); ``trust_code=True`` (the zoo's ``--trust-code``) is the explicit opt-out.

One module per job:

- :mod:`~sb3_reinforce.hyperparams.yaml_files`: safe YAML loading (:func:`load_yaml`, :func:`parse_yaml`,
  :func:`to_yaml_data`, the limits);
- :mod:`~sb3_reinforce.hyperparams.literals`: the literal parser (:func:`parse_python_literal`,
  :func:`format_python_literal`);
- :mod:`~sb3_reinforce.hyperparams.code_check`: what an entry may make the program run
  (:func:`check_hyperparams_code`, :func:`trusted_code`);
- :mod:`~sb3_reinforce.hyperparams.validation`: REINFORCE entries (:func:`validate_reinforce_hyperparams`), with
  the rules of the REINFORCE constructor;
- :mod:`~sb3_reinforce.hyperparams.entries`: files and entries (:func:`load_hyperparams`,
  :func:`validate_hyperparams_file`);
- :mod:`~sb3_reinforce.hyperparams.building`: an entry's envs and model (:func:`make_model_from_entry`).
"""

from sb3_reinforce.hyperparams.building import (
    build_model_kwargs,
    make_model_from_entry,
    make_vec_env_from_entry,
    make_zoo_vec_env,
    schedule_from_entry,
)
from sb3_reinforce.hyperparams.code_check import (
    TRUSTED_MODULE_PREFIXES,
    check_hyperparams_code,
    check_trusted_name,
    trusted_code,
)
from sb3_reinforce.hyperparams.entries import (
    default_hyperparams_path,
    load_hyperparams,
    load_hyperparams_file,
    select_env_entry,
    validate_hyperparams_file,
    without_unused_critic,
)
from sb3_reinforce.hyperparams.errors import HyperparamsError
from sb3_reinforce.hyperparams.literals import format_python_literal, parse_python_literal
from sb3_reinforce.hyperparams.validation import (
    REINFORCE_KEYS,
    ZOO_KEYS,
    validate_hyperparams_content,
    validate_reinforce_hyperparams,
)
from sb3_reinforce.hyperparams.yaml_files import (
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    ZooSafeLoader,
    canonical_sha256,
    load_yaml,
    parse_yaml,
    to_yaml_data,
)

__all__ = [
    "MAX_YAML_ALIASES",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "REINFORCE_KEYS",
    "TRUSTED_MODULE_PREFIXES",
    "ZOO_KEYS",
    "HyperparamsError",
    "ZooSafeLoader",
    "build_model_kwargs",
    "canonical_sha256",
    "check_hyperparams_code",
    "check_trusted_name",
    "default_hyperparams_path",
    "format_python_literal",
    "load_hyperparams",
    "load_hyperparams_file",
    "load_yaml",
    "make_model_from_entry",
    "make_vec_env_from_entry",
    "make_zoo_vec_env",
    "parse_python_literal",
    "parse_yaml",
    "schedule_from_entry",
    "select_env_entry",
    "to_yaml_data",
    "trusted_code",
    "validate_hyperparams_content",
    "validate_hyperparams_file",
    "validate_reinforce_hyperparams",
    "without_unused_critic",
]
