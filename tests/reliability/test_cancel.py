"""Cancelling a job stops it and leaves nothing half-published.

End to end: a g2is walk over a graph in Neo4j is cancelled through the API while it runs (its
process is held with SIGSTOP while the cancel is sent, so the walk is surely under way on any
machine); the walk stops at its next check, no version appears, and nothing it staged is left. The two races a cancel can meet are tested exactly: a cancel that lands between
the worker's last progress check and the commit (the commit refuses), and one that comes after
the commit (the cancel refuses; the job keeps its version)."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from gradwalk import errors
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import jobs
from gradwalk.workers.tasks.select import CANCEL_CHECK_S

from .conftest import wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]

def staged(store, dataset: str) -> int:
    return store.read("MATCH (v:DatasetVersion {dataset: $d}) WHERE v.status = 'pending' RETURN count(v) AS n",
                      {"d": dataset})[0]["n"]


def test_a_running_walk_is_cancelled_through_the_api(stack, walkable, prefix):
    store = stack.store
    run = walkable.run
    dataset = f"{prefix}cancelled"
    with api(stack) as web:
        submitted = web.post("/jobs", json={"pool": run.pool, "targets": [run.target], "method": "g2is",
                                            "dataset": dataset, "params": {"ratio": 0.9, "delta": 0.0},
                                            "graph": walkable.graph})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        result = stack.app.AsyncResult(job_id)
        wait_for(lambda: result.state == "STARTED" and jobs.get(store, job_id).stage == "running g2is",
                 timeout_s=120, poll_s=0.02, what="the walk to start")
        # Hold the walk where it is (however fast this machine walks), cancel, let it go on.
        walker = result.info["pid"]
        os.kill(walker, signal.SIGSTOP)
        try:
            answer = web.post(f"/jobs/{job_id}/cancel")
            time.sleep(CANCEL_CHECK_S + 0.5)
        finally:
            os.kill(walker, signal.SIGCONT)
        resumed_at = time.monotonic()
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    outcome = result.get(timeout=120)
    stopped_s = time.monotonic() - resumed_at
    assert outcome == {"job": job_id, "status": "cancelled"}
    job = jobs.get(store, job_id)
    assert job.status == "cancelled" and job.progress < 0.9  # stopped inside the walk
    with pytest.raises(errors.NotFound):
        datasets.versions(store, dataset)
    assert staged(store, dataset) == 0
    stack.record(fault="cancel of a running g2is job (API) mid-walk", runs=1,
                 outcome=f"the walk stopped {stopped_s:.1f}s after it went on; no version, nothing staged",
                 lost="nothing (by intent)")


def api(stack) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)


def started_job(store, run, dataset: str) -> tuple[str, list[dict]]:
    """A running job of ``dataset`` and five rows it could publish."""
    job_id = jobs.create(store, jobs.JobRequest(pool=run.pool, targets=[run.target], method="random",
                                                dataset=dataset, params={"ratio": 0.5}))
    jobs.start(store, job_id)
    return job_id, [{"instruction_id": i, "rank": r} for r, i in enumerate(run.ids[:5])]


def test_a_cancel_before_the_commit_publishes_nothing(stack, crafted, prefix):
    """The cancel lands after the worker's last progress check, just before the commit."""
    store = stack.store
    run = crafted(20)
    dataset = f"{prefix}raced"
    job_id, rows = started_job(store, run, dataset)
    with api(stack) as web, pytest.raises(datasets.JobEnded, match="cancelled"):
        datasets.publish(store, dataset, rows, job_id=job_id, lineage={},
                         before_commit=lambda: web.post(f"/jobs/{job_id}/cancel").raise_for_status())
    assert jobs.get(store, job_id).status == "cancelled"
    with pytest.raises(errors.NotFound):
        datasets.versions(store, dataset)
    assert staged(store, dataset) == 0


def test_a_cancel_after_the_commit_is_refused(stack, crafted, prefix):
    store = stack.store
    run = crafted(20)
    dataset = f"{prefix}late"
    job_id, rows = started_job(store, run, dataset)
    assert datasets.publish(store, dataset, rows, job_id=job_id, lineage={}) == 1
    with api(stack) as web:
        refused = web.post(f"/jobs/{job_id}/cancel")
    assert refused.status_code == 409 and "already published version 1" in refused.json()["error"]["message"]
    assert jobs.get(store, job_id).status == "running"  # the worker records it succeeded next
    assert [v.version for v in datasets.versions(store, dataset)] == [1]


def test_a_run_cancelled_during_its_warm_up_stops_at_the_next_step(stack, prefix):
    """The real model on the real gpu worker: a cancel sent through the Python client while the
    warm-up trains stops it at its next step; the run stays cancelled with nothing written after
    the cancel (no further step, no checkpoint, row or shard)."""
    from gradwalk import Client
    from gradwalk.graph.knn.build import TRAIN_PART
    from gradwalk.platform.artifacts.feature_store import FeatureStore
    from gradwalk.platform.intake import pools
    from gradwalk.platform.work import feature_runs
    from gradwalk.platform.work.task_names import FEATURES_RUN

    from .conftest import TINY_ENGINE, TINY_POOL_ROWS, chat

    pool = f"{prefix}warm-pool"
    pools.import_pool(stack.store, pool, [chat(pool, i) for i in range(TINY_POOL_ROWS)])
    run_id = feature_runs.create(stack.store, pool, [], engine=TINY_ENGINE,
                                 warmup={"fraction": 1.0, "epochs": 4, "examples_per_step": 1})
    orchestrator = stack.app.AsyncResult(stack.send(FEATURES_RUN.name, run_id, queue="gpu").id)
    with Client(stack.api_url, stack.token) as client:
        run = client.feature_run(run_id)
        wait_for(lambda: run.show().warmup_steps_done, timeout_s=180, poll_s=0.1, what="the warm-up's first step")
        cancelled = run.cancel()
    assert orchestrator.get(timeout=60) == {"run": run_id, "status": "cancelled"}
    after = feature_runs.get(stack.store, run_id)
    assert after == cancelled and after.status == "cancelled"
    assert after.warmup_steps_done < after.warmup_steps_total and after.rows_total == 0 and not after.checkpoints
    assert FeatureStore(stack.settings.artifacts).manifests(run_id, TRAIN_PART) == []
