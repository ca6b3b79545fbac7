"""The REST API served by uvicorn against the session's Neo4j, Redis and workers, driven through
plain HTTP and the Python client: tokens, read-only Cypher, datasets, jobs."""

from __future__ import annotations

import json

import httpx
import pytest

from gradwalk import errors
from gradwalk.platform.access import auth
from gradwalk.platform.interfaces.client import Client, JobFailed
from gradwalk.platform.versions import datasets, exports

pytestmark = pytest.mark.services


def http(api_url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api_url, headers=headers, timeout=60)


def publish(store, dataset: str, ids: list[str], job_id: str) -> int:
    rows = [{"instruction_id": i, "rank": r, "component": None, "step": None, "score": None}
            for r, i in enumerate(ids)]
    return datasets.publish(store, dataset, rows, job_id=job_id, lineage={})


def graph_fingerprint(store) -> dict:
    return store.read("MATCH (n) WITH count(n) AS nodes OPTIONAL MATCH ()-[r]->() "
                      "RETURN nodes, count(r) AS rels, COUNT { (x:X) } AS x")[0]


def test_health_and_schema_need_no_token(api_url):
    with http(api_url) as web:
        assert web.get("/health").json()["status"] == "ok"
        schema = web.get("/openapi.json").json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {"submit_job", "get_job", "cancel_job", "list_jobs", "list_datasets", "list_versions", "get_rows",
            "export_version", "diff_versions", "run_cypher", "upload_pool", "import_pool_from_path",
            "list_feature_runs", "list_graphs"} <= operations


@pytest.mark.parametrize("path", ["/datasets", "/jobs", "/pools", "/feature-runs", "/graphs"])
def test_no_token_is_401(api_url, path):
    with http(api_url) as web:
        response = web.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "gradwalk token create" in response.json()["error"]["message"]


def test_tokens_are_hashed_and_revocable(api_url, store, prefix):
    name = f"{prefix}token"
    token = auth.create(store, name)
    [stored] = store.read("MATCH (t:ApiToken {name: $n}) RETURN t {.*} AS t", {"n": name})
    assert stored["t"]["hash"] == auth.hash_token(token) and token not in json.dumps(stored, default=str)
    with http(api_url, token) as web:
        assert web.get("/datasets").status_code == 200
        assert http(api_url, token + "x").get("/datasets").status_code == 401
        auth.revoke(store, name)
        assert web.get("/datasets").status_code == 401
    with pytest.raises(errors.Conflict, match="exists already"):
        auth.create(store, name)
    assert next(t for t in auth.list_tokens(store) if t["name"] == name)["revoked_at"]


WRITES = [
    "CREATE (:X {probe: 1})",
    "MERGE (:X {probe: 1})",
    "MATCH (p:ApiProbe) SET p.value = 'changed'",
    "MATCH (p:ApiProbe) DELETE p",
    "MATCH (p:ApiProbe) DETACH DELETE p",
    "MATCH (p:ApiProbe) REMOVE p.value",
    "MATCH (p:ApiProbe) REMOVE p:ApiProbe",
    "LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line",
    "MATCH (p:ApiProbe) CALL { CREATE (:X {probe: 2}) } RETURN p",
    "MATCH (p:ApiProbe) CALL (p) { SET p.value = 'changed' } RETURN p",
    "UNWIND [1] AS i CALL { CREATE (:X) } IN TRANSACTIONS RETURN i",
    "MATCH (p:ApiProbe) FOREACH (i IN [1] | CREATE (:X))",
    "CALL db.createLabel('X')",
    "CALL dbms.listConfig()",
    "CALL `dbms`.`showCurrentUser`()",
    "RETURN apoc.version()",
    "USE system SHOW USERS",
    "SHOW TRANSACTIONS",
    "TERMINATE TRANSACTIONS 'neo4j-transaction-1'",
    "create (:X)",
    "MATCH (p:ApiProbe) /* a comment */ SET p.value = 'changed'",
]


