"""A selection over part of a pool: the inputs of the kept rows, renumbered 0..n-1.

A job that selects only from some sources of a pool runs its method on those rows alone: their
features, and the instruction graph with every edge to a row outside the part left out (the
order of the rest kept), so each method runs unchanged and ``floor(n * ratio)`` counts the part.
Pure numpy, as the methods are.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.registry import SelectionInputs
from gradwalk.graph.selection.walk import NeighborSource, as_neighbor_source


class SubsetNeighbors:
    """Neighbour lists of the kept rows, in the part's numbering; edges leaving the part dropped."""

    def __init__(self, source: NeighborSource, rows: np.ndarray, pool_size: int) -> None:
        self.source, self.rows = source, rows
        self.position = np.full(pool_size, -1, dtype=np.int64)
        self.position[rows] = np.arange(rows.size)

    def __getitem__(self, node: int) -> np.ndarray:
        listed = np.asarray(self.source[int(self.rows[int(node)])], dtype=np.int64)
        listed = listed[listed >= 0]
        mapped = self.position[listed]
        return mapped[mapped >= 0]

    def prefetch(self, nodes: np.ndarray) -> None:
        prefetch = getattr(self.source, "prefetch", None)
        if prefetch is not None:
            prefetch(self.rows[np.asarray(nodes, dtype=np.int64).reshape(-1)])


def restrict(inputs: SelectionInputs, rows: np.ndarray, pool_size: int) -> SelectionInputs:
    """``inputs`` over the pool's rows ``rows`` (sorted, unique) only."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise InvalidInput("the part of the pool to select from is empty")
    if rows.min() < 0 or rows.max() >= pool_size or np.any(np.diff(rows) <= 0):
        raise InvalidInput(f"rows must be sorted, unique and in [0, {pool_size})")
    changes: dict[str, object] = {"pool_size": int(rows.size)}
    for name in ("train_features", "train_embeddings"):
        array = getattr(inputs, name)
        if array is not None:  # LESS may take [C, N, D]: rows are the second-to-last axis
            changes[name] = array[rows] if array.ndim == 2 else array[..., rows, :]
    if inputs.neighbors is not None:
        changes["neighbors"] = SubsetNeighbors(as_neighbor_source(inputs.neighbors, pool_size), rows,
                                               pool_size)
    return dataclasses.replace(inputs, **changes)
