"""Fuzzing: the REST API with schemathesis against its own OpenAPI schema (with a valid token,
loopback only), and the importers with hypothesis against the real Neo4j. No 500s; an import
either lands whole or leaves nothing behind."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from gradwalk import errors
from gradwalk.platform.intake import pools
from gradwalk.platform.interfaces.api import create_app

pytestmark = [pytest.mark.services]

# The schema is the app's own, read without starting it; requests go to the stack's live server.
schema = schemathesis.openapi.from_dict(create_app().openapi())
EXAMPLES = 12  # per operation: about 25 operations, a few hundred requests in all


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_never_fails_with_a_server_error(case, stack):
    response = case.call(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:  # every error is gradwalk's JSON shape, with a message
        assert response.json()["error"]["message"]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=6)
texts = st.text(max_size=8)
roles = st.sampled_from(["system", "user", "assistant", "robot", ""])
records = st.one_of(
    st.builds(lambda q, a: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
              texts, texts),
    st.builds(lambda turns: {"messages": [{"role": r, "content": c} for r, c in turns]},
              st.lists(st.tuples(roles, texts | st.integers()), max_size=4)),
    st.builds(lambda i, o: {"instruction": i, "output": o}, texts | json_values, texts | json_values),
    st.builds(lambda p, c, i: {"prompt": p, "completion": c, "id": i}, texts, texts, st.integers(0, 2) | st.none()),
    json_values,
)
files = st.one_of(
    st.lists(records.map(lambda r: json.dumps(r).encode()) | st.binary(max_size=30), max_size=6).map(b"\n".join),
    st.lists(records, max_size=6).map(lambda rs: json.dumps(rs).encode()),
    st.binary(max_size=200),
)


def _counts(store) -> dict:
    return store.read("MATCH (n:Instruction) WITH count(n) AS nodes MATCH (p:Pool) "
                      "RETURN nodes, count(p) AS pools, COUNT { ()-[:IN_POOL]->() } AS edges")[0]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=files, suffix=st.sampled_from([".jsonl", ".json"]), skip=st.booleans(), existing=st.booleans())
def test_fuzz_import_lands_whole_or_leaves_nothing(stack, data, suffix, skip, existing):
    store = stack.store
    name = f"fz{uuid.uuid4().hex[:10]}"
    if existing:  # appending to a pool that holds a row already
        pools.import_pool(store, name, [{"prompt": f"{name} seed", "completion": "kept"}])
    before = _counts(store)
    size_before = 1 if existing else 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            report = pools.import_pool(store, name, path, skip_invalid=skip, max_record_bytes=300)
        except errors.InvalidInput as e:
            assert str(e).startswith(str(path)), e  # names the file (and the line)
            assert _counts(store) == before
            found = store.read("MATCH (p:Pool {name: $n}) RETURN p.status AS status, p.size AS size", {"n": name})
            assert found == ([{"status": "ready", "size": 1}] if existing else [])
            return
    pool = store.read("MATCH (p:Pool {name: $n}) RETURN p.status AS status, p.size AS size, "
                      "COUNT { ()-[:IN_POOL]->(p) } AS members", {"n": name})[0]
    assert pool["status"] == "ready" and pool["size"] == pool["members"] == report.size
    assert report.size == size_before + report.added
    assert report.records.read == report.records.imported + report.records.duplicates + report.records.skipped
