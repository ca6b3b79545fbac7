"""A record's own fields (id, source, metadata) from the file to Neo4j and back out of every export."""

from __future__ import annotations

import json

import pytest

from gradwalk import errors
from gradwalk.platform.intake.ingest import read_records
from gradwalk.platform.intake.pools import import_pool
from gradwalk.platform.versions import datasets, exports


def shaped(tag: str) -> list[dict]:
    """One record of each input shape, each with its own id, source and other fields."""
    return [
        {"id": f"{tag}-alpaca", "source": "alpaca/v1", "instruction": f"{tag} add", "input": "2 and 3",
         "output": "5", "category": "math", "difficulty": 2},
        {"id": 17, "source": "sharegpt/chat", "conversations": [
            {"from": "human", "value": f"{tag} hello"}, {"from": "gpt", "value": "hi"}],
         "lang": "en", "turn_scores": [0.5, 1.0]},
        {"id": f"{tag}-msg", "source": "oasst/en", "messages": [
            {"role": "user", "content": f"{tag} why"}, {"role": "assistant", "content": "because"}],
         "meta": {"nested": {"deep": [1, "two", None]}}, "quality": 0.75},
        {"id": f"{tag}-pc", "source": "synthetic/pc", "prompt": f"{tag} capital of France?",
         "completion": "Paris", "tags": ["geo"], "flag": True},
    ]


def own_fields(records) -> dict[str, tuple]:
    return {r.id: (r.original_id, r.source, r.metadata) for r in records}


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --- reading (no services) ----------------------------------------------------------------------

def test_each_shape_keeps_its_own_fields():
    got = [(r.shape, r.original_id, r.source, r.metadata) for r in read_records(shaped("t")).records]
    assert got == [
        ("alpaca", "t-alpaca", "alpaca/v1", {"category": "math", "difficulty": 2}),
        ("sharegpt", 17, "sharegpt/chat", {"lang": "en", "turn_scores": [0.5, 1.0]}),
        ("messages", "t-msg", "oasst/en", {"meta": {"nested": {"deep": [1, "two", None]}}, "quality": 0.75}),
        ("prompt_completion", "t-pc", "synthetic/pc", {"flag": True, "tags": ["geo"]}),
    ]
    bare = read_records([{"prompt": "p", "completion": "c"}]).records[0]
    assert (bare.original_id, bare.source, bare.metadata_json) == (None, None, None)


def test_an_exported_record_reads_back_with_the_same_fields():
    records = read_records(shaped("t")).records
    rows = [{"instruction_id": r.id, "rank": i, "messages": r.messages, "component": 0, "step": i,
             "score": None, "original_id": r.original_id, "source": r.source, "metadata": r.metadata}
            for i, r in enumerate(records)]
    back = read_records([exports.training_record(row) for row in rows]).records
    assert own_fields(back) == own_fields(records)
    hf = read_records([exports.hf_record(row) for row in rows]).records  # string ids, JSON-string metadata
    assert own_fields(hf) == {k: (None if v[0] is None else str(v[0]), *v[1:])
                              for k, v in own_fields(records).items()}


def test_metadata_over_the_limit_is_refused_by_line_and_field(tmp_path):
    big = {"prompt": "q2", "completion": "a2", "id": "r2", "notes": "x" * 70_000, "tag": "t"}
    path = write_jsonl(tmp_path / "big.jsonl", [{"prompt": "q1", "completion": "a1"}, big])
    with pytest.raises(errors.InvalidInput,
                       match=r"big\.jsonl line 2: field 'notes' is 70,002 bytes: the record's metadata is "
                             r"70,\d{3} bytes, over the limit of 65,536 \(max_metadata_bytes\)"):
        read_records(path)
    batch = read_records(path, skip_invalid=True)
    assert (batch.report.imported, batch.report.skipped) == (1, 1)
    assert read_records(path, max_metadata_bytes=100_000).report.imported == 2


@pytest.mark.parametrize(("record", "message"), [
    ({"prompt": "q", "completion": "a", "source": 3}, "field 'source' must be a string, got a number"),
    ({"prompt": "q", "completion": "a", "score": float("nan")}, "field 'score' cannot be kept as metadata"),
    ({"prompt": "q", "completion": "a", "lang": "en", "metadata": {"lang": "fr"}},
     "field 'lang' is given both at the top level and in 'metadata'"),
])
def test_bad_own_fields_are_refused_by_name(record, message):
    with pytest.raises(errors.InvalidInput, match=rf"records\[0\]: {message}"):
        read_records([record])


