"""The instruction graph in Neo4j (DESIGN §3, §4.2): built from a feature run, read back by the walk.

A graph is ``(:InstructionGraph {id, feature_run, k, tau, ...})-[:BUILT_FROM]->(:FeatureRun)`` plus
its edges ``(:Instruction)-[:SIMILAR {graph, w}]->(:Instruction)``: each row's k most similar other
rows with cosine ≥ τ. Its id is ``"<run>:k<k>:tau<tau>"`` (:func:`graph_id`), so asking for the
same graph twice finds the one already there instead of building a copy.

Building is split into row blocks (the unit of fan-out, progress and re-runs):
:func:`start_build` creates or resumes the graph node and says which blocks are missing,
:func:`write_block` computes one block's exact top-k (:mod:`graph.knn`, GPU when present) and
writes its edges, :func:`finish_build` records the edge count and marks the graph ``ready``.
:func:`build_graph` runs the three in this process; the Celery tasks
(``workers/tasks/graph.py``) run the same functions on workers.

Edge writes are idempotent per source node: each write transaction deletes its source nodes'
out-edges of this graph and creates the new ones, so a re-run block or a resumed build never
leaves duplicates. A writer (:class:`EdgeWriter`) keeps a few such transactions in flight; their
sources are disjoint. Block state is kept per block on the graph node (``block_edges``: edges
written, -2 once started, -1 never started), so progress counts each block once, and a block's
first attempt skips the delete: its sources cannot have edges of this graph yet.

One build at a time: each (re)start gets a ``build_id`` that its block tasks carry, and writers
refresh ``heartbeat_at``. Starting a build while another one is alive is refused; one silent for
``stale_after_s`` is taken over, and writes of a superseded build are refused from then on. (No
per-node locks: concurrent block writers taking them deadlock each other; measured.)
"""

from __future__ import annotations

import math
import numbers
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Self

import numpy as np

from gradwalk import errors
from gradwalk.device import resolve_device
from gradwalk.graph.knn import block_ranges, default_block_rows, knn_block
from gradwalk.graph.store import GraphStore, ReadSession

if TYPE_CHECKING:
    import igraph
    import neo4j
    import networkx
    import torch

    from gradwalk.workers.artifacts import FeatureStore

DEFAULT_K = 64
DEFAULT_TAU = 0.0
FEATURE_PART = "train"  # the pool's rows in a feature run; their row ids are Instruction ids

BUILDING, READY, FAILED, DELETING, DELETED = "building", "ready", "failed", "deleting", "deleted"

TASK_BLOCKS = 64  # blocks a large pool is cut into by default: enough to spread over workers
MIN_BLOCK_ROWS = 1024  # below this a block's task overhead outweighs its work
EDGES_PER_WRITE = 20_000  # edges per write transaction (measured: larger is no faster)
# Write transactions in flight per writer: with one, Neo4j's commit path and the round trips leave
# it idle part of the time (N = 10k on 2 cores: one writer 24-28k edges/s, two 37-47k, three 45k).
CONCURRENT_WRITES = 2
IDS_PER_CHECK = 50_000  # instruction ids per existence check
NODES_PER_READ = 2_000  # source nodes per neighbour read when exporting a whole graph
DELETE_BATCH = 50_000  # edges deleted per transaction
PREFETCH_LIMIT = 64  # neighbour lists a walk prefetch loads at most in one round trip (measured: 16-64 cost alike)
BLOCK_MISSING, BLOCK_STARTED = -1, -2  # block_edges of a block never started / started, not finished
STALE_AFTER_S = 600.0  # a build silent this long is taken to be dead; a new one may take over
HEARTBEAT_S = 30.0  # how often a busy writer refreshes its build's heartbeat

# -- Cypher ------------------------------------------------------------------------------------
FEATURE_RUN = "MATCH (r:FeatureRun {id: $run}) RETURN r.status AS status, r.rows AS rows"

MISSING_INSTRUCTIONS = """
UNWIND $ids AS id
WITH id WHERE NOT EXISTS { MATCH (:Instruction {id: id}) }
RETURN id LIMIT 5"""

