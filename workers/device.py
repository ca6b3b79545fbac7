"""Where compute runs: CUDA when present, else CPU (``GRADWALK_DEVICE`` may force one)."""

from __future__ import annotations

import importlib.util

from gradwalk.settings import get_settings


def resolve_device(requested: str | None = None) -> str:
    """The torch device name to use; never needs a GPU, uses one when present."""
    choice = requested or get_settings().device
    if choice != "auto":
        return choice
    if importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
