"""Reading an instruction graph's neighbour lists back: by instruction id, or as the walk's
neighbour source over feature rows (:class:`GraphNeighbors`, opened by :func:`open_neighbors`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self

import numpy as np

from gradwalk import errors
from gradwalk.graph.knn.cypher import NEIGHBOR_ORDER, NEIGHBORS
from gradwalk.graph.knn.pages import stored_table
from gradwalk.graph.knn.records import ready_graph
from gradwalk.graph.store.adapter import GraphStore, ReadSession

PREFETCH_LIMIT = 64  # neighbour lists a walk prefetch loads at most in one round trip (docs/measurements.md)


def _edge_lists(store: GraphStore, query: str, graph: str, ids: list[str]) -> list[list[Any]]:
    """The rows of a neighbour query (NEIGHBORS, NEIGHBOR_ORDER) for the given sources, as plain
    lists: turning them into dicts would cost more than reading them."""
    return store.transaction(lambda tx: [r.values() for r in tx.run(query, graph=graph, ids=ids)], write=False)


def neighbors(store: GraphStore, graph: str, node_ids: Iterable[str]) -> dict[str, list[tuple[str, float]]]:
    """Out-neighbours ``(id, w)`` of many instructions in one round trip, by descending ``w``
    (ties by id). Every id asked for is a key; one with no edges (or unknown) maps to []."""
    ids = list(dict.fromkeys(node_ids))
    found = {source: sorted(zip(targets, map(float, weights), strict=True), key=lambda e: (-e[1], e[0]))
             for source, targets, weights in _edge_lists(store, NEIGHBORS, graph, ids)}
    return {node: found.get(node, []) for node in ids}


class RowIndex:
    """Instruction ids to the walk's row indices (the feature rows' order)."""

    def __init__(self, graph: str, row_ids: Sequence[str]) -> None:
        self.graph = graph
        self.ids = list(row_ids)
        self._row = {node: row for row, node in enumerate(self.ids)}
        if len(self._row) != len(self.ids):
            raise errors.InvalidInput("row_ids name the same instruction twice")

    def __len__(self) -> int:
        return len(self.ids)

    def of(self, ids: list[str]) -> np.ndarray:
        try:
            return np.fromiter(map(self._row.__getitem__, ids), dtype=np.int64, count=len(ids))
        except KeyError as e:
            raise errors.Conflict(f"graph {self.graph} links to {e.args[0]}, which is not among the given rows") from e

    def edges(self, store: GraphStore, rows: list[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(source row, target rows, w) of the given rows that have out-edges, in one round trip."""
        for source, targets, weights in _edge_lists(store, NEIGHBORS, self.graph, [self.ids[r] for r in rows]):
            yield self._row[source], self.of(targets), np.asarray(weights, dtype=np.float64)

    def ordered(self, session: ReadSession, rows: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(source row, target rows by descending w, equal w by row) of the given rows that have
        out-edges, in one round trip."""
        [found] = session.values(NEIGHBOR_ORDER, {"graph": self.graph, "ids": [self.ids[r] for r in rows]})
        for source, targets, ties in zip(*found, strict=True):
            ordered = self.of(targets)
            if ties:
                starts = np.ones(ordered.size, dtype=bool)
                starts[ties] = False  # a tie continues the run of equal w before it
                ordered = ordered[np.lexsort((ordered, np.cumsum(starts)))]
            yield self._row[source], ordered


class GraphNeighbors:
    """The walk's neighbour source (``graph.walk.PrefetchingNeighborSource``) over a graph in Neo4j.

    The walk speaks row indices; Neo4j speaks instruction ids. ``row_ids`` maps one to the other
    (the feature rows the walk gets). When the graph's neighbour pages index these rows
    (graph.knn.pages, ``uses_lists``), the whole table is read at once, in a few records, and
    the walk runs on it as on an in-memory table: N·k·4 bytes, far less than the features it
    holds, and one read instead of a round trip every few steps. Otherwise (a graph built before
    pages existed, an extended graph, other rows, or ``lists=False``) lists are read through the
    edges in batches and cached: ``prefetch`` loads the uncached lists among the first
    ``prefetch_limit`` candidates in one round trip, but only when the first (the likeliest next
    node) is missing; Neo4j sorts each list and sends target ids only, equal cosines ordered by
    row index, as graph.knn orders them. Those reads go through one session, held until
    :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(self, store: GraphStore, graph: str, row_ids: Sequence[str], *,
                 prefetch_limit: int = PREFETCH_LIMIT, lists: bool = True) -> None:
        self._rows = RowIndex(graph, row_ids)
        self._table = stored_table(store, graph, row_ids) if lists else None
        self.uses_lists = self._table is not None
        self.round_trips = int(self.uses_lists)  # reads of the table count as one
        self._session = None if self.uses_lists else store.read_session()
        self.prefetch_limit = prefetch_limit
        self._cache: dict[int, np.ndarray] = {}

    def __getitem__(self, node: int) -> np.ndarray:
        row = int(node)
        if self._table is not None and 0 <= row < len(self._table):
            return self._table[row]
        if row not in self._cache:
            self._load([row])
        return self._cache[row]

    def prefetch(self, nodes: np.ndarray) -> None:
        if self._table is not None:
            return
        wanted = np.asarray(nodes).reshape(-1)[: self.prefetch_limit].tolist()
        if wanted and wanted[0] not in self._cache:
            self._load([n for n in wanted if n not in self._cache])

    def _load(self, rows: list[int]) -> None:
        if min(rows) < 0 or max(rows) >= len(self._rows):
            raise errors.InvalidInput(f"rows must lie in [0, {len(self._rows)}), got {rows}")
        self.round_trips += 1
        self._cache.update(dict.fromkeys(rows, np.empty(0, dtype=np.int64)))  # rows without edges
        self._cache.update(self._rows.ordered(self._session, rows))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_neighbors(store: GraphStore, graph: str, row_ids: Sequence[str], **options: Any) -> GraphNeighbors:
    """The neighbour source of a ``ready`` graph for a walk over ``row_ids`` (the run's pool rows);
    close it when the walk is done."""
    ready_graph(store, graph, row_ids)
    return GraphNeighbors(store, graph, row_ids, **options)
