"""Extending an instruction graph in place when its feature run gained rows (docs/growing.md).

The run's new rows come after its old ones (platform/work/feature_extend.py), so the grown graph is
the graph a rebuild on the run gives, reached with work that grows with new rows × N instead of
N²:

- each new row's out-edges are its exact top-k among all rows (:func:`graph.knn.knn_block`, the
  rebuild's own function, on the new rows' block);
- for each old row, only the new rows can change its list: a new row enters when it beats the
  current k-th neighbour (or, in a list shorter than k, clears τ). Equal cosines go to the lower
  row (graph.knn's rule) and every new row is above every old one, so a new row that only ties
  the k-th stays out. The displaced edges are deleted and the entering ones created in one
  transaction per batch of rows.

One extension at a time, as one build at a time: claiming moves the graph from ``ready`` to
``extending`` under the node's lock with a ``build_id`` its writes carry, so a second extension
(or a build) is refused while the first is alive, and one silent for ``stale_after_s`` may be
taken over. Every step is idempotent: a row's list is re-read before it is changed, and a new
row's out-edges are replaced as a whole, so an extension that failed half-way is finished by
running it again. Each extension adds a *generation* to the graph: its first row, its rows after,
the rows added and when.

An extension changes old rows' lists without reading them whole, so it cannot keep their neighbour
pages (graph.knn.pages) in step: the claim clears the graph's ``row_order`` in the same
transaction, and from then on walks read the graph through its SIMILAR edges (slower, same picks)
until a rebuild writes the pages again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwalk import errors
from gradwalk.device import resolve_device
from gradwalk.graph.knn.build import STALE_AFTER_S, FeatureSource, _feature_run_rows, load_features
from gradwalk.graph.knn.cypher import (
    APPLY_ENTRIES,
    CLAIM_EXTEND,
    CLEAR_REFUSAL,
    FINISH_EXTEND,
    LIST_FLOORS,
    LOW_EDGES,
    READ_GRAPH,
    REFUSE_EXTEND,
    TAKE_EXTENSION_LEASE,
)
from gradwalk.graph.knn.edge_writer import BlockLease, EdgeWriter
from gradwalk.graph.knn.neighbors import RowIndex
from gradwalk.graph.knn.records import GraphInfo, get_graph, superseded
from gradwalk.graph.knn.topk import block_ranges, default_block_rows, knn_block
from gradwalk.graph.store.adapter import GraphStore

if TYPE_CHECKING:
    import torch

ROWS_PER_READ = 2_000  # old rows whose list floors one read fetches (round trips cost ~0.1 s here)
SCORE_BYTES = 64 << 20  # scores of one block of old rows against the new rows
CHANGES_PER_WRITE = 2_000  # old rows changed per write transaction
EXTENSION_BLOCK = -1  # the GraphBlock index of an extension's write lease


def generations(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A graph's generations, oldest first; a graph never extended has one."""
    if node.get("generations"):
        return json.loads(node["generations"])
    built = node.get("built_at")
    at = None if built is None else str(built.iso_format() if hasattr(built, "iso_format") else built)
    return [{"generation": 1, "first_row": 0, "rows": int(node["nodes"]), "added": int(node["nodes"]), "at": at}]


def _claim(store: GraphStore, graph: str, rows: int, block_rows: int, stale_after_s: float) -> GraphInfo:
    build = uuid.uuid4().hex
    claimed = store.write(CLAIM_EXTEND, {"graph": graph, "build": build, "stale_after_s": stale_after_s,
                                         "blocks": len(block_ranges(rows, block_rows))})
    node = store.read(READ_GRAPH, {"graph": graph})[0]["graph"]
    if not claimed:
        raise errors.Conflict(f"instruction graph {graph} is {node['status']}: only a ready graph (or one whose "
                              "extension failed or went silent) can be extended; wait for the other extension")
    return GraphInfo.from_node(node)