def test_cypher_endpoint_refuses_writes_and_changes_nothing(api_url, api_token, store, prefix):
    store.write("MERGE (p:ApiProbe {name: $n}) SET p.value = 'original'", {"n": prefix})
    before = graph_fingerprint(store)
    with http(api_url, api_token) as web:
        for query in WRITES:
            response = web.post("/cypher", json={"query": query})
            assert response.status_code in (403, 422), (query, response.text)
            assert response.json()["error"]["message"], query
    assert graph_fingerprint(store) == before
    assert store.read("MATCH (p:ApiProbe {name: $n}) RETURN p.value AS v", {"n": prefix}) == [{"v": "original"}]


def test_neo4j_itself_refuses_a_hidden_write_in_the_read_transaction(store):
    """The second guard: without the pre-check, the READ transaction refuses a subquery write."""
    before = graph_fingerprint(store)
    for query in ("CALL { CREATE (:X) } RETURN 1", "MATCH (p:ApiProbe) SET p.value = 'changed'"):
        with pytest.raises(errors.NotAllowed, match="read-only"):
            store.read(query)
    assert graph_fingerprint(store) == before


def test_cypher_reads_with_params_limit_and_timeout(client, collections):
    result = client.cypher("MATCH (i:Instruction)-[:IN_POOL]->(:Pool {name: $pool}) "
                           "RETURN i.id AS id, i.source AS source, datetime('2024-01-02T03:04:05Z') AS at",
                           {"pool": collections.pool}, limit=3)
    assert len(result) == 3 and result.truncated
    assert {row["id"] for row in result} <= set(collections.ids)
    assert result.rows[0]["at"].startswith("2024-01-02T03:04:05")
    labels = client.cypher("CALL db.labels() YIELD label RETURN collect(label) AS labels").rows[0]["labels"]
    assert "Instruction" in labels
    with pytest.raises(errors.InvalidInput, match="limit"):
        client.cypher("UNWIND range(1, 10) AS i RETURN i", limit=0)
    with pytest.raises(errors.InvalidInput, match="ran past its"):
        client.cypher("UNWIND range(1, 100000000) AS i WITH i WHERE i % 7 = 99 RETURN count(*) AS n",
                      timeout_s=0.5)
    with pytest.raises(errors.InvalidInput, match="Neo4j refused the query"):
        client.cypher("MATCH (n RETURN n")


def test_errors_are_json_a_person_can_act_on(api_url, api_token, prefix):
    with http(api_url, api_token) as web:
        missing = web.get(f"/datasets/{prefix}missing/versions")
        assert missing.status_code == 404
        assert missing.json() == {"error": {"type": "NotFound", "message": f"no dataset '{prefix}missing'"}}
        bad = web.post("/jobs", json={"pool": "p", "targets": [], "method": "random", "dataset": "d"})
        assert bad.status_code == 422 and "targets" in bad.json()["error"]["message"]
        assert web.get("/no-such-route").json()["error"]["type"] == "HTTPError"
        unknown_job = web.get("/jobs/job-nope")
        assert unknown_job.status_code == 404 and "job-nope" in unknown_job.json()["error"]["message"]


def test_datasets_through_the_api_and_client(client, store, collections, new_job, prefix, tmp_path):
    from datasets import load_from_disk

    name, ids = f"{prefix}ds", collections.ids
    publish(store, name, [ids[3], ids[0], ids[5]], new_job(name))
    publish(store, name, [ids[0], ids[8]], new_job(name, 1))

    dataset = client.dataset(name)
    assert [v.number for v in dataset.versions()] == [1, 2]
    assert any(d.name == name and d.latest == 2 for d in client.datasets())
    v1, v2 = dataset.version(1), dataset.latest()
    assert v1.info.content_hash == datasets.content_hash([ids[3], ids[0], ids[5]])
    assert [r.instruction_id for r in v1.rows(offset=1, limit=5)] == [ids[0], ids[5]]

    diff = v2.diff(1)
    assert (diff.added, diff.removed, diff.kept) == (1, 2, 1)
    assert (diff.added_ids, diff.removed_ids) == ([ids[8]], [ids[3], ids[5]])

    expected = list(datasets.iter_rows(store, name, 1))
    v1.to_jsonl(tmp_path / "v1.jsonl")
    assert [json.loads(line) for line in (tmp_path / "v1.jsonl").read_text().splitlines()] == [
        exports.training_record(r) for r in expected]
    hf_rows = [exports.hf_record(r) for r in expected]
    assert v1.to_hf(tmp_path / "hf").to_list() == hf_rows
    assert load_from_disk(str(tmp_path / "hf")).to_list() == hf_rows
    data_file = v1.to_llamafactory(tmp_path / "lf")
    assert json.loads(data_file.read_text()) == [{"messages": r["messages"]} for r in expected]


