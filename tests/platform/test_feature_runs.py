"""A feature run's progress record in the real Neo4j: rows of running shards move it, a finished
shard counts once and takes its running count with it, and nothing a late report says moves it back
(nor revives a cancelled run); its maker cancels it from the Python client or the CLI."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.graph.knn.build import TRAIN_PART
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.demo import sources
from gradwalk.platform.intake import pools
from gradwalk.platform.shared.waiting import feature_progress
from gradwalk.platform.work import feature_runs


@pytest.fixture
def run_id(store, prefix, shipped, tmp_path) -> str:
    pools.import_pool(store, f"{prefix}pool", sources.write_jsonl(shipped["pool"][:4], tmp_path / "pool.jsonl"))
    return feature_runs.create(store, f"{prefix}pool", [], engine={}, warmup={})


def progress(store, run_id: str) -> tuple[int, int]:
    run = feature_runs.get(store, run_id)
    return run.rows_done, run.rows_in_flight


def test_running_shards_move_progress_and_a_finished_one_counts_once(store, run_id):
    assert progress(store, run_id) == (0, 0)
    feature_runs.shard_progress(store, run_id, "train/0", 5)
    feature_runs.shard_progress(store, run_id, "train/1", 3)
    feature_runs.shard_progress(store, run_id, "train/0", 9)  # the same shard, further on
    assert progress(store, run_id) == (0, 12)
    feature_runs.shard_done(store, run_id, "train/0", 16)
    assert progress(store, run_id) == (16, 3)
    feature_runs.shard_done(store, run_id, "train/0", 16)  # a redelivered shard
    feature_runs.shard_progress(store, run_id, "train/0", 4)  # a late report of a counted shard
    assert progress(store, run_id) == (16, 3)
    feature_runs.shard_done(store, run_id, "train/1", 7)
    assert progress(store, run_id) == (23, 0)


def test_the_progress_bar_never_runs_past_the_total(store, run_id):
    shown: list[tuple[int, int, str]] = []
    show = feature_progress(lambda done, total, stage: shown.append((done, total, stage)))
    feature_runs.mark(store, run_id, "featurizing", rows_total=10)
    feature_runs.shard_progress(store, run_id, "train/0", 6)
    show(feature_runs.get(store, run_id))
    feature_runs.shard_progress(store, run_id, "train/1", 8)
    show(feature_runs.get(store, run_id))
    assert shown == [(6, 10, "features"), (10, 10, "features")]


def test_a_cancelled_run_stays_cancelled_whatever_a_late_worker_reports(store, run_id):
    assert feature_runs.mark(store, run_id, "warming up", warmup_steps_done=1, warmup_steps_total=4)
    warming = feature_runs.get(store, run_id)
    # Neo4j writes times with as many fraction digits as they need (.92Z, .929Z): compare them as times.
    assert warming.stage_at and datetime.fromisoformat(warming.stage_at) >= datetime.fromisoformat(warming.created_at)
    cancelled = feature_runs.cancel(store, run_id, "someone")
    assert cancelled.status == "cancelled" and cancelled.error == "cancelled by token 'someone'"
    assert not feature_runs.mark(store, run_id, "featurizing", rows_total=4)  # the worker's next step
    assert not feature_runs.mark(store, run_id, "failed", error="late")
    after = feature_runs.get(store, run_id)
    assert (after.status, after.rows_total, after.error) == ("cancelled", 0, "cancelled by token 'someone'")
    with pytest.raises(errors.Conflict, match="is cancelled; only a queued, warming-up or featurizing run"):
        feature_runs.cancel(store, run_id, "someone")


def test_only_its_maker_cancels_a_run_from_the_client_or_the_cli(api_url, store, collections, prefix,
                                                                  gradwalk_cli):
    """The cancel's one way in, as a laptop sees it: a reader and another curator are refused, the
    maker's cancel lands and stays, a second is a conflict; the CLI says each in one line and an
    exit code. The runs are records no worker is told of, so they wait queued, at no model's cost."""
    from gradwalk import Client
    from gradwalk.platform.access import auth

    secret = {who: auth.create(store, f"{prefix}{who}", role)
              for who, role in (("maker", "curator"), ("other", "curator"), ("reader", "reader"))}
    by_client, by_cli = (feature_runs.create(store, collections.pool, [collections.target], engine={}, warmup={},
                                             created_by=f"{prefix}maker") for _ in range(2))
    for who, refusal in (("reader", "role 'reader'"), ("other", f"made by token '{prefix}maker'")):
        with Client(api_url, secret[who]) as client, pytest.raises(errors.NotAllowed, match=refusal):
            client.feature_run(by_client).cancel()
    with Client(api_url, secret["maker"]) as client:
        with pytest.raises(errors.NotFound):
            client.feature_run(f"{prefix}none").cancel()
        run = client.feature_run(by_client)
        assert run.show().status == "queued"  # the refusals changed nothing
        cancelled = run.cancel()
        assert (cancelled.status, cancelled.error) == ("cancelled", f"cancelled by token '{prefix}maker'")
        with pytest.raises(errors.WorkFailed, match=f"cancelled: cancelled by token '{prefix}maker'"):
            run.wait(timeout=5)  # a follower learns why it ended
        with pytest.raises(errors.Conflict, match="is cancelled; only a queued"):
            run.cancel()

    refused = gradwalk_cli("features", "cancel", by_cli, token=secret["reader"])
    assert refused.returncode == 5 and refused.stderr.startswith("error: token ") and refused.stderr.count("\n") == 1
    done = gradwalk_cli("features", "cancel", by_cli, token=secret["maker"])
    assert done.returncode == 0, done.stderr
    assert by_cli in done.stdout and "cancelled" in done.stdout.split() and f"by token '{prefix}maker'" in done.stdout
    again = gradwalk_cli("features", "cancel", by_cli, token=secret["maker"])
    refusal = f"error: feature run {by_cli} is cancelled; only a queued, warming-up or featurizing run can be cancelled"
    assert (again.returncode, again.stderr) == (4, refusal + "\n")
    assert feature_runs.get(store, by_cli).status == "cancelled"


