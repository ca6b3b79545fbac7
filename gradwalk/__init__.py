"""gradwalk: pick the few percent of an instruction pool that teach a target task best.

This module is the package face. Public names are imported lazily so that
``import gradwalk`` never pulls in torch, celery or the Neo4j driver.
"""

from __future__ import annotations

from importlib import metadata as _metadata

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
