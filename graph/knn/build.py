"""Building an instruction graph (docs/architecture.md §3, §4.2) from a feature run, and deleting one.

Building is split into row blocks (the unit of fan-out, progress and re-runs):
:func:`start_build` creates or resumes the graph node and says which blocks are missing,
:func:`write_block` computes one block's exact top-k (:mod:`graph.knn`, GPU when present) and
writes its edges (:mod:`graph.edge_writer`), :func:`finish_build` records the edge count and marks
the graph ``ready``. :func:`build_graph` runs the three in this process; the Celery tasks
(``workers/tasks/graph.py``) run the same functions on workers. Block state is kept per block on
the graph node (``block_edges``: edges written, -2 once started, -1 never started), so progress
counts each block once, and a block's first attempt knows its sources have no edges yet.

A block is written under a lease recorded in Neo4j (a ``(:GraphBlock)`` node, :func:`claim_block`):
a copy of the block delivered while another copy still holds the lease waits for it and returns
what it recorded, so no edge is written twice and the Celery chord sees the same result from both
copies (it counts a header task once). A lease left by a dead writer runs out and is taken over.

One build at a time: each (re)start gets a ``build_id`` that its block tasks carry, and writers
refresh ``heartbeat_at``. Starting a build while another one is alive is refused; one silent for
``stale_after_s`` is taken over, and writes of a superseded build are refused from then on. (No
per-node locks: concurrent block writers taking them deadlock each other; docs/measurements.md, "Neo4j".)
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from gradwalk import errors
from gradwalk.checks import check_int, check_real
from gradwalk.device import resolve_device
from gradwalk.graph.knn.cypher import (
    BLOCK_EDGES,
    CLAIM_BLOCK,
    CLAIM_GRAPH,
    DELETE_BLOCKS,
    DELETE_EDGES,
    DELETE_PAGES,
    DROP_GRAPH,
    FAIL_GRAPH,
    FEATURE_RUN,
    FINISH_GRAPH,
    INIT_GRAPH,
    MARK_BLOCK,
    MARK_DELETING,
    MISSING_INSTRUCTIONS,
    READ_GRAPH,
    RESUME_GRAPH,
)
from gradwalk.graph.knn.edge_writer import LEASE_S, BlockLease, EdgeWriter, LeaseLost
from gradwalk.graph.knn.pages import row_order
from gradwalk.graph.knn.records import (
    GraphInfo,
    get_graph,
    graph_id,
    superseded,
)
from gradwalk.graph.knn.topk import block_ranges, default_block_rows, knn_block
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.statuses import FeatureRunStatus, GraphStatus

if TYPE_CHECKING:
    import neo4j
    import torch

DEFAULT_K = 64
DEFAULT_TAU = 0.0
TRAIN_PART = "train"  # the pool's rows in a feature run (the one name for it); their row ids are Instruction ids
TASK_BLOCKS = 64  # blocks a large pool is cut into by default: enough to spread over workers
MIN_BLOCK_ROWS = 1024  # below this a block's task overhead outweighs its work
IDS_PER_CHECK = 50_000  # instruction ids per existence check
DELETE_BATCH = 50_000  # edges deleted per transaction
BLOCK_MISSING, BLOCK_STARTED = -1, -2  # block_edges of a block never started / started, not finished
STALE_AFTER_S = 600.0  # a build silent this long is taken to be dead; a new one may take over
LEASE_POLL_S = 2.0  # how often a block's waiting copy looks whether the lease holder is done
OWNED, HELD, DONE = "owned", "held", "done"  # what claim_block found


class FeatureSource(Protocol):
    """What a build reads of a feature run; the platform's artifact store is one. The graph room
    knows this shape, not the store, so it imports nothing above it."""

    root: Any

    def load(self, run_id: str, part: str) -> tuple[list[str], np.ndarray]: ...

    def manifests(self, run_id: str, part: str) -> Sequence[Any]: ...


def _check_params(k: object, tau: object) -> tuple[int, float]:
    return check_int(k, "k", low=1), check_real(tau, "tau", low=-1.0, high=1.0) + 0.0


def task_block_rows(nodes: int) -> int:
    """Rows per build block: about TASK_BLOCKS blocks, none smaller than MIN_BLOCK_ROWS."""
    return max(1, min(nodes, max(MIN_BLOCK_ROWS, math.ceil(nodes / TASK_BLOCKS))))


def feature_row_ids(features: FeatureSource, run_id: str) -> list[str]:
    """The instruction ids of a feature run's pool rows, in row order (manifests only, no arrays)."""
    ids = [row for m in features.manifests(run_id, TRAIN_PART) for row in m.row_ids]
    if not ids:
        raise errors.NotFound(f"feature run {run_id} has no finished {TRAIN_PART} shards in {features.root}")
    return ids