# MERGE serialises racing builders on the id's constraint; setting a property takes the node's
# lock, so the status read after it is the latest committed one.
CLAIM_GRAPH = """
MERGE (g:InstructionGraph {id: $graph})
SET g._lock = true
REMOVE g._lock
RETURN g.status AS status, duration.inSeconds(g.heartbeat_at, datetime()).seconds AS idle_s"""

# Edges of this id left by a writer that raced a deletion make every block "started", so its
# writes delete before they create.
INIT_GRAPH = """
MATCH (g:InstructionGraph {id: $graph}), (r:FeatureRun {id: $run})
MERGE (g)-[:BUILT_FROM]->(r)
WITH g, EXISTS { ()-[:SIMILAR {graph: $graph}]->() } AS leftover
SET g.feature_run = $run, g.k = $k, g.tau = $tau, g.method = 'exact', g.nodes = $nodes,
    g.block_rows = $block_rows, g.blocks = size($block_edges),
    g.block_edges = CASE WHEN leftover THEN [e IN $block_edges | $started] ELSE $block_edges END,
    g.blocks_done = 0, g.edges = 0, g.status = 'building', g.build_id = $build, g.error = null,
    g.built_at = null, g.build_s = null, g.created_at = coalesce(g.created_at, datetime()),
    g.started_at = datetime(), g.heartbeat_at = datetime(), g.updated_at = datetime()"""

RESUME_GRAPH = """
MATCH (g:InstructionGraph {id: $graph})
SET g.status = 'building', g.build_id = $build, g.error = null, g.started_at = datetime(),
    g.heartbeat_at = datetime(), g.updated_at = datetime()"""

CURRENT = "g.status = 'building' AND g.build_id = $build"  # the build that may write

HEARTBEAT = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g.heartbeat_at = datetime()
RETURN g.id AS id"""

READ_GRAPH = "MATCH (g:InstructionGraph {id: $graph}) RETURN g {.*} AS graph"

LIST_GRAPHS = """
MATCH (g:InstructionGraph)
WHERE $run IS NULL OR g.feature_run = $run
RETURN g {.*} AS graph ORDER BY g.id"""

# A block's attempt says whether it is the first (block_edges -1, now -2): only then are its
# sources known to have no edges of this graph. The node lock makes the claim atomic.
CLAIM_BLOCK = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g._lock = true
REMOVE g._lock
WITH g, g.block_edges[$block] = $missing AS fresh
SET g.block_edges = [i IN range(0, size(g.block_edges) - 1) |
                     CASE WHEN fresh AND i = $block THEN $started ELSE g.block_edges[i] END],
    g.heartbeat_at = datetime()
RETURN fresh"""

# Before a batch's edges are created again: remove its source nodes' out-edges of this graph,
# unless this build is no longer the one building it.
CLEAR_SOURCES = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
UNWIND $nodes[..$source_count] AS id
MATCH (a:Instruction {{id: id}})-[r:SIMILAR {{graph: $graph}}]->()
DELETE r"""

# One batch: each instruction it touches is looked up once ($nodes: the batch's sources first,
# then the other targets); source s has the edges $offsets[s] until $offsets[s + 1], each naming
# its target by position in $nodes. No row unless this build may write; edges = 0 when an
# instruction is missing.
CREATE_EDGES = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
CALL {{
  UNWIND range(0, size($nodes) - 1) AS i
  MATCH (n:Instruction {{id: $nodes[i]}})
  WITH i, n ORDER BY i
  WITH collect(n) AS nodes WHERE size(nodes) = size($nodes)
  UNWIND range(0, $source_count - 1) AS s
  UNWIND range($offsets[s], $offsets[s + 1] - 1) AS j
  WITH nodes[s] AS a, nodes[$targets[j]] AS b, $weights[j] AS w
  CREATE (a)-[:SIMILAR {{graph: $graph, w: w}}]->(b)
  RETURN count(*) AS edges
}}
RETURN edges"""

MARK_BLOCK = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g._lock = true
REMOVE g._lock
SET g.block_edges = [i IN range(0, size(g.block_edges) - 1) |
                     CASE WHEN i = $block THEN $edges ELSE g.block_edges[i] END]
