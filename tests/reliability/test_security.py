"""Security: the read-only Cypher endpoint cannot write or administer whatever the query; tokens
are hashed at rest and never logged; every endpoint but health and the API's own docs needs a
token; local services listen on loopback only and Neo4j wants its password; no secret is in the
repository and docker-compose.yml takes every secret from the environment."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import httpx
import neo4j
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from gradwalk import errors
from gradwalk.platform.access import auth, cypher_guard
from gradwalk.platform.interfaces.api import create_app

pytestmark = [pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
# The only routes without a token: liveness, and the API's description (no data in either). A
# version's parquet file by signed link takes the link instead (403 for one that is not valid).
PUBLIC = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


# -- tokens ---------------------------------------------------------------------------------------
def routes() -> list[tuple[str, str]]:
    """Every (method, path) the app serves: its OpenAPI operations and the routes of its own docs."""
    app = create_app()
    found = {(method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations}
    found |= {(method, route.path) for route in app.routes if isinstance(route, Route)
              for method in route.methods - {"HEAD"}}
    return sorted((method, re.sub(r"\{[^}]+\}", "1", path)) for method, path in found)  # valid as name or number


def test_the_route_list_is_complete():
    listed = routes()
    assert len(listed) >= 30 and ("POST", "/jobs") in listed and ("POST", "/cypher") in listed
    assert {path for _, path in listed} >= PUBLIC


@pytest.mark.parametrize(("method", "path"), routes())
def test_every_route_but_health_and_docs_needs_a_token(stack, method, path):
    with httpx.Client(base_url=stack.api_url, timeout=30) as web:
        for token in (None, "gw_not-a-token", stack.token + "x"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = web.request(method, path, headers=headers)
            if path in PUBLIC:
                assert answer.status_code == 200, (method, path)
                continue
            if path == "/ui" or path.startswith("/ui/"):  # pages: no session cookie, no data
                assert answer.status_code in (303, 307, 404), (method, path, token, answer.text)
                assert answer.status_code == 404 or answer.headers["location"].startswith("/ui/"), answer.headers
                assert token is None or token not in answer.text
                continue
            if "/signed/" in path:  # a version's file by signed link: the link, not a token, is checked
                assert answer.status_code == 403, (method, path, token, answer.text)
                assert token is None or token not in answer.text
                continue
            assert answer.status_code == 401, (method, path, token, answer.text)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert token is None or token not in answer.text  # a refused token is never echoed


def test_tokens_are_hashed_at_rest_and_never_logged(stack, prefix):
    token = auth.create(stack.store, f"{prefix}secret")
    with httpx.Client(base_url=stack.api_url, timeout=30) as web:
        assert web.get("/datasets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert web.get("/jobs", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    [row] = stack.store.read("MATCH (t:ApiToken {name: $n}) RETURN t {.*} AS t", {"n": f"{prefix}secret"})
    assert row["t"]["hash"] == auth.hash_token(token) and token not in str(row)
    # Nowhere on disk: Neo4j's store and transaction logs, Redis's append-only file, every log.
    secret = token.encode()
    holders = [p for p in stack.settings.state_dir.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert holders == []


# -- read-only Cypher -----------------------------------------------------------------------------
ATTACKS = [
    "CREATE (:X)", "MERGE (:X)", "MATCH (n) SET n.x = 1", "MATCH (n) DETACH DELETE n", "MATCH (n) REMOVE n.id",
    "EXPLAIN CREATE (:X)", "PROFILE MATCH (n) SET n.x = 1", "CYPHER 5 CREATE (:X)", "CYPHER runtime=slotted MERGE (:X)",
    "MATCH (n) WITH n LIMIT 1 CALL (n) { DETACH DELETE n }", "CALL { CREATE (:X) }", "CALL{CREATE(:X)}",
    "UNWIND [1] AS i CALL { CREATE (:X) } IN TRANSACTIONS OF 1 ROW",
    "FOREACH (i IN [1] | CREATE (:X))", "LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l",
    "CREATE USER mallory SET PASSWORD 'password1'", "ALTER USER neo4j SET PASSWORD 'password2'",
    "DROP USER neo4j", "SHOW USERS", "SHOW CURRENT USER", "SHOW DATABASES", "SHOW SETTINGS", "SHOW PROCEDURES",
    "SHOW FUNCTIONS", "SHOW PRIVILEGES", "SHOW TRANSACTIONS", "SHOW SERVERS", "STOP DATABASE neo4j",
    "CREATE DATABASE x", "DROP DATABASE neo4j", "CREATE INDEX x FOR (n:X) ON (n.x)", "DROP INDEX x",
    "DROP CONSTRAINT instruction_id", "TERMINATE TRANSACTIONS 'neo4j-transaction-1'", "USE system SHOW USERS",
    "CALL dbms.listConfig()", "CALL dbms.security.createUser('m', 'password1', false)",
    "CALL dbms.killQueries(['x'])", "CALL db.clearQueryCaches()", "CALL db.createLabel('X')",
    "CALL db.createProperty('x')", "CALL db.createRelationshipType('X')", "CALL db.index.fulltext.drop('x')",
    "CALL tx.setMetaData({a: 1})", "CALL dbms.components()", "CALL `db`.`createLabel`('X')",
    "CALL db . createLabel('X')", "call DB.CREATELABEL('X')",
    "CALL db.labels() YIELD label CALL dbms.listConfig() YIELD name RETURN *",
    "CALL db.labels() YIELD label CREATE (:X {l: label})",
    "RETURN 1 // comment\rCREATE (:X)", "RETURN 1 // comment\u2028CREATE (:X)",
    "RETURN 1 // comment\u0085CREATE (:X)",
    # Neo4j ends a // comment at a lone \r: these ran a DBMS procedure before the check knew it.
    "WITH 1 AS a // x\rCALL dbms.listConfig() YIELD name RETURN name",
    "WITH 1 AS a // x\rCALL dbms.showCurrentUser() YIELD username RETURN username",
    "WITH 1 AS a // x\u2028CALL dbms.listConfig() YIELD name RETURN name",
    "MATCH (n) // x\rSET n.x = 1", "WITH 1 AS a // x\rCALL db.createLabel('X') RETURN a", "RETURN 1 /* a */ CREATE (:X)", "RETURN '\\'' AS q CREATE (:X)",
    "RETURN \"/*\" AS q CREATE (:X) // */", "RETURN 1 AS `x` CREATE (:X)", "MATCH (n) SET n += {x: 1}",
    "MATCH (n)\tSET\tn.x = 1", "MATCH (n)\u00a0SET n.x = 1", "MATCH (n)\u3000SET n.x = 1",
    "RETURN apoc.version()", "RETURN dbms.components()", "WITH 1 AS x CALL apoc.create.node(['X'], {}) YIELD node RETURN node",
    "MATCH (n) CALL (n) { SET n.x = 1 } IN TRANSACTIONS", "INSERT (:X)", "MATCH (n) FINISH",
    "MATCH (n) WHERE n.x = 1 WITH n ORDER BY n.x SET n.y = 2",
]

# Operators of Neo4j's plans that change data or the DBMS, or run a procedure.
_HARMFUL = re.compile(r"Create|Merge|Set|Remove|Delete|Foreach|LoadCSV|Procedure|Show|Terminate|Transaction|"
                      r"Admin|User|Database|Index|Constraint|Privilege|Role|Alias|Server", re.IGNORECASE)


def graph_state(stack) -> dict:
    """What a write or an administration command would change."""
    data = stack.store.read("MATCH (n) WITH count(n) AS nodes OPTIONAL MATCH ()-[r]->() "
                            "RETURN nodes, count(r) AS rels, COUNT { (x:X) } AS x")[0]
    data["schema"] = sorted(r["name"] for r in stack.store.read("SHOW INDEXES YIELD name"))
    data["probe"] = stack.store.read("MATCH (p:SecurityProbe) RETURN p.value AS v")
    with neo4j.GraphDatabase.driver(stack.settings.neo4j_uri, auth=(
            stack.settings.neo4j_user, stack.settings.neo4j_password.get_secret_value())) as driver:
        records, _, _ = driver.execute_query("SHOW USERS YIELD user RETURN collect(user) AS users", database_="system")
        data["users"] = sorted(records[0]["users"])
    return data


def plan_operators(stack, query: str) -> list[tuple[str, str]]:
    """(operator, details) of Neo4j's own plan of ``query``: what it would really do."""
    with neo4j.GraphDatabase.driver(stack.settings.neo4j_uri, auth=(
            stack.settings.neo4j_user, stack.settings.neo4j_password.get_secret_value())) as driver:
        try:
            _, summary, _ = driver.execute_query(f"EXPLAIN {query}", routing_=neo4j.RoutingControl.READ)
        except neo4j.exceptions.Neo4jError:
            return []  # Neo4j cannot plan it (so it cannot run it either)
    found, todo = [], [summary.plan]
    while todo:
        step = todo.pop()
        if step:
            found.append((step["operatorType"], str(step.get("args", {}).get("Details", ""))))
            todo += step.get("children", [])
    return found


