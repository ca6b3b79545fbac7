"""What an attacker with an ordinary token tried (issue 16), one test per class, against the
private stack's real API, Neo4j and workers: every attempt is refused with a 4xx that names why,
nothing outside the read allowlist runs, and no request answers 5xx or outlives its limit."""

from __future__ import annotations

import gzip
import http.server
import io
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from gradwalk.platform.access import auth, cypher_guard
from gradwalk.platform.intake import pools
from gradwalk.platform.interfaces.api import create_app
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import jobs

from .conftest import chat
from .test_security import graph_state, harmful, plan_operators

pytestmark = [pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]


def post_ascii(api: httpx.Client, path: str, body: object) -> httpx.Response:
    """POST ``body`` as ASCII JSON: lone surrogates travel as ``\\ud800`` escapes (httpx would
    refuse to encode them)."""
    return api.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})


def web(stack, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, timeout=120,
                        headers={"Authorization": f"Bearer {token or stack.token}"})


@pytest.fixture
def probe(stack):
    stack.store.write("MERGE (p:SecurityProbe) SET p.value = 'original'")
    return graph_state(stack)


@pytest.fixture
def listener() -> Iterator[dict]:
    """An http server on 127.0.0.1 that counts the requests it gets (and answers slowly)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            time.sleep(5)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"a,b\n1,2\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "hits": hits}
    finally:
        server.shutdown()


def attack_classes(url: str) -> dict[str, list[str]]:
    """The attacks of each class; ``\\u`` escapes are sent as the six characters, for Neo4j to decode."""
    return {
        "escaped keywords and quotes": [
            r"\u004cOAD CSV FROM 'file:///etc/passwd' AS l RETURN l",
            r"\u004coad csv FROM 'file:///etc/passwd' AS l RETURN l",
            r"\u0053HOW USERS", r"\u0053how \u0055sers", r"CALL dbms\u002elistConfig()",
            r"CALL \u0064bms.listConfig() YIELD name RETURN name", r"\u0043ALL db.clearQueryCaches()",
            r"RETURN '\u0027 AS x LOAD CSV FROM \u0027file:///etc/passwd' AS l RETURN l",
            r"RETURN '\'' AS q LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l",
            r"RETURN 'a\\' AS q // '" + "\nLOAD CSV FROM 'file:///etc/passwd' AS l RETURN l",
            r"\u0054ERMINATE TRANSACTIONS 'neo4j-transaction-1'", r"\u0055SE system SHOW USERS",
            r"\u0047RANT ROLE reader TO neo4j", "lOaD cSv FROM 'file:///etc/passwd' AS l RETURN l",
            "sHoW uSeRs", "WITH 1 AS a /* ' */ LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l",
        ],
        "SHOW with keyword-bearing clauses": [
            "SHOW SETTINGS YIELD name WHERE {index: 1}.index = 1 RETURN name",
            "SHOW USERS WHERE {index: 1}.index = 1", "SHOW DATABASES YIELD name WHERE {index: 1} IS NOT NULL",
            "SHOW SETTINGS YIELD * WHERE name CONTAINS 'index' RETURN name, value",
            "SHOW CONSTRAINTS", "SHOW INDEXES", "SHOW INDEX YIELD name", "SHOW PROCEDURES", "SHOW FUNCTIONS",
            "SHOW PRIVILEGES", "SHOW ROLES", "SHOW SERVERS", "SHOW ALIASES FOR DATABASE", "SHOW CURRENT USER",
        ],
        "LOAD CSV by file": [
            "LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l",
            "LOAD CSV WITH HEADERS FROM 'file:///etc/hostname' AS l RETURN l",
            "CALL () { LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l } RETURN l",
            "MATCH (n) WITH n LIMIT 1 LOAD CSV FROM 'file:///proc/self/environ' AS l RETURN l",
            "RETURN COUNT { LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l } AS n",
        ],
        "LOAD CSV by http": [
            f"LOAD CSV FROM '{url}/a.csv' AS l RETURN l",
            f"LOAD CSV WITH HEADERS FROM '{url}/b.csv' AS l RETURN l",
            rf"\u004cOAD CSV FROM '{url}/c.csv' AS l RETURN l",
            f"CALL () {{ LOAD CSV FROM '{url}/d.csv' AS l RETURN l }} RETURN l",
            f"UNWIND ['{url}/e.csv'] AS u LOAD CSV FROM u AS l RETURN l",
            "LOAD CSV FROM $url AS l RETURN l",
        ],
        "admin and dbms procedures": [
            "CALL dbms.listConfig()", "CALL dbms.listConnections()", "CALL dbms.queryJmx('*:*')",
            "CALL dbms.killConnection('bolt-1')", "CALL db.clearQueryCaches()", "CALL tx.setMetaData({a: 1})",
            "CALL dbms.showCurrentUser()", "CALL dbms.components()", "CALL db.createLabel('X')",
            "CALL db.labels() YIELD label CALL dbms.listConfig() YIELD name RETURN *",
            "CALL `dbms`.`listConfig`()", "call DBMS.LISTCONFIG()", "CALL db.awaitIndexes(1)",
            "CALL dbms.upgrade()", "CALL db.checkpoint()", "CALL db.prepareForReplanning()",
        ],
        "TERMINATE and SHOW TRANSACTIONS": [
            "SHOW TRANSACTIONS", "SHOW TRANSACTIONS YIELD transactionId, currentQuery RETURN *",
            "TERMINATE TRANSACTIONS 'neo4j-transaction-1'",
            "SHOW TRANSACTIONS YIELD transactionId AS id TERMINATE TRANSACTIONS id",
            "CALL dbms.listTransactions()", "CALL dbms.killTransaction('neo4j-transaction-1')",
            "CALL dbms.listQueries()", "CALL dbms.killQueries(['query-1'])",
        ],
    }


@pytest.mark.parametrize("kind", list(attack_classes("http://x")))
def test_each_attack_class_is_refused_with_a_reason(stack, probe, listener, kind):
    attacks = attack_classes(listener["url"])[kind]
    statuses = []
    with web(stack) as api:
        for query in attacks:
            answer = api.post("/cypher", json={"query": query, "params": {"url": f"{listener['url']}/p.csv"}})
            statuses.append(answer.status_code)
            assert answer.status_code in (403, 422), (query, answer.status_code, answer.text)
            assert len(answer.json()["error"]["message"]) > 20, query
            if answer.status_code == 403:  # refused by the plan: the message names what Neo4j planned
                assert "read-only" in answer.json()["error"]["message"], query
    assert listener["hits"] == []  # Neo4j fetched no URL
    assert graph_state(stack) == probe
    stack.record(fault=f"Cypher attack class: {kind}", runs=len(attacks),
                 outcome=f"{statuses.count(403)} refused by Neo4j's plan (403), {statuses.count(422)} "
                         "refused by Neo4j's parser (422); none ran", lost="nothing; no URL fetched")


def test_neo4j_itself_reads_no_file_and_fetches_no_url(stack, listener):
    """Defence in depth: even the stack's own driver (no API in between) cannot LOAD CSV."""
    from gradwalk import errors

    with pytest.raises(errors.InvalidInput, match="allow_csv_import_from_file_urls"):
        stack.store.read("LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l")
    with pytest.raises(errors.InvalidInput, match="blocked"):
        stack.store.read(f"LOAD CSV FROM '{listener['url']}/x.csv' AS l RETURN l")
    assert listener["hits"] == []


