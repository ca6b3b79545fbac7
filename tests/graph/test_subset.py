"""Selecting from part of a pool: the restricted inputs equal the part's own inputs."""

from __future__ import annotations

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.graph.selection.registry import SelectionInputs, get_method
from gradwalk.graph.selection.subset import SubsetNeighbors, restrict
from gradwalk.graph.selection.walk import ArrayNeighbors


def test_neighbour_lists_keep_their_order_and_drop_edges_leaving_the_part():
    table = np.array([[1, 2, 3], [0, 3, -1], [3, 0, 1], [2, 1, 0]])
    part = SubsetNeighbors(ArrayNeighbors(table, 4), np.array([0, 2, 3]), 4)
    assert [part[i].tolist() for i in range(3)] == [[1, 2], [2, 0], [1, 0]]


def test_a_walk_over_the_part_equals_a_walk_over_the_parts_own_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    table = np.argsort(-sims, axis=1)[:, :8]
    val = rng.normal(size=(5, 16))
    rows = np.flatnonzero(rng.random(60) < 0.5)

    restricted = restrict(SelectionInputs(train_features=x, val_features=val, neighbors=table, pool_size=60),
                          rows, 60)
    position = {int(r): i for i, r in enumerate(rows)}
    own_table = np.array([[position[int(t)] for t in table[r] if int(t) in position]
                          + [-1] * sum(int(t) not in position for t in table[r]) for r in rows])
    own = SelectionInputs(train_features=x[rows], val_features=val, neighbors=own_table, pool_size=rows.size)
    g2is = get_method("g2is")
    params = {"ratio": 0.3}
    assert restricted.pool_size == rows.size
    first = [(r["row"], r["component"], r["step"]) for r in g2is.select(restricted, params).records()]
    second = [(r["row"], r["component"], r["step"]) for r in g2is.select(own, params).records()]
    assert first == second and len(first) == int(rows.size * 0.3)


def test_an_empty_or_unsorted_part_is_refused():
    inputs = SelectionInputs(pool_size=3)
    with pytest.raises(errors.InvalidInput, match="empty"):
        restrict(inputs, np.array([], dtype=np.int64), 3)
    with pytest.raises(errors.InvalidInput, match="sorted"):
        restrict(inputs, np.array([2, 1]), 3)
