"""gradwalk: pick the few percent of an instruction pool that teach a target task best.

This module is the package face. Public names are imported lazily so that
``import gradwalk`` never pulls in torch, celery or the Neo4j driver.
"""

from __future__ import annotations

import sys as _sys
from importlib import metadata as _metadata
from importlib.machinery import ModuleSpec as _ModuleSpec
from pathlib import Path as _Path

# The rooms beside this folder in a source checkout, by subpackage (pyproject's package-dir says
# the same; tests/test_layout.py checks that they agree). An installed wheel carries them inside
# this folder instead, where the ordinary import finds them.
ROOMS = {"gradwalk.platform": "platform", "gradwalk.workers": "workers", "gradwalk.graph": "graph",
         "gradwalk.migrations": "migrations"}


class _CheckoutRooms:
    """Finds exactly the rooms of a source checkout, so no other folder of it (``gradwalk``
    again, ``tests``, ``benchmarks``) becomes a second, separate copy inside the package.

    Needed wherever this folder, not an install, is what ``import gradwalk`` finds: a checkout
    root or a container's work folder on ``sys.path``. The rooms have no ``__init__.py``, so
    each is a namespace package over its one folder.
    """

    def __init__(self, root: _Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> _ModuleSpec | None:
        folder = ROOMS.get(fullname)
        if folder is None:
            return None
        spec = _ModuleSpec(fullname, None, is_package=True)
        spec.submodule_search_locations = [str(self.root / folder)]
        return spec


_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "platform").is_dir():
    _sys.meta_path.append(_CheckoutRooms(_checkout))

try:
    __version__ = _metadata.version("gradwalk")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0+unknown"

__all__ = ["Client", "__version__"]


def __getattr__(name: str):
    if name == "Client":
        from gradwalk.platform.interfaces.client import Client

        return Client
    raise AttributeError(f"module 'gradwalk' has no attribute {name!r}")
