"""How the zoo runs rl_zoo3's own code: REINFORCE registered, safe helpers swapped in, ``--trust-code``, argument checks."""

import argparse
import contextlib
import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sb3_reinforce.common.safety import UsageError, check_env_id, check_input_file
from sb3_reinforce.common.serialization import other_algorithm_message
from sb3_reinforce.hyperparams import trusted_code
from sb3_reinforce.tuning import convert_reinforce_params, sample_reinforce_params
from sb3_reinforce.zoo.experiment import ReinforceExperimentManager
from sb3_reinforce.zoo.safe_loading import SafeStoreDict, _safe_vec_normalize_load, _SafeYaml, safe_get_saved_hyperparams

__all__ = [
    "TRUST_CODE_FLAG",
    "register_reinforce",
    "rl_zoo3_algo_path",
    "run_rl_zoo3_script",
    "run_zoo_command",
    "zoo_patches",
]

# Modules of this package that register environments, imported (when present) before the env id is checked.
_ENV_MODULES = ("sb3_reinforce.pong",)


def register_reinforce() -> None:
    """Register REINFORCE in rl_zoo3's tables keyed by algorithm name (idempotent)."""
    from rl_zoo3 import hyperparams_opt, utils

    from sb3_reinforce import REINFORCE

    utils.ALGOS["reinforce"] = REINFORCE
    hyperparams_opt.HYPERPARAMS_SAMPLER["reinforce"] = sample_reinforce_params
    hyperparams_opt.HYPERPARAMS_CONVERTER["reinforce"] = convert_reinforce_params


@contextlib.contextmanager
def zoo_patches() -> Iterator[None]:
    """
    While active, rl_zoo3's ``train``/``enjoy`` (and the scripts run by :func:`run_rl_zoo3_script`, which import
    these helpers from ``rl_zoo3.utils``) use the safe experiment manager and helpers of the zoo (and REINFORCE is
    registered), ``get_model_path`` reports a missing run or another algorithm's model in one line
    (:func:`_checked_get_model_path`), and ``VecNormalize.load`` unpickles no code (:func:`_safe_vec_normalize_load`).
    rl_zoo3's modules and ``VecNormalize.load`` are restored on exit.
    """
    import rl_zoo3.enjoy
    import rl_zoo3.train
    import rl_zoo3.utils

    register_reinforce()
    patches = [
        (rl_zoo3.train, "ExperimentManager", ReinforceExperimentManager),
        (rl_zoo3.train, "StoreDict", SafeStoreDict),
        (rl_zoo3.enjoy, "StoreDict", SafeStoreDict),
        (rl_zoo3.enjoy, "get_saved_hyperparams", safe_get_saved_hyperparams),
        (rl_zoo3.enjoy, "yaml", _SafeYaml()),
        (rl_zoo3.enjoy, "get_model_path", _checked_get_model_path(rl_zoo3.enjoy.get_model_path)),
        (rl_zoo3.utils, "StoreDict", SafeStoreDict),
        (rl_zoo3.utils, "get_saved_hyperparams", safe_get_saved_hyperparams),
        (rl_zoo3.utils, "get_model_path", _checked_get_model_path(rl_zoo3.utils.get_model_path)),
        # SB3's class itself (rl_zoo3.utils and rl_zoo3.exp_manager import the same one), whoever calls its load
        (rl_zoo3.utils.VecNormalize, "load", staticmethod(_safe_vec_normalize_load)),
    ]
    # vars(): the class's staticmethod itself is restored, not the function getattr returns
    saved = [(module, name, vars(module)[name]) for module, name, _ in patches]
    try:
        for module, name, value in patches:
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