SET g.blocks_done = size([e IN g.block_edges WHERE e >= 0]), g.heartbeat_at = datetime(),
    g.updated_at = datetime()
RETURN g.blocks_done AS done"""

FINISH_GRAPH = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g._lock = true
REMOVE g._lock
WITH g WHERE all(e IN g.block_edges WHERE e >= 0)
SET g.status = 'ready', g.edges = reduce(total = 0, e IN g.block_edges | total + e), g.build_id = null,
    g.built_at = datetime(), g.updated_at = datetime(),
    g.build_s = duration.inSeconds(g.started_at, datetime()).milliseconds / 1000.0
RETURN g.id AS id"""

FAIL_GRAPH = f"""
MATCH (g:InstructionGraph {{id: $graph}}) WHERE {CURRENT}
SET g.status = 'failed', g.error = $error, g.updated_at = datetime()"""

MARK_DELETING = """
MATCH (g:InstructionGraph {id: $graph})
SET g.status = 'deleting', g.updated_at = datetime()
RETURN g.id AS id"""

DELETE_EDGES = """
MATCH ()-[r:SIMILAR {graph: $graph}]->()
WITH r LIMIT $limit
DELETE r
RETURN count(*) AS deleted"""

# A graph a selection job used stays as a record (its edges gone) so provenance still resolves.
DROP_GRAPH = """
MATCH (g:InstructionGraph {id: $graph})
WITH g, EXISTS { (g)<-[:USED]-() } AS used
FOREACH (_ IN CASE WHEN used THEN [] ELSE [1] END | DETACH DELETE g)
FOREACH (_ IN CASE WHEN used THEN [1] ELSE [] END |
  SET g.status = 'deleted', g.edges = 0, g.deleted_at = datetime(), g.updated_at = datetime())"""

# Out-edges of many nodes as parallel lists (unordered: the caller sorts what it needs).
NEIGHBORS = """
UNWIND $ids AS id
MATCH (a:Instruction {id: id})
CALL {
  WITH a
  MATCH (a)-[r:SIMILAR {graph: $graph}]->(b)
  RETURN collect(b.id) AS targets, collect(r.w) AS weights
}
RETURN id, targets, weights"""

# The walk's reads: each list ordered by descending w, without the weights, plus the positions
# whose w equals the one before (the client orders those runs by row index, as graph.knn does).
# All lists come back in one record: the driver's cost is per record (client CPU per 64 lists 5.7 → 2.4 ms).
NEIGHBOR_ORDER = """
UNWIND $ids AS id
MATCH (a:Instruction {id: id})
CALL {
  WITH a
  MATCH (a)-[r:SIMILAR {graph: $graph}]->(b)
  WITH b, r.w AS w ORDER BY w DESC
  RETURN collect(b.id) AS targets, collect(w) AS weights
}
WITH id, targets, [i IN range(1, size(weights) - 1) WHERE weights[i] = weights[i - 1]] AS ties
RETURN collect(id) AS sources, collect(targets) AS targets, collect(ties) AS ties"""


# -- records -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphInfo:
    """An ``:InstructionGraph`` node as read back."""

    id: str
    feature_run: str
    k: int
    tau: float
    status: str
    nodes: int
    edges: int
    blocks: int
    blocks_done: int
    block_rows: int
    created_at: str | None = None
    started_at: str | None = None
    built_at: str | None = None
    build_s: float | None = None
    error: str | None = None
    build_id: str | None = None  # the build that may write while the graph is being built
    heartbeat_at: str | None = None

    @classmethod
    def from_node(cls, props: dict[str, Any]) -> GraphInfo:
        def text(value: Any) -> str | None:
            return None if value is None else str(value.iso_format() if hasattr(value, "iso_format") else value)

        return cls(
            id=props["id"], feature_run=props["feature_run"], k=int(props["k"]), tau=float(props["tau"]),
            status=props["status"], nodes=int(props["nodes"]), edges=int(props.get("edges") or 0),
            blocks=int(props["blocks"]), blocks_done=int(props.get("blocks_done") or 0),
            block_rows=int(props["block_rows"]), created_at=text(props.get("created_at")),
            started_at=text(props.get("started_at")), built_at=text(props.get("built_at")),
            build_s=props.get("build_s"), error=props.get("error"), build_id=props.get("build_id"),
            heartbeat_at=text(props.get("heartbeat_at")),
        )

    def block(self, index: int) -> tuple[int, int]:
        """Row range (start, stop) of block ``index``."""
        ranges = block_ranges(self.nodes, self.block_rows)
        if not 0 <= index < len(ranges):
            raise errors.InvalidInput(f"graph {self.id} has blocks 0..{len(ranges) - 1}, not {index}")
        return ranges[index]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def graph_id(run_id: str, k: int, tau: float) -> str:
    """The id of the graph with these parameters: one graph per (feature run, k, τ)."""
    return f"{run_id}:k{int(k)}:tau{float(tau) + 0.0!r}"  # + 0.0 turns -0.0 into 0.0