# --- through Neo4j ------------------------------------------------------------------------------

def publish_all(store, new_job, name: str, ids: list[str]) -> int:
    rows = [{"instruction_id": i, "rank": r, "component": r % 2, "step": r, "score": None}
            for r, i in enumerate(ids)]
    return datasets.publish(store, name, rows, job_id=new_job(name), lineage={})


def stored(store, ids: list[str]) -> dict[str, tuple]:
    found = store.read("MATCH (i:Instruction) WHERE i.id IN $ids "
                       "RETURN i.id AS id, i.original_id AS oid, i.source AS source, i.metadata AS m", {"ids": ids})
    return {r["id"]: (r["oid"], r["source"], json.loads(r["m"]) if r["m"] else {}) for r in found}


def test_round_trip_import_select_export_reimport(store, collections, new_job, prefix, tmp_path):
    from datasets import load_from_disk

    records = shaped(prefix)
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    import_pool(store, f"{prefix}mixed", path)
    expected = own_fields(read_records(records).records)
    ids = list(expected)
    assert stored(store, ids) == expected

    name = f"{prefix}ds"
    publish_all(store, new_job, name, ids)
    rows = datasets.rows(store, name, 1)
    assert {r["instruction_id"]: (r["original_id"], r["source"], r["metadata"]) for r in rows} == expected
    assert [(c.source, c.rows) for c in datasets.describe(store, name, 1).source_mix] == [
        (s, 1) for s in sorted(v[1] for v in expected.values())]

    out = datasets.export(store, name, 1, "jsonl", tmp_path / "v1.jsonl")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[1]["gradwalk"] == {"instruction_id": ids[1], "rank": 1, "component": 1, "step": 1, "score": None}
    assert (lines[1]["id"], lines[1]["source"], lines[1]["metadata"]) == expected[ids[1]]
    report = import_pool(store, f"{prefix}again", out)
    assert (report.added, report.created) == (4, 0)  # the same rows ...
    assert own_fields(read_records(out).records) == expected  # ... with the same fields
    assert stored(store, ids) == expected

    datasets.export(store, name, 1, "hf", tmp_path / "hf")
    table = load_from_disk(str(tmp_path / "hf"))
    assert table.column_names == ["messages", "id", "source", "metadata", "gradwalk"]
    hf_back = own_fields(read_records(tmp_path / "hf").records)
    assert hf_back == {k: (str(v[0]), *v[1:]) for k, v in expected.items()}

    data_file = datasets.export(store, name, 1, "llamafactory", tmp_path / "lf")
    assert json.loads(data_file.read_text()) == [{"messages": r["messages"]} for r in rows]
    sidecar = [json.loads(line) for line in (tmp_path / "lf" / f"{name}-v1.origins.jsonl").read_text().splitlines()]
    assert [(s["instruction_id"], s["rank"], s["id"], s["source"], s["metadata"]) for s in sidecar] == [
        (i, rank, *expected[i]) for rank, i in enumerate(ids)]


def test_the_same_messages_from_two_sources_keep_both_origins(store, prefix, tmp_path):
    messages = [{"role": "user", "content": f"{prefix} shared"}, {"role": "assistant", "content": "same"}]
    first = write_jsonl(tmp_path / "first.jsonl", [{"id": "a-1", "source": "set-a", "messages": messages,
                                                    "split": "train"}])
    second = write_jsonl(tmp_path / "second.jsonl", [{"prompt": "other", "completion": "row"},
                                                     {"id": 9, "source": "set-b", "messages": messages}])
    import_pool(store, f"{prefix}a", first)
    report = import_pool(store, f"{prefix}b", second)
    assert (report.added, report.created) == (2, 1)
    import_pool(store, f"{prefix}b", second)  # the same records again add no origin

    [record] = read_records(first).records
    origins = store.read("""
        MATCH (i:Instruction {id: $id})-[o:ORIGIN]->(imp:Import)
        RETURN imp.name AS pool, imp.file AS file, o.original_id AS id, o.source AS source, o.at AS at
        ORDER BY source""", {"id": record.id})
    assert [(o["pool"], o["file"], o["id"], o["source"]) for o in origins] == [
        (f"{prefix}a", "first.jsonl", "a-1", "set-a"), (f"{prefix}b", "second.jsonl", 9, "set-b")]
    assert origins[1]["at"].endswith("second.jsonl line 2")
    assert stored(store, [record.id])[record.id] == ("a-1", "set-a", {"split": "train"})  # the first origin's


