"""Checks of scalar inputs, with one wording everywhere: the value's name, what it must be, what it was.

``bool`` is refused where a number is asked for (it is an ``int`` to Python, never what a caller
meant), numpy's integer and float scalars are accepted, and NaN never passes a range.
"""

from __future__ import annotations

import math
import numbers

from gradwalk.errors import InvalidInput


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int within [low, high] (either bound may be open)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not _within(value, low, high):
        raise InvalidInput(f"{name} must be an integer{_range(low, high)}, got {value!r}")
    return int(value)


def check_real(value: object, name: str, *, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a finite float within [low, high] (either bound may be open)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or not _within(value, low, high)):
        raise InvalidInput(f"{name} must be a finite number{_range(low, high)}, got {value!r}")
    return float(value)


def _within(value: numbers.Real, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    return f" <= {high}" if high is not None else ""