def _check_params(k: object, tau: object) -> tuple[int, float]:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise errors.InvalidInput(f"k must be a positive integer, got {k!r}")
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not -1.0 <= float(tau) <= 1.0:
        raise errors.InvalidInput(f"tau must be a cosine in [-1, 1], got {tau!r}")
    return int(k), float(tau) + 0.0


def task_block_rows(nodes: int) -> int:
    """Rows per build block: about TASK_BLOCKS blocks, none smaller than MIN_BLOCK_ROWS."""
    return max(1, min(nodes, max(MIN_BLOCK_ROWS, math.ceil(nodes / TASK_BLOCKS))))


def get_graph(store: GraphStore, graph: str) -> GraphInfo:
    rows = store.read(READ_GRAPH, {"graph": graph})
    if not rows:
        raise errors.NotFound(f"instruction graph {graph} does not exist")
    return GraphInfo.from_node(rows[0]["graph"])


def list_graphs(store: GraphStore, feature_run: str | None = None) -> list[GraphInfo]:
    return [GraphInfo.from_node(r["graph"]) for r in store.read(LIST_GRAPHS, {"run": feature_run})]


def feature_row_ids(features: FeatureStore, run_id: str) -> list[str]:
    """The instruction ids of a feature run's pool rows, in row order (manifests only, no arrays)."""
    ids = [row for m in features.manifests(run_id, FEATURE_PART) for row in m.row_ids]
    if not ids:
        raise errors.NotFound(f"feature run {run_id} has no finished {FEATURE_PART} shards in {features.root}")
    return ids


