"""A feature run over shipped examples through the real gpu worker: warm-up, shards as
Celery tasks, every row exactly once with its checksum, progress counted once per shard, and a
row whose response the length limit cuts away named as skipped instead of becoming a zero row."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.demo import sources
from gradwalk.platform.intake import pools
from gradwalk.platform.work import feature_runs
from gradwalk.platform.work.task_names import FEATURES_SHARD

# Small enough for two CPU cores: the real model, short sequences, a narrow projection, one
# checkpoint (tests/workers/engine/test_features.py covers combining several).
ENGINE = {"lora_r": 4, "lora_alpha": 16, "max_length": 128, "batch_size": 8, "proj_dim": 256}
WARMUP = {"fraction": 0.1, "epochs": 1, "examples_per_step": 4}
# The session sets 16 rows per shard, so the run is 5 shard tasks joined by a chord (and the
# train part's last shard is short): several shards, at a third of the time 200 rows took.
POOL_ROWS = 64
MAX_TOKENS = 48  # estimated, of the whole record: short rows keep the run fast
# One more pool record whose prompt alone fills max_length: it has no response token, no gradient.
CUT_AWAY = {"messages": [{"role": "user", "content": "Summarise this. " + "word " * 400},
                         {"role": "assistant", "content": "A list of words."}]}
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def featurised(store, settings, shipped, tmp_path_factory):
    name, target_name = f"fr-pool-{uuid.uuid4().hex[:8]}", f"fr-gsm8k-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("feature-run-data")
    short = [r for r in shipped["pool"]
             if sum(sources.estimated_tokens(m["content"]) for m in r["messages"]) <= MAX_TOKENS]
    pool_file = sources.write_jsonl([*short[:POOL_ROWS], CUT_AWAY], folder / "pool.jsonl")
    target_file = sources.write_jsonl(shipped["gsm8k"][:8], folder / "val.jsonl")
    pools.import_pool(store, name, pool_file)
    pools.import_target(store, target_name, target_file)
    run_id = feature_runs.submit(store, name, [target_name], engine=ENGINE, warmup=WARMUP)
    seen: list[tuple[str, int]] = []
    run = feature_runs.wait(store, run_id, timeout_s=900, poll_s=0.5,
                            progress=lambda r: seen.append((r.status, r.rows_done)))
    return run, seen, feature_runs.member_ids(store, name), feature_runs.target_ids(store, target_name)


def test_every_row_exactly_once_with_checksums(featurised, settings):
    run, _, pool_ids, target_ids = featurised
    features = FeatureStore(settings.artifacts)
    ids, x = features.load(run.id, "train", verify=True)
    skipped = [i for m in features.manifests(run.id, "train") for i in m.skipped]
    assert len(pool_ids) == POOL_ROWS + 1 and len(ids) == len(set(ids)) == run.rows
    assert sorted(ids + skipped) == sorted(pool_ids) and not set(ids) & set(skipped)
    assert run.skipped["train"] == len(skipped) >= 1  # CUT_AWAY at least
    val_ids, val = features.load(run.id, f"val-{run.targets[0]}", verify=True)
    val_skipped = [i for m in features.manifests(run.id, f"val-{run.targets[0]}") for i in m.skipped]
    assert sorted(val_ids + val_skipped) == sorted(target_ids)
    assert x.shape == (len(ids), run.dim) and val.shape == (len(val_ids), run.dim)
    assert run.dim == ENGINE["proj_dim"]  # one warm-up checkpoint
    # Every stored row is a unit feature: rows without a response token are skipped, not zero.
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(val, axis=1), 1.0, atol=1e-4)


def test_run_records_settings_and_progress(featurised):
    run, seen, pool_ids, target_ids = featurised
    assert run.status == "complete" and run.parts == ["train", f"val-{run.targets[0]}"]
    assert run.rows_done == run.rows_total == len(pool_ids) + len(target_ids)
    assert run.engine["lora_r"] == 4 and run.engine["proj_dim"] == 256
    assert [c.epoch for c in run.checkpoints] == [1] and all(c.lr > 0 for c in run.checkpoints)
    done = [rows for status, rows in seen if status == "featurizing"]
    assert done == sorted(done)  # progress only grows


def test_a_redelivered_shard_changes_nothing(featurised, store, settings):
    """Run a finished shard again, as a redelivery would: same manifest, counted once."""
    from gradwalk.platform.work.broker import GPU_QUEUE
    from gradwalk.workers.app import app

    run, *_ = featurised
    features = FeatureStore(settings.artifacts)
    before = features.manifest(run.id, "train", 0)
    app.send_task(FEATURES_SHARD.name, args=[run.id, "train", 0, before.row_ids],
                  queue=GPU_QUEUE).get(timeout=300)
    assert features.manifest(run.id, "train", 0) == before
    assert feature_runs.get(store, run.id).rows_done == run.rows_total


def test_unknown_pool_or_target_is_refused_before_work(featurised, store):
    run, *_ = featurised
    with pytest.raises(errors.NotFound, match="pool 'no-such-pool'"):
        feature_runs.submit(store, "no-such-pool", [])
    with pytest.raises(errors.NotFound, match="unknown target 'no-such-target'"):
        feature_runs.submit(store, run.pool, ["no-such-target"])