def test_published_version_cannot_be_altered_through_the_api(api_url, store, collections, new_job, prefix):
    api_token = auth.create(store, f"{prefix}admin", "admin")  # the version's job records no token
    name = f"{prefix}ds"
    publish(store, name, collections.ids[:3], new_job(name))
    before = datasets.describe(store, name, 1)
    path = f"/datasets/{name}/versions/1"
    with http(api_url, api_token) as web:
        refused = web.delete(path)
        assert refused.status_code == 403 and "immutable" in refused.json()["error"]["message"]
        for method in ("PUT", "PATCH"):
            assert web.request(method, path, json={"size": 0}).status_code == 405
            assert web.request(method, f"{path}/rows", json=[]).status_code == 405
        for query in ("MATCH (v:DatasetVersion {dataset: $d}) SET v.size = 0",
                      "MATCH (v:DatasetVersion {dataset: $d})-[c:CONTAINS]->() DELETE c",
                      "MATCH (v:DatasetVersion {dataset: $d}) CALL (v) { DETACH DELETE v }"):
            assert web.post("/cypher", json={"query": query, "params": {"d": name}}).status_code == 403

        retired = web.post(f"{path}/retire", json={"reason": "wrong target"}).json()
        assert (retired["status"], retired["retired_reason"]) == ("retired", "wrong target")
        assert web.post(f"{path}/retire", json={"reason": "again"}).status_code == 409
        rows = web.get(f"{path}/rows").json()["rows"]
    after = datasets.describe(store, name, 1)
    assert (after.size, after.content_hash, after.created_at) == (before.size, before.content_hash, before.created_at)
    assert [r["instruction_id"] for r in rows] == collections.ids[:3]


def test_pools_and_targets_through_the_client(client, settings, prefix, tmp_path):
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("".join(json.dumps({"prompt": f"{prefix} q{i}", "completion": f"a{i}"}) + "\n"
                                 for i in range(6)))
    report = client.import_pool(f"{prefix}pool", pool_file)
    assert (report.added, report.size, report.source) == (6, 6, "pool.jsonl")
    on_server = settings.import_root / f"{prefix}pool.jsonl"  # the server's import folder
    on_server.parent.mkdir(parents=True, exist_ok=True)
    on_server.write_bytes(pool_file.read_bytes())
    again = client.import_pool(f"{prefix}pool", on_server.name, on_server=True)
    assert (again.added, again.size) == (0, 6)
    with pytest.raises(errors.NotAllowed, match="import folder"):
        client.import_pool(f"{prefix}pool", pool_file, on_server=True)  # outside it
    assert client.import_target(f"{prefix}target", pool_file).size == 6
    assert any(p.name == f"{prefix}pool" and p.status == "ready" for p in client.pools())
    assert any(t.name == f"{prefix}target" for t in client.targets())
    with pytest.raises(errors.InvalidInput, match="no such file"):
        client.import_pool(f"{prefix}pool", "missing.jsonl", on_server=True)


