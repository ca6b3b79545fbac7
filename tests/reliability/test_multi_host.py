"""Hosts that share nothing local: two gpu workers and a cpu worker, each with a state folder of
its own, sharing only Neo4j, Redis and an S3 bucket (a real s3proxy), together run a feature run,
a graph build and a G2IS job; one gpu worker is SIGKILLed mid-run and nothing is lost or doubled.

The stack's own workers (local artifact folder) stand aside for the test, so only the three
"hosts" consume the queues. What the hosts still share is the model cache (read-only here; each
real host keeps its own copy of the same files)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gradwalk.graph.knn import records as graphs
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import feature_runs, jobs
from gradwalk.platform.work.task_names import GRAPH_BUILD
from gradwalk.statuses import GraphStatus

from .conftest import TINY_POOL_ROWS as POOL_ROWS
from .conftest import TINY_TARGET_ROWS as TARGET_ROWS
from .conftest import _named_worker, running_shards, start_tiny_run, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(600)]

K = 4  # neighbours per row in the graph


@pytest.fixture
def hosts(healed, s3, tmp_path, prefix) -> Iterator[dict]:
    """Three workers as three hosts on the stack's Neo4j and Redis, with the artifact store on S3."""
    stack = healed
    for worker in stack.workers.values():
        worker.stop()
    shared = {"artifact_url": f"{s3.artifact_url}/{prefix}hosts", "s3_endpoint_url": s3.s3_endpoint_url,
              "s3_access_key_id": s3.s3_access_key_id, "s3_secret_access_key": s3.s3_secret_access_key}
    started = {}
    try:
        for tag, queue, concurrency in (("host-gpu-1", "gpu", 1), ("host-gpu-2", "gpu", 1), ("host-cpu", "cpu", 2)):
            own = stack.settings.model_copy(update={**shared, "state_dir": tmp_path / tag,
                                                    "worker_concurrency": concurrency})
            own.state_dir.mkdir()
            started[tag] = _named_worker(own, queue, tag)
            started[tag].spawn()
        for worker in started.values():
            worker.wait_ready()
        yield started
    finally:
        for worker in started.values():
            worker.stop()


def test_workers_on_hosts_that_share_only_the_services(healed, hosts, prefix):
    stack, store = healed, healed.store
    started = time.monotonic()
    pool, target, run_id, orchestrator = start_tiny_run(stack, f"{prefix}mh")
    victim = hosts["host-gpu-2"]

    # A gpu host dies whole in the middle of a shard; the other hosts finish the run.
    shard = wait_for(lambda: next((t for t in running_shards(stack, {orchestrator})
                                   if t["hostname"] == victim.node_name()), None),
                     timeout_s=300, poll_s=0.05, what="a shard running on host-gpu-2")
    stack.kill(victim)
    run = feature_runs.wait(store, run_id, timeout_s=300, poll_s=0.5)
    features_s = time.monotonic() - started
    assert stack.app.AsyncResult(shard["id"]).state == "SUCCESS"  # the killed shard was redone elsewhere

    # Every row exactly once, in the bucket, and on no host's disk but as verified copies.
    features = FeatureStore.from_settings(hosts["host-gpu-1"].settings)
    want = {"train": feature_runs.member_ids(store, pool), f"val-{target}": feature_runs.target_ids(store, target)}
    for part, ids in want.items():
        manifests = features.manifests(run_id, part)
        listed = [i for m in manifests for i in [*m.row_ids, *m.skipped]]
        assert sorted(listed) == sorted(ids) and len(listed) == len(set(listed)), part
        assert [m.shard for m in manifests] == list(range(len(manifests)))
        loaded, x = features.load(run_id, part, verify=True)
        assert x.shape[0] == len(loaded) == sum(m.rows for m in manifests)
    assert run.rows_done == run.rows_total == POOL_ROWS + TARGET_ROWS  # counted once per shard
    done_shards = store.read("MATCH (fr:FeatureRun {id: $id}) RETURN fr.done_shards AS keys", {"id": run_id})[0]["keys"]
    assert len(done_shards) == len(set(done_shards)) == POOL_ROWS // 4 + 1
    assert features.files.exists(f"features/{run_id}/warmup/warmup.json")  # the warm-up reached every host
    for worker in hosts.values():
        assert not (worker.settings.state_dir / "artifacts").exists()  # no host kept a store of its own

    # The killed host comes back; the gpu hosts build the graph, block by block.
    stack.restart(victim)
    build = stack.send(GRAPH_BUILD.name, run_id, K, -1.0, 4, False, queue="gpu").get(timeout=120)
    info = wait_for(lambda: (g := graphs.get_graph(store, build["graph"])).status == GraphStatus.READY and g,
                    timeout_s=300, poll_s=0.5, what="the graph build")
    edges = store.read("MATCH (a)-[r:SIMILAR {graph: $g}]->(b) RETURN count(r) AS n, "
                       "count(DISTINCT [elementId(a), elementId(b)]) AS pairs", {"g": info.id})[0]
    nodes = run.rows
    assert info.edges == edges["n"] == edges["pairs"] == nodes * K  # tau -1: exactly k per row, none twice

    # The cpu host walks the graph and publishes a dataset.
    request = jobs.JobRequest(pool=pool, targets=[target], method="g2is", dataset=f"{prefix}mh-picked",
                              params={"ratio": 0.25}, graph=info.id)
    job = jobs.wait(store, stack.submit_job(request), timeout_s=300, poll_s=0.5)
    assert job.status == "succeeded", job
    (version,) = datasets.versions(store, f"{prefix}mh-picked")
    assert version.status == "complete" and 0 < version.size <= POOL_ROWS // 4
    assert (hosts["host-cpu"].settings.state_dir / "artifact-cache").is_dir()  # read from the bucket
    stack.record(fault="SIGKILL of a whole gpu host mid-shard; hosts share only Neo4j, Redis and S3", runs=1,
                 outcome="run, graph and g2is job complete on the other hosts", lost="nothing",
                 features_s=round(features_s, 1), total_s=round(time.monotonic() - started, 1))