def test_features_extend_through_the_api_finds_the_run_on_s3(store, s3, run_id, prefix, tmp_path):
    """The extend route reads the run's rows from an S3 artifact store. It used to build its store
    from the artifact URL alone, without the endpoint, keys and cache cap, and failed with botocore's
    NoCredentialsError. A run that holds every pool row has nothing to add; a run holding a row the
    pool lost is refused, naming the row (both answers need the run's manifests from the bucket)."""
    from starlette.testclient import TestClient

    from gradwalk.platform.access import auth
    from gradwalk.platform.interfaces.api import create_app

    own = s3.model_copy(update={"artifact_url": f"{s3.artifact_url}/{prefix}extend", "state_dir": tmp_path / "host"})
    own.state_dir.mkdir()
    features = FeatureStore.from_settings(own)
    members = feature_runs.member_ids(store, f"{prefix}pool")
    features.write_shard(run_id, TRAIN_PART, 0, members, np.eye(len(members), 8, dtype=np.float32))
    feature_runs.mark(store, run_id, "complete", parts=[TRAIN_PART], rows=len(members))
    with TestClient(create_app(own)) as api:
        api.headers["Authorization"] = f"Bearer {auth.create(store, f'{prefix}s3-extend', 'curator')}"
        answer = api.post(f"/feature-runs/{run_id}/extend")
        assert answer.status_code == 202, answer.text
        assert answer.json()["adding"] == 0 and answer.json()["status"] == "complete"

        features.write_shard(run_id, TRAIN_PART, 1, [f"{prefix}gone"], np.ones((1, 8), np.float32))
        refused = api.post(f"/feature-runs/{run_id}/extend")
    assert refused.status_code == 409 and f"{prefix}gone" in refused.json()["error"]["message"]
