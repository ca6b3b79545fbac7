"""What every selection method shares: input checks, sizes and budgets, and the result type.

Pure numpy and the standard library, so the walk, the scorers and the registry can all lean on it
without importing each other.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from gradwalk.checks import check_int
from gradwalk.errors import InvalidInput

FALLBACKS = ("strict", "paper")


# --- input checks -------------------------------------------------------------------------------


def check_fraction(value: object, name: str, *, allow_zero: bool = False) -> float:
    """A real number in (0, 1], or [0, 1] with ``allow_zero``; the message says which bound broke."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{name} must be a number, got {value!r}")
    number = float(value)
    low_ok = number >= 0.0 if allow_zero else number > 0.0
    if not (low_ok and number <= 1.0):  # also refuses NaN
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise InvalidInput(f"{name} must lie in {interval}, got {number!r}")
    return number


def check_positive_int(value: object, name: str) -> int:
    return check_int(value, name, low=1)


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


def check_matrix(value: object, name: str, *, dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    """A 2-D float array (kept in its own float dtype, never copied when it already is one)."""
    array = np.asarray(value)
    if array.ndim != 2:
        raise InvalidInput(f"{name} must be a 2-D array [rows, dim], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
            raise InvalidInput(f"{name} must hold real numbers, got dtype {array.dtype}")
        array = array.astype(np.float64)
    if array.shape[0] < min_rows or array.shape[1] < 1:
        raise InvalidInput(f"{name} needs at least {min_rows} row(s) and 1 column, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise InvalidInput(f"{name} has {array.shape[1]} columns but the features have {dim}")
    return array


def check_finite(array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise InvalidInput(f"{name} holds a non-finite value at index {tuple(int(i) for i in where)}")


# --- sizes and budgets ----------------------------------------------------------------------------


def target_size(n: int, ratio: float) -> int:
    """floor(N·r), read as Python reads it, so every method and every check agrees on the total."""
    return math.floor(n * ratio)


def allocate_budgets(n: int, ratio: float, weights: np.ndarray) -> np.ndarray:
    """Largest-remainder split of floor(N·r) over the weights (docs/architecture.md §4.4, step 1).

    Quotas N·r·w_i/Σw are floored and the leftover units go to the largest fractional parts, ties
    to the lower component. Exact rationals keep Σ floors ≤ floor(N·r) however the floats round.
    """
    total = Fraction(n * ratio)
    units = math.floor(total)
    exact = [Fraction(float(w)) for w in weights]
    norm = sum(exact)
    quotas = [total * w / norm for w in exact]
    budgets = [math.floor(q) for q in quotas]
    leftover = units - sum(budgets)
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - budgets[i]), i))
    for i in by_remainder[:leftover]:
        budgets[i] += 1
    return np.asarray(budgets, dtype=np.int64)


def top_fraction(scores: np.ndarray, ratio: float) -> np.ndarray:
    """Indices of the floor(N·r) highest scores, best first, ties to the lower index."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise InvalidInput(f"scores must be a 1-D array, got shape {values.shape}")
    check_finite(values, "scores")
    ratio = check_fraction(ratio, "ratio")
    return np.argsort(-values, kind="stable")[: target_size(values.size, ratio)]


# --- the result ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentReport:
    """How one core-knowledge component spent its budget."""

    index: int
    weight: float
    budget: int
    selected: int
    anchor: int | None = None
    fallbacks: int = 0

    @property
    def shortfall(self) -> int:
        return self.budget - self.selected

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.index,
            "weight": self.weight,
            "budget": self.budget,
            "selected": self.selected,
            "shortfall": self.shortfall,
            "anchor": self.anchor,
            "fallbacks": self.fallbacks,
        }


@dataclass(frozen=True, eq=False)  # arrays inside: equality would be ambiguous
class Selection:
    """An ordered pick of pool rows, with what the version record needs about each one.

    Iterating yields the selected row indices in selection order. ``component`` and ``step`` are
    set for the component-driven methods (G2IS, w/o graph), ``score`` for the scoring methods.
    The walk also sets ``predecessor`` (the row it stood on when it took each row; -1 for an
    anchor) and ``reached_by`` ("anchor", "edge" along the graph, or "fallback" jump).
    """

    method: str
    pool_size: int
    indices: np.ndarray
    params: Mapping[str, Any] = field(default_factory=dict)
    component: np.ndarray | None = None
    step: np.ndarray | None = None
    score: np.ndarray | None = None
    predecessor: np.ndarray | None = None
    reached_by: tuple[str, ...] | None = None
    components: tuple[ComponentReport, ...] = ()

    def __iter__(self) -> Iterator[int]:
        return (int(i) for i in self.indices)

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def target(self) -> int:
        return target_size(self.pool_size, self.params["ratio"])

    @property
    def shortfall(self) -> int:
        return self.target - len(self)

    def records(self) -> list[dict[str, Any]]:
        """One JSON-able dict per selected row, in order: what a version's CONTAINS edge carries
        (``predecessor`` is a pool row index here, like ``row``)."""
        columns = {"component": self.component, "step": self.step, "score": self.score}
        present = {name: values.tolist() for name, values in columns.items() if values is not None}
        if self.predecessor is not None and self.reached_by is not None:
            present["predecessor"] = [None if p < 0 else p for p in self.predecessor.tolist()]
            present["reached_by"] = list(self.reached_by)
        return [
            {"row": row, "rank": rank, **{name: values[rank] for name, values in present.items()}}
            for rank, row in enumerate(self.indices.tolist())
        ]

    def summary(self) -> dict[str, Any]:
        """A JSON-able account of the run: what was asked, what came out, any shortfall."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "pool_size": self.pool_size,
            "target": self.target,
            "selected": len(self),
            "shortfall": self.shortfall,
            "components": [c.to_dict() for c in self.components],
        }