def test_deep_nesting_and_surrogates_get_4xx(stack):
    deep_param: object = 1
    for _ in range(100):
        deep_param = [deep_param]
    cases = [
        ({"query": "RETURN reduce(a = [], i IN range(1, 3000) | [a]) AS x"}, 413, "nested"),
        ({"query": "RETURN reduce(a = {}, i IN range(1, 100) | {a: a}) AS x"}, 413, "nested"),
        ({"query": "RETURN $x AS x", "params": {"x": deep_param}}, 413, "nested deeper than 32"),
        ({"query": "RETURN $x AS x", "params": {"\ud800": 1}}, 422, "surrogate"),
        ({"query": "RETURN $x AS x", "params": {"x": "\udfff"}}, 422, "surrogate"),
        ({"query": "RETURN $x AS x", "params": {"x": {"\ud800": [1]}}}, 422, "surrogate"),
        ({"query": "RETURN '\ud800' AS x"}, 422, "unicode"),
    ]
    with web(stack) as api:
        for body, status, words in cases:
            answer = post_ascii(api, "/cypher", body)
            assert answer.status_code in (status if isinstance(status, tuple) else (status,)), answer.text
            assert words in answer.json()["error"]["message"]
        # The same text elsewhere: a job's dataset name, a retire reason.
        for path, body in (("/jobs", {"pool": "p\ud800", "targets": ["t"], "method": "random",
                                      "dataset": "d\ud800", "params": {"ratio": 0.5}}),
                           ("/datasets/x/versions/1/retire", {"reason": "\ud800"})):
            answer = post_ascii(api, path, body)
            assert 400 <= answer.status_code < 500, (path, answer.text)
        nested = api.post("/jobs", content=b"[" * 100_000 + b"]" * 100_000,
                          headers={"Content-Type": "application/json"})
        assert 400 <= nested.status_code < 500, nested.text
    stack.record(fault="deep nesting (returned values 100-3,000 levels, parameters and bodies) and lone "
                       "surrogates (parameter keys and values, query text, other routes)",
                 runs=len(cases) + 3, outcome="413 naming the depth limit, or 422 naming the surrogate; no 500",
                 lost="nothing")


