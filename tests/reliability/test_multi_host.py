"""Hosts that share nothing local: two gpu workers and a cpu worker, each with a state folder of
its own, sharing only Neo4j, Redis and an S3 bucket (a real s3proxy), together run a feature run,
a graph build and a G2IS job; one gpu worker is SIGKILLed mid-run and nothing is lost or doubled.
The version is evaluated there (its per-example scores in the bucket). Then the pool grows on
them: issue 27's whole loop, driven through the client (and the CLI) against an API on the same
bucket, as a team with only the API would drive it.

The stack's own workers (local artifact folder) stand aside for the test, so only the three
"hosts" consume the queues. What the hosts still share is the model cache (read-only here; each
real host keeps its own copy of the same files)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from gradwalk import Client
from gradwalk.graph.knn.build import TRAIN_PART
from gradwalk.platform.access import auth
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.demo.sources import write_jsonl
from gradwalk.platform.interfaces.cli import app as cli
from gradwalk.platform.local.stack import ApiService
from gradwalk.platform.versions.evaluations import scores_key
from gradwalk.platform.work import feature_runs
from gradwalk.platform.work.task_names import FEATURES_SHARD
from gradwalk.ports import free_port
from gradwalk.workers.engine.evaluation import summarize

from .conftest import TINY_ENGINE, TINY_WARMUP, _named_worker, chat, wait_for
from .conftest import TINY_POOL_ROWS as POOL_ROWS
from .conftest import TINY_TARGET_ROWS as TARGET_ROWS

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(900)]

K = 4  # neighbours per row in the graph
ADDED = 4  # rows the pool gains
# An evaluation as small as one gets: the tiny engine, one epoch, one random subset, 2 test examples.
EVALUATION = {"epochs": 1, "random_seeds": 1, "greedy": False,
              "engine": {k: TINY_ENGINE[k] for k in ("lora_r", "lora_alpha", "lora_targets", "max_length", "batch_size")}}


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


@pytest.fixture
def api(hosts, tmp_path) -> Iterator[ApiService]:
    """The API on the hosts' bucket (the stack's own API reads the local folder)."""
    own = hosts["host-cpu"].settings.model_copy(update={"state_dir": tmp_path / "api", "api_port": free_port()})
    service = ApiService(own)
    try:
        service.spawn()
        service.wait_ready()
        yield service
    finally:
        service.stop()


def _running(stack, worker, task: str) -> dict[str, Any] | None:
    """A ``task`` that ``worker`` is executing now, as Celery reports it (id, name, args)."""
    active = stack.app.control.inspect(destination=[worker.node_name()], timeout=1.0).active() or {}
    return next((t for t in active.get(worker.node_name(), []) if t["name"] == task), None)


def _bucket(settings) -> dict[str, tuple[int, str]]:
    """Every object under the artifact URL as the S3 server lists it (botocore, not the store's own
    s3fs): key -> (size, last modified). s3proxy's filesystem backend also lists its folders
    (``.../train/``), whose times move as files are added; they are no objects of the store."""
    from botocore.session import get_session

    url = urlsplit(settings.artifact_url)
    s3 = get_session().create_client(
        "s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1",
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value())
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=url.netloc, Prefix=url.path.strip("/") + "/")
    return {o["Key"]: (o["Size"], str(o["LastModified"])) for page in pages for o in page.get("Contents", [])
            if not o["Key"].endswith("/")}


def test_hosts_that_share_only_the_services_survive_a_kill_and_grow_a_pool(healed, hosts, api, prefix, tmp_path):
    """The extend route once built its store without the S3 endpoint and keys (NoCredentialsError), so
    no pool could grow on hosts that share only a bucket; the loop from import to the next version's
    export runs here through the client, `job submit --like` through the CLI."""
    stack, store = healed, healed.store
    started = time.monotonic()
    name = f"{prefix}mh"
    pool, target, dataset = f"{name}-pool", f"{name}-target", f"{name}-picked"
    write_jsonl([chat(pool, i) for i in range(POOL_ROWS)], tmp_path / "pool.jsonl")
    write_jsonl([chat(pool, i) for i in range(POOL_ROWS, POOL_ROWS + ADDED)], tmp_path / "more.jsonl")
    write_jsonl([chat(target, i) for i in range(TARGET_ROWS)], tmp_path / "val.jsonl")
    write_jsonl([chat(f"{target}-test", i) for i in range(2)], tmp_path / "test.jsonl")
    token = auth.create(store, f"{name}-curator", "curator")
    victim = hosts["host-gpu-2"]
    with Client(api.address, token) as client:
        client.import_pool(pool, tmp_path / "pool.jsonl")
        client.import_target(target, tmp_path / "val.jsonl", test=tmp_path / "test.jsonl")
        run = client.start_feature_run(pool, [target], engine=TINY_ENGINE, warmup=TINY_WARMUP)

        # A gpu host dies whole in the middle of a shard; the other hosts finish the run.
        shard = wait_for(lambda: _running(stack, victim, FEATURES_SHARD.name), timeout_s=300, poll_s=0.05,
                         what="a shard running on host-gpu-2")
        stack.kill(victim)
        done = run.wait(timeout=300, poll_s=0.5)
        features_s = time.monotonic() - started
        assert stack.app.AsyncResult(shard["id"]).state == "SUCCESS"  # the killed shard was redone elsewhere

        # Every row exactly once, in the bucket, and on no host's disk but as verified copies.
        features = FeatureStore.from_settings(hosts["host-gpu-1"].settings)
        want = {TRAIN_PART: feature_runs.member_ids(store, pool),
                f"val-{target}": feature_runs.target_ids(store, target)}
        for part, ids in want.items():
            manifests = features.manifests(run.id, part)
            listed = [i for m in manifests for i in [*m.row_ids, *m.skipped]]
            assert sorted(listed) == sorted(ids) and len(listed) == len(set(listed)), part
            assert [m.shard for m in manifests] == list(range(len(manifests)))
            loaded, x = features.load(run.id, part, verify=True)
            assert x.shape[0] == len(loaded) == sum(m.rows for m in manifests)
        assert done.rows_done == done.rows_total == POOL_ROWS + TARGET_ROWS  # counted once per shard
        done_shards = store.read("MATCH (fr:FeatureRun {id: $id}) RETURN fr.done_shards AS keys",
                                 {"id": run.id})[0]["keys"]
        assert len(done_shards) == len(set(done_shards)) == POOL_ROWS // 4 + 1
        assert features.files.exists(f"features/{run.id}/warmup/warmup.json")  # the warm-up reached every host
        for worker in [*hosts.values(), api]:
            assert not (worker.settings.state_dir / "artifacts").exists()  # nobody kept a store of its own

        # The killed host comes back; the gpu hosts build the graph, block by block.
        stack.restart(victim)
        graph = client.build_graph(run.id, k=K, tau=-1.0, block_rows=4)
        info = graph.wait(timeout=300, poll_s=0.5)
        edges = store.read("MATCH (a)-[r:SIMILAR {graph: $g}]->(b) RETURN count(r) AS n, "
                           "count(DISTINCT [elementId(a), elementId(b)]) AS pairs", {"g": graph.id})[0]
        assert info.edges == edges["n"] == edges["pairs"] == done.rows * K  # tau -1: exactly k per row, none twice

        # The cpu host walks the graph and publishes a dataset.
        first = client.select(pool=pool, target=target, method="g2is", ratio=0.25, dataset=dataset,
                              feature_run=run.id, graph=graph.id).wait(timeout=300, poll_s=0.5)
        v1 = first.dataset_version()
        assert v1.info.status == "complete" and 0 < v1.info.size <= POOL_ROWS // 4
        assert (hosts["host-cpu"].settings.state_dir / "artifact-cache").is_dir()  # read from the bucket

        # A gpu host evaluates it; the per-example scores go to the bucket, the figures are theirs.
        evaluation_started = time.monotonic()
        evaluated = v1.evaluate(target, **EVALUATION).wait(timeout=300, poll_s=0.5)
        key = f"{urlsplit(api.settings.artifact_url).path.strip('/')}/{scores_key(evaluated.id)}"
        assert key in _bucket(api.settings)
        assert evaluated.summary["figures"] == summarize(client.evaluation(evaluated.id).scores())
        evaluation_s = time.monotonic() - evaluation_started
        grow_started = time.monotonic()

        # The pool grows; the run, then the graph, take the new rows; `--like` selects again.
        old = {row.id for row in client.pool(pool).iter_rows()}
        before = _bucket(api.settings)
        client.import_pool(pool, tmp_path / "more.jsonl")
        new = {row.id for row in client.pool(pool).iter_rows()} - old
        assert client.extend_feature_run(run.id).adding == ADDED == len(new)
        assert run.wait(timeout=300, poll_s=0.5).rows == POOL_ROWS + ADDED
        grown = client.extend_graph(graph.id)
        assert graph.wait(rows=grown.rows_after, timeout=300, poll_s=0.5).nodes == grown.rows_after == POOL_ROWS + ADDED
        like = CliRunner().invoke(cli, ["job", "submit", "--like", dataset, "--wait", "--json"],
                                  env={"GRADWALK_API_URL": api.address, "GRADWALK_API_TOKEN": token})
        assert like.exit_code == 0, like.output
        second = client.job(json.loads(like.stdout)["id"])
        v2 = second.dataset_version()
        diff = v2.diff(v1)
        rows1, rows2 = ({row["instruction_id"] for row in v.iter_rows()} for v in (v1, v2))
        assert [e["id"] for e in client.dataset(dataset).version(1).info.lineage["evaluations"]] == [evaluated.id]
        v2.export("jsonl", tmp_path / "v2.jsonl")
        ranked = [row.instruction_id for row in v2.rows(limit=POOL_ROWS + ADDED)]
    after = _bucket(api.settings)

    # The extension featurised the new rows alone: nothing it found in the bucket was rewritten, and
    # all it added is train shards (an array and a manifest each) holding exactly the new rows.
    root = f"{urlsplit(api.settings.artifact_url).path.strip('/')}/features/{run.id}/{TRAIN_PART}/"
    assert any(key.startswith(root) for key in before)
    assert {key: after[key] for key in before} == before
    added = set(after) - set(before)
    fresh = [m for m in features.manifests(run.id, TRAIN_PART) if f"{root}shard-{m.shard:05d}.json" in added]
    assert sorted(i for m in fresh for i in (*m.row_ids, *m.skipped)) == sorted(new)
    assert len(added) == 2 * len(fresh) and all(key.startswith(root) for key in added)
    # `--like` ran the first job's request again, on the grown graph: version 2.
    same = {"method", "params", "pool", "targets", "feature_run", "graph", "dataset", "sources"}
    assert second.info.model_dump(include=same) == first.info.model_dump(include=same)
    assert (first.info.version, second.info.version) == (1, 2)
    assert v1.info.lineage["selected_from"] == {"of": "graph", "id": graph.id, "generation": 1, "rows": POOL_ROWS}
    assert v2.info.lineage["selected_from"] == {"of": "graph", "id": graph.id, "generation": 2,
                                                "rows": POOL_ROWS + ADDED}
    # The diff names the rows each version has and the other lacks; the export holds version 2's rows.
    assert (set(diff.added_ids), set(diff.removed_ids), diff.kept) == (rows2 - rows1, rows1 - rows2,
                                                                      len(rows1 & rows2))
    assert set(diff.added_new_ids) == set(diff.added_ids) & new
    exported = [json.loads(line)["gradwalk"]["instruction_id"] for line in (tmp_path / "v2.jsonl").open()]
    assert exported == ranked and len(ranked) == v2.info.size > 0
    stack.record(fault="SIGKILL of a whole gpu host mid-shard; hosts share only Neo4j, Redis and S3", runs=1,
                 outcome="run, graph and g2is job complete on the other hosts; the pool then grows on them "
                         "(features extend, graph extend, job submit --like)", lost="nothing",
                 features_s=round(features_s, 1), evaluation_s=round(evaluation_s, 1),
                 grow_s=round(time.monotonic() - grow_started, 1),
                 total_s=round(time.monotonic() - started, 1))
