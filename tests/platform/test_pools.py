"""Pool and target imports against the session's real Neo4j: counts, idempotence, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradwalk import errors
from gradwalk.platform.intake import pools
from gradwalk.platform.intake.ingest import read_records
from gradwalk.platform.intake.pools import import_pool, import_target

pytestmark = pytest.mark.services


def examples(tag: str, n: int, start: int = 0) -> list[dict]:
    return [{"prompt": f"{tag} question {i}", "completion": f"answer {i}"} for i in range(start, start + n)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def collection(store, label: str, name: str) -> dict | None:
    rows = store.read(f"MATCH (c:{label} {{name: $name}}) RETURN c {{.*}} AS c", {"name": name})
    return rows[0]["c"] if rows else None


def members(store, name: str) -> set[str]:
    rows = store.read("MATCH (i:Instruction)-[:IN_POOL]->(:Pool {name: $name}) RETURN i.id AS id",
                      {"name": name})
    return {row["id"] for row in rows}


def existing(store, records: list[dict]) -> set[str]:
    ids = [r.id for r in read_records(records).records]
    rows = store.read("MATCH (i:Instruction) WHERE i.id IN $ids RETURN i.id AS id", {"ids": ids})
    return {row["id"] for row in rows}


def test_import_counts_and_stored_form(store, prefix, tmp_path):
    records = examples(prefix, 5)
    path = write_jsonl(tmp_path / "pool.jsonl", [*records, records[0]])
    report = import_pool(store, f"{prefix}pool", path, batch_size=2)
    assert (report.records.read, report.records.imported, report.records.duplicates) == (6, 5, 1)
    assert (report.added, report.created, report.size) == (5, 5, 5)
    assert report.source == "pool.jsonl"
    assert "5 added" in report.summary()

    pool = collection(store, "Pool", f"{prefix}pool")
    assert pool["status"] == "ready" and pool["size"] == 5
    assert pool["last_import_id"] == report.import_id
    assert not {"import_id", "import_heartbeat", "import_new", "abandoned_imports"} & set(pool)
    [node] = store.read("MATCH (i:Instruction {id: $id}) RETURN i {.*} AS i",
                        {"id": read_records(records[:1]).records[0].id})
    assert json.loads(node["i"]["messages"]) == [
        {"role": "user", "content": f"{prefix} question 0"}, {"role": "assistant", "content": "answer 0"}]
    assert "source" not in node["i"]  # the records name no source; the file is the import's
    origins = store.read("MATCH (:Instruction {id: $id})-[o:ORIGIN]->(imp:Import) "
                         "RETURN imp.file AS file, imp.name AS name, o.at AS at ORDER BY at",
                         {"id": node["i"]["id"]})
    assert {(o["file"], o["name"]) for o in origins} == {("pool.jsonl", f"{prefix}pool")}
    assert [o["at"].rsplit(" ", 2)[1:] for o in origins] == [["line", "1"], ["line", "6"]]


def test_reimport_is_idempotent_and_appending_adds_only_new_rows(store, prefix, tmp_path):
    name = f"{prefix}pool"
    first = write_jsonl(tmp_path / "a.jsonl", examples(prefix, 4))
    import_pool(store, name, first)
    again = import_pool(store, name, first, batch_size=3)
    assert (again.added, again.created, again.size) == (0, 0, 4)

    more = write_jsonl(tmp_path / "b.jsonl", examples(prefix, 4, start=2))
    report = import_pool(store, name, more, source_label="second-batch")
    assert (report.added, report.created, report.size) == (2, 2, 6)
    assert len(members(store, name)) == 6


def test_pools_share_instructions(store, prefix):
    records = examples(prefix, 3)
    import_pool(store, f"{prefix}a", records)
    report = import_pool(store, f"{prefix}b", records[1:])
    assert (report.added, report.created) == (2, 0)
    rows = store.read("MATCH (i:Instruction)-[:IN_POOL]->(p:Pool) WHERE p.name STARTS WITH $p "
                      "RETURN i.id AS id, count(p) AS pools", {"p": prefix})
    assert sorted(row["pools"] for row in rows) == [1, 2, 2]


def test_target_import(store, prefix):
    report = import_target(store, f"{prefix}target", examples(prefix, 3), source_label="gsm8k")
    assert (report.kind, report.added, report.size) == ("target", 3, 3)
    assert collection(store, "Target", f"{prefix}target")["status"] == "ready"
    rows = store.read("MATCH (v:ValExample)-[:OF_TARGET]->(:Target {name: $name}) "
                      "RETURN DISTINCT v.source AS source", {"name": f"{prefix}target"})
    assert rows == [{"source": "gsm8k"}]


def test_invalid_input_touches_nothing(store, prefix, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [*examples(prefix, 3), {"prompt": "no answer"}])
    with pytest.raises(errors.InvalidInput, match=r"bad\.jsonl line 4: field 'completion' is missing"):
        import_pool(store, f"{prefix}pool", path)
    assert collection(store, "Pool", f"{prefix}pool") is None
    assert existing(store, examples(prefix, 3)) == set()

    report = import_pool(store, f"{prefix}pool", path, skip_invalid=True)
    assert (report.records.skipped, report.size) == (1, 3)
    with pytest.raises(errors.InvalidInput, match="pool name"):
        import_pool(store, "no spaces please", path)


class Interrupted(Exception):
    pass


def fail_after(batches: int):
    def progress(done: int, total: int) -> None:
        if done >= batches * 2:
            raise Interrupted(f"stopped at {done}/{total}")
    return progress


def test_a_failing_import_into_a_new_pool_leaves_nothing(store, prefix):
    records = examples(prefix, 9)
    with pytest.raises(Interrupted):
        import_pool(store, f"{prefix}pool", records, batch_size=2, progress=fail_after(2))
    assert collection(store, "Pool", f"{prefix}pool") is None
    assert existing(store, records) == set()


def test_a_failing_append_restores_the_pool_as_it_was(store, prefix):
    name = f"{prefix}pool"
    before = import_pool(store, name, examples(prefix, 4))
    shared = examples(f"{prefix}shared", 2)
    import_pool(store, f"{prefix}other", shared)
    state = collection(store, "Pool", name)

    new = examples(prefix, 6, start=4)
    with pytest.raises(Interrupted):
        import_pool(store, name, [*shared, *new], batch_size=2, progress=fail_after(3))
    assert collection(store, "Pool", name) == state
    assert members(store, name) == {r.id for r in read_records(examples(prefix, 4)).records}
    assert existing(store, new) == set()
    assert len(existing(store, shared)) == 2  # still in the other pool
    assert before.size == 4


def test_a_live_import_holds_the_name_and_a_stalled_one_is_taken_over(store, prefix):
    name = f"{prefix}pool"
    crashed = examples(prefix, 4)
    # An import that claimed the pool, wrote one batch and died without rolling back.
    job = pools._Import(store, pools.POOL_QUERIES, "pool", name, f"{prefix}crashed-import", 100,
                        {"file": "crashed.jsonl", "path": "crashed.jsonl"})
    job.claim(pools.DEFAULT_STALE_AFTER_S)
    job.write([pools._row(r, None) for r in read_records(crashed).records])
    assert store.read("MATCH (:Import {id: $id})<-[o:ORIGIN]-() RETURN count(o) AS n",
                      {"id": f"{prefix}crashed-import"}) == [{"n": 4}]
    assert collection(store, "Pool", name)["status"] == "importing"

    fresh = examples(prefix, 3, start=3)
    with pytest.raises(errors.Conflict, match="is being imported"):
        import_pool(store, name, fresh)
    report = import_pool(store, name, fresh, stale_after_s=0)
    assert (report.added, report.size) == (3, 3)
    assert members(store, name) == {r.id for r in read_records(fresh).records}
    assert existing(store, crashed[:3]) == set()
    assert store.read("MATCH (i:Import {id: $id}) RETURN count(i) AS n", {"id": f"{prefix}crashed-import"}) == [{"n": 0}]
    pool = collection(store, "Pool", name)
    assert pool["status"] == "ready" and "abandoned_imports" not in pool
    with pytest.raises(errors.Conflict, match="taken over"):
        job.finish()
