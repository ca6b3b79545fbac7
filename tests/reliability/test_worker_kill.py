"""A gpu worker SIGKILLed in the middle of a feature shard costs nothing: the run completes on the
other worker with every row exactly once and every shard's checksum right.

Two kills, one run: first the pool process that computes a shard on worker A (the worker sees
its child die and requeues the task at once: acks_late + task_reject_on_worker_lost), then worker
B whole, process group and all (nobody is left to requeue its task: the orphan watcher of a live
worker does, workers/recovery.py)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.work import feature_runs
from gradwalk.platform.work.task_names import SYSTEM_PING

from .conftest import TINY_POOL_ROWS as POOL_ROWS
from .conftest import TINY_TARGET_ROWS as TARGET_ROWS
from .conftest import running_shards, start_tiny_run, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(600)]



def test_killed_gpu_workers_lose_no_row(healed, prefix):
    stack = healed
    store = stack.store
    started = time.monotonic()
    pool, target, run_id, orchestrator = start_tiny_run(stack, f"{prefix}kill")
    a, b = stack.workers["gpu-a"], stack.workers["gpu-b"]

    def shard_on(worker):
        return next((t for t in running_shards(stack, {orchestrator})
                     if t["hostname"] == worker.node_name()), None)

    # 1. The pool process computing a shard on A.
    victim = wait_for(lambda: shard_on(a), timeout_s=240, poll_s=0.05, what="a shard running on gpu-a")
    os.kill(victim["pid"], signal.SIGKILL)
    child_killed_at = time.monotonic()
    # 2. All of B, while it computes a shard.
    whole = wait_for(lambda: shard_on(b), timeout_s=240, poll_s=0.05, what="a shard running on gpu-b")
    stack.kill(b)
    worker_killed_at = time.monotonic()
    assert feature_runs.get(store, run_id).status == "featurizing"  # both died mid-run

    run = feature_runs.wait(store, run_id, timeout_s=300, poll_s=0.5)
    done_at = time.monotonic()

    # Every row exactly once, every shard's checksum right (load verifies each one).
    features = FeatureStore(stack.settings.artifacts)
    want = {"train": feature_runs.member_ids(store, pool), f"val-{target}": feature_runs.target_ids(store, target)}
    for part, ids in want.items():
        manifests = features.manifests(run_id, part)
        listed = [i for m in manifests for i in [*m.row_ids, *getattr(m, "skipped", [])]]
        assert sorted(listed) == sorted(ids) and len(listed) == len(set(listed)), part
        loaded, x = features.load(run_id, part, verify=True)
        assert x.shape[0] == len(loaded) == sum(m.rows for m in manifests)
    assert run.rows_done == run.rows_total == POOL_ROWS + TARGET_ROWS  # counted once per shard
    done_shards = stack.store.read("MATCH (fr:FeatureRun {id: $id}) RETURN fr.done_shards AS keys",
                                   {"id": run_id})[0]["keys"]
    assert len(done_shards) == len(set(done_shards)) == POOL_ROWS // 4 + 1
    # The two killed shards were each redone, and the run finished on A.
    for task in (victim, whole):
        result = stack.app.AsyncResult(task["id"])
        assert result.state == "SUCCESS", task
        assert result.result["rows"] == 4
    assert f"requeued task {whole['id']}" in stack.log(a) + stack.log(stack.workers["cpu"])
    stack.record(fault="SIGKILL of the pool process computing a feature shard (gpu-a)", runs=1,
                 outcome="task requeued at once by its worker; run complete",
                 lost="nothing", run_s=round(done_at - started, 1))
    stack.record(fault="SIGKILL of a whole gpu worker (process group) mid-shard (gpu-b)", runs=1,
                 outcome="orphan watcher requeued the task; run complete on gpu-a",
                 lost="nothing", recovered_after_s=round(done_at - worker_killed_at, 1),
                 rows=POOL_ROWS + TARGET_ROWS, shards=len(done_shards),
                 child_kill_to_done_s=round(done_at - child_killed_at, 1))


def test_an_orphan_is_requeued_once_however_many_watchers_race(stack):
    """Two watchers that find the same orphan: one moves it back to its queue, the other finds it
    gone (one Redis transaction each)."""
    from gradwalk.workers.recovery import UNACKED, UNACKED_INDEX, requeue, unacked_tasks

    client = stack.redis_client()
    queue = f"orphan-test-{time.monotonic_ns()}"
    message = {"body": "", "headers": {"id": "task-1", "task": SYSTEM_PING.name},
               "properties": {"delivery_tag": "tag-1", "delivery_info": {"exchange": "", "routing_key": queue}}}
    client.hset(UNACKED, "tag-1", json.dumps([message, "", queue]))  # the default exchange: key = queue
    client.zadd(UNACKED_INDEX, {"tag-1": time.time() - 600})
    try:
        assert unacked_tasks(client)["tag-1"][0] == "task-1"
        with stack.app.connection_for_write() as connection:
            channel = connection.default_channel
            assert [requeue(channel, "tag-1"), requeue(channel, "tag-1")] == [True, False]
        assert client.llen(queue) == 1 and "tag-1" not in unacked_tasks(client)
        assert json.loads(client.lpop(queue))["headers"]["redelivered"] is True
    finally:
        client.delete(queue)