def test_a_query_neo4j_fails_on_internally_is_a_4xx(stack):
    """Neo4j 5.26 answers these (an escaped keyword at the end) with Neo.DatabaseError.General.UnknownError
    ("Index 12 out of bounds"): the query is at fault, so 422, not a 500 or a 503."""
    with web(stack) as api:
        for query in (r"RETURN 1 \u0043ALL", r"MATCH (n) \u0043ALL", r"WITH 1 AS n \u0043ALL"):
            answer = api.post("/cypher", json={"query": query})
            assert answer.status_code == 422, (query, answer.text)
            assert "Neo.DatabaseError" in answer.json()["error"]["message"]
    stack.record(fault="queries Neo4j fails on internally (Neo.DatabaseError)", runs=3, outcome="422 naming the code",
                 lost="nothing")


def bomb(inflated_mb: int) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as packed:
        chunk = b"\0" * (1 << 20)
        for _ in range(inflated_mb):
            packed.write(chunk)
    return out.getvalue()


def test_gzip_bombs_are_refused_at_once(stack, prefix):
    payload = bomb(50)
    assert len(payload) < 100_000  # ~50 KB that inflates to 50 MB
    with web(stack) as api:
        started = time.monotonic()
        answer = api.post(f"/pools/{prefix}bomb/upload", files={"file": ("pool.jsonl.gz", payload)})
        took = time.monotonic() - started
        assert answer.status_code == 413 and "GRADWALK_API_MAX_INFLATE_RATIO" in answer.json()["error"]["message"]
        assert took < 5, took
        good = gzip.compress(b"\n".join(
            json.dumps(chat(prefix, i)).encode() for i in range(20)) + b"\n")
        ok = api.post(f"/pools/{prefix}fine/upload", files={"file": ("pool.jsonl.gz", good)})
        assert ok.status_code == 200 and ok.json()["size"] == 20, ok.text
        truncated = api.post(f"/pools/{prefix}cut/upload", files={"file": ("pool.jsonl.gz", good[:-12])})
        assert truncated.status_code == 422 and "ends early" in truncated.json()["error"]["message"]
    assert stack.store.read("MATCH (p:Pool {name: $n}) RETURN p", {"n": f"{prefix}bomb"}) == []
    stack.record(fault="gzip bomb: 50 KB upload inflating to 50 MB; a truncated gzip", runs=2,
                 outcome=f"413 naming GRADWALK_API_MAX_INFLATE_RATIO after {took:.2f}s (was 44 s); 422 "
                         "'ends early'; a good gzip upload still imports",
                 lost="nothing written")


