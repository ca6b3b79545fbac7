"""A graph's neighbour table kept beside its SIMILAR edges, a page of rows per node, read whole.

The walk needs every visited row's targets in order, one row after another. Read through the edges,
each list costs a relationship read per edge, a sort and a target id string per edge to map back to
a row; read as one small node per row, the walk still waits on a round trip for every few steps
(docs/measurements.md, "Neighbour reads"). So each edge-write transaction also stores its rows'
lists as one page, ``(:NeighborPage {graph, first, rows, targets})``: ``targets`` is the int32
little-endian table [rows, k] of rows ``first .. first + rows - 1`` (most similar first, equal
cosines by row, -1 after the last edge), written in the same transaction as those rows' edges, so
the two never disagree. A reader takes the whole table in a few records: N·k·4 bytes, k/D of the feature matrix a walk holds anyway. The
edges stay the truth for Cypher users and for exports of weights.

Row numbers mean something only against the row order the graph was built on: the graph node keeps
that order's digest (``row_order``, :func:`row_order`), and a reader uses the pages only when its
own rows have the same digest and the pages cover every row once. Otherwise (a graph built before
pages existed, an extended graph, other rows) the graph is read through its edges; rebuilding it
writes the pages again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradwalk.graph.knn.cypher import LISTS_MATCH, READ_NEIGHBOR_PAGES, SET_NEIGHBOR_PAGE

if TYPE_CHECKING:
    import neo4j

    from gradwalk.graph.store.adapter import GraphStore

log = logging.getLogger(__name__)

_TARGET = np.dtype("<i4")  # a stored target row
ROWS_PER_READ = 1 << 20  # rows whose pages one read query returns (256 MB at k = 64): bounds each query
MAX_PAGE_ROWS = 1 << 20  # no page is longer (an edge batch holds far fewer rows): bounds the overlap search


def row_order(row_ids: Sequence[str]) -> str:
    """The digest of a row order: two orders share it only when they list the same ids in the same order."""
    digest = hashlib.sha256()
    for node in row_ids:
        digest.update(node.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def walk_order(ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """graph.knn's rows (ids [n, k], -1 = none; weights [n, k]) with each row's targets ordered by
    descending weight, equal weights by row, the -1s last: the order the walk reads them in."""
    ids = np.asarray(ids, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    missing = ids < 0
    order = np.lexsort((np.where(missing, np.iinfo(np.int64).max, ids), np.where(missing, np.inf, -weights)), axis=1)
    return np.take_along_axis(np.where(missing, -1, ids), order, axis=1).astype(_TARGET)


def set_neighbor_page(tx: neo4j.ManagedTransaction, graph: str, first: int, table: np.ndarray) -> None:
    """Store rows ``first .. first + len(table) - 1`` of ``graph`` as one page, inside the caller's
    transaction (the one that writes those rows' SIMILAR edges, as graph.edge_writer does).

    ``table`` is :func:`walk_order`'s. Pages a rerun or an earlier layout left over these rows are
    deleted first, so a row is never on two pages; a page cut that way makes the cover incomplete,
    and readers use the edges until the rows it held are written again (a rebuild writes them all).
    """
    table = np.asarray(table, dtype=_TARGET)
    if table.ndim != 2 or not 0 < table.shape[0] <= MAX_PAGE_ROWS:
        raise ValueError(f"a neighbour page holds 1 to {MAX_PAGE_ROWS} rows [rows, k], got shape {table.shape}")
    tx.run(SET_NEIGHBOR_PAGE, graph=graph, first=int(first), rows=table.shape[0], targets=table.tobytes(),
           max_rows=MAX_PAGE_ROWS).consume()


class _IncompletePages(Exception):
    """The pages of a graph do not cover each of its rows exactly once."""


def stored_table(store: GraphStore, graph: str, row_ids: Sequence[str]) -> np.ndarray | None:
    """The graph's neighbour table over ``row_ids`` (int32 [N, k], -1 = none), from its pages; None
    when the pages do not index these rows or do not cover each of them once."""
    [found] = store.read(LISTS_MATCH, {"graph": graph, "row_order": row_order(row_ids)}) or [None]
    if not found or not found["usable"]:
        return None
    try:
        return _read_pages(store, graph, len(row_ids), int(found["k"]))
    except _IncompletePages as e:
        log.warning("graph %s: its neighbour pages are incomplete (%s); reading its edges instead "
                    "(`gradwalk graph build --rebuild` writes them again)", graph, e)
        return None


def _read_pages(store: GraphStore, graph: str, n: int, k: int) -> np.ndarray:
    table = np.full((n, k), -1, dtype=_TARGET)
    covered = 0  # rows 0 .. covered - 1 are filled, each by exactly one page
    with store.read_session() as session:
        for lo in range(0, n, ROWS_PER_READ):
            found = session.values(READ_NEIGHBOR_PAGES, {"graph": graph, "lo": lo, "hi": lo + ROWS_PER_READ})
            for first, count, page in sorted(found, key=lambda page: page[0]):
                if first != covered or first + count > n or len(page) % (count * _TARGET.itemsize):
                    raise _IncompletePages(f"a page starts at row {first} where row {covered} was due")
                width = len(page) // (count * _TARGET.itemsize)
                if width > k:
                    raise _IncompletePages(f"the page at row {first} holds {width} neighbours a row, k = {k}")
                table[first : first + count, :width] = np.frombuffer(page, dtype=_TARGET).reshape(count, width)
                covered += count
    if covered != n:
        raise _IncompletePages(f"the pages end at row {covered} of {n}")
    return table