def test_a_job_through_the_client_publishes_versions(client, collections, prefix):
    """End to end: the selection task on the cpu worker publishes through datasets.publish."""
    name = f"{prefix}ds"
    first = client.select(pool=collections.pool, target=collections.target, method="random", ratio=0.5,
                          dataset=name)
    assert first.info.status == "queued" and first.info.params == {"ratio": 0.5}
    assert first.wait(timeout=120).info.version == 1
    second = client.select(pool=collections.pool, target=collections.target, method="random", ratio=0.3,
                           seed=7, dataset=name).wait(timeout=120)
    assert second.info.version == 2

    v1, v2 = first.dataset_version(), second.dataset_version()
    assert (v1.info.size, v2.info.size, v1.info.job_id, v1.info.method) == (5, 3, first.id, "random")
    rows1 = [r.instruction_id for r in v1.rows(limit=100)]
    rows2 = [r.instruction_id for r in v2.rows(limit=100)]
    assert set(rows1) <= set(collections.ids) and len(set(rows1)) == 5
    diff = v2.diff(v1)
    assert diff.added_ids == [i for i in rows2 if i not in rows1]
    assert diff.removed_ids == [i for i in rows1 if i not in rows2]
    assert diff.kept == len(set(rows1) & set(rows2))
    assert [j.id for j in client.jobs(status="succeeded")][:2] == [second.id, first.id]


def test_a_failed_job_raises_the_servers_message(client, api_token, store, collections, prefix):
    from gradwalk.platform.work import jobs

    # Recorded (as the client's token's) but never queued, so no worker can finish it before the cancel arrives.
    job_id = jobs.create(store, jobs.JobRequest(pool=collections.pool, targets=[collections.target],
                                                method="random", dataset=f"{prefix}ds", params={"ratio": 0.5}),
                         created_by=auth.authenticate(store, api_token).name)
    job = client.job(job_id)
    job.cancel()
    assert job.status == "cancelled"
    with pytest.raises(JobFailed, match=f"job {job.id} cancelled"):
        job.wait(timeout=30)


def test_client_without_a_server_says_where_it_looked():
    with Client("http://127.0.0.1:9", "token") as nowhere, pytest.raises(errors.ServiceUnavailable,
                                                                        match="gradwalk api serve"):
        nowhere.datasets()


def test_cli_verbs(api_url, store, collections, new_job, prefix, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    def cli(*args: str, token: str | None = None, state: Path | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "GRADWALK_API_URL": api_url, "GRADWALK_API_TOKEN": token or ""}
        if state is not None:  # another state folder: no local admin token of `services up` in it
            env["GRADWALK_STATE_DIR"] = str(state)
        return subprocess.run([str(Path(sys.executable).with_name("gradwalk")), *args], capture_output=True,
                              text=True, env=env, timeout=120, check=False)

    created = cli("token", "create", f"{prefix}cli")
    assert created.returncode == 0 and "cannot be shown again" in created.stderr
    token = created.stdout.strip()
    assert auth.authenticate(store, token) == auth.Principal(f"{prefix}cli", "curator")
    reader = cli("token", "create", f"{prefix}cli-reader", "--role", "reader")
    assert reader.returncode == 0 and auth.authenticate(store, reader.stdout.strip()).role == "reader"
    assert cli("token", "create", f"{prefix}cli-bad", "--role", "owner").returncode == 2

    name = f"{prefix}ds"
    publish(store, name, collections.ids[:3], new_job(name))
    publish(store, name, collections.ids[1:4], new_job(name, 1))
    diff = cli("dataset", "diff", name, "1", "2", "--json", token=token)
    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout)["added_ids"] == [collections.ids[3]]
    exported = cli("dataset", "export", name, "2", "--format", "jsonl", "--out", str(tmp_path / "v2.jsonl"),
                   token=token)
    assert exported.returncode == 0 and len((tmp_path / "v2.jsonl").read_text().splitlines()) == 3

    refused = cli("cypher", "MATCH (n) DETACH DELETE n", token=token)
    assert (refused.returncode, refused.stderr.startswith("error: the Cypher endpoint is read-only")) == (5, True)
    assert cli("dataset", "list", state=tmp_path).returncode == 7  # no token at all
    assert cli("dataset", "list").returncode == 0  # none exported: this machine's local admin token