def harmful(operators: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for operator, details in operators:
        if operator.startswith("ProcedureCall"):
            name = details.split("(", 1)[0].strip()
            if name not in cypher_guard.READ_PROCEDURES:
                out.append((operator, details))
        elif _HARMFUL.search(operator) and not operator.startswith(("NodeIndex", "NodeUniqueIndex", "Directed",
                                                                   "Undirected", "ProduceResults")):
            out.append((operator, details))
    return out


@pytest.fixture
def probe(stack, prefix):
    stack.store.write("MERGE (p:SecurityProbe) SET p.value = 'original'")
    return graph_state(stack)


def test_cypher_endpoint_neither_writes_nor_administers(stack, probe):
    accepted = []
    with httpx.Client(base_url=stack.api_url, timeout=60,
                      headers={"Authorization": f"Bearer {stack.token}"}) as web:
        for query in ATTACKS:
            answer = web.post("/cypher", json={"query": query})
            assert answer.status_code < 500, (query, answer.text)
            if answer.status_code == 200:
                accepted.append(query)
                assert harmful(plan_operators(stack, query)) == [], query
            else:
                assert answer.status_code in (403, 422) and answer.json()["error"]["message"], query
    assert graph_state(stack) == probe
    stack.record(fault=f"Cypher endpoint: {len(ATTACKS)} write/administration attacks", runs=1,
                 outcome=f"{len(ATTACKS) - len(accepted)} refused (403/422); {len(accepted)} ran as harmless reads "
                         f"(Neo4j's plan: no write, no procedure): {accepted}",
                 lost="nothing changed (nodes, edges, schema, users)")


FRAGMENTS = [
    "MATCH (n)", "RETURN n", "RETURN 1", "WITH n", "CREATE (:X)", "SET n.x = 1", "MERGE (:X)", "DELETE n",
    "DETACH", "REMOVE n.x", "CALL", "{", "}", "(", ")", "db.labels()", "db.createLabel('X')", "dbms.listConfig()",
    "apoc.create.node(['X'], {})", "YIELD label", "SHOW", "USERS", "INDEXES", "TERMINATE", "TRANSACTIONS",
    "LOAD CSV FROM 'file:///etc/passwd' AS l", "USE system", "FOREACH (i IN [1] | CREATE (:X))", "UNWIND [1] AS i",
    "'", '"', "`", "\\", "//", "/*", "*/", "\n", "\r", "\u2028", "\u0085", "\t", " ", ":", ".", "$x", "set", "create",
    "`CREATE`", "n.create", "{create: 1}", "EXPLAIN", "PROFILE", "CYPHER 5", "IN TRANSACTIONS", "OPTIONAL MATCH (m)",
    "WHERE n.x = 'a'", "ORDER BY n.x", "LIMIT 1", "AS x", "x", ",", "|", "-[r]->", "()",
    # Neo4j decodes \u escapes before it parses: keywords, quotes, dots and comment marks in disguise.
    r"\u004cOAD CSV FROM 'file:///etc/passwd' AS l", r"\u0053HOW", r"\u0053how \u0055sers", r"\u0027", r"\u0022",
    r"\u0060", r"\u002f\u002f", r"\u002f*", r"*\u002f", r"dbms\u002elistConfig()", r"\u0043ALL", r"\u0054ERMINATE",
    r"\u0055SE system", r"\\", r"\'", "SHOW TRANSACTIONS", "TERMINATE TRANSACTIONS 'neo4j-transaction-1'",
    "SHOW SETTINGS", "WHERE {index: 1}.index = 1", "YIELD *", "LOAD CSV FROM 'http://127.0.0.1:9/x' AS l",
    "LOAD CSV FROM $x AS l", "CALL () {", "RETURN l", "dbms.killConnection('x')", "tx.setMetaData({})",
    "db.clearQueryCaches()", "/* ' */", "// '\n",
]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=10), joiner=st.sampled_from([" ", "", "\n"]))
def test_fuzzed_cypher_that_runs_is_a_plain_read(stack, probe, parts, joiner):
    """Query texts mixing keywords, \\u escapes, quotes and comments: whatever the endpoint runs,
    Neo4j's own plan of it shows no write, no administration, no LOAD CSV and no procedure outside
    the allowed schema listings, and every operator is on the read allowlist."""
    query = joiner.join(parts)
    try:
        cypher_guard.run(stack.store, query, {"x": 1}, limit=5, timeout_s=5)
    except (errors.InvalidInput, errors.NotAllowed):
        return
    operators = plan_operators(stack, query)
    assert harmful(operators) == [], query
    assert {op.split("@")[0].split("(")[0] for op, _ in operators} <= cypher_guard.READ_OPERATORS, query


