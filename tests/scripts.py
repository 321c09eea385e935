"""Loading the repository's scripts (examples, benchmarks: files, not packages) as modules in tests."""

import importlib.util
from pathlib import Path
from types import ModuleType

#: The checkout's root folder
ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """
    Execute a script of the checkout as a module (its ``if __name__ == "__main__"`` part does not run).

    :param relative_path: path from the checkout's root, e.g. ``"examples/pong_karpathy.py"``
    :return: the module
    """
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(f"{path.stem}_script", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
