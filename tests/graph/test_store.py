"""The graph store against the session's real Neo4j over Bolt."""

from __future__ import annotations

import pytest

from gradwalk import errors


def test_write_read_round_trip(store, prefix):
    store.write("CREATE (:Instruction {id: $id, messages: $m, source: 'test'})",
                {"id": f"{prefix}a", "m": '[{"role": "user", "content": "hi"}]'})
    rows = store.read("MATCH (n:Instruction {id: $id}) RETURN n.id AS id, n.source AS source",
                      {"id": f"{prefix}a"})
    assert rows == [{"id": f"{prefix}a", "source": "test"}]


def test_duplicate_id_is_refused_by_the_constraint(store, prefix):
    store.write("CREATE (:Instruction {id: $id})", {"id": f"{prefix}dup"})
    with pytest.raises(errors.Conflict, match="already exists"):
        store.write("CREATE (:Instruction {id: $id})", {"id": f"{prefix}dup"})
    assert store.read("MATCH (n:Instruction {id: $id}) RETURN count(n) AS n", {"id": f"{prefix}dup"}) == [{"n": 1}]


def test_batched_writes_are_idempotent(store, prefix):
    rows = [{"id": f"{prefix}{i}", "source": "batch"} for i in range(1234)]
    query = "UNWIND $rows AS row MERGE (n:Instruction {id: row.id}) SET n.source = row.source"
    batches: list[int] = []
    assert store.write_rows(query, rows, batch_size=500, on_batch=batches.append) == 1234
    assert batches == [500, 500, 234]
    store.write_rows(query, rows, batch_size=500)  # a retried import changes nothing
    count = store.read("MATCH (n:Instruction) WHERE n.id STARTS WITH $p RETURN count(n) AS n", {"p": prefix})
    assert count == [{"n": 1234}]


def test_read_mode_refuses_writes(store, prefix):
    with pytest.raises(errors.NotAllowed):
        store.read("CREATE (:Instruction {id: $id})", {"id": f"{prefix}ro"})
    assert store.read("MATCH (n:Instruction {id: $id}) RETURN n", {"id": f"{prefix}ro"}) == []


def test_read_limit_and_bad_query(store):
    assert store.read("UNWIND range(1, 100) AS i RETURN i", limit=3) == [{"i": 1}, {"i": 2}, {"i": 3}]
    with pytest.raises(errors.InvalidInput, match="Neo4j refused the query"):
        store.read("MATCH (n RETURN n")


def test_wrong_password_is_a_clear_error(services, settings):
    from gradwalk.graph.store.adapter import GraphStore

    wrong = settings.model_copy(update={"neo4j_password": type(settings.neo4j_password)("not-the-password")})
    with pytest.raises(errors.ServiceUnavailable, match="GRADWALK_NEO4J_PASSWORD"):
        GraphStore.connect(wrong)