def pending_rows(store: GraphStore, features: FeatureSource,
                 graph: str) -> tuple[GraphInfo, dict[str, Any], int, list[str]]:
    """The graph, its node, the rows it holds and its run's rows, in row order; refused (Conflict)
    when the run holds no row the graph lacks, so an extension is asked for only when it has work."""
    info = get_graph(store, graph)
    node = store.read(READ_GRAPH, {"graph": graph})[0]["graph"]
    old = int(node.get("extend_from") or node["nodes"])
    ids = _feature_run_rows(store, features, info.feature_run)
    if len(ids) <= old:
        raise errors.Conflict(
            f"instruction graph {graph} already holds all {old} rows of feature run {info.feature_run}; "
            f"after adding rows to its pool run: gradwalk features extend {info.feature_run}")
    return info, node, old, ids


def clear_refusal(store: GraphStore, graph: str) -> None:
    """Forget the graph's last refused extension: one is being asked for again, and whoever waits on
    it must not take the old refusal for its own."""
    store.write(CLEAR_REFUSAL, {"graph": graph})


def extend_graph(store: GraphStore, features: FeatureSource, graph: str, *, device: str = "auto",
                 stale_after_s: float = STALE_AFTER_S,
                 progress: Callable[[int, int], None] | None = None) -> GraphInfo:
    """Add the rows the graph's feature run gained since the graph was built (or last extended).

    Refused unless the run holds rows the graph lacks: extend the run first. A refusal is kept on
    the graph (``extension_refused``), since it changes nothing a waiting client could see.
    ``progress(done, total)`` is told the old rows checked so far."""
    try:
        info, node, old, ids = pending_rows(store, features, graph)
        info = _claim(store, graph, len(ids), info.block_rows, stale_after_s)
    except Exception as e:
        store.write(REFUSE_EXTEND, {"graph": graph, "reason": f"{type(e).__name__}: {e}"[:2000]})
        raise
    try:
        resolved = resolve_device(device)
        _, x = load_features(features, info.feature_run, resolved)
        new_edges = _write_new_rows(store, info, ids, x, old, resolved)
        _enter_new_rows(store, info, ids, x, old, resolved, progress)
        blocks = [*(max(e, 0) for e in node["block_edges"])]
        blocks += [0] * (len(block_ranges(len(ids), info.block_rows)) - len(blocks))
        for row, edges in new_edges.items():
            blocks[row // info.block_rows] += edges
        history = generations(node)
        at = store.read("RETURN toString(datetime()) AS now")[0]["now"]
        history.append({"generation": len(history) + 1, "first_row": old, "rows": len(ids),
                        "added": len(ids) - old, "at": at})
        if not store.write(FINISH_EXTEND, {"graph": graph, "build": info.build_id, "nodes": len(ids),
                                           "block_edges": blocks, "generations": json.dumps(history)}):
            raise superseded(info)
        return get_graph(store, graph)
    except BaseException as e:
        store.write("MATCH (g:InstructionGraph {id: $graph}) WHERE g.build_id = $build "
                    "SET g.status = 'failed', g.error = $error, g.updated_at = datetime()",
                    {"graph": graph, "build": info.build_id, "error": f"{type(e).__name__}: {e}"[:2000]})
        raise


def _write_new_rows(store: GraphStore, info: GraphInfo, ids: Sequence[str], x: torch.Tensor, old: int,
                    device: str) -> dict[int, int]:
    """Replace the new rows' out-edges with their exact top-k among all rows; edges per new row."""
    counts: dict[int, int] = {}
    lease = BlockLease(info, EXTENSION_BLOCK, info.build_id, fresh=False)
    if not store.write(TAKE_EXTENSION_LEASE, lease.params):
        raise superseded(info)
    with EdgeWriter(store, lease) as writer:
        for lo, hi in block_ranges(len(ids) - old, default_block_rows(len(ids), device)):
            top, weights = knn_block(x, old + lo, old + hi, info.k, info.tau, device)
            writer.write(ids, old + lo, top, weights)
            counts.update(zip(range(old + lo, old + hi), (top >= 0).sum(axis=1).tolist(), strict=True))
    return counts


def _merged(targets: np.ndarray, weights: np.ndarray, entering: np.ndarray, scores: np.ndarray,
            room: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``room`` of a row's displaceable edges and the entering rows, by descending cosine,
    equal cosines by ascending row (graph.knn's order)."""
    fresh = ~np.isin(entering, targets)
    rows = np.concatenate([targets, entering[fresh]])
    cosines = np.concatenate([weights, scores[fresh]])
    order = np.lexsort((rows, -cosines))[:room]
    return rows[order], cosines[order]


class _Entries:
    """The changes of old rows' lists, written CHANGES_PER_WRITE rows per transaction (APPLY_ENTRIES)."""

    def __init__(self, store: GraphStore, info: GraphInfo, ids: Sequence[str], nodes: int) -> None:
        self.store, self.info, self.ids = store, info, ids
        self.changes: list[dict[str, Any]] = []
        self.delta = np.zeros(len(block_ranges(nodes, info.block_rows)), dtype=np.int64)

    def add(self, source: int, dropped: np.ndarray, added: np.ndarray, cosines: np.ndarray) -> None:
        self.changes.append({"source": self.ids[source], "drop": [self.ids[r] for r in dropped.tolist()],
                             "add": [self.ids[r] for r in added.tolist()], "w": cosines.tolist()})
        self.delta[source // self.info.block_rows] += len(added) - len(dropped)
        if len(self.changes) >= CHANGES_PER_WRITE:
            self.flush()

    def flush(self) -> None:
        if not self.changes:
            return
        want = (sum(len(c["drop"]) for c in self.changes), sum(len(c["add"]) for c in self.changes))
        found = self.store.write(APPLY_ENTRIES, {"graph": self.info.id, "build": self.info.build_id,
                                                 "changes": self.changes, "delta": self.delta.tolist()})
        if not found:
            raise superseded(self.info)
        if (found[0]["dropped"], found[0]["added"]) != want:
            raise errors.Conflict(f"graph {self.info.id}: an extension batch changed {found[0]['dropped']}/"
                                  f"{found[0]['added']} edges, not {want[0]}/{want[1]}; an instruction vanished")
        self.changes.clear()
        self.delta[:] = 0


def _read(store: GraphStore, query: str, **params: Any) -> dict[str, Any]:
    return store.transaction(lambda tx: tx.run(query, **params).single().data(), write=False)


def _enter_new_rows(store: GraphStore, info: GraphInfo, ids: Sequence[str], x: torch.Tensor, old: int,
                    device: str, progress: Callable[[int, int], None] | None) -> None:
    """For every old row, let in the new rows that beat its current k-th neighbour.

    Only two numbers per old row are read (its list's lowest cosine and length); of the rows a new
    row enters, only the edges it can displace (cosine at most the best entering one)."""
    index = RowIndex(info.id, ids)
    entries = _Entries(store, info, ids, len(ids))
    new = x[old:]
    for lo, hi in block_ranges(old, max(1, min(ROWS_PER_READ, SCORE_BYTES // (4 * (len(ids) - old))))):
        scores = (x[lo:hi] @ new.T).cpu().numpy()
        rows = np.flatnonzero(scores.max(axis=1) >= info.tau)
        if rows.size:
            floors = _read(store, LIST_FLOORS, graph=info.id, ids=[ids[lo + r] for r in rows.tolist()])
            full = np.asarray(floors["n"]) >= info.k
            low = np.array([np.inf if w is None else w for w in floors["low"]])
            bar = np.where(full, low, info.tau)
            entering = np.where(full[:, None], scores[rows] > bar[:, None], scores[rows] >= bar[:, None])
            hit = np.flatnonzero(entering.any(axis=1))
            cuts = np.where(entering[hit], scores[rows[hit]], -np.inf).max(axis=1)
            found = _read(store, LOW_EDGES, graph=info.id,
                          rows=[{"id": ids[lo + r], "cut": float(c)} for r, c in zip(rows[hit].tolist(), cuts.tolist(),
                                                                                      strict=True)])
            for h, targets, weights in zip(hit.tolist(), found["targets"], found["weights"], strict=True):
                r = int(rows[h])
                lower, cosines = index.of(targets), np.asarray(weights, dtype=np.float64)
                room = info.k - (int(floors["n"][h]) - len(lower))
                picked = np.flatnonzero(entering[h])
                kept, kept_w = _merged(lower, cosines, old + picked, scores[r, picked].astype(np.float64), room)
                added = ~np.isin(kept, lower)
                if added.any():
                    entries.add(lo + r, np.setdiff1d(lower, kept), kept[added], kept_w[added])
        if progress is not None:
            progress(hi, old)
    entries.flush()