def test_huge_results_and_bodies_are_refused_with_the_limit(stack, prefix):
    settings = stack.settings
    with web(stack) as api:
        huge = api.post("/cypher", json={
            "query": "WITH reduce(s = 'x', i IN range(1, 12) | s + s) AS pad UNWIND range(1, 10000) AS i "
                     "RETURN i, pad", "limit": 10000})
        assert huge.status_code == 413, huge.text
        assert "GRADWALK_API_MAX_RESPONSE_BYTES" in huge.json()["error"]["message"]
        fits = api.post("/cypher", json={"query": "UNWIND range(1, 20000) AS i RETURN i", "limit": 10000})
        assert fits.status_code == 200 and len(fits.json()["rows"]) == 10000 and fits.json()["truncated"]
        long_query = api.post("/cypher", json={"query": "RETURN 1 AS x" + " " * 100_000})
        assert long_query.status_code == 422 and "100000" in long_query.json()["error"]["message"]
    # A body declared past the limit is refused before a byte of it is read (raw HTTP: clients
    # will not send a length they do not mean).
    with socket.create_connection(("127.0.0.1", settings.api_port), timeout=30) as raw:
        raw.sendall(f"POST /pools/{prefix}big/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stack.token}\r\n"
                    f"Content-Type: application/octet-stream\r\nContent-Length: {settings.api_max_body_bytes + 1}"
                    "\r\n\r\n".encode())
        reply = b"".join(iter(lambda: raw.recv(65536), b"")).decode()  # until the server closes
    assert reply.startswith("HTTP/1.1 413") and "GRADWALK_API_MAX_BODY_BYTES" in reply, reply
    stack.record(fault="huge answers and requests: a 41 MB Cypher result, a 100 KB query, a body declared "
                       "past the limit", runs=3,
                 outcome="413 naming GRADWALK_API_MAX_RESPONSE_BYTES / GRADWALK_API_MAX_BODY_BYTES, 422 naming the "
                         "query's 100,000-character limit; 10,000 small rows still answer",
                 lost="nothing")


def test_every_request_has_a_wall_time_limit(stack, listener):
    """An API of this stack with a 2 s request limit: a slow query is answered 408 at the limit,
    and the query's own timeout is carried to Neo4j (it stops there too)."""
    quick = stack.settings.model_copy(update={"api_request_timeout_s": 2.0})
    with TestClient(create_app(quick)) as api:
        api.headers["Authorization"] = f"Bearer {stack.token}"
        started = time.monotonic()
        answer = api.post("/cypher", json={"query": "UNWIND range(1, 10000000000) AS i WITH i WHERE i < 0 "
                                                    "RETURN count(*) AS n", "timeout_s": 10})
        took = time.monotonic() - started
    assert answer.status_code == 408 and "GRADWALK_API_REQUEST_TIMEOUT_S" in answer.json()["error"]["message"]
    assert took < 4, took
    with web(stack) as api:
        started = time.monotonic()
        answer = api.post("/cypher", json={"query": "UNWIND range(1, 10000000000) AS i WITH i WHERE i < 0 "
                                                    "RETURN count(*) AS n", "timeout_s": 1})
        took_query = time.monotonic() - started
    assert answer.status_code == 422 and "ran past its 1s limit" in answer.json()["error"]["message"]
    assert took_query < 5, took_query
    stack.record(fault="slow requests: a 10 s query against a 2 s request limit; a query past its own 1 s "
                       "timeout; LOAD CSV from a slow http server", runs=3,
                 outcome=f"408 naming GRADWALK_API_REQUEST_TIMEOUT_S after {took:.1f}s; 422 'ran past its 1s "
                         f"limit' after {took_query:.1f}s (Neo4j ends it); LOAD CSV refused before it runs",
                 lost="nothing")


def test_neo4j_ends_the_apis_own_queries_and_is_configured_to_limit_the_rest(stack):
    """The API's store carries its timeout to Neo4j with every transaction; Neo4j itself has a
    transaction timeout, file URLs off, every address blocked and the procedure allowlist."""
    from gradwalk import errors
    from gradwalk.graph.store.adapter import GraphStore

    with GraphStore.connect(stack.settings, timeout_s=1.0) as store:
        started = time.monotonic()
        with pytest.raises(errors.InvalidInput) as ended:
            store.read("UNWIND range(1, 10000000000) AS i WITH i WHERE i < 0 RETURN count(*) AS n")
        assert "TransactionTimedOut" in ended.value.__cause__.code
        assert time.monotonic() - started < 5
    settings = {row["name"]: row["value"] for row in stack.store.read(
        "SHOW SETTINGS YIELD name, value WHERE name IN $names RETURN name, value", {"names": [
            "db.transaction.timeout", "dbms.security.allow_csv_import_from_file_urls",
            "dbms.security.procedures.allowlist", "internal.dbms.cypher_ip_blocklist",
            "server.bolt.connection_keep_alive"]})}
    assert (stack.settings.neo4j_tx_timeout_s, settings["db.transaction.timeout"]) == (600, "10m")
    assert settings["dbms.security.allow_csv_import_from_file_urls"] == "false"
    allowed = set(re.split(r"[\s,\[\]]+", settings["dbms.security.procedures.allowlist"])) - {""}
    assert allowed == cypher_guard.READ_PROCEDURES, settings
    assert settings["server.bolt.connection_keep_alive"] == "10s"