@contextlib.contextmanager
def _argv(prog: str, argv: Sequence[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        yield
    finally:
        sys.argv = saved


def _import_env_modules() -> None:
    for module in _ENV_MODULES:
        with contextlib.suppress(ImportError):
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)


#: Command-line flag of every zoo command: let hyperparameter files name any importable callable (see
#: :func:`sb3_reinforce.hyperparams.check_hyperparams_code`).
TRUST_CODE_FLAG = "--trust-code"
_TRUST_CODE_HELP = (
    "trust the hyperparameter files: import any callable they name (env_wrapper, callback, policy, ...) and call it "
    "with any arguments, and unpickle a run's vecnormalize.pkl (and plot from-file's input) with pickle.load. Without "
    "it only classes of the expected kind from trusted packages, with plain-data arguments, are accepted, and "
    "vecnormalize.pkl may hold only what VecNormalize.save writes (plot from-file's input: plain data and arrays)"
)


def _trust_code_flag(command: Any) -> Any:
    """Run ``command(argv)`` with ``--trust-code`` taken out of ``argv`` and, when given, inside :func:`trusted_code`."""

    @functools.wraps(command)
    def run(argv: Sequence[str] | None = None) -> Any:
        argv = list(sys.argv[2:] if argv is None else argv)
        trust = TRUST_CODE_FLAG in argv
        with trusted_code() if trust else contextlib.nullcontext():
            return command([arg for arg in argv if arg != TRUST_CODE_FLAG])

    return run


def _check_zoo_arguments(argv: Sequence[str]) -> None:
    """
    Raise :class:`~sb3_reinforce.common.safety.UsageError` for the careless mistakes rl_zoo3 answers with a traceback:
    an env id not registered (with the closest ids), a missing ``-i``/``--trained-agent`` or ``--conf-file``.
    The modules of ``--gym-packages`` are imported first (rl_zoo3 imports them only after its own parsing), so that
    the envs they register are known.

    :param argv: the command's arguments (rl_zoo3's names for these options)
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--env", default=None)
    parser.add_argument("-i", "--trained-agent", default="")
    parser.add_argument("-conf", "--conf-file", default=None)
    parser.add_argument("--gym-packages", nargs="+", default=[])
    args, _ = parser.parse_known_args(argv)
    for module in args.gym_packages:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UsageError(f"--gym-packages {module!r}: cannot import it ({error})") from error
    if args.env is not None:
        check_env_id(args.env)
    if args.trained_agent:
        check_input_file(args.trained_agent, "-i/--trained-agent")
    if args.conf_file is not None and args.conf_file.endswith((".yml", ".yaml")):  # else a Python module, for rl_zoo3
        check_input_file(args.conf_file, "--conf-file")


def _runs_of_other_algorithms(folder: str, algo: str, env_name: Any) -> str:
    """``"; logs has CartPole-v1 runs of reinforce (--algo reinforce)"`` when ``--algo`` has none there but others do."""
    env_id = str(env_name)
    try:
        others = sorted(
            entry.name
            for entry in os.scandir(folder)
            if entry.is_dir() and entry.name != algo and any(run.startswith(f"{env_id}_") for run in os.listdir(entry.path))
        )
    except OSError:
        return ""
    if not others:
        return ""
    options = " or ".join(f"--algo {other}" for other in others)
    return f"; {folder} has {env_id} runs of {', '.join(others)} ({options})"


def _checked_get_model_path(get_model_path: Callable[..., tuple[str, str, str]]) -> Callable[..., tuple[str, str, str]]:
    """
    rl_zoo3's ``get_model_path`` for ``enjoy`` and ``record-video``: a missing run folder or model is a
    :class:`UsageError` (naming the algorithms that have runs of the env in the folder), and a model of another
    algorithm than ``--algo`` says which one it is (e.g. ``--algo ppo`` on a REINFORCE run folder).
    """

    @functools.wraps(get_model_path)
    def checked(exp_id: int, folder: str, algo: str, env_name: Any, *args: Any, **kwargs: Any) -> tuple[str, str, str]:
        from sb3_reinforce.common.serialization import read_model_data

        try:
            result = get_model_path(exp_id, folder, algo, env_name, *args, **kwargs)
        except UsageError:  # already checked (record-training runs record-video inside the zoo's patches)
            raise
        except (AssertionError, ValueError) as error:  # rl_zoo3's messages: "The ... folder was not found", ...
            raise UsageError(f"{error}{_runs_of_other_algorithms(folder, algo, env_name)}") from error
        model_file = result[1]
        other = None
        # Only for the message: a file that cannot be read here is left to the loader's own error
        with contextlib.suppress(OSError, ValueError):
            expected = rl_zoo3_algo_path(algo)
            json_string = read_model_data(Path(model_file).read_bytes())
            other = None if json_string is None or expected is None else other_algorithm_message(json_string, expected)
        if other is not None:
            raise UsageError(f"{model_file}: {other} (--algo {algo} cannot run it)")
        return result

    return checked


def rl_zoo3_algo_path(algo: str) -> str | None:
    """
    The class path (``"stable_baselines3.PPO"``) of an rl_zoo3 algorithm name, or None if not known.

    :param algo: rl_zoo3's name, e.g. ``"ppo"``
    """
    import rl_zoo3

    cls = rl_zoo3.ALGOS.get(algo)
    if cls is None:
        return None
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"


def _with_default_algo(argv: Sequence[str], options: Sequence[str] = ("--algo",)) -> list[str]:
    """``argv`` with ``options[0] reinforce`` in front when none of ``options`` is given (and no ``--help``)."""
    argv = list(argv)
    given = any(arg in options or arg.startswith(tuple(f"{option}=" for option in options)) for arg in argv)
    if not given and not any(arg in ("-h", "--help") for arg in argv):
        argv = [options[0], "reinforce", *argv]
    return argv


def run_zoo_command(prog: str, argv: Sequence[str], run: Callable[[], Any]) -> Any:
    """
    Run one of rl_zoo3's commands (``run()``, which reads ``sys.argv``) as the zoo runs ``train`` and ``enjoy``:
    the env modules of this package imported, ``--algo`` defaulting to ``reinforce``, inside :func:`zoo_patches`
    (safe loading), after :func:`_check_zoo_arguments`.

    :param prog: the program name rl_zoo3's parser shows
    :param argv: the command's arguments (``--trust-code`` already taken out)
    :param run: runs the rl_zoo3 command
    :return: what ``run`` returns
    """
    _import_env_modules()
    argv = _with_default_algo(argv)
    with zoo_patches(), _argv(prog, argv):
        _check_zoo_arguments(argv)
        return run()


def run_rl_zoo3_script(module: str, replaced_modules: Mapping[str, Any] | None = None) -> None:
    """
    Run an rl_zoo3 script whose code is all under ``if __name__ == "__main__":`` (``rl_zoo3.record_video``,
    ``rl_zoo3.record_training``) in this process, as ``python -m`` would (it reads ``sys.argv``). Its own ``import``
    statements of the top-level modules named in ``replaced_modules`` give the replacement instead (e.g. ``yaml``
    with a safe ``load``); nothing outside the script's namespace is changed. The ``from rl_zoo3.utils import ...``
    of the script reads the helpers :func:`zoo_patches` puts there.

    :param module: the script's module, e.g. ``"rl_zoo3.record_video"``
    :param replaced_modules: ``{module name: object its import gives}``
    """
    import builtins
    import runpy

    replaced = dict(replaced_modules or {})
    real_import = builtins.__import__

    def script_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level == 0 and not fromlist and name in replaced:
            return replaced[name]
        return real_import(name, globals, locals, fromlist, level)

    # The script's globals (and so its functions) see these builtins, the rest of the process the usual ones
    script_builtins = {**vars(builtins), "__import__": script_import}
    runpy.run_module(module, init_globals={"__builtins__": script_builtins}, run_name="__main__")
