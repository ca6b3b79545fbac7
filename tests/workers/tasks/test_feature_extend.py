"""Extending a feature run through the real gpu worker: the pool grows, only the new rows are
featurised, and they are bit for bit what a full run with the same warm-up gives them."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.demo import sources
from gradwalk.platform.intake import pools
from gradwalk.platform.work import feature_extend, feature_runs
from gradwalk.platform.work.broker import GPU_QUEUE
from gradwalk.platform.work.task_names import FEATURES_SHARD

# One example per batch: a row's gradient then never depends on which rows share its batch (padding
# changes the float rounding of a batch), so a full run and an extension must agree exactly.
ENGINE = {"lora_r": 4, "lora_alpha": 16, "max_length": 96, "batch_size": 1, "proj_dim": 128}
WARMUP = {"fraction": 0.25, "epochs": 1, "examples_per_step": 4}
FIRST, ADDED = 16, 8  # rows before and after the pool grows (the session's shards hold 16 rows)
pytestmark = pytest.mark.timeout(1800)


def _short(shipped) -> list[dict]:
    return [r for r in shipped["pool"] if sum(sources.estimated_tokens(m["content"]) for m in r["messages"]) <= 40]


@pytest.fixture(scope="module")
def grown(store, settings, shipped, tmp_path_factory):
    """A run on FIRST rows, the pool grown by ADDED rows, the run extended: (run, pool name)."""
    name = f"grow-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("grow")
    rows = _short(shipped)[: FIRST + ADDED]
    pools.import_pool(store, name, sources.write_jsonl(rows[:FIRST], folder / "first.jsonl"))
    run_id = feature_runs.submit(store, name, [], engine=ENGINE, warmup=WARMUP)
    before = feature_runs.wait(store, run_id, timeout_s=900, poll_s=0.5)
    pools.import_pool(store, name, sources.write_jsonl(rows[FIRST:], folder / "added.jsonl"))
    features = FeatureStore(settings.artifacts)
    old_manifests = features.manifests(run_id, "train")
    queued = feature_extend.extend(store, features, run_id)
    with pytest.raises(errors.Conflict, match="extending"):  # a second extension while this one runs
        feature_extend.extend(store, features, run_id)
    after = feature_runs.wait(store, run_id, timeout_s=900, poll_s=0.5)
    return before, queued, after, old_manifests, name


def _full_run_rows(store, settings, run, pool_ids: list[str]) -> dict[str, np.ndarray]:
    """The rows a full run over today's pool gives, with ``run``'s settings and warm-up: a second run
    record holding a copy of the warm-up, its shards planned as a full run plans them."""
    from gradwalk.workers.app import app

    copy = feature_runs.create(store, run.pool, [], engine=run.engine, warmup={})
    feature_runs.mark(store, copy, "featurizing", engine=run.engine,
                      checkpoints=[c.model_dump() for c in run.checkpoints])
    files = FeatureStore.from_settings(settings).files
    for key in files.keys(f"features/{run.id}/warmup"):
        files.put(key.replace(f"features/{run.id}/", f"features/{copy}/", 1), files.get(key))
    size = settings.feature_shard_rows
    for shard, start in enumerate(range(0, len(pool_ids), size)):
        app.send_task(FEATURES_SHARD.name, args=[copy, "train", shard, pool_ids[start:start + size]],
                      queue=GPU_QUEUE).get(timeout=600)
    ids, x = FeatureStore(settings.artifacts).load(copy, "train")
    return dict(zip(ids, x, strict=True))


def test_new_rows_equal_a_full_run_bit_for_bit(grown, store, settings):
    before, queued, after, old_manifests, pool = grown
    features = FeatureStore(settings.artifacts)
    pool_ids = feature_runs.member_ids(store, pool)
    assert queued.adding == ADDED and after.status == "complete"
    ids, x = features.load(after.id, "train")
    assert sorted(ids) == sorted(pool_ids) and len(ids) == FIRST + ADDED
    assert features.manifests(after.id, "train")[: len(old_manifests)] == old_manifests  # old rows untouched
    assert ids[:FIRST] == before_ids(old_manifests)  # new rows only at the end
    full = _full_run_rows(store, settings, after, pool_ids)
    for row, feature in zip(ids, x, strict=True):
        assert np.array_equal(feature, full[row]), row
    assert after.engine == before.engine and after.checkpoints == before.checkpoints


def before_ids(manifests) -> list[str]:
    return [row for m in manifests for row in m.row_ids]


def test_generations_and_nothing_left_to_add(grown, store, settings):
    _, _, after, _, _ = grown
    assert [(g.generation, g.rows, g.added) for g in after.generations] == [
        (1, FIRST, FIRST), (2, FIRST + ADDED, ADDED)]
    again = feature_extend.extend(store, FeatureStore(settings.artifacts), after.id)
    assert again.adding == 0 and again.status == "complete"


def test_a_pool_that_lost_rows_is_refused_with_what_to_run(grown, store, settings):
    _, _, after, _, pool = grown
    gone = feature_runs.member_ids(store, pool)[0]
    store.write("MATCH (:Instruction {id: $id})-[r:IN_POOL]->(:Pool {name: $pool}) DELETE r", {"id": gone, "pool": pool})
    try:
        with pytest.raises(errors.Conflict, match=f"gradwalk features run {pool}"):
            feature_extend.extend(store, FeatureStore(settings.artifacts), after.id)
        assert feature_runs.get(store, after.id).status == "complete"
    finally:
        store.write("MATCH (n:Instruction {id: $id}), (p:Pool {name: $pool}) MERGE (n)-[:IN_POOL]->(p)",
                    {"id": gone, "pool": pool})
