"""
Loading model files without running the code they may hold.

Stable-Baselines3 stores the entries of a model's ``data`` that JSON cannot hold (spaces, policy class, schedules,
``policy_kwargs`` with classes, ...) as base64 cloudpickle, and ``load`` decodes them with ``cloudpickle.loads``:
a crafted file runs any code at load time. :func:`decode_model_data` decodes them instead with
:class:`RestrictedUnpickler`, which resolves only the globals a REINFORCE model legitimately holds (see
:func:`find_allowed_global`) and raises :class:`UntrustedPickleError` for anything else, before importing or
calling it, and never sets the attributes of a class (which would change it for the whole process).
``REINFORCE.load`` passes the decoded values to SB3's own loader as ``custom_objects``, so that SB3 never unpickles
them itself.

:func:`load_model` does the same for a model of any SB3 algorithm (PPO, A2C, ...: the comparison's checkpoints).

A zoo run folder's ``vecnormalize.pkl`` (SB3's ``VecNormalize.save``, loaded by ``VecNormalize.load`` with
``pickle.load``) is read likewise by :func:`load_vec_normalize`, which allows only what such a pickle holds.
"""

import base64
import importlib
import io
import json
import os
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

__all__ = [
    "ALLOWED_DESCRIPTION",
    "VEC_NORMALIZE_ALLOWED_DESCRIPTION",
    "RestrictedUnpickler",
    "UntrustedPickleError",
    "VecNormalizeUnpickler",
    "decode_model_data",
    "find_allowed_global",
    "find_vec_normalize_global",
    "load_model",
    "load_vec_normalize",
    "read_model_data",
    "restricted_loads",
]

ALLOWED_DESCRIPTION = (
    "gymnasium spaces, numpy arrays/dtypes/random generators, Stable-Baselines3 and sb3_reinforce policy, "
    "rollout-buffer, features-extractor and optimizer classes (RMSpropTFLike), torch activation and optimizer "
    "classes, the schedule classes "
    "FloatSchedule/ConstantSchedule/LinearSchedule (stable_baselines3.common.utils) and SimpleLinearSchedule "
    "(rl_zoo3.utils), and builtin containers"
)

