"""Writes a build's edges into Neo4j: graph.knn's rows as batches, a few transactions in flight.

Edge writes are idempotent per source node: each write transaction deletes its source nodes'
out-edges of this graph and creates the new ones, so a re-run block or a resumed build never
leaves duplicates. A writer (:class:`EdgeWriter`) keeps a few such transactions in flight; their
sources are disjoint. A block's first attempt skips the delete: its sources cannot have edges of
this graph yet (graph_build.claim_block says which attempt it is).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple, Self

import numpy as np

from gradwalk import errors
from gradwalk.graph.graph_cypher import CLEAR_SOURCES, CREATE_EDGES, HEARTBEAT
from gradwalk.graph.graph_records import GraphInfo, superseded
from gradwalk.graph.store import GraphStore

if TYPE_CHECKING:
    import neo4j

EDGES_PER_WRITE = 20_000  # edges per write transaction (measured: larger is no faster)
# Write transactions in flight per writer: with one, Neo4j's commit path and the round trips leave
# it idle part of the time (N = 10k on 2 cores: one writer 24-28k edges/s, two 37-47k, three 45k).
CONCURRENT_WRITES = 2
HEARTBEAT_S = 30.0  # how often a busy writer refreshes its build's heartbeat


class _EdgeBatch(NamedTuple):
    """One write transaction's edges as flat parameters (CREATE_EDGES): each instruction once, edges by position."""

    nodes: list[str]  # the batch's sources first, then the other instructions its edges point to
    source_count: int
    offsets: list[int]  # source s has the edges offsets[s]:offsets[s + 1]
    targets: list[int]
    weights: list[float]


def _edge_batches(row_ids: Sequence[str], start: int, ids: np.ndarray, weights: np.ndarray,
                  edges_per_write: int) -> Iterator[_EdgeBatch]:
    """The batches of one computed block (graph.knn's rows: ids -1 = none), about ``edges_per_write`` edges each."""
    per_batch = max(1, edges_per_write // max(1, ids.shape[1]))
    for lo in range(0, ids.shape[0], per_batch):
        neighbors = ids[lo : lo + per_batch]
        edge = neighbors >= 0
        first, count = start + lo, neighbors.shape[0]
        ends = neighbors[edge]
        others = np.setdiff1d(ends, np.arange(first, first + count))  # sorted, unique
        is_source = (ends >= first) & (ends < first + count)
        yield _EdgeBatch(
            nodes=[*row_ids[first : first + count], *(row_ids[r] for r in others.tolist())], source_count=count,
            offsets=np.concatenate([[0], np.cumsum(edge.sum(axis=1))]).tolist(),
            targets=np.where(is_source, ends - first, count + np.searchsorted(others, ends)).tolist(),
            weights=weights[lo : lo + per_batch][edge].tolist(),
        )


class EdgeWriter:
    """Writes graph.knn's rows of one build as batches, up to ``concurrency`` transactions in flight.

    Batches touch disjoint sources, so they commit in any order; feeding it the pieces of a block
    one after another keeps Neo4j busy while the next piece is computed. ``fresh`` says the rows
    have no edges of this graph (a block's first attempt, see :func:`claim_block`), so none are
    deleted. Only the build named by ``info.build_id`` may write; any other is refused with
    :class:`errors.Conflict`. Use it as a context manager: leaving the block waits for every
    batch (a failure cancels those not started and is raised); ``edges`` counts what was written.
    """

    def __init__(self, store: GraphStore, info: GraphInfo, *, fresh: bool = False,
                 concurrency: int = CONCURRENT_WRITES, edges_per_write: int = EDGES_PER_WRITE) -> None:
        self._store, self._info, self._fresh = store, info, fresh
        self._edges_per_write = edges_per_write
        self._params = {"graph": info.id, "build": info.build_id}
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="gradwalk-edges")
        self._pending: deque[Future[int]] = deque()
        self._beat = time.monotonic()
        self.edges = 0

    def write(self, row_ids: Sequence[str], start: int, ids: np.ndarray, weights: np.ndarray) -> None:
        """Queue the out-edges of rows ``start:start+len(ids)`` (graph.knn's rows, -1 = none)."""
        for batch in _edge_batches(row_ids, start, ids, weights, self._edges_per_write):
            while len(self._pending) >= self._concurrency:
                self._collect()
            self._pending.append(self._pool.submit(self._write, batch))

    def _collect(self) -> None:
        self.edges += self._pending.popleft().result()
        if time.monotonic() - self._beat > HEARTBEAT_S:
            self._store.write(HEARTBEAT, self._params)
            self._beat = time.monotonic()

    def _write(self, batch: _EdgeBatch) -> int:
        def work(tx: neo4j.ManagedTransaction) -> int:
            if not self._fresh:
                tx.run(CLEAR_SOURCES, self._params, nodes=batch.nodes, source_count=batch.source_count).consume()
            found = tx.run(CREATE_EDGES, self._params, **batch._asdict()).single()
            if found is None:  # raising rolls the transaction back, the delete included
                raise superseded(self._info)
            return found["edges"]

        written = self._store.transaction(work, write=True)
        if written != len(batch.weights):
            raise errors.Conflict(
                f"graph {self._info.id}: wrote {written} of {len(batch.weights)} edges; an instruction vanished"
            )
        return written

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            while self._pending and kind is None:
                self._collect()
        finally:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)


def write_edges(store: GraphStore, info: GraphInfo, row_ids: Sequence[str], start: int, ids: np.ndarray,
                weights: np.ndarray, *, fresh: bool = False) -> int:
    """Replace the out-edges of rows ``start:start+len(ids)`` with graph.knn's (ids, weights) rows
    (-1 = none); returns the edges written. See :class:`EdgeWriter`, which this runs once."""
    with EdgeWriter(store, info, fresh=fresh) as writer:
        writer.write(row_ids, start, ids, weights)
    return writer.edges
