"""Every noun listed, shown, paged and deleted through the client, the REST API and the CLI, with
lineage kept: a delete never changes a published version, what a job used stays as a tombstone,
and a delete killed halfway is finished by the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from gradwalk import errors
from gradwalk.graph.knn.build import build_graph
from gradwalk.platform.access import auth
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.intake import pools
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import feature_runs, jobs
from gradwalk.settings import get_settings

from .conftest import records


@dataclass
class Lineage:
    """A pool and target made by a curator, a complete feature run with a graph, and a version of
    a dataset that a g2is job over them published."""

    pool: str
    target: str
    run: str
    graph: str
    job: str
    dataset: str
    ids: list[str]  # the pool's rows, by id
    chosen: list[str]  # the version's rows
    curator: str  # token secrets
    other: str
    reader: str
    admin: str


def _token(store, name: str, role: str) -> str:
    return auth.create(store, name, role)


@pytest.fixture
def lineage(store, settings, prefix, tmp_path) -> Lineage:
    curator = _token(store, f"{prefix}cur", "curator")
    pool, target = f"{prefix}pool", f"{prefix}target"
    source = tmp_path / "pool.jsonl"
    lines = [json.dumps({**r, "source": "set-a" if i < 30 else "set-b"})
             for i, r in enumerate(records(f"{prefix}p", 40))]
    lines.insert(3, "{not json")
    source.write_text("\n".join(lines) + "\n")
    pools.import_pool(store, pool, source, skip_invalid=True, created_by=f"{prefix}cur")
    pools.import_target(store, target, records(f"{prefix}t", 3), created_by=f"{prefix}cur")
    ids = feature_runs.member_ids(store, pool)
    run = feature_runs.create(store, pool, [target], engine={}, warmup={}, created_by=f"{prefix}cur")
    features = FeatureStore(settings.artifacts)
    x = (np.random.default_rng(0).normal(size=(len(ids), 8)) + 1.0).astype(np.float32)
    features.write_shard(run, "train", 0, ids, x / np.linalg.norm(x, axis=1, keepdims=True))
    features.write_shard(run, f"val-{target}", 0, feature_runs.target_ids(store, target), x[:3])
    feature_runs.mark(store, run, "complete", parts=["train", f"val-{target}"], rows=len(ids), dim=8)
    graph = build_graph(store, features, run, 4, 0.0, device="cpu").id
    store.write("MATCH (g:InstructionGraph {id: $id}) SET g.created_by = $who", {"id": graph, "who": f"{prefix}cur"})
    job = jobs.create(store, jobs.JobRequest(pool=pool, targets=[target], method="g2is", dataset=f"{prefix}ds",
                                             params={"ratio": 0.25}, feature_run=run, graph=graph),
                      created_by=f"{prefix}cur")
    store.write("MATCH (j:SelectionJob {id: $id}) SET j.status = 'succeeded'", {"id": job})
    chosen = ids[5:15]
    datasets.publish(store, f"{prefix}ds", [{"instruction_id": i, "rank": r} for r, i in enumerate(chosen)],
                     job_id=job, lineage={})
    return Lineage(pool, target, run, graph, job, f"{prefix}ds", ids, chosen, curator,
                   _token(store, f"{prefix}other", "curator"), _token(store, f"{prefix}reader", "reader"),
                   _token(store, f"{prefix}admin", "admin"))


def _client(api_url: str, token: str):
    from gradwalk import Client

    return Client(api_url, token)


def _export(store, lineage: Lineage) -> list[dict]:
    return list(datasets.iter_rows(store, lineage.dataset, 1))


def test_list_show_and_rows_through_the_client(api_url, lineage, prefix):
    with _client(api_url, lineage.reader) as client:
        assert lineage.pool in [p.name for p in client.pools()]
        shown = client.pool(lineage.pool).show()
        assert (shown.size, shown.status, shown.created_by) == (40, "ready", f"{prefix}cur")
        assert shown.sources == {"set-a": 30, "set-b": 10}  # the records' own; the file is the import's
        (imported,) = shown.imports
        assert (imported.read, imported.skipped, imported.added) == (41, 1, 40)
        assert "pool.jsonl" in imported.skip_reasons[0] and "line 4" in imported.skip_reasons[0]
        deps = shown.dependants
        assert (deps.feature_runs, deps.graphs, deps.jobs) == ([lineage.run], [lineage.graph], [lineage.job])
        assert [(v.dataset, v.version) for v in deps.versions] == [(lineage.dataset, 1)]

        first, second = client.pool(lineage.pool).rows(0, 15), client.pool(lineage.pool).rows(15, 100)
        assert [r.id for r in first + second] == lineage.ids
        assert [r.id for r in client.pool(lineage.pool).iter_rows(page_rows=7)] == lineage.ids
        assert client.target(lineage.target).show().dependants.feature_runs == [lineage.run]
        assert [r.id for r in client.target(lineage.target).rows()] == sorted(r.id for r in client.target(
            lineage.target).rows())

        run = client.feature_run(lineage.run).show()
        assert (run.status, run.created_by, run.dependants.graphs) == ("complete", f"{prefix}cur", [lineage.graph])
        assert lineage.run in [r.id for r in client.feature_runs(pool=lineage.pool)]
        graph = client.graph(lineage.graph).show()
        assert (graph.status, graph.dependants.jobs) == ("ready", [lineage.job])
        assert client.dataset(lineage.dataset).show().latest == 1


def test_a_wrong_name_says_which_exist(api_url, lineage, prefix):
    with _client(api_url, lineage.reader) as client:
        with pytest.raises(errors.NotFound, match=f"did you mean '{lineage.pool}'|{lineage.pool}"):
            client.pool(f"{prefix}pol").show()
        with pytest.raises(errors.NotFound, match=lineage.run):
            client.feature_run(lineage.run[:-1]).show()
        with pytest.raises(errors.NotFound, match=lineage.dataset):
            client.dataset(f"{prefix}dx").show()
        with pytest.raises(errors.NotFound, match=lineage.job):
            client.job(lineage.job[:-1] + "x")


def test_roles_and_lineage_guard_every_delete(api_url, store, lineage):
    before = _export(store, lineage)
    with _client(api_url, lineage.reader) as reader, pytest.raises(errors.NotAllowed, match="role 'reader'"):
        reader.pool(lineage.pool).delete(force=True)
    with _client(api_url, lineage.other) as other, pytest.raises(errors.NotAllowed, match="only its maker"):
        other.graph(lineage.graph).delete(force=True)
    with _client(api_url, lineage.curator) as curator:
        for handle in (curator.pool(lineage.pool), curator.target(lineage.target),
                       curator.feature_run(lineage.run), curator.graph(lineage.graph)):
            with pytest.raises(errors.Conflict, match=f"version {lineage.dataset} v1") as refused:
                handle.delete()
            assert f"job {lineage.job}" in str(refused.value)
        assert curator.pool(lineage.pool).show().status == "ready"  # nothing was touched

        report = curator.pool(lineage.pool).delete(force=True)
    assert report.outcome == "deleted" and report.removed["memberships"] == 40
    assert (report.removed["rows"], report.kept["rows"]) == (30, 10)  # the version's rows stay
    (run,) = report.cascaded
    assert (run.kind, run.outcome, run.removed["files"]) == ("feature run", "tombstone", 4)
    assert [(g.name, g.outcome) for g in run.cascaded] == [(lineage.graph, "tombstone")]

    assert _export(store, lineage) == before  # the version exports as it did
    assert datasets.describe(store, lineage.dataset, 1).feature_run == lineage.run
    job = jobs.get(store, lineage.job)
    assert (job.feature_run, job.graph) == (lineage.run, lineage.graph)  # lineage still resolves
    with _client(api_url, lineage.reader) as client:
        with pytest.raises(errors.NotFound):
            client.pool(lineage.pool).show()
        tomb = client.feature_run(lineage.run).show()
        assert (tomb.status, tomb.deleted_by) == ("deleted", lineage_name(store, lineage.curator))
        assert client.graph(lineage.graph).show().status == "deleted"
        assert client.feature_run(lineage.run).show().dependants.graphs == []
    assert FeatureStore.from_settings(get_settings()).files.keys(f"features/{lineage.run}") == []
    with _client(api_url, lineage.curator) as curator:  # deleting a tombstone again changes nothing
        assert curator.feature_run(lineage.run).delete(force=True).outcome == "already deleted"


def lineage_name(store, token: str) -> str:
    return auth.authenticate(store, token).name


def test_admins_delete_anything_and_targets_keep_the_runs(api_url, store, lineage):
    with _client(api_url, lineage.other) as other, pytest.raises(errors.NotAllowed):
        other.target(lineage.target).delete(force=True)
    with _client(api_url, lineage.admin) as admin:
        report = admin.target(lineage.target).delete(force=True)
        assert (report.outcome, report.removed["rows"]) == ("deleted", 3)
        assert lineage.target not in [t.name for t in admin.targets()]
        assert admin.feature_run(lineage.run).show().status == "complete"  # a target delete keeps the run
    assert datasets.describe(store, lineage.dataset, 1).targets == [lineage.target]


def test_rest_names_match_the_client(api_url, lineage):
    headers = {"Authorization": f"Bearer {lineage.curator}"}
    with httpx.Client(base_url=api_url, headers=headers) as web:
        page = web.get(f"/pools/{lineage.pool}/rows", params={"offset": 38, "limit": 5}).json()
        assert (page["total"], [r["id"] for r in page["rows"]]) == (40, lineage.ids[38:])
        refused = web.delete(f"/graphs/{lineage.graph}")
        assert refused.status_code == 409 and "dependants" in refused.json()["error"]["message"]
        deleted = web.delete(f"/graphs/{lineage.graph}", params={"force": "true"}).json()
        assert (deleted["outcome"], deleted["removed"]["edges"]) == ("tombstone", 160)
        assert web.get(f"/graphs/{lineage.graph}").json()["status"] == "deleted"
        assert web.get("/pools/nope-x/rows").status_code == 404


def test_cli_lists_shows_pages_and_deletes(api_url, lineage, prefix):
    def cli(*args: str, token: str = lineage.curator) -> subprocess.CompletedProcess:
        env = {**os.environ, "GRADWALK_API_URL": api_url, "GRADWALK_API_TOKEN": token}
        return subprocess.run([str(Path(sys.executable).with_name("gradwalk")), *args], capture_output=True,
                              text=True, env=env, timeout=120, check=False)

    listed = cli("pool", "list")
    assert listed.returncode == 0 and lineage.pool in listed.stdout
    shown = cli("pool", "show", lineage.pool)
    assert "pool.jsonl" in shown.stdout and "skipped:" in shown.stdout and f"version {lineage.dataset} v1" in shown.stdout
    page = json.loads(cli("pool", "rows", lineage.pool, "--limit", "3", "--json").stdout)
    assert [r["id"] for r in page["rows"]] == lineage.ids[:3]
    assert lineage.run in cli("features", "list", "--pool", lineage.pool).stdout
    assert lineage.graph in cli("graph", "show", lineage.graph).stdout
    assert lineage.graph in cli("job", "show", lineage.job).stdout
    assert "v1" in cli("dataset", "show", lineage.dataset).stdout
    typo = cli("pool", "show", f"{prefix}pol")
    assert typo.returncode == 3 and lineage.pool in typo.stderr
    refused = cli("features", "delete", lineage.run)
    assert refused.returncode == 4 and f"graph {lineage.graph}" in refused.stderr
    assert cli("graph", "delete", lineage.graph, "--force", token=lineage.reader).returncode == 5
    deleted = cli("features", "delete", lineage.run, "--force", "--json")
    assert json.loads(deleted.stdout)["cascaded"][0]["name"] == lineage.graph
    assert cli("target", "delete", lineage.target, "--force").returncode == 0


_KILLABLE = """
import sys
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access.auth import Principal
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.catalog import deletion
from gradwalk.settings import get_settings

