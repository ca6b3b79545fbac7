"""Bad input through the API: every bad file, name and parameter gets a 4xx whose message names
what is wrong (file, line, field or parameter), and nothing is written."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = [pytest.mark.services]

GOOD = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def line(record: object) -> bytes:
    return json.dumps(record).encode() + b"\n"


# (case, file bytes, words the message must hold)
BAD_FILES = [
    ("malformed JSON line", line(GOOD) + b'{"messages": [\n', ["line 2", "not valid JSON"]),
    ("missing field", line({"instruction": "do it"}), ["line 1", "'output'", "missing"]),
    ("empty messages", line({"messages": []}), ["line 1", "'messages'", "must not be empty"]),
    ("empty content", line({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]}),
     ["line 1", "messages[0].content", "non-empty string"]),
    ("wrong type", line({"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "a"}]}),
     ["line 1", "messages[0].content", "got a number"]),
    ("wrong role", line({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]}),
     ["line 1", "messages[0].role", "'robot'"]),
    ("no answer", line({"messages": [{"role": "user", "content": "q"}]}), ["line 1", "end with an assistant"]),
    ("huge record", line({"prompt": "x" * 1_200_000, "completion": "a"}), ["line 1", "huge record"]),
    ("non-UTF-8 bytes", line(GOOD) + b'{"prompt": "caf\xe9", "completion": "a"}\n', ["line 2", "not valid UTF-8"]),
    ("duplicate ids", line({**GOOD, "id": 1}) + line({"prompt": "other", "completion": "b", "id": 1}),
     ["line 2", "'id' repeats 1", "line 1"]),
    ("not an object", line(GOOD) + b"[1, 2]\n", ["line 2", "must be a JSON object"]),
    ("empty file", b"", ["no records found"]),
    ("unknown shape", line({"text": "hello"}), ["line 1", "unknown shape"]),
]


def fingerprint(store) -> dict:
    return store.read("RETURN COUNT { (n) WHERE n:Instruction OR n:Pool OR n:Target OR n:ValExample "
                      "OR n:SelectionJob OR n:Dataset OR n:DatasetVersion } AS nodes, "
                      "COUNT { ()-[:IN_POOL|OF_TARGET|USED]->() } AS edges")[0]


@pytest.fixture
def web(stack):
    with httpx.Client(base_url=stack.api_url, timeout=60,
                      headers={"Authorization": f"Bearer {stack.token}"}) as client:
        yield client


@pytest.mark.parametrize(("case", "data", "words"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
@pytest.mark.parametrize("kind", ["pool", "target"])
def test_a_bad_file_is_refused_by_line_and_field_and_writes_nothing(stack, web, prefix, kind, case, data, words):
    before = fingerprint(stack.store)
    name = f"{prefix}{kind}"
    answer = web.post(f"/{kind}s/{name}/upload", files={"file": ("bad.jsonl", data)})
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("bad.jsonl") or "bad.jsonl" in message, message
    for word in words:
        assert word in message, (word, message)
    assert web.get(f"/{kind}s/{name}").status_code == 404
    assert fingerprint(stack.store) == before


def test_a_bad_record_in_an_existing_pool_changes_nothing(stack, web, crafted):
    run = crafted(6)
    before = web.get(f"/pools/{run.pool}").json()
    answer = web.post(f"/pools/{run.pool}/upload",
                      files={"file": ("more.jsonl", line({"prompt": "new", "completion": "x"}) + b"{oops\n")})
    assert answer.status_code == 422 and "more.jsonl line 2" in answer.json()["error"]["message"]
    assert web.get(f"/pools/{run.pool}").json() == before


@pytest.fixture
def ready(crafted):
    return crafted(10)


def bad_jobs(run) -> list[tuple[str, dict, int, list[str]]]:
    base = {"pool": run.pool, "targets": [run.target], "method": "random", "dataset": "d",
            "params": {"ratio": 0.5}}
    return [
        ("unknown pool", {**base, "pool": "no-such-pool"}, 404, ["pool 'no-such-pool'"]),
        ("unknown target", {**base, "targets": ["no-such-target"]}, 404, ["target 'no-such-target'"]),
        ("unknown method", {**base, "method": "magic"}, 422, ["'magic'", "g2is"]),
        ("unknown graph", {**base, "method": "g2is", "graph": "no-such-graph"}, 404, ["'no-such-graph'"]),
        ("unknown feature run", {**base, "method": "less", "feature_run": "fr-nope"}, 404, ["'fr-nope'"]),
        ("ratio above 1", {**base, "params": {"ratio": 1.5}}, 422, ["ratio", "(0, 1]", "1.5"]),
        ("ratio zero", {**base, "params": {"ratio": 0}}, 422, ["ratio", "(0, 1]"]),
        ("ratio negative", {**base, "params": {"ratio": -0.1}}, 422, ["ratio", "-0.1"]),
        ("ratio a string", {**base, "params": {"ratio": "half"}}, 422, ["ratio must be a number", "'half'"]),
        ("ratio a boolean", {**base, "params": {"ratio": True}}, 422, ["ratio must be a number"]),
        ("seed negative", {**base, "params": {"ratio": 0.5, "seed": -3}}, 422, ["seed", "-3"]),
        ("seed a float", {**base, "params": {"ratio": 0.5, "seed": 1.5}}, 422, ["seed", "1.5"]),
        ("missing ratio", {**base, "params": {}}, 422, ["needs the parameter ratio"]),
        ("unknown parameter", {**base, "params": {"ratio": 0.5, "temperature": 2}}, 422, ["temperature"]),
        ("delta above 1", {**base, "method": "g2is", "params": {"ratio": 0.5, "delta": 2}}, 422, ["delta", "[0, 1]"]),
        ("bad fallback", {**base, "method": "g2is", "params": {"ratio": 0.5, "fallback": "guess"}}, 422,
         ["fallback", "'strict'", "'guess'"]),
        ("anchor_pool zero", {**base, "method": "g2is", "params": {"ratio": 0.5, "anchor_pool": 0}}, 422,
         ["anchor_pool", "an integer >= 1"]),
        ("bad reduce", {**base, "method": "embedding", "params": {"ratio": 0.5, "reduce": "sum"}}, 422,
         ["reduce", "'sum'"]),
        ("no targets", {**base, "targets": []}, 422, ["targets"]),
        ("bad dataset name", {**base, "dataset": ""}, 422, ["dataset"]),
        ("extra field", {**base, "priority": 1}, 422, ["priority"]),
        ("params not an object", {**base, "params": [1]}, 422, ["params"]),
    ]


def test_bad_job_requests_name_the_problem_and_record_no_job(stack, web, ready):
    before = fingerprint(stack.store)
    for case, body, status, words in bad_jobs(ready):
        answer = web.post("/jobs", json=body)
        assert answer.status_code == status, (case, answer.text)
        message = answer.json()["error"]["message"]
        for word in words:
            assert word in message, (case, word, message)
    assert fingerprint(stack.store) == before


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "words"), [
    ("GET", "/datasets/no-such-dataset/versions", {}, 404, ["no dataset 'no-such-dataset'"]),
    ("GET", "/datasets/x/versions/0", {}, 422, ["version"]),
    ("GET", "/datasets/bad%20name/versions", {}, 422, ["name"]),
    ("GET", "/datasets/x/versions/1/rows", {"params": {"limit": 0}}, 422, ["limit"]),
    ("GET", "/datasets/x/diff", {"params": {"a": 1}}, 422, ["b"]),
    ("GET", "/jobs/job-nope", {}, 404, ["'job-nope'"]),
    ("GET", "/jobs", {"params": {"status": "sleeping"}}, 422, ["status"]),
    ("GET", "/pools/no-such-pool", {}, 404, ["no-such-pool"]),
    ("GET", "/graphs/no-such-graph", {}, 404, ["no-such-graph"]),
    ("GET", "/feature-runs/fr-nope", {}, 404, ["fr-nope"]),
    ("POST", "/cypher", {"json": {"query": "RETURN 1", "limit": 0}}, 422, ["limit"]),
    ("POST", "/cypher", {"json": {"query": "RETURN 1", "timeout_s": 1000}}, 422, ["timeout_s"]),
    ("POST", "/cypher", {"json": {"query": ""}}, 422, ["query"]),
    ("POST", "/cypher", {"json": {"query": "RETURN $x", "params": {"x": 2**70}}}, 422, ["64-bit"]),
    ("POST", "/pools/bad name!/upload", {"files": {"file": ("a.jsonl", line(GOOD))}}, 422, ["pool name"]),
    ("POST", "/pools/p/upload", {"files": {"file": ("a.jsonl", line(GOOD))}, "data": {"format": "csv"}}, 422,
     ["format"]),
])
def test_bad_requests_are_4xx_naming_the_problem(stack, web, method, path, kwargs, status, words):
    before = fingerprint(stack.store)
    answer = web.request(method, path, **kwargs)
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]["message"]
    for word in words:
        assert word in message, (word, message)
    assert fingerprint(stack.store) == before


def test_server_path_import_is_confined_to_the_import_folder(stack, web, prefix, tmp_path):
    """The API imports server files from its import folder only: no /etc/passwd, no '..', no link out."""
    root = stack.settings.import_root
    root.mkdir(parents=True, exist_ok=True)
    (root / "ok.jsonl").write_bytes(line(GOOD))
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(line({"prompt": "secret", "completion": "s"}))
    (root / "link.jsonl").symlink_to(outside)
    (root / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    before = fingerprint(stack.store)
    for path in ("/etc/passwd", str(outside), "../outside.jsonl", f"{root}/../outside.jsonl", "link.jsonl",
                 "linked-dir/outside.jsonl", str(root.parent)):
        answer = web.post(f"/pools/{prefix}p/import", json={"path": path})
        assert answer.status_code == 403, (path, answer.text)
        assert "import folder" in answer.json()["error"]["message"]
    assert fingerprint(stack.store) == before
    missing = web.post(f"/pools/{prefix}p/import", json={"path": "missing.jsonl"})
    assert missing.status_code == 422 and "no such file" in missing.json()["error"]["message"]
    for path in ("ok.jsonl", str(root / "ok.jsonl")):
        answer = web.post(f"/pools/{prefix}p/import", json={"path": path})
        assert answer.status_code == 200, answer.text
    assert web.get(f"/pools/{prefix}p").json()["size"] == 1
