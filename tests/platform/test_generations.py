"""The grow-and-reselect loop through the real API and workers: a version records the generation it
was selected from, `--like` re-runs the dataset's last job on the grown pool (refused, with what to
run, until the run and the graph hold the new rows), and the diff names the added rows that are new."""

from __future__ import annotations

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.graph.knn.build import build_graph
from gradwalk.graph.knn.extend import extend_graph
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.intake import pools
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import feature_extend, feature_runs

OLD, NEW, DIM = 120, 30, 16


def _chat(tag: str, i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"{tag} question {i}"},
                         {"role": "assistant", "content": f"{tag} answer {i}"}]}


@pytest.fixture
def grown(store, settings, prefix):
    """A gradient run of OLD rows with its graph and a target, and NEW rows imported into the pool
    afterwards whose features lie near the target's (so a selection wants them)."""
    pool, target = f"{prefix}pool", f"{prefix}target"
    pools.import_pool(store, pool, [_chat(pool, i) for i in range(OLD)])
    pools.import_target(store, target, [_chat(target, i) for i in range(4)])
    ids = feature_runs.member_ids(store, pool)
    rng = np.random.default_rng(3)
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    val = unit(rng.normal(size=(4, DIM)) + 0.5)
    run = f"{prefix}run"
    features = FeatureStore(settings.artifacts)
    features.write_shard(run, "train", 0, ids, unit(rng.normal(size=(OLD, DIM)) + 0.2))
    features.write_shard(run, f"val-{target}", 0, feature_runs.target_ids(store, target), val)
    store.write("MATCH (p:Pool {name: $pool}), (t:Target {name: $target}) "
                "CREATE (fr:FeatureRun {id: $id, pool: $pool, targets: [$target], kind: 'gradient', status: 'complete', "
                "  parts: ['train', 'val-' + $target], dim: $dim, rows: $rows, created_at: datetime()})-[:OF_POOL]->(p) "
                "CREATE (fr)-[:FOR_TARGET]->(t)", {"pool": pool, "target": target, "id": run, "dim": DIM, "rows": OLD})
    graph = build_graph(store, features, run, 8, 0.0, device="cpu").id
    return pool, target, run, graph, features, unit(val[rng.integers(4, size=NEW)] + 0.3 * rng.normal(size=(NEW, DIM)))


def _extend_run(store, features, pool, run, x_new) -> list[str]:
    """What `features extend` leaves behind (tests/workers/tasks/test_feature_extend.py runs it for real)."""
    have = set(feature_extend.run_rows(features, run))
    new = [i for i in feature_runs.member_ids(store, pool) if i not in have]
    features.write_shard(run, "train", 1, new, x_new)
    store.write("MATCH (fr:FeatureRun {id: $id}) SET fr.extension = 2", {"id": run})
    feature_extend.finish_generation(store, feature_runs.get(store, run), OLD + NEW)
    store.write("MATCH (fr:FeatureRun {id: $id}) SET fr.rows = $rows", {"id": run, "rows": OLD + NEW})
    return new


def test_like_reselects_on_the_grown_pool_and_the_diff_names_new_rows(grown, store, client, settings):
    pool, target, run, graph, features, x_new = grown
    dataset = f"{pool}-sel"
    first = client.select(pool=pool, target=target, dataset=dataset, method="g2is", ratio=0.2).wait(timeout=300)
    v1 = datasets.describe(store, dataset, first.info.version)
    assert v1.lineage["selected_from"] == {"of": "graph", "id": graph, "generation": 1, "rows": OLD}

    pools.import_pool(store, pool, [_chat(f"{pool}-new", i) for i in range(NEW)])
    with pytest.raises(errors.Conflict, match=f"gradwalk features extend {run}"):
        client.select_like(dataset)
    new = _extend_run(store, features, pool, run, x_new)
    with pytest.raises(errors.Conflict, match=f"gradwalk graph extend {graph}"):
        client.select_like(dataset)
    extend_graph(store, features, graph, device="cpu")

    second = client.select_like(dataset).wait(timeout=300)
    assert second.info.version == first.info.version + 1 and second.info.method == "g2is"
    v2 = datasets.describe(store, dataset, second.info.version)
    assert v2.lineage["selected_from"] == {"of": "graph", "id": graph, "generation": 2,
                                                          "rows": OLD + NEW}
    diff = client.dataset(dataset).version(2).diff(1)
    assert diff.added_new is not None and 0 < diff.added_new <= diff.added
    assert set(diff.added_new_ids) == set(diff.added_ids) & set(new)


def test_a_graph_extension_the_worker_refuses_ends_the_wait_with_its_reason(grown, store, client):
    """A worker that may not claim the graph leaves it as it was, so waiting for the new rows once
    polled until its timeout. Asking again clears the refusal, and the next extension lands."""
    pool, _, run, graph, features, x_new = grown
    pools.import_pool(store, pool, [_chat(f"{pool}-new", i) for i in range(NEW)])
    _extend_run(store, features, pool, run, x_new)
    held = "MATCH (g:InstructionGraph {id: $graph}) SET g.status = $status"
    store.write(held, {"graph": graph, "status": "building"})  # as a rebuild holds it
    asked = client.extend_graph(graph)
    with pytest.raises(errors.Conflict, match=f"graph {graph}: the extension to {OLD + NEW} rows was refused: "
                                              "Conflict: .* is building: only a ready graph"):
        client.graph(graph).wait(rows=asked.rows_after, timeout=60, poll_s=0.2)

    store.write(held, {"graph": graph, "status": "ready"})
    asked = client.extend_graph(graph)
    assert client.graph(graph).wait(rows=asked.rows_after, timeout=120, poll_s=0.2).nodes == OLD + NEW
    assert client.graph(graph).show().extension_refused is None


def test_like_needs_a_dataset_made_by_a_job(client):
    with pytest.raises(errors.NotFound, match="no version made by a selection job"):
        client.select_like("no-such-dataset")
