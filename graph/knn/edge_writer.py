"""Writes a build's edges into Neo4j: graph.knn's rows as batches, a few transactions in flight.

Edge writes are idempotent per source node: each write transaction deletes its source nodes'
out-edges of this graph, creates the new ones and stores the same rows' neighbour page
(graph.knn.pages), so a re-run block or a resumed build never leaves duplicates and the pages
never disagree with the edges. A writer (:class:`EdgeWriter`) keeps a few such transactions in
flight; their sources are disjoint. It writes under a :class:`BlockLease` (build.claim_block):
every batch commits only while the lease is still its own, and a thread renews the lease while the
writer lives, so a redelivered copy of the block waits instead of writing the same edges again. A
block's first owner skips the delete: its sources cannot have edges of this graph yet.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Self

import numpy as np

from gradwalk import errors
from gradwalk.graph.knn.cypher import CLEAR_SOURCES, CREATE_EDGES, OWNS_BLOCK, RENEW_LEASE
from gradwalk.graph.knn.pages import set_neighbor_page, walk_order
from gradwalk.graph.knn.records import GraphInfo, superseded
from gradwalk.graph.store.adapter import GraphStore

if TYPE_CHECKING:
    import neo4j

EDGES_PER_WRITE = 20_000  # edges per write transaction (larger is no faster: docs/measurements.md)
# Write transactions in flight per writer: with one, Neo4j's commit path and the round trips leave
# it idle part of the time (N = 10k on 2 cores: one writer 24-28k edges/s, two 37-47k, three 45k).
CONCURRENT_WRITES = 2
LEASE_S = 120.0  # a block's lease: a writer silent this long (dead) is taken over by the block's next copy
RENEW_S = LEASE_S / 4  # how often a live writer renews its lease (and its build's heartbeat)


class LeaseLost(errors.Conflict):
    """A block's writer found its lease taken over: another copy of the block writes it now."""


@dataclass(frozen=True)
class BlockLease:
    """The right to write block ``index`` of the build ``info`` names, held by ``owner``.

    ``fresh``: the block was never started, so its sources have no edges to delete."""

    info: GraphInfo
    index: int
    owner: str
    fresh: bool
    lease_s: float = LEASE_S

    @property
    def params(self) -> dict[str, object]:
        return {"graph": self.info.id, "build": self.info.build_id, "block": self.index, "owner": self.owner,
                "lease_ms": int(self.lease_s * 1000)}


class _EdgeBatch(NamedTuple):
    """One write transaction's edges as flat parameters (CREATE_EDGES): each instruction once, edges by position."""

    nodes: list[str]  # the batch's sources first, then the other instructions its edges point to
    first: int  # the row of the first source
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
            nodes=[*row_ids[first : first + count], *(row_ids[r] for r in others.tolist())], first=first,
            source_count=count,
            offsets=np.concatenate([[0], np.cumsum(edge.sum(axis=1))]).tolist(),
            targets=np.where(is_source, ends - first, count + np.searchsorted(others, ends)).tolist(),
            weights=weights[lo : lo + per_batch][edge].tolist(),
        )


class EdgeWriter:
    """Writes graph.knn's rows of one block as batches, up to ``concurrency`` transactions in flight.

    Batches touch disjoint sources, so they commit in any order; feeding it the pieces of a block
    one after another keeps Neo4j busy while the next piece is computed. Only the build named by
    ``lease.info.build_id`` may write (any other is refused with :class:`errors.Conflict`), and only
    while ``lease`` is its own (else :class:`LeaseLost`). Use it as a context manager: leaving the
    block waits for every batch (a failure cancels those not started and is raised) and stops the
    lease's renewal; ``edges`` counts what was written.
    """

    def __init__(self, store: GraphStore, lease: BlockLease, *,
                 concurrency: int = CONCURRENT_WRITES, edges_per_write: int = EDGES_PER_WRITE) -> None:
        self._store, self._lease = store, lease
        self._edges_per_write = edges_per_write
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="gradwalk-edges")
        self._pending: deque[Future[int]] = deque()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="gradwalk-lease", daemon=True)
        self._renewer.start()
        self.edges = 0

    def write(self, row_ids: Sequence[str], start: int, ids: np.ndarray, weights: np.ndarray) -> None:
        """Queue the out-edges of rows ``start:start+len(ids)`` (graph.knn's rows, -1 = none)."""
        for batch in _edge_batches(row_ids, start, ids, weights, self._edges_per_write):
            while len(self._pending) >= self._concurrency:
                self.edges += self._pending.popleft().result()
            self._pending.append(self._pool.submit(self._write, batch, ids, weights, start))

    def _renew(self) -> None:
        """Renew the lease every RENEW_S until the writer ends; a failed renewal is left to the
        batches' own ownership check (the next one refuses to commit)."""
        while not self._stop.wait(min(RENEW_S, self._lease.lease_s / 4)):
            try:
                self._store.write(RENEW_LEASE, self._lease.params)
            except errors.GradwalkError:
                pass

    def _write(self, batch: _EdgeBatch, ids: np.ndarray, weights: np.ndarray, start: int) -> int:
        lease = self._lease
        lo = batch.first - start
        page = walk_order(ids[lo : lo + batch.source_count], weights[lo : lo + batch.source_count])

        def work(tx: neo4j.ManagedTransaction) -> int:
            if not lease.fresh:
                tx.run(CLEAR_SOURCES, lease.params, nodes=batch.nodes, source_count=batch.source_count).consume()
            found = tx.run(CREATE_EDGES, lease.params, **batch._asdict()).single()
            if found is None:  # raising rolls the transaction back, the delete included
                raise superseded(lease.info)
            set_neighbor_page(tx, lease.info.id, batch.first, page)
            owns = tx.run(OWNS_BLOCK, lease.params).single()
            if owns is None or not owns["owned"]:
                raise LeaseLost(f"graph {lease.info.id}: block {lease.index} was taken over by another writer")
            return found["edges"]

        written = self._store.transaction(work, write=True)
        if written != len(batch.weights):
            raise errors.Conflict(
                f"graph {lease.info.id}: wrote {written} of {len(batch.weights)} edges; an instruction vanished"
            )
        return written

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            while self._pending and kind is None:
                self.edges += self._pending.popleft().result()
        finally:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._stop.set()
            self._renewer.join()


def write_edges(store: GraphStore, lease: BlockLease, row_ids: Sequence[str], start: int, ids: np.ndarray,
                weights: np.ndarray) -> int:
    """Replace the out-edges of rows ``start:start+len(ids)`` with graph.knn's (ids, weights) rows
    (-1 = none) under ``lease``; returns the edges written. See :class:`EdgeWriter`, which this runs once."""
    with EdgeWriter(store, lease) as writer:
        writer.write(row_ids, start, ids, weights)
    return writer.edges
