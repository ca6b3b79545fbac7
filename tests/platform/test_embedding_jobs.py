"""Embedding feature runs and the methods that read them, through the real services.

A small shipped pool is embedded on the gpu worker (queued with the CLI's ``--kind embedding``),
its instruction graph is built like any other, and the ``embedding`` and ``g2is-no-gradient`` jobs
run on the cpu worker; each published version must equal the same computation done here on the
run's own arrays. A job whose feature run is of the wrong kind is refused before it is queued.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.graph.knn import build, export, records
from gradwalk.graph.selection.registry import core_components, embedding_scores, gradient_walk, top_fraction
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.demo import sources
from gradwalk.platform.intake import pools
from gradwalk.platform.shared.schemas import FeatureRunPublic
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import feature_runs, jobs

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]

POOL_ROWS = 72  # several shard tasks at the session's 16 rows per shard
VAL_ROWS = 8
RATIO = 0.25
K = 8


@dataclass(frozen=True)
class Embedded:
    run: dict
    pool: str
    target: str
    graph: str
    ids: list[str]  # the run's pool rows, in row order
    train: np.ndarray
    val: np.ndarray


@pytest.fixture(scope="module")
def embedded(store, settings, shipped, tmp_path_factory) -> Embedded:
    tag = uuid.uuid4().hex[:8]
    pool, target = f"emb-pool-{tag}", f"emb-gsm8k-{tag}"
    folder = tmp_path_factory.mktemp("embedding-run-data")
    pools.import_pool(store, pool, sources.write_jsonl(shipped["pool"][:POOL_ROWS], folder / "pool.jsonl"))
    pools.import_target(store, target, sources.write_jsonl(shipped["gsm8k"][:VAL_ROWS], folder / "val.jsonl"))
    done = subprocess.run([str(Path(sys.executable).with_name("gradwalk")), "features", "run", pool, "-t", target,
                           "--kind", "embedding", "--json"], check=False, capture_output=True, text=True,
                          timeout=500)
    assert done.returncode == 0, done.stderr
    run = FeatureRunPublic.model_validate_json(done.stdout)
    features = FeatureStore(settings.artifacts)
    graph = build.build_graph(store, features, run.id, k=K, device="cpu")
    ids, train = features.load(run.id, "train")
    return Embedded(run, pool, target, graph.id, ids, train, features.load(run.id, f"val-{target}")[1])


def published_ids(store, job_id: str) -> list[str]:
    job = jobs.wait(store, job_id, timeout_s=300, poll_s=0.3)
    return [row["instruction_id"] for row in datasets.iter_rows(store, job.dataset, job.version)]


def test_the_run_records_its_kind_and_encoder_and_every_row_once(embedded, store, settings):
    from gradwalk.workers.engine.embeddings import Embedder

    run = embedded.run
    assert (run.kind, run.status, run.dim) == ("embedding", "complete", 384)
    assert run.engine == {"model": "all-minilm-l6-v2", "max_length": 256, "batch_size": 64}
    assert run.warmup == {} and run.checkpoints == []
    assert run.parts == ["train", f"val-{embedded.target}"] and run.rows == POOL_ROWS
    assert run.skipped == {part: 0 for part in run.parts}
    assert run.rows_done == run.rows_total == POOL_ROWS + VAL_ROWS
    assert embedded.ids == feature_runs.member_ids(store, embedded.pool)  # sorted ids, each once
    assert embedded.train.shape == (POOL_ROWS, 384) and embedded.val.shape == (VAL_ROWS, 384)
    np.testing.assert_allclose(np.linalg.norm(embedded.train, axis=1), 1.0, atol=1e-5)
    # The worker stored what the Embedder computes for the same examples.
    val_ids = feature_runs.target_ids(store, embedded.target)
    here = Embedder(settings.cache_dir, device="cpu").encode(feature_runs.examples(store, val_ids, label="ValExample"))
    np.testing.assert_allclose(embedded.val, here, atol=1e-5)


def test_the_graph_builds_on_the_embedding_run(embedded, store):
    info = records.get_graph(store, embedded.graph)
    assert (info.feature_run, info.status, info.nodes, info.k) == (embedded.run.id, "ready", POOL_ROWS, K)
    table = export.neighbor_table(store, embedded.graph, embedded.ids)
    cosines = embedded.train @ embedded.train.T
    np.fill_diagonal(cosines, -np.inf)
    best = np.sort(cosines, axis=1)[:, ::-1][:, :K]
    np.testing.assert_allclose(np.take_along_axis(cosines, table.astype(np.int64), axis=1), best, atol=1e-5)


def test_runs_are_listed_by_kind(embedded, client):
    assert [r.id for r in client.feature_runs(pool=embedded.pool, kind="embedding")] == [embedded.run.id]
    assert client.feature_runs(pool=embedded.pool, kind="gradient") == []
    with pytest.raises(errors.InvalidInput, match="kind must be one of gradient, embedding"):
        client.feature_runs(kind="bogus")


@pytest.mark.parametrize("reduce", ["max", "mean"])
def test_an_embedding_job_takes_the_top_rows_by_cosine_to_the_target(embedded, store, reduce):
    request = jobs.JobRequest(pool=embedded.pool, targets=[embedded.target], method="embedding",
                              dataset=f"emb-{reduce}-{uuid.uuid4().hex[:8]}", params={"ratio": RATIO, "reduce": reduce})
    job_id = jobs.submit(store, request)
    assert jobs.get(store, job_id).feature_run == embedded.run.id  # the pool's embedding run, unnamed

    expected = top_fraction(embedding_scores(embedded.train, embedded.val, reduce), RATIO)
    assert published_ids(store, job_id) == [embedded.ids[i] for i in expected]


def test_the_no_gradient_ablation_walks_the_embedding_graph(embedded, store):
    request = jobs.JobRequest(pool=embedded.pool, targets=[embedded.target], method="g2is-no-gradient",
                              dataset=f"emb-walk-{uuid.uuid4().hex[:8]}", params={"ratio": RATIO})
    job_id = jobs.submit(store, request)
    job = jobs.get(store, job_id)
    assert (job.feature_run, job.graph) == (embedded.run.id, embedded.graph)

    components, weights = core_components(embedded.val, 0.5)
    neighbors = export.neighbor_table(store, embedded.graph, embedded.ids)
    expected = gradient_walk(embedded.train, components, weights, neighbors, RATIO)
    assert len(expected) > 0
    assert published_ids(store, job_id) == [embedded.ids[i] for i in expected]


def test_a_feature_run_of_the_wrong_kind_is_refused(embedded, store):
    def request(method: str, **named) -> jobs.JobRequest:
        return jobs.JobRequest(pool=embedded.pool, targets=[embedded.target], method=method, dataset="never",
                               params={"ratio": RATIO}, **named)

    run = embedded.run.id
    for method in ("g2is", "g2is-no-graph", "less"):
        with pytest.raises(errors.InvalidInput, match=f"feature_run: {run} is of kind 'embedding'; method {method} "
                                                      "needs a feature run of kind 'gradient'"):
            jobs.create(store, request(method, feature_run=run))
        with pytest.raises(errors.NotFound, match="has no complete feature run of kind 'gradient'"):
            jobs.create(store, request(method))
    with pytest.raises(errors.InvalidInput, match="feature_run: method random reads no feature run"):
        jobs.create(store, request("random", feature_run=run))
    with pytest.raises(errors.InvalidInput, match="graph: method embedding reads no instruction graph"):
        jobs.create(store, request("embedding", graph=embedded.graph))

    # A newer complete gradient run of the same pool (its record is all a job's checks read) is
    # refused to the embedding methods by name, and passed over when no run is named.
    gradient = feature_runs.create(store, embedded.pool, [embedded.target], engine={}, warmup={})
    feature_runs.mark(store, gradient, "complete", parts=embedded.run.parts, rows=POOL_ROWS)
    for method in ("embedding", "g2is-no-gradient"):
        with pytest.raises(errors.InvalidInput, match=f"feature_run: {gradient} is of kind 'gradient'; method "
                                                      f"{method} needs a feature run of kind 'embedding'"):
            jobs.create(store, request(method, feature_run=gradient))
        assert jobs.get(store, jobs.create(store, request(method))).feature_run == run
