"""Extending a graph in place equals rebuilding it on the grown run: same edges, same weights, ties
broken the same way; random and clustered rows, τ = 0 and τ > 0; one extension at a time."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.graph.knn.build import TRAIN_PART, build_graph
from gradwalk.graph.knn.extend import extend_graph
from gradwalk.graph.knn.neighbors import GraphNeighbors, neighbors
from gradwalk.graph.knn.records import get_graph
from gradwalk.platform.artifacts.feature_store import FeatureStore

OLD, NEW, DIM = 180, 30, 12


def _rows(kind: str, clustered) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "clustered":
        x = clustered(rng, OLD + NEW, DIM)
    else:
        x = rng.normal(size=(OLD + NEW, DIM)) + 0.3
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)
    x[OLD + 3] = x[5]  # new rows that tie old ones exactly: the lower row must win
    x[OLD + 4] = x[5]
    x[OLD + 7] = x[OLD + 1]
    return x


def _grow(store, settings, prefix, x, k, tau) -> tuple[str, list[str], FeatureStore]:
    """A run of the first OLD rows with its graph built, then the run grown by NEW rows."""
    ids = [f"{prefix}{i:04d}" for i in range(len(x))]
    features = FeatureStore(settings.artifacts)
    run = f"{prefix}run"
    features.write_shard(run, TRAIN_PART, 0, ids[:OLD], x[:OLD])
    store.write_rows("UNWIND $rows AS row CREATE (:Instruction {id: row.id})", [{"id": i} for i in ids])
    store.write("CREATE (:FeatureRun {id: $id, status: 'complete', rows: $rows})", {"id": run, "rows": OLD})
    graph = build_graph(store, features, run, k, tau, block_rows=64, device="cpu").id
    features.write_shard(run, TRAIN_PART, 1, ids[OLD:], x[OLD:])
    store.write("MATCH (r:FeatureRun {id: $id}) SET r.rows = $rows", {"id": run, "rows": len(x)})
    return graph, ids, features


def _edges(store, graph, ids) -> dict[str, set[tuple[str, float]]]:
    return {node: set(edges) for node, edges in neighbors(store, graph, ids).items()}


@pytest.mark.parametrize(("kind", "k", "tau"), [("random", 8, 0.0), ("random", 8, 0.35), ("clustered", 10, 0.0),
                                                 ("clustered", 10, 0.6), ("random", 250, 0.2)])
def test_extend_equals_rebuild(store, settings, prefix, clustered, kind, k, tau):
    x = _rows(kind, clustered)
    graph, ids, features = _grow(store, settings, prefix, x, k, tau)
    info = extend_graph(store, features, graph, device="cpu")
    extended = _edges(store, graph, ids)
    assert info.status == "ready" and info.nodes == OLD + NEW
    assert sum(len(e) for e in extended.values()) == info.edges
    with GraphNeighbors(store, graph, ids) as walked:  # the pages no longer match: read the edges
        assert not walked.uses_lists
        extended_lists = [walked[row].tolist() for row in range(len(ids))]
    rebuilt_info = build_graph(store, features, graph.split(":")[0], k, tau, block_rows=64, device="cpu",
                               rebuild=True)
    rebuilt = _edges(store, graph, ids)
    assert extended == rebuilt
    with GraphNeighbors(store, graph, ids) as walked:  # a rebuild writes the pages again
        assert walked.uses_lists
        assert [walked[row][walked[row] >= 0].tolist() for row in range(len(ids))] == extended_lists
    assert info.edges == rebuilt_info.edges
    changed = [node for node in ids[:OLD] if any(t in ids[OLD:] for t, _ in extended[node])]
    assert changed  # new rows did enter old rows' lists: the test exercises the update


def test_generations_and_refusals(store, settings, prefix, clustered):
    x = _rows("random", clustered)
    graph, _ids, features = _grow(store, settings, prefix, x, 6, 0.0)
    extend_graph(store, features, graph, device="cpu")
    node = store.read("MATCH (g:InstructionGraph {id: $g}) RETURN g.generations AS g", {"g": graph})[0]["g"]
    import json

    assert [(g["generation"], g["first_row"], g["rows"], g["added"]) for g in json.loads(node)] == [
        (1, 0, OLD, OLD), (2, OLD, OLD + NEW, NEW)]
    with pytest.raises(errors.Conflict, match="gradwalk features extend"):  # the run has nothing new
        extend_graph(store, features, graph, device="cpu")


def test_two_extends_at_once_one_is_refused(store, settings, prefix, clustered):
    x = _rows("clustered", clustered)
    graph, ids, features = _grow(store, settings, prefix, x, 8, 0.0)
    outcomes: list[object] = []

    def extend() -> None:
        try:
            outcomes.append(extend_graph(store, features, graph, device="cpu").status)
        except errors.Conflict as e:
            outcomes.append(e)

    threads = [threading.Thread(target=extend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ready") == 1 and len(outcomes) == 2 and get_graph(store, graph).nodes == OLD + NEW
    extended = _edges(store, graph, ids)
    build_graph(store, features, graph.split(":")[0], 8, 0.0, block_rows=64, device="cpu", rebuild=True)
    assert extended == _edges(store, graph, ids)  # whichever way they raced, nothing is half-done