def test_a_failed_import_leaves_no_origin_behind(store, prefix):
    records = [{"id": i, "source": "s", "prompt": f"{prefix} q{i}", "completion": "a"} for i in range(4)]

    def boom(done: int, total: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        import_pool(store, f"{prefix}pool", records, batch_size=2, progress=boom)
    assert store.read("MATCH (imp:Import {name: $n}) RETURN count(imp) AS n", {"n": f"{prefix}pool"}) == [{"n": 0}]
    ids = [r.id for r in read_records(records).records]
    assert stored(store, ids) == {}


# --- selecting from part of a pool ---------------------------------------------------------------

def test_a_job_selects_from_the_named_sources_only(client, store, collections, prefix):
    pool = f"{prefix}parts"
    records = [{"prompt": f"{prefix} q{i}", "completion": f"a{i}", "source": "A" if i < 6 else "B"}
               for i in range(10)]
    import_pool(store, pool, records)
    job = client.select(pool=pool, target=collections.target, method="random", ratio=0.5, seed=3,
                        dataset=f"{prefix}ds", sources=["B"]).wait(timeout=120)
    assert job.info.sources == ["B"]
    version = job.dataset_version()
    assert version.info.size == 2  # floor(4 * 0.5): the ratio counts the part, not the pool
    assert [(c.source, c.rows) for c in version.info.source_mix] == [("B", 2)]
    assert {r.source for r in version.rows()} == {"B"}
    assert version.info.lineage["sources"] == ["B"] and version.info.lineage["candidates"] == 4
    with pytest.raises(errors.InvalidInput, match=r"has no rows from 'C'; its sources include 'A', 'B'"):
        client.select(pool=pool, target=collections.target, method="random", ratio=0.5,
                      dataset=f"{prefix}ds", sources=["B", "C"])


def test_cli_submits_by_source_and_shows_sources(api_url, api_token, store, collections, prefix):
    import os
    import subprocess
    import sys
    from pathlib import Path

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "GRADWALK_API_URL": api_url, "GRADWALK_API_TOKEN": api_token}
        return subprocess.run([str(Path(sys.executable).with_name("gradwalk")), *args], capture_output=True,
                              text=True, env=env, timeout=180, check=False)

    pool = f"{prefix}parts"
    import_pool(store, pool, [{"prompt": f"{prefix} q{i}", "completion": "a", "id": f"r{i}",
                               "source": ["A", "B", "C"][i % 3]} for i in range(9)])
    name = f"{prefix}ds"
    submitted = cli("job", "submit", "--pool", pool, "--target", collections.target, "--dataset", name,
                    "--method", "random", "--ratio", "1.0", "--source", "A", "--source", "C", "--wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["sources"] == ["A", "C"]
    shown = cli("dataset", "rows", name, "1")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sorted(r["source"] for r in rows) == ["A"] * 3 + ["C"] * 3
    assert {r["original_id"] for r in rows} == {f"r{i}" for i in range(9) if i % 3 != 1}
    listed = cli("dataset", "versions", name)
    assert "sources: A 3 (50%), C 3 (50%)" in listed.stdout


def test_the_migration_moves_the_old_file_name_to_import_provenance(store, prefix):
    from gradwalk.graph.store.migrations import discover

    record = {"id": "r1", "source": "set-a", "prompt": f"{prefix} old", "completion": "row"}
    [old] = read_records([record]).records
    pool, import_id = f"{prefix}old", f"{prefix}imp"
    store.write("CREATE (i:Instruction {id: $id, messages: $m, source: 'old.jsonl', import_id: $imp})"
                "-[:IN_POOL {import_id: $imp}]->(:Pool {name: $pool, status: 'ready', size: 1})",
                {"id": old.id, "m": old.messages_json, "imp": import_id, "pool": pool})
    [fields] = [m for m in discover() if m.name == "record_fields"]
    for _ in range(2):  # a second run changes nothing
        for statement in fields.statements:
            store.write(statement)
    assert stored(store, [old.id]) == {old.id: (None, None, {})}
    assert store.read("MATCH (:Instruction {id: $id})-[o:ORIGIN]->(imp:Import) "
                      "RETURN imp.id AS id, imp.file AS file, imp.name AS name, imp.kind AS kind",
                      {"id": old.id}) == [{"id": import_id, "file": "old.jsonl", "name": pool, "kind": "pool"}]
    import_pool(store, pool, [record])  # importing the file again brings the record's own fields back
    assert stored(store, [old.id]) == {old.id: ("r1", "set-a", {})}