def test_fuzzed_cypher_changed_nothing(stack, probe):
    """Runs after the fuzz above in this module: the graph, its schema and users are as they were."""
    assert graph_state(stack) == probe


# -- services ---------------------------------------------------------------------------------------
def _listening() -> dict[int, tuple[str, int]]:
    """Socket inode -> (address, port) of every listening TCP socket on this machine."""
    out = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if family == socket.AF_INET:
                address = socket.inet_ntop(family, raw[::-1])
            else:
                address = socket.inet_ntop(family, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            out[int(fields[9])] = (address, int(hex_port, 16))
    return out


def _sockets_of(pid: int) -> set[int]:
    inodes = set()
    for task in [pid, *(int(p.name) for p in Path(f"/proc/{pid}/task").iterdir())]:
        for fd in Path(f"/proc/{task}/fd").glob("*"):
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int(proc.joinpath("stat").read_text().split(") ", 1)[1].split()[1]) == pid:
                    out.append(int(proc.name))
            except (OSError, IndexError):
                continue
    return out


def test_local_services_listen_on_loopback_only(stack):
    listening = _listening()
    seen = {}
    for service in stack.services:
        pid = service.pid()
        assert pid is not None, service.name
        for process in [pid, *_children(pid)]:
            for inode in _sockets_of(process) & set(listening):
                seen.setdefault(service.name, []).append(listening[inode])
    assert {"neo4j", "redis", "api"} <= set(seen), seen  # each of them listens somewhere
    for name, addresses in seen.items():
        assert all(address in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for address, _ in addresses), (name, addresses)
    assert {port for _, port in seen["neo4j"]} == {stack.settings.neo4j_address[1]}  # Bolt only, no HTTP


def test_neo4j_wants_its_password_and_redis_is_protected(stack):
    for credentials in (("neo4j", "wrong-password"), ("neo4j", ""), None):
        with neo4j.GraphDatabase.driver(stack.settings.neo4j_uri, auth=credentials) as driver, \
                pytest.raises((neo4j.exceptions.AuthError, neo4j.exceptions.ClientError)):
            driver.verify_connectivity()
    config = stack.redis_client().config_get("*")
    assert config["bind"].split()[0] == "127.0.0.1" and config["protected-mode"] == "yes"
    assert config["appendonly"] == "yes" and config["appendfsync"] == "always"


def test_production_refuses_the_local_password():
    from gradwalk.settings import LOCAL_DEV_PASSWORD, Settings

    with pytest.raises(ValueError, match="GRADWALK_NEO4J_PASSWORD must be set"):
        Settings(env="production", neo4j_password=LOCAL_DEV_PASSWORD)
    with pytest.raises(ValueError, match="at least 8 characters"):
        Settings(neo4j_password="short")


# -- the repository ---------------------------------------------------------------------------------
SECRET_PATTERNS = {
    "private key": re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS key": re.compile(rb"AKIA[0-9A-Z]{16}"),
    "GitHub token": re.compile(rb"gh[pousr]_[A-Za-z0-9]{30,}"),
    "gradwalk API token": re.compile(rb"gw_[A-Za-z0-9_-]{40,}"),
    "hard-coded password": re.compile(rb"""(?i)(password|passwd|secret|api_key)["']?\s*[:=]\s*["'][^"'$\s{]{6,}["']"""),
    "credentials in a URL": re.compile(rb"(?i)(redis|bolt|neo4j|https?)://[^/\s:@]+:[^/\s@$]{4,}@"),
}
# The documented loopback-only default, refused by GRADWALK_ENV=production (settings.py).
ALLOWED = {b'LOCAL_DEV_PASSWORD = "gradwalk-local-dev"'}


def test_no_secret_in_the_repository():
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    found = []
    for name in filter(None, listed):
        path = ROOT / name.decode()
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        for line in path.read_bytes().splitlines():
            if any(allowed in line for allowed in ALLOWED):
                continue
            found += [(name.decode(), kind) for kind, pattern in SECRET_PATTERNS.items() if pattern.search(line)]
    assert found == []


def test_docker_compose_takes_every_secret_from_the_environment():
    compose = (ROOT / "docker-compose.yml").read_text()
    secrets = re.findall(r"(?im)^\s*([A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|CREDENTIAL)[A-Z0-9_]*|[A-Z0-9_]*_AUTH):\s*(.+)$",
                         compose)  # S3PROXY_AUTHORIZATION names a scheme, not a secret
    assert secrets, "docker-compose.yml names no secret at all?"
    for name, value in secrets:
        assert re.search(r"\$\{GRADWALK_[A-Z0-9_]+:\?", value), (name, value)  # required, never defaulted
    assert "127.0.0.1:8790:8790" in compose  # the API is published on loopback only
