"""Extending an instruction graph in place when its feature run gained rows (docs/growing.md).

The run's new rows come after its old ones (platform/feature_extend.py), so the grown graph is
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
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwalk import errors
from gradwalk.device import resolve_device
from gradwalk.graph.edge_writer import EdgeWriter
from gradwalk.graph.graph_build import STALE_AFTER_S, FeatureSource, _feature_run_rows, load_features
from gradwalk.graph.graph_cypher import APPLY_ENTRIES, CLAIM_EXTEND, FINISH_EXTEND, READ_GRAPH
from gradwalk.graph.graph_records import GraphInfo, get_graph, superseded
from gradwalk.graph.knn import block_ranges, default_block_rows, knn_block
from gradwalk.graph.neighbors import RowIndex
from gradwalk.graph.store import GraphStore

if TYPE_CHECKING:
    import torch

EXTENDING = "extending"
_NO_ROWS, _NO_COSINES = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
ROWS_PER_READ = 2_000  # old rows whose lists one read fetches
CHANGES_PER_WRITE = 2_000  # old rows changed per write transaction


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


def extend_graph(store: GraphStore, features: FeatureSource, graph: str, *, device: str = "auto",
                 stale_after_s: float = STALE_AFTER_S,
                 progress: Callable[[int, int], None] | None = None) -> GraphInfo:
    """Add the rows the graph's feature run gained since the graph was built (or last extended).

    Refused unless the run holds rows the graph lacks: extend the run first. ``progress(done,
    total)`` is told the old rows checked so far."""
    info = get_graph(store, graph)
    node = store.read(READ_GRAPH, {"graph": graph})[0]["graph"]
    old = int(node.get("extend_from") or node["nodes"])
    ids = _feature_run_rows(store, features, info.feature_run)
    if len(ids) <= old:
        raise errors.Conflict(
            f"instruction graph {graph} already holds all {old} rows of feature run {info.feature_run}; "
            f"after adding rows to its pool run: gradwalk features extend {info.feature_run}")
    info = _claim(store, graph, len(ids), info.block_rows, stale_after_s)
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
    with EdgeWriter(store, info, fresh=False) as writer:
        for lo, hi in block_ranges(len(ids) - old, default_block_rows(len(ids), device)):
            top, weights = knn_block(x, old + lo, old + hi, info.k, info.tau, device)
            writer.write(ids, old + lo, top, weights)
            counts.update(zip(range(old + lo, old + hi), (top >= 0).sum(axis=1).tolist(), strict=True))
    return counts


def _merged(targets: np.ndarray, weights: np.ndarray, entering: np.ndarray, scores: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top k of a row's current list and the entering rows, by descending cosine, equal cosines
    by ascending row (graph.knn's order)."""
    fresh = ~np.isin(entering, targets)
    rows = np.concatenate([targets, entering[fresh]])
    cosines = np.concatenate([weights, scores[fresh]])
    order = np.lexsort((rows, -cosines))[:k]
    return rows[order], cosines[order]


def _enter_new_rows(store: GraphStore, info: GraphInfo, ids: Sequence[str], x: torch.Tensor, old: int,
                    device: str, progress: Callable[[int, int], None] | None) -> None:
    """For every old row, let in the new rows that beat its current k-th neighbour."""
    index = RowIndex(info.id, ids)
    new = x[old:]
    changes: list[dict[str, Any]] = []
    delta = np.zeros(len(block_ranges(len(ids), info.block_rows)), dtype=np.int64)

    def flush() -> None:
        if not changes:
            return
        want_drop = sum(len(c["drop"]) for c in changes)
        want_add = sum(len(c["add"]) for c in changes)
        found = store.write(APPLY_ENTRIES, {"graph": info.id, "build": info.build_id, "changes": changes,
                                            "delta": delta.tolist()})
        if not found:
            raise superseded(info)
        if (found[0]["dropped"], found[0]["added"]) != (want_drop, want_add):
            raise errors.Conflict(f"graph {info.id}: an extension batch changed {found[0]['dropped']}/"
                                  f"{found[0]['added']} edges, not {want_drop}/{want_add}; an instruction vanished")
        changes.clear()
        delta[:] = 0

    for lo, hi in block_ranges(old, max(1, min(ROWS_PER_READ, default_block_rows(len(ids) - old, device)))):
        scores = (x[lo:hi] @ new.T).cpu().numpy()
        candidates = (lo + np.flatnonzero(scores.max(axis=1) >= info.tau)).tolist()
        listed = set()
        for source, targets, weights in index.edges(store, candidates) if candidates else ():
            listed.add(source)
            _change(changes, delta, info, ids, source, targets, weights, scores[source - lo], old)
        for source in set(candidates) - listed:  # rows with no out-edge yet (τ > 0, or a tiny graph)
            _change(changes, delta, info, ids, source, _NO_ROWS, _NO_COSINES, scores[source - lo], old)
        if len(changes) >= CHANGES_PER_WRITE:
            flush()
        if progress is not None:
            progress(hi, old)
    flush()


def _change(changes: list[dict[str, Any]], delta: np.ndarray, info: GraphInfo, ids: Sequence[str], source: int,
            targets: np.ndarray, weights: np.ndarray, scores: np.ndarray, old: int) -> None:
    """Queue the change of one old row's list, if any new row enters it."""
    order = np.lexsort((targets, -weights))
    targets, weights = targets[order], weights[order]
    bar = weights[-1] if len(targets) >= info.k else None
    entering = np.flatnonzero(scores > bar if bar is not None else scores >= info.tau)
    if not entering.size:
        return
    rows, cosines = _merged(targets, weights, old + entering, scores[entering].astype(np.float64), info.k)
    dropped = np.setdiff1d(targets, rows)
    added = np.setdiff1d(rows, targets)
    if not added.size:
        return
    keep = np.isin(rows, added)
    changes.append({"source": ids[source], "drop": [ids[r] for r in dropped.tolist()],
                    "add": [ids[r] for r in rows[keep].tolist()], "w": cosines[keep].tolist()})
    delta[source // info.block_rows] += len(added) - len(dropped)