# -- roles ----------------------------------------------------------------------------------------
@pytest.fixture
def people(stack, prefix) -> dict[str, tuple[str, str]]:
    """Tokens of each role: name -> (token name, secret)."""
    out = {}
    for who, role in (("reader", "reader"), ("alice", "curator"), ("bob", "curator"), ("root", "admin")):
        name = f"{prefix}{who}"
        out[who] = (name, auth.create(stack.store, name, role))
    return out


def _job_and_version(stack, prefix: str, owner: str, tag: str) -> tuple[str, str, str]:
    """A queued job and a published version, both made by token ``owner``."""
    pool, target = f"{prefix}{tag}-pool", f"{prefix}{tag}-target"
    pools.import_pool(stack.store, pool, [chat(pool, i) for i in range(4)])
    pools.import_target(stack.store, target, [chat(target, 0)])
    request = jobs.JobRequest(pool=pool, targets=[target], method="random", dataset=f"{prefix}{tag}",
                              params={"ratio": 0.5})
    queued = jobs.create(stack.store, request, created_by=owner)
    done = jobs.create(stack.store, request, created_by=owner)
    ids = [r["id"] for r in stack.store.read(
        "MATCH (i:Instruction)-[:IN_POOL]->(:Pool {name: $p}) RETURN i.id AS id ORDER BY id", {"p": pool})]
    datasets.publish(stack.store, f"{prefix}{tag}", [
        {"instruction_id": i, "rank": r, "component": None, "step": None, "score": None}
        for r, i in enumerate(ids[:2])], job_id=done, lineage={})
    return queued, f"{prefix}{tag}", pool


def test_a_reader_cannot_write_through_any_route(stack, people, prefix, probe):
    reader = people["reader"][1]
    job, dataset, pool = _job_and_version(stack, prefix, people["alice"][0], "r")
    before = graph_state(stack)
    attempts = [
        ("POST", f"/pools/{prefix}x/upload", {"files": {"file": ("p.jsonl", b'{"prompt": "a", "completion": "b"}\n')}}),
        ("POST", f"/targets/{prefix}x/upload", {"files": {"file": ("p.jsonl", b'{"prompt": "a", "completion": "b"}\n')}}),
        ("POST", f"/pools/{prefix}x/import", {"json": {"path": "x.jsonl"}}),
        ("POST", f"/targets/{prefix}x/import", {"json": {"path": "x.jsonl"}}),
        ("POST", "/jobs", {"json": {"pool": pool, "targets": ["t"], "method": "random", "dataset": "d",
                                    "params": {"ratio": 0.5}}}),
        ("POST", f"/jobs/{job}/cancel", {}),
        ("POST", f"/datasets/{dataset}/versions/1/retire", {"json": {"reason": "mine now"}}),
        ("DELETE", f"/datasets/{dataset}/versions/1", {}),
        ("DELETE", f"/pools/{pool}", {"params": {"force": "true"}}),
        ("POST", "/cypher", {"json": {"query": "MATCH (p:SecurityProbe) SET p.value = 'changed'"}}),
    ]
    with web(stack, reader) as api:
        for method, path, extra in attempts:
            answer = api.request(method, path, **extra)
            assert answer.status_code == 403, (method, path, answer.text)
        assert api.get(f"/jobs/{job}").json()["status"] == "queued"
        assert api.get(f"/datasets/{dataset}/versions/1").json()["status"] == "complete"
        assert api.post("/cypher", json={"query": "MATCH (p:SecurityProbe) RETURN p.value AS v"}).json()["rows"] == [
            {"v": "original"}]
    assert graph_state(stack) == before
    stack.record(fault="a reader token against every changing route (uploads, server imports, job submit and "
                       "cancel, retire, delete, a Cypher write)", runs=len(attempts),
                 outcome="403 naming the role each needs; reads and read-only Cypher answer", lost="nothing")


