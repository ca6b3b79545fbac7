"""Where a worker computes: ``GRADWALK_DEVICE`` (default "auto": CUDA when present, else CPU)."""

from __future__ import annotations

from gradwalk import device
from gradwalk.settings import get_settings


def resolve_device(requested: str | None = None) -> str:
    """The torch device name for ``requested``, or for the configured device when none is asked for."""
    return device.resolve_device(requested or get_settings().device)