def load_features(features: FeatureStore, run_id: str, device: str = "auto") -> tuple[list[str], torch.Tensor]:
    """A run's pool rows (ids, unit-normalised float32 tensor on ``device``): cosines are dot products."""
    import torch

    ids, x = features.load(run_id, FEATURE_PART)
    norms = np.linalg.norm(x, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if bad.size:
        raise errors.InvalidInput(f"feature run {run_id}: row {ids[bad[0]]} is zero or not finite; it has no cosine")
    x /= norms[:, None].astype(np.float32)
    return ids, torch.from_numpy(x).to(resolve_device(device))


# -- building ----------------------------------------------------------------------------------
def _feature_run_rows(store: GraphStore, features: FeatureStore, run_id: str) -> list[str]:
    """The row ids of a complete feature run, checked against its record."""
    found = store.read(FEATURE_RUN, {"run": run_id})
    if not found:
        raise errors.NotFound(f"feature run {run_id} does not exist")
    run = found[0]
    if run["status"] != "complete":
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


def start_build(store: GraphStore, features: FeatureStore, run_id: str, k: int = DEFAULT_K,
                tau: float = DEFAULT_TAU, *, block_rows: int | None = None, rebuild: bool = False,
                stale_after_s: float = STALE_AFTER_S) -> tuple[GraphInfo, list[int]]:
    """Create the graph node (or resume an unfinished build) and return it with the missing blocks.

    The returned ``info.build_id`` names this build; pass ``info`` to the writers. A ``ready``
    graph comes back with no blocks to do unless ``rebuild``, which deletes it first. A build
    that is alive elsewhere is refused; one silent for ``stale_after_s`` is taken over. A
    resumed build keeps the block layout it started with; ``block_rows`` applies to new graphs.
    """
    k, tau = _check_params(k, tau)
    if block_rows is not None and (isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1):
        raise errors.InvalidInput(f"block_rows must be a positive integer, got {block_rows!r}")
    ids = _feature_run_rows(store, features, run_id)
    gid = graph_id(run_id, k, tau)
    if rebuild:
        delete_graph(store, gid, missing_ok=True)
    _require_instructions(store, ids)
    rows = block_rows or task_block_rows(len(ids))
    build = uuid.uuid4().hex
    params = {"graph": gid, "run": run_id, "k": k, "tau": tau, "nodes": len(ids), "block_rows": rows,
              "block_edges": [BLOCK_MISSING] * len(block_ranges(len(ids), rows)), "started": BLOCK_STARTED,
              "build": build}

    def claim(tx: neo4j.ManagedTransaction) -> dict[str, Any]:
        found = tx.run(CLAIM_GRAPH, graph=gid).single()
        if found["status"] in (None, DELETED):
            tx.run(INIT_GRAPH, params).consume()
        elif found["status"] == FAILED or (found["status"] == BUILDING and (found["idle_s"] or 0) >= stale_after_s):
            tx.run(RESUME_GRAPH, graph=gid, build=build).consume()
        return tx.run(READ_GRAPH, graph=gid).single()["graph"]

    node = store.transaction(claim, write=True)
    info = GraphInfo.from_node(node)
    if info.status == DELETING:
        raise errors.Conflict(f"instruction graph {gid} is being deleted; build it again when that is done")
    if info.status == BUILDING and info.build_id != build:
        raise errors.Conflict(
            f"instruction graph {gid} is being built by another build ({info.blocks_done}/{info.blocks} blocks, "
            f"last progress at {info.heartbeat_at}); wait for it, or build again after {stale_after_s:.0f}s "
            "without progress to take it over"
        )
    if info.nodes != len(ids):
        raise errors.Conflict(f"graph {gid} was started on {info.nodes} rows but run {run_id} now has {len(ids)}")
    if info.status == READY:
        return info, []
    return info, [i for i, edges in enumerate(node["block_edges"]) if edges < 0]


def _superseded(info: GraphInfo) -> errors.Conflict:
    return errors.Conflict(
        f"instruction graph {info.id} is no longer being built by build {info.build_id} "
        "(deleted, finished or taken over)"
    )


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


def claim_block(store: GraphStore, info: GraphInfo, index: int) -> bool:
    """Mark block ``index`` started; True on its first attempt, whose sources have no edges yet.

    Raises :class:`errors.Conflict` when the build ``info`` names may no longer write."""
    found = store.write(CLAIM_BLOCK, {"graph": info.id, "build": info.build_id, "block": index,
                                      "missing": BLOCK_MISSING, "started": BLOCK_STARTED})
    if not found:
        raise _superseded(info)
    return found[0]["fresh"]


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
                raise _superseded(self._info)
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


def write_block(store: GraphStore, info: GraphInfo, row_ids: Sequence[str], features: torch.Tensor,
                index: int, *, device: str = "auto") -> int:
    """Compute block ``index`` of the build ``info`` names and write its edges; returns the edge count.

    ``features`` are the run's unit rows (see :func:`load_features`). Running a block again
    replaces its edges, so a retried block task is harmless.
    """
    if len(row_ids) != info.nodes or features.shape[0] != info.nodes:
        raise errors.Conflict(
            f"graph {info.id} has {info.nodes} rows; got {len(row_ids)} ids and {features.shape[0]} rows"
        )
    start, stop = info.block(index)
    # A block is computed in pieces that fit the device's scratch memory (graph.knn's budget); a
    # piece is computed while the one before is being written.
    with EdgeWriter(store, info, fresh=claim_block(store, info, index)) as writer:
        for lo, hi in block_ranges(stop - start, default_block_rows(info.nodes, device)):
            writer.write(row_ids, start + lo, *knn_block(features, start + lo, start + hi, info.k, info.tau, device))
    finish_block(store, info, index, writer.edges)
    return writer.edges


def finish_block(store: GraphStore, info: GraphInfo, index: int, edges: int) -> None:
    """Record block ``index`` as written with ``edges`` edges (refused once the build is superseded)."""
    if not store.write(MARK_BLOCK, {"graph": info.id, "build": info.build_id, "block": index, "edges": edges}):
        raise _superseded(info)


def finish_build(store: GraphStore, info: GraphInfo) -> GraphInfo:
    """Mark a graph whose blocks are all written ``ready``, with its edge count and build time."""
    if not store.write(FINISH_GRAPH, {"graph": info.id, "build": info.build_id}):
        now = get_graph(store, info.id)
        if now.status == READY:
            return now
        raise errors.Conflict(
            f"instruction graph {info.id} is {now.status} with {now.blocks_done} of {now.blocks} blocks written"
        )
    return get_graph(store, info.id)


def fail_build(store: GraphStore, info: GraphInfo, error: str) -> None:
    """Record why a build stopped (unless another build took over); building again resumes it."""
    store.write(FAIL_GRAPH, {"graph": info.id, "build": info.build_id, "error": error[:2000]})


def build_graph(store: GraphStore, features: FeatureStore, run_id: str, k: int = DEFAULT_K,
                tau: float = DEFAULT_TAU, *, block_rows: int | None = None, device: str = "auto",
                rebuild: bool = False, progress: Callable[[int, int], None] | None = None) -> GraphInfo:
    """Build (or finish building) the graph of a feature run in this process, block after block.

    ``progress(done, total)`` is told the blocks written so far. A failure is recorded on the
    graph node; calling again resumes with the blocks still missing.
    """
    info, todo = start_build(store, features, run_id, k, tau, block_rows=block_rows, rebuild=rebuild)
    if info.status == READY:
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
    if not marked and not deleted and not missing_ok:
        raise errors.NotFound(f"instruction graph {graph} does not exist")
    store.write(DROP_GRAPH, {"graph": graph})
    return deleted


# -- reading back --------------------------------------------------------------------------------
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


class _Rows:
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
    (the feature rows the walk gets). Lists are read in batches and cached: ``prefetch`` loads the
    uncached lists among the first ``prefetch_limit`` candidates in one round trip, but only when
    the first (the likeliest next node) is missing, so a walk that stays in one neighbourhood
    mostly runs on the cache. Neo4j sorts each list and sends target ids only (no weights: a walk
    reads lists of ~5% of a pool, and every value decoded costs); equal cosines are ordered by row
    index, as graph.knn orders them. Reading the whole table up front would cost far more: the
    walk touches only a few lists per selected row. The reads go through one session, held until
    :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(self, store: GraphStore, graph: str, row_ids: Sequence[str], *,
                 prefetch_limit: int = PREFETCH_LIMIT) -> None:
        self._session = store.read_session()
        self._rows = _Rows(graph, row_ids)
        self.prefetch_limit = prefetch_limit
        self._cache: dict[int, np.ndarray] = {}
        self.round_trips = 0

    def __getitem__(self, node: int) -> np.ndarray:
        row = int(node)
        if row not in self._cache:
            self._load([row])
        return self._cache[row]

    def prefetch(self, nodes: np.ndarray) -> None:
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
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ready(store: GraphStore, graph: str, row_ids: Sequence[str]) -> GraphInfo:
    """A graph a walk may read: complete, with one node per given row."""
    info = get_graph(store, graph)
    if info.status != READY:
        raise errors.Conflict(f"instruction graph {graph} is {info.status}, not ready")
    if len(row_ids) != info.nodes:
        raise errors.InvalidInput(f"graph {graph} has {info.nodes} nodes but {len(row_ids)} rows were given")
    return info


def open_neighbors(store: GraphStore, graph: str, row_ids: Sequence[str], **options: Any) -> GraphNeighbors:
    """The neighbour source of a ``ready`` graph for a walk over ``row_ids`` (the run's pool rows);
    close it when the walk is done."""
    _ready(store, graph, row_ids)
    return GraphNeighbors(store, graph, row_ids, **options)


def iter_edges(store: GraphStore, graph: str, row_ids: Sequence[str], *, chunk: int = NODES_PER_READ,
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A graph's edges as (source rows, target rows, w) arrays, ``chunk`` source nodes per read."""
    rows = _Rows(graph, row_ids)
    for start in range(0, len(rows), chunk):
        lists = list(rows.edges(store, list(range(start, min(start + chunk, len(rows))))))
        none = np.empty(0, dtype=np.int64)
        yield (np.concatenate([none, *(np.full(t.size, s) for s, t, _ in lists)]),
               np.concatenate([none, *(t for _, t, _ in lists)]),
               np.concatenate([none.astype(np.float64), *(w for _, _, w in lists)]))


def edge_arrays(store: GraphStore, graph: str, row_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All edges of a graph as (source rows, target rows, w)."""
    sources, targets, weights = zip(*iter_edges(store, graph, row_ids), strict=True)
    return np.concatenate(sources), np.concatenate(targets), np.concatenate(weights)


def neighbor_table(store: GraphStore, graph: str, row_ids: Sequence[str]) -> np.ndarray:
    """A ``ready`` graph read whole into graph.knn's table: int32 [N, k] row ids (-1 = none), most
    similar first, equal cosines by row index. The walk runs on it at in-memory speed; for pools
    whose table (N·k·4 bytes) is too big, use :func:`open_neighbors`, which reads lists on demand."""
    table = np.full((len(row_ids), _ready(store, graph, row_ids).k), -1, dtype=np.int32)
    for sources, targets, weights in iter_edges(store, graph, row_ids):
        order = np.lexsort((targets, -weights, sources))
        sources, targets = sources[order], targets[order]
        first = np.searchsorted(sources, sources)  # where each source's run of edges starts
        table[sources, np.arange(sources.size) - first] = targets
    return table


def to_networkx(store: GraphStore, graph: str, row_ids: Sequence[str]) -> networkx.DiGraph:
    """The graph as a networkx DiGraph: nodes are instruction ids, edges carry ``w``."""
    import networkx as nx

    sources, targets, weights = edge_arrays(store, graph, row_ids)
    out = nx.DiGraph(graph=graph)
    out.add_nodes_from(row_ids)
    edges = zip(sources.tolist(), targets.tolist(), weights.tolist(), strict=True)
    out.add_weighted_edges_from(((row_ids[s], row_ids[t], w) for s, t, w in edges), weight="w")
    return out


def to_igraph(store: GraphStore, graph: str, row_ids: Sequence[str]) -> igraph.Graph:
    """The graph as a directed igraph Graph: vertex ``name`` = instruction id (row order), edges carry ``w``."""
    import igraph as ig

    sources, targets, weights = edge_arrays(store, graph, row_ids)
    out = ig.Graph(n=len(row_ids), edges=np.column_stack([sources, targets]).tolist(), directed=True)
    out.vs["name"] = list(row_ids)
    out.es["w"] = weights.tolist()
    out["graph"] = graph
    return out


def _distribution(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    q = np.percentile(values, [10, 50, 90, 99])
    return {"min": float(values.min()), "p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2]),
            "p99": float(q[3]), "max": float(values.max()), "mean": float(values.mean())}


def graph_stats(store: GraphStore, graph: str, row_ids: Sequence[str]) -> dict[str, Any]:
    """Node and edge counts, degree distributions, weights and connected components of a graph."""
    info = get_graph(store, graph)
    g = to_igraph(store, graph, row_ids)
    out_degree, in_degree = np.asarray(g.outdegree()), np.asarray(g.indegree())
    weak, strong = g.connected_components(mode="weak"), g.connected_components(mode="strong")
    weights = np.asarray(g.es["w"] if g.ecount() else [], dtype=np.float64)
    return {
        "graph": graph, "status": info.status, "feature_run": info.feature_run, "k": info.k, "tau": info.tau,
        "nodes": g.vcount(), "edges": g.ecount(),
        "out_degree": _distribution(out_degree), "in_degree": _distribution(in_degree),
        "out_degree_below_k": int((out_degree < info.k).sum()),
        "isolated": int(((out_degree + in_degree) == 0).sum()),
        "weight": _distribution(weights),
        "weak_components": len(weak), "largest_weak_component": max(weak.sizes(), default=0),
        "strong_components": len(strong), "largest_strong_component": max(strong.sizes(), default=0),
    }