def test_curators_touch_only_their_own_work_and_admins_anything(stack, people, prefix):
    alice, bob, root = (people[who] for who in ("alice", "bob", "root"))
    job, dataset, _ = _job_and_version(stack, prefix, alice[0], "c")
    with web(stack, bob[1]) as api:
        refused_cancel = api.post(f"/jobs/{job}/cancel")
        refused_retire = api.post(f"/datasets/{dataset}/versions/1/retire", json={"reason": "not yours"})
    for answer in (refused_cancel, refused_retire):
        assert answer.status_code == 403 and alice[0] in answer.json()["error"]["message"], answer.text
    assert jobs.get(stack.store, job).status == "queued"
    with web(stack, alice[1]) as api:
        version = api.get(f"/datasets/{dataset}/versions/1").json()
        assert version["created_by"] == alice[0] and api.get(f"/jobs/{job}").json()["created_by"] == alice[0]
        assert api.post(f"/datasets/{dataset}/versions/1/retire", json={"reason": "mine"}).status_code == 200
    with web(stack, root[1]) as api:
        assert api.post(f"/jobs/{job}/cancel").json()["status"] == "cancelled"
    other_job, other_dataset, _ = _job_and_version(stack, prefix, bob[0], "d")
    with web(stack, root[1]) as api:
        assert api.post(f"/datasets/{other_dataset}/versions/1/retire", json={"reason": "admin"}).status_code == 200
    with web(stack, bob[1]) as api:
        assert api.post(f"/jobs/{other_job}/cancel").json()["status"] == "cancelled"
    stack.record(fault="a curator cancelling another's job and retiring another's version", runs=2,
                 outcome="403 naming the token that made it; its maker and an admin token may", lost="nothing")


def test_a_submitted_job_records_its_token(stack, people, prefix):
    alice = people["alice"]
    pools.import_pool(stack.store, f"{prefix}s-pool", [chat(prefix, i) for i in range(4)])
    pools.import_target(stack.store, f"{prefix}s-target", [chat(prefix, 9)])
    with web(stack, alice[1]) as api:
        answer = api.post("/jobs", json={"pool": f"{prefix}s-pool", "targets": [f"{prefix}s-target"],
                                         "method": "random", "dataset": f"{prefix}s", "params": {"ratio": 0.5}})
        assert answer.status_code == 202 and answer.json()["created_by"] == alice[0], answer.text


# -- the read-only endpoint still does its job ------------------------------------------------------
def documented_queries() -> list[str]:
    return re.findall(r"```cypher\n(.*?)```", (ROOT / "docs" / "cypher.md").read_text(), re.DOTALL)


def test_every_documented_query_still_answers(stack, prefix):
    queries = documented_queries()
    assert len(queries) >= 9
    params = {"graph": f"{prefix}g", "other_graph": f"{prefix}h", "id": "x", "dataset": f"{prefix}d",
              "version": 1, "pool": f"{prefix}p"}
    with web(stack) as api:
        for query in queries:
            answer = api.post("/cypher", json={"query": query, "params": params})
            assert answer.status_code == 200, (query, answer.text)
            assert harmful(plan_operators(stack, query)) == []


def test_the_migration_makes_old_tokens_admins(stack, prefix):
    name = f"{prefix}old-{uuid.uuid4().hex[:6]}"
    stack.store.write("CREATE (:ApiToken {name: $n, hash: $h, created_at: datetime()})", {"n": name, "h": name})
    from gradwalk.graph.store.migrations import discover

    [roles] = [m for m in discover() if m.version == 5]
    for statement in roles.statements:
        stack.store.write(statement)
    assert stack.store.read("MATCH (t:ApiToken {name: $n}) RETURN t.role AS r", {"n": name}) == [{"r": "admin"}]