with GraphStore.connect(get_settings()) as store:
    deletion.delete_collection(store, "pool", sys.argv[1], features=FeatureStore(get_settings().artifacts),
                               caller=Principal("test-admin", "admin"), force=True, batch=1)
"""


def test_a_delete_killed_halfway_is_finished_by_the_next(api_url, store, lineage):
    big = f"{lineage.pool}-big"
    pools.import_pool(store, big, records(big, 1500), created_by=lineage_name(store, lineage.curator))
    store.write("MATCH (i:Instruction) WHERE i.id IN $ids MATCH (p:Pool {name: $name}) MERGE (i)-[:IN_POOL]->(p)",
                {"ids": lineage.chosen, "name": big})  # the version's rows are in this pool too
    before = _export(store, lineage)
    members = "MATCH (:Instruction)-[r:IN_POOL]->(:Pool {name: $name}) RETURN count(r) AS n"
    total = store.read(members, {"name": big})[0]["n"]
    child = subprocess.Popen([sys.executable, "-c", _KILLABLE, big], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while (left := store.read(members, {"name": big})[0]["n"]) > total - 20:
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert 0 < left < total
    assert store.read("MATCH (p:Pool {name: $name}) RETURN p.status AS s", {"name": big})[0]["s"] == "deleting"
    with _client(api_url, lineage.curator) as curator:
        assert curator.pool(big).show().status == "deleting"
        with pytest.raises(errors.Conflict, match="being deleted"):
            pools.import_pool(store, big, records(big, 3))
        report = curator.pool(big).delete()  # no --force needed: the first delete decided
        assert report.outcome == "deleted" and 0 < report.removed["memberships"] < total
        with pytest.raises(errors.NotFound):
            curator.pool(big).show()
    assert store.read(members, {"name": big})[0]["n"] == 0
    assert _export(store, lineage) == before
    kept = store.read("MATCH (i:Instruction) WHERE i.id IN $ids RETURN count(i) AS n", {"ids": lineage.chosen})
    assert kept[0]["n"] == len(lineage.chosen)
