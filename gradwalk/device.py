"""Where compute runs, for every room: ``"auto"`` is CUDA when torch sees a GPU, else the CPU.

It lives beside settings and errors because both the graph room (kNN) and the workers (gradient
engine, block tasks) resolve devices, and the graph room may not import the workers.
"""

from __future__ import annotations

import importlib.util

from gradwalk.errors import InvalidInput
from gradwalk.settings import get_settings


def resolve_device(device: str | None = None) -> str:
    """The torch device name to compute on; never needs a GPU, uses one when present.

    ``None`` means the configured device (``GRADWALK_DEVICE``, default "auto"), which is what a
    worker computes on unless a run asks for another.

    Other names are checked, so a typo or a missing GPU is refused up front with a message rather
    than deep inside a task. Without torch (a light install computes nothing) names pass as given.
    """
    if device is None:
        device = get_settings().device
    if importlib.util.find_spec("torch") is None:
        return "cpu" if device == "auto" else device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidInput(f"device must be 'auto' or a torch device name, got {device!r}") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device {device!r} was asked for but torch sees no CUDA GPU")
    return str(resolved)
