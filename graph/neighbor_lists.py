"""Each row's neighbour list of a graph as one array, kept beside its SIMILAR edges.

A walk reads a few lists per selected row; read through the edges, each list costs one
relationship read per edge plus a sort, and a target id string per edge to decode and map back to a
row. So every source row of a graph also has ``(:NeighborList {graph, row, targets})``: its target
rows (the positions of the graph's feature rows), most similar first, equal cosines by row. The
edge writer sets a batch's lists in the same transaction as its edges, so the two never disagree;
the edges stay the truth for Cypher users and for exports (they carry ``w``).

Row numbers mean something only against the row order the graph was built on: the graph node keeps
that order's digest (``row_order``, :func:`row_order`), and a reader uses the lists only when its
own rows have the same digest. A graph without the digest (built before lists existed) is read
through its edges; rebuilding it gives it lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradwalk import errors
from gradwalk.graph.graph_cypher import READ_NEIGHBOR_LISTS, SET_NEIGHBOR_LISTS

if TYPE_CHECKING:
    import neo4j

    from gradwalk.graph.store import ReadSession


def row_order(row_ids: Sequence[str]) -> str:
    """The digest of a row order: two orders share it only when they list the same ids in the same order."""
    digest = hashlib.sha256()
    for node in row_ids:
        digest.update(node.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def sorted_lists(ids: np.ndarray, weights: np.ndarray) -> list[list[int]]:
    """graph.knn's rows (ids [n, k], -1 = none; weights [n, k]) as lists of target rows ordered by
    descending weight, equal weights by row: the order the walk reads them in."""
    ids = np.asarray(ids, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    missing = ids < 0
    order = np.lexsort((np.where(missing, np.iinfo(np.int64).max, ids), np.where(missing, np.inf, -weights)), axis=1)
    ordered = np.take_along_axis(ids, order, axis=1)
    counts = (~missing).sum(axis=1).tolist()
    return [row[:count] for row, count in zip(ordered.tolist(), counts, strict=True)]


def set_neighbor_lists(tx: neo4j.ManagedTransaction, graph: str, rows: Sequence[int],
                       lists: Sequence[Sequence[int]]) -> None:
    """Set the neighbour arrays of ``rows`` of ``graph`` inside the caller's transaction.

    Call it in the transaction that writes those rows' SIMILAR edges (graph.edge_writer does), with
    each list ordered as :func:`sorted_lists` orders it (most similar first, equal w by row), so the
    arrays and the edges change together or not at all. An empty list is a row without edges.
    """
    if len(rows) != len(lists):
        raise errors.InvalidInput(f"graph {graph}: {len(rows)} rows but {len(lists)} neighbour lists")
    tx.run(SET_NEIGHBOR_LISTS, graph=graph, rows=[int(r) for r in rows],
           lists=[[int(t) for t in targets] for targets in lists]).consume()


def read_neighbor_lists(session: ReadSession, graph: str, rows: list[int]) -> dict[int, np.ndarray]:
    """The stored arrays of ``rows`` in one round trip and one record; rows without one are left out."""
    [found] = session.values(READ_NEIGHBOR_LISTS, {"graph": graph, "rows": rows})
    return {row: np.asarray(targets, dtype=np.int64) for row, targets in zip(*found, strict=True)}