def load_features(features: FeatureSource, run_id: str, device: str = "auto") -> tuple[list[str], torch.Tensor]:
    """A run's pool rows (ids, unit-normalised float32 tensor on ``device``): cosines are dot products."""
    import torch

    ids, x = features.load(run_id, TRAIN_PART)
    norms = np.linalg.norm(x, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if bad.size:
        raise errors.InvalidInput(f"feature run {run_id}: row {ids[bad[0]]} is zero or not finite; it has no cosine")
    x /= norms[:, None].astype(np.float32)
    return ids, torch.from_numpy(x).to(resolve_device(device))


def _feature_run_rows(store: GraphStore, features: FeatureSource, run_id: str) -> list[str]:
    """The row ids of a complete feature run, checked against its record."""
    found = store.read(FEATURE_RUN, {"run": run_id})
    if not found:
        raise errors.NotFound(f"feature run {run_id} does not exist")
    run = found[0]
    if run["status"] != FeatureRunStatus.COMPLETE:
        raise errors.Conflict(f"feature run {run_id} is {run['status']!r}, not 'complete'; build its graph when it is")
    ids = feature_row_ids(features, run_id)
    if run["rows"] is not None and run["rows"] != len(ids):
        raise errors.Conflict(f"feature run {run_id} records {run['rows']} rows but its shards hold {len(ids)}")
    return ids


def _require_instructions(store: GraphStore, ids: Sequence[str]) -> None:
    for start in range(0, len(ids), IDS_PER_CHECK):
        missing = store.read(MISSING_INSTRUCTIONS, {"ids": list(ids[start : start + IDS_PER_CHECK])})
        if missing:
            names = ", ".join(r["id"] for r in missing)
            raise errors.InvalidInput(f"feature rows name instructions that Neo4j does not hold: {names}")


def check_build(store: GraphStore, features: FeatureSource, run_id: str, k: int, tau: float,
                block_rows: int | None) -> tuple[int, float, list[str]]:
    """The checked ``k`` and ``tau`` and the complete run's row ids, in row order; a build that
    cannot start is refused here (InvalidInput, NotFound, Conflict), before any work is queued."""
    k, tau = _check_params(k, tau)
    if block_rows is not None:
        check_int(block_rows, "block_rows", low=1)
    return k, tau, _feature_run_rows(store, features, run_id)


def start_build(store: GraphStore, features: FeatureSource, run_id: str, k: int = DEFAULT_K,
                tau: float = DEFAULT_TAU, *, block_rows: int | None = None, rebuild: bool = False,
                stale_after_s: float = STALE_AFTER_S) -> tuple[GraphInfo, list[int]]:
    """Create the graph node (or resume an unfinished build) and return it with the missing blocks.

    The returned ``info.build_id`` names this build; pass ``info`` to the writers. A ``ready``
    graph comes back with no blocks to do unless ``rebuild``, which deletes it first. A build
    that is alive elsewhere is refused; one silent for ``stale_after_s`` is taken over. A
    resumed build keeps the block layout it started with; ``block_rows`` applies to new graphs.
    """
    k, tau, ids = check_build(store, features, run_id, k, tau, block_rows)
    gid = graph_id(run_id, k, tau)
    if rebuild:
        delete_graph(store, gid, missing_ok=True)
    _require_instructions(store, ids)
    rows = block_rows or task_block_rows(len(ids))
    build = uuid.uuid4().hex
    params = {"graph": gid, "run": run_id, "k": k, "tau": tau, "nodes": len(ids), "block_rows": rows,
              "block_edges": [BLOCK_MISSING] * len(block_ranges(len(ids), rows)), "started": BLOCK_STARTED,
              "build": build, "row_order": row_order(ids)}

    def claim(tx: neo4j.ManagedTransaction) -> dict[str, Any]:
        found = tx.run(CLAIM_GRAPH, graph=gid).single()
        if found["extending"]:
            raise errors.Conflict(f"instruction graph {gid} is {found['status']} while rows are added to it; "
                                  f"finish that with: gradwalk graph extend {gid}")
        if found["status"] in (None, GraphStatus.DELETED):
            tx.run(INIT_GRAPH, params).consume()
        elif found["status"] == GraphStatus.FAILED or (found["status"] == GraphStatus.BUILDING and (found["idle_s"] or 0) >= stale_after_s):
            tx.run(RESUME_GRAPH, graph=gid, build=build).consume()
        return tx.run(READ_GRAPH, graph=gid).single()["graph"]

    node = store.transaction(claim, write=True)
    info = GraphInfo.from_node(node)
    if info.status == GraphStatus.DELETING:
        raise errors.Conflict(f"instruction graph {gid} is being deleted; build it again when that is done")
    if info.status == GraphStatus.BUILDING and info.build_id != build:
        raise errors.Conflict(
            f"instruction graph {gid} is being built by another build ({info.blocks_done}/{info.blocks} blocks, "
            f"last progress at {info.heartbeat_at}); wait for it, or build again after {stale_after_s:.0f}s "
            "without progress to take it over"
        )
    if info.nodes != len(ids):
        raise errors.Conflict(f"graph {gid} was started on {info.nodes} rows but run {run_id} now has {len(ids)}")
    if info.status == GraphStatus.READY:
        return info, []
    return info, [i for i, edges in enumerate(node["block_edges"]) if edges < 0]


class BlockClaim(NamedTuple):
    """What :func:`claim_block` found: the block ``done`` (``edges`` recorded), ``held`` by another
    live writer, or ``owned`` now (``lease`` to write it under)."""

    outcome: str
    lease: BlockLease | None = None
    edges: int | None = None


def claim_block(store: GraphStore, info: GraphInfo, index: int, owner: str | None = None, *,
                lease_s: float = LEASE_S) -> BlockClaim:
    """Try to take the lease of block ``index`` for ``owner`` (a new name when None).

    Raises :class:`errors.Conflict` when the build ``info`` names may no longer write."""
    owner = owner or uuid.uuid4().hex
    found = store.write(CLAIM_BLOCK, {"graph": info.id, "build": info.build_id, "block": index, "owner": owner,
                                      "lease_ms": int(lease_s * 1000), "missing": BLOCK_MISSING,
                                      "started": BLOCK_STARTED})
    if not found:
        raise superseded(info)
    outcome, fresh, edges = found[0]["outcome"], found[0]["fresh"], found[0]["edges"]
    if outcome == DONE:
        return BlockClaim(DONE, edges=edges)
    if outcome == HELD:
        return BlockClaim(HELD)
    return BlockClaim(OWNED, lease=BlockLease(info, index, owner, fresh, lease_s))


def _recorded_edges(store: GraphStore, info: GraphInfo, index: int) -> int | None:
    """The edges block ``index`` recorded, once the build finished (None while it is not)."""
    found = store.read(BLOCK_EDGES, {"graph": info.id, "block": index})
    if found and found[0]["status"] == GraphStatus.READY and found[0]["edges"] is not None and found[0]["edges"] >= 0:
        return found[0]["edges"]
    return None


def own_block(store: GraphStore, info: GraphInfo, index: int, *, lease_s: float = LEASE_S,
              poll_s: float = LEASE_POLL_S) -> BlockClaim:
    """Claim block ``index``, waiting while another live writer holds it: ``owned`` (write it) or
    ``done`` (the block's edges as recorded, by whichever copy wrote them)."""
    owner, waited = uuid.uuid4().hex, False
    while True:
        try:
            claim = claim_block(store, info, index, owner, lease_s=lease_s)
        except errors.Conflict:
            # While this copy waited, the holder may have finished the block and the build: then
            # its record is the answer. A copy that never waited is a late task of a dead build.
            edges = _recorded_edges(store, info, index) if waited else None
            if edges is None:
                raise
            return BlockClaim(DONE, edges=edges)
        if claim.outcome != HELD:
            return claim
        waited = True
        time.sleep(poll_s)


def write_block(store: GraphStore, info: GraphInfo, row_ids: Sequence[str], features: torch.Tensor,
                index: int, *, device: str = "auto", lease_s: float = LEASE_S, poll_s: float = LEASE_POLL_S) -> int:
    """Compute block ``index`` of the build ``info`` names and write its edges; returns the edge count.

    ``features`` are the run's unit rows (see :func:`load_features`). Running a block again
    replaces its edges, so a retried block task is harmless; a copy that runs while another holds
    the block's lease waits for it and returns the edge count it recorded.
    """
    if len(row_ids) != info.nodes or features.shape[0] != info.nodes:
        raise errors.Conflict(
            f"graph {info.id} has {info.nodes} rows; got {len(row_ids)} ids and {features.shape[0]} rows"
        )
    start, stop = info.block(index)
    while True:
        claim = own_block(store, info, index, lease_s=lease_s, poll_s=poll_s)
        if claim.outcome == DONE:
            return claim.edges
        try:
            # A block is computed in pieces that fit the device's scratch memory (graph.knn's
            # budget); a piece is computed while the one before is being written.
            with EdgeWriter(store, claim.lease) as writer:
                for lo, hi in block_ranges(stop - start, default_block_rows(info.nodes, device)):
                    writer.write(row_ids, start + lo, *knn_block(features, start + lo, start + hi, info.k, info.tau,
                                                                 device))
            finish_block(store, claim.lease, writer.edges)
            return writer.edges
        except LeaseLost:
            continue  # another copy took the block over: wait for it like any copy


def finish_block(store: GraphStore, lease: BlockLease, edges: int) -> None:
    """Record the leased block as written with ``edges`` edges and release the lease (refused once
    the build is superseded; :class:`LeaseLost` when another writer took the block over)."""
    info = lease.info
    if not store.write(MARK_BLOCK, {**lease.params, "edges": edges}):
        now = get_graph(store, info.id)
        if now.status == GraphStatus.BUILDING and now.build_id == info.build_id:
            raise LeaseLost(f"graph {info.id}: block {lease.index} was taken over by another writer")
        raise superseded(info)


def finish_build(store: GraphStore, info: GraphInfo) -> GraphInfo:
    """Mark a graph whose blocks are all written ``ready``, with its edge count and build time."""
    if not store.write(FINISH_GRAPH, {"graph": info.id, "build": info.build_id}):
        now = get_graph(store, info.id)
        if now.status == GraphStatus.READY:
            return now
        raise errors.Conflict(
            f"instruction graph {info.id} is {now.status} with {now.blocks_done} of {now.blocks} blocks written"
        )
    return get_graph(store, info.id)


def fail_build(store: GraphStore, info: GraphInfo, error: str) -> None:
    """Record why a build stopped (unless another build took over); building again resumes it."""
    store.write(FAIL_GRAPH, {"graph": info.id, "build": info.build_id, "error": error[:2000]})


def build_graph(store: GraphStore, features: FeatureSource, run_id: str, k: int = DEFAULT_K,
                tau: float = DEFAULT_TAU, *, block_rows: int | None = None, device: str = "auto",
                rebuild: bool = False, progress: Callable[[int, int], None] | None = None) -> GraphInfo:
    """Build (or finish building) the graph of a feature run in this process, block after block.

    ``progress(done, total)`` is told the blocks written so far. A failure is recorded on the
    graph node; calling again resumes with the blocks still missing.
    """
    info, todo = start_build(store, features, run_id, k, tau, block_rows=block_rows, rebuild=rebuild)
    if info.status == GraphStatus.READY:
        return info
    try:
        if todo:
            row_ids, x = load_features(features, run_id, device)
            for done, index in enumerate(todo, start=info.blocks - len(todo) + 1):
                write_block(store, info, row_ids, x, index, device=device)
                if progress is not None:
                    progress(done, info.blocks)
        return finish_build(store, info)
    except BaseException as e:
        fail_build(store, info, f"{type(e).__name__}: {e}")
        raise


def delete_graph(store: GraphStore, graph: str, *, batch: int = DELETE_BATCH, missing_ok: bool = False) -> int:
    """Delete a graph's edges, ``batch`` per transaction, then its node; returns the edges deleted.

    The graph is marked ``deleting`` first, so block writers stop and readers see it going. A graph
    that a selection job used keeps its node (``status: 'deleted'``) for provenance.
    """
    marked = store.write(MARK_DELETING, {"graph": graph})
    deleted = 0
    while count := store.write(DELETE_EDGES, {"graph": graph, "limit": batch})[0]["deleted"]:
        deleted += count
    while store.write(DELETE_PAGES, {"graph": graph, "limit": batch})[0]["deleted"]:
        pass
    store.write(DELETE_BLOCKS, {"graph": graph})
    if not marked and not deleted and not missing_ok:
        raise errors.NotFound(f"instruction graph {graph} does not exist")
    store.write(DROP_GRAPH, {"graph": graph})
    return deleted