# Globals allowed by exact (module, name). numpy pickles arrays, scalars and random generators through these
# helpers ("numpy.core" before numpy 2, "numpy._core" since).
_EXACT_GLOBALS = frozenset(
    {("builtins", name) for name in ("bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int")}
    | {("builtins", name) for name in ("list", "range", "set", "slice", "str", "tuple")}
    | {("collections", "deque"), ("collections", "OrderedDict")}
    | {(f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")}
    | {(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")}
    | {("numpy", "dtype"), ("numpy", "ndarray")}
    | {("numpy.random._pickle", name) for name in ("__bit_generator_ctor", "__generator_ctor", "__randomstate_ctor")}
    | {("numpy.random.bit_generator", name) for name in ("SeedSequence", "__pyx_unpickle_SeedSequence")}
    | {
        ("numpy.random._generator", "Generator"),
        ("numpy.random.mtrand", "RandomState"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
    }
    | {("stable_baselines3.common.utils", name) for name in ("FloatSchedule", "ConstantSchedule", "LinearSchedule")}
    | {("rl_zoo3.utils", "SimpleLinearSchedule"), ("torch.nn.modules.linear", "Identity")}
)

# Classes allowed by (module, whether its submodules too, base classes): the module is checked before it is
# imported, the object after (a module re-exports other names, e.g. ``sb3_reinforce.common.safety.os``, not classes
# of these bases). Optimizers: SB3's RMSpropTFLike, which hyperparameter files name (rl_zoo3's a2c.yml).
_CLASS_RULES: tuple[tuple[str, bool, tuple[type, ...]], ...] = (
    ("gymnasium.spaces", True, (spaces.Space,)),
    ("stable_baselines3", True, (BasePolicy, BaseBuffer, BaseFeaturesExtractor, th.optim.Optimizer)),
    ("sb3_reinforce", True, (BasePolicy, BaseBuffer, BaseFeaturesExtractor, th.optim.Optimizer)),
    ("torch.nn.modules.activation", False, (th.nn.Module,)),
    ("torch.optim", True, (th.optim.Optimizer,)),
    ("numpy", False, (np.generic, np.dtype)),
    ("numpy.dtypes", False, (np.dtype,)),
)


def _matches(module: str, rule_module: str, submodules: bool) -> bool:
    return module == rule_module or (submodules and module.startswith(rule_module + "."))


class UntrustedPickleError(ValueError):
    """
    Pickled entries of a model file refer to globals that are not allowed (nothing of them was run).

    :param message: the error message
    :param refused: ``{entry of the model's data: refused global "module.name"}`` (entry None for a lone pickle)
    """

    def __init__(self, message: str, refused: dict[str | None, str]):
        super().__init__(message)
        self.refused = refused

    def __reduce__(self) -> tuple[type, tuple[str, dict[str | None, str]]]:
        # Picklable with its arguments (e.g. raised in a worker process)
        return type(self), (str(self), self.refused)


#: Modules of this package that moved (0.1 layout -> subpackages): models saved before the move name the old path.
MOVED_MODULES: dict[str, str] = {
    "sb3_reinforce.karpathy": "sb3_reinforce.pong.karpathy",
    "sb3_reinforce.wrappers": "sb3_reinforce.pong.wrappers",
    "sb3_reinforce.pong": "sb3_reinforce.pong.vec_env",
    "sb3_reinforce.optuna_sampler": "sb3_reinforce.tuning",
}


def find_allowed_global(module: str, name: str) -> Any:
    """
    The global ``module.name`` if a REINFORCE model file may refer to it (see :data:`ALLOWED_DESCRIPTION`),
    else raise :class:`UntrustedPickleError`. Nothing is imported before the check: an arbitrary module is never
    imported (importing may run code), nor a script or dunder module of an allowed package
    (``sb3_reinforce.compare.__main__`` runs the command line). Dotted names (``Box.__init__.__globals__``) are
    refused.

    :param module: the module of the global
    :param name: its name in the module
    :return: the object
    """
    module = MOVED_MODULES.get(module, module)
    global_name = f"{module}.{name}"
    allowed_module = (module, name) in _EXACT_GLOBALS or (
        any(_matches(module, *rule[:2]) for rule in _CLASS_RULES)
        # An allowed package's script modules (sb3_reinforce.compare.__main__ runs the command line when imported)
        # and dunder modules (sb3_reinforce.__init__ would run the package's code a second time) are never imported
        and not any(part.startswith("__") for part in module.split("."))
    )
    if not allowed_module or not name.isidentifier():
        raise UntrustedPickleError(f"{global_name} is not allowed", {None: global_name})
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise UntrustedPickleError(f"{global_name} does not exist here ({error})", {None: global_name}) from error
    if (module, name) in _EXACT_GLOBALS:
        return obj
    for rule_module, submodules, bases in _CLASS_RULES:
        if _matches(module, rule_module, submodules) and isinstance(obj, type) and issubclass(obj, bases):
            return obj
    raise UntrustedPickleError(f"{global_name} is not allowed", {None: global_name})


class _ClassStateUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """
    Python's own unpickler (``pickle._Unpickler``; the C one has no hook per opcode) whose ``BUILD`` refuses to set
    the state of a class: ``GLOBAL FloatSchedule`` then ``BUILD {"__call__": ...}`` would ``setattr`` the allowed
    class itself, changing it for the whole process even if the load then fails. Instances get their state as
    usual.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def load_build(self) -> None:
        target = self.stack[-2]
        if isinstance(target, type):
            global_name = f"{target.__module__}.{target.__qualname__}"
            raise UntrustedPickleError(f"setting attributes of the class {global_name} is not allowed", {None: global_name})
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build


class RestrictedUnpickler(_ClassStateUnpickler):
    """
    Unpickler that resolves only the globals :func:`find_allowed_global` allows, and never changes a class (see
    ``_ClassStateUnpickler``).
    """

    def find_class(self, module: str, name: str) -> Any:
        return find_allowed_global(module, name)


def restricted_loads(data: bytes) -> Any:
    """
    ``pickle.loads`` with :class:`RestrictedUnpickler` (reads what cloudpickle wrote for allowed objects).

    :param data: the pickle
    :return: the object
    """
    return RestrictedUnpickler(io.BytesIO(data)).load()


def _how_to_trust(entries: list[str]) -> str:
    values = ", ".join(f"{entry!r}: <value>" for entry in entries)
    return (
        f"If you trust the file, pass custom_objects={{{values}}} to use your own values instead of decoding "
        "them, or load(path, trusted=True) to unpickle everything as Stable-Baselines3 does (this runs any code "
        "the file holds)."
    )


def decode_model_data(json_string: str, custom_objects: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    Decode, with :class:`RestrictedUnpickler`, every cloudpickled (``":serialized:"``) entry of a model file's
    ``data`` JSON that is not in ``custom_objects`` (those are not decoded at all, as in SB3's ``json_to_data``).
    Raise :class:`UntrustedPickleError` naming every entry that refers to a global not allowed, and the global.

    :param json_string: the ``data`` file of the model archive
    :param custom_objects: entries the caller replaces
    :return: ``{entry: decoded value}``, to pass to SB3's ``load`` as ``custom_objects``
    """
    json_dict = json.loads(json_string)
    if not isinstance(json_dict, dict):
        raise ValueError(f"the model's data is not a JSON object but {type(json_dict).__name__}")
    decoded, refused, reasons = {}, {}, []
    for entry, item in json_dict.items():
        if (custom_objects is not None and entry in custom_objects) or not (isinstance(item, dict) and ":serialized:" in item):
            continue
        serialized = item[":serialized:"]
        try:
            if not isinstance(serialized, str):
                raise TypeError(f"':serialized:' holds a {type(serialized).__name__}, not a base64 string")
            decoded[entry] = restricted_loads(base64.b64decode(serialized.encode(), validate=True))
        except UntrustedPickleError as error:
            # Decoding the other entries is safe (same restrictions): go on, to name them all at once
            refused[entry] = error.refused[None]
            hint = " (a Python function, e.g. a lambda schedule)" if refused[entry].startswith("cloudpickle.") else ""
            reasons.append(f"entry {entry!r}: {error}{hint}")
        except Exception as error:  # whatever a corrupt pickle raises (binascii.Error included)
            raise ValueError(
                f"entry {entry!r} of the model's data cannot be decoded ({type(error).__name__}: {error}). "
                + _how_to_trust([entry])
            ) from error
    if refused:
        raise UntrustedPickleError(
            f"refused to unpickle {len(refused)} entr{'y' if len(refused) == 1 else 'ies'} of the model's data, "
            f"nothing of them was run: {'; '.join(reasons)}. Allowed: {ALLOWED_DESCRIPTION}. " + _how_to_trust(list(refused)),
            refused,
        )
    return decoded


def read_model_data(archive_bytes: bytes) -> str | None:
    """
    The ``data`` JSON of a model archive, as SB3's ``load_from_zip_file`` reads it.

    :param archive_bytes: the whole zip file
    :return: the JSON string, or None when the archive has no ``data``
    """
    try:
        with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
            if "data" not in archive.namelist():
                return None
            return archive.read("data").decode()
    except zipfile.BadZipFile as error:
        raise ValueError(f"not a zip archive written by model.save() ({error})") from error


def load_model(
    algo_class: type[BaseAlgorithm],
    path: str | os.PathLike[str],
    env: VecEnv | None = None,
    device: th.device | str = "auto",
    trusted: bool = False,
) -> BaseAlgorithm:
    """
    ``algo_class.load(path, env=env, device=device)`` for any Stable-Baselines3 algorithm (PPO, A2C, ...), with
    the model's entries decoded by :class:`RestrictedUnpickler` as ``REINFORCE.load`` does: SB3's own ``load``
    would ``cloudpickle.loads`` them, running whatever a crafted file holds. A REINFORCE class is loaded by its
    own ``load``. The file is read once: what is checked is what SB3 loads.

    :param algo_class: the algorithm's class, e.g. ``stable_baselines3.PPO``
    :param path: the model archive
    :param env: the env to load the model on (its spaces must be the saved ones)
    :param device: the device to load the model on
    :param trusted: decode the entries with ``cloudpickle`` as SB3 does (only for files you trust: this runs any
        code they hold)
    :return: the loaded model
    :raises UntrustedPickleError: (a ``ValueError``) an entry refers to a global not allowed; nothing of it was run
    """
    from sb3_reinforce.reinforce.reinforce import REINFORCE

    if not isinstance(trusted, bool):
        raise TypeError(f"trusted must be True or False, got {trusted!r} ({type(trusted).__name__})")
    if issubclass(algo_class, REINFORCE):
        return algo_class.load(path, env=env, device=device, trusted=trusted)
    archive = Path(path).read_bytes()
    json_string = None if trusted else read_model_data(archive)
    custom_objects = None
    if json_string is not None:
        try:
            custom_objects = decode_model_data(json_string)
        except UntrustedPickleError as error:
            raise UntrustedPickleError(
                f"Cannot load a {algo_class.__name__} model from {str(path)!r}: {error}", error.refused
            ) from error
    # SB3's json_to_data takes the entries given in custom_objects as they are: it unpickles none of them
    return algo_class.load(io.BytesIO(archive), env=env, device=device, custom_objects=custom_objects)


# Policy-class modules of other algorithms' model files (the module is in the file's data JSON: nothing is unpickled)
_POLICY_MODULE_ALGOS = {
    "stable_baselines3.dqn.policies": "stable_baselines3.DQN",
    "stable_baselines3.sac.policies": "stable_baselines3.SAC",
    "stable_baselines3.td3.policies": "stable_baselines3.TD3",
    "sb3_contrib.qrdqn.policies": "sb3_contrib.QRDQN",
    "sb3_contrib.tqc.policies": "sb3_contrib.TQC",
    "sb3_contrib.ars.policies": "sb3_contrib.ARS",
    "sb3_contrib.crossq.policies": "sb3_contrib.CrossQ",
    "sb3_contrib.common.recurrent.policies": "sb3_contrib.RecurrentPPO",
    "sb3_contrib.common.maskable.policies": "sb3_contrib.MaskablePPO",
}
# Keys only REINFORCE saves
_REINFORCE_KEYS = ("n_episodes", "return_mode")


def _pickled_class_name(serialized: Any) -> str | None:
    """The class name a cloudpickled class refers to, read from the pickle's opcodes (nothing is unpickled)."""
    try:
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(base64.b64decode(serialized)):
            if opcode.name in ("GLOBAL", "INST"):
                return str(arg).split(" ")[-1]
            if opcode.name == "STACK_GLOBAL" and strings:
                return strings[-1]
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # a corrupt entry: the name is only for the message
        return None
    return None


def saved_algorithm(json_string: str) -> tuple[str, str] | None:
    """
    Which algorithm wrote a model file, from its ``data`` JSON (nothing is unpickled): ``(algorithm, policy)``,
    e.g. ``("stable_baselines3.PPO", "ActorCriticPolicy from stable_baselines3.common.policies")``; ``None`` when
    not known (a file of an algorithm not listed, a corrupt ``data``).

    :param json_string: the ``data`` file of the model archive
    :return: the algorithm's class path and the policy class, or None
    """
    try:
        data = json.loads(json_string)
        policy = data.get("policy_class") if isinstance(data, dict) else None
        module = policy.get("__module__") if isinstance(policy, dict) else None
    except (ValueError, AttributeError):
        return None
    if not isinstance(module, str):
        return None
    name = _pickled_class_name(policy.get(":serialized:")) or "?"
    description = f"{name} from {module}"
    if module.startswith("sb3_reinforce.") or any(key in data for key in _REINFORCE_KEYS):
        return "sb3_reinforce.REINFORCE", description
    if module == "stable_baselines3.td3.policies" and data.get("policy_delay") == 1 and data.get("target_noise_clip") == 0.0:
        return "stable_baselines3.DDPG", description
    if module in _POLICY_MODULE_ALGOS:
        return _POLICY_MODULE_ALGOS[module], description
    if module == "stable_baselines3.common.policies":
        # PPO, A2C and sb3_contrib's TRPO share SB3's ActorCriticPolicy: tell them by their own hyperparameters
        if "cg_max_steps" in data:
            return "sb3_contrib.TRPO", description
        return ("stable_baselines3.PPO" if "clip_range" in data else "stable_baselines3.A2C"), description
    return None


def other_algorithm_message(json_string: str, expected: str) -> str | None:
    """
    The message for a model file of another algorithm than ``expected``, or None (same algorithm, or not known).

    :param json_string: the ``data`` file of the model archive
    :param expected: the algorithm's class path, e.g. ``"sb3_reinforce.REINFORCE"``
    :return: e.g. ``"this file holds a PPO model (policy_class ActorCriticPolicy from ...), load it with
        stable_baselines3.PPO.load"``
    """
    found = saved_algorithm(json_string)
    if found is None or found[0] == expected:
        return None
    algorithm, policy = found
    name = algorithm.rsplit(".", 1)[-1]
    article = "an" if name[0] in "AEIOU" else "a"
    return f"this file holds {article} {name} model (policy_class {policy}), load it with {algorithm}.load"


# ---------------------------------------------------------------------------------------------------------------------
# VecNormalize statistics (vecnormalize.pkl)
# ---------------------------------------------------------------------------------------------------------------------

VEC_NORMALIZE_ALLOWED_DESCRIPTION = (
    "stable_baselines3's VecNormalize and RunningMeanStd, gymnasium spaces, numpy arrays/dtypes/random generators "
    "(the spaces' np_random), and builtin containers"
)

# What VecNormalize.save() pickles (checked with pickletools and a recording unpickler, Box/Discrete/Dict spaces,
# norm_obs on and off), besides the two classes: spaces and their generators, arrays, OrderedDict. save() writes
# pickle's default protocol (3 or more on any Python 3); protocols 0-2 would need copyreg/_codecs, not allowed.
_VEC_NORMALIZE_GLOBALS = frozenset(
    {
        ("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize"),
        ("stable_baselines3.common.running_mean_std", "RunningMeanStd"),
    }
)
# Modules whose globals are then checked by find_allowed_global: of what a model file may hold, only these (no
# policy, buffer, features-extractor, torch or schedule class is ever in a VecNormalize pickle)
_VEC_NORMALIZE_MODULES = ("builtins", "collections", "numpy", "gymnasium.spaces")


def find_vec_normalize_global(module: str, name: str) -> Any:
    """
    The global ``module.name`` if a ``vecnormalize.pkl`` may refer to it (see
    :data:`VEC_NORMALIZE_ALLOWED_DESCRIPTION`), else raise :class:`UntrustedPickleError`. As in
    :func:`find_allowed_global`, nothing is imported before the check.

    :param module: the module of the global
    :param name: its name in the module
    :return: the object
    """
    if (module, name) in _VEC_NORMALIZE_GLOBALS:
        return getattr(importlib.import_module(module), name)
    if any(_matches(module, allowed, submodules=True) for allowed in _VEC_NORMALIZE_MODULES):
        return find_allowed_global(module, name)
    raise UntrustedPickleError(f"{module}.{name} is not allowed", {None: f"{module}.{name}"})


class VecNormalizeUnpickler(_ClassStateUnpickler):
    """Unpickler that resolves only the globals :func:`find_vec_normalize_global` allows, and never changes a class."""

    def find_class(self, module: str, name: str) -> Any:
        return find_vec_normalize_global(module, name)


def load_vec_normalize(path: str | os.PathLike[str], venv: VecEnv, trusted: bool = False) -> VecNormalize:
    """
    SB3's ``VecNormalize.load(path, venv)`` without running the code a crafted file may hold: the file is
    unpickled with :class:`VecNormalizeUnpickler`, then wrapped around ``venv`` (``set_venv``) as SB3 does.

    :param path: a ``vecnormalize.pkl`` written by ``VecNormalize.save``
    :param venv: the vectorized env to wrap (its observation space must have the saved shape)
    :param trusted: unpickle with ``pickle.load`` as SB3 does, any object allowed: only for files you trust, as
        this runs any code they hold (the zoo's ``--trust-code`` sets it)
    :return: the VecNormalize wrapper, with the saved statistics and settings
    :raises UntrustedPickleError: (a ``ValueError``) the file refers to a global not allowed; nothing of it was run
    :raises ValueError: the file is not a VecNormalize pickle, or its observation shape is not ``venv``'s
    """
    if not isinstance(trusted, bool):
        raise TypeError(f"trusted must be True or False, got {trusted!r} ({type(trusted).__name__})")
    if not isinstance(venv, VecEnv):
        raise TypeError(f"venv must be a VecEnv (the env to wrap), got {type(venv).__name__}")
    # Read once: what is unpickled is what was read (as for model files)
    data = Path(path).read_bytes()
    try:
        obj = pickle.loads(data) if trusted else VecNormalizeUnpickler(io.BytesIO(data)).load()
    except UntrustedPickleError as error:
        refused = error.refused[None]
        raise UntrustedPickleError(
            f"Refused to unpickle the VecNormalize statistics {str(path)!r}, nothing of the file was run: {error}. "
            f"Allowed: {VEC_NORMALIZE_ALLOWED_DESCRIPTION}. If you trust the file, pass --trust-code to the zoo "
            "command (python -m sb3_reinforce.zoo enjoy ... --trust-code) or load_vec_normalize(path, venv, "
            "trusted=True) to unpickle it as Stable-Baselines3 does (this runs any code the file holds).",
            {None: refused},
        ) from error
    except Exception as error:  # whatever a corrupt pickle raises
        raise ValueError(
            f"Cannot load the VecNormalize statistics {str(path)!r}: not a file written by VecNormalize.save() "
            f"({type(error).__name__}: {error})"
        ) from error
    if not isinstance(obj, VecNormalize):
        raise ValueError(
            f"Cannot load the VecNormalize statistics {str(path)!r}: the file holds an object of type "
            f"{type(obj).__name__}, not a VecNormalize (written by VecNormalize.save())"
        )
    try:
        obj.set_venv(venv)
    except (AssertionError, ValueError, AttributeError, KeyError) as error:
        # check_shape_equal asserts; a file missing attributes fails here
        raise ValueError(f"Cannot wrap the env with the VecNormalize statistics {str(path)!r}: {error}") from error
    return obj
