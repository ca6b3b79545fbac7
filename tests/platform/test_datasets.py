"""Dataset versions against the session's real Neo4j: numbering (also concurrent), atomicity,
lineage, immutability, diff and exports."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from gradwalk import __version__, errors
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access import cypher_guard
from gradwalk.platform.intake.ingest import read_records
from gradwalk.platform.versions import datasets, exports

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]


def selection(ids: list[str], *, components: bool = False) -> list[dict]:
    """Rows for ``ids`` in this order: G2IS-like (component, step) or scored."""
    if components:
        return [{"instruction_id": i, "rank": r, "component": r % 2, "step": r // 2, "score": None}
                for r, i in enumerate(ids)]
    return [{"instruction_id": i, "rank": r, "component": None, "step": None, "score": 1.0 - r / 10}
            for r, i in enumerate(ids)]


def version_ids(store, dataset: str, version: int) -> list[str]:
    return [row["instruction_id"] for row in datasets.iter_rows(store, dataset, version)]


def staged_nodes(store, dataset: str) -> int:
    return store.read("MATCH (v:DatasetVersion {dataset: $d}) WHERE v.status = 'pending' RETURN count(v) AS n",
                      {"d": dataset})[0]["n"]


def test_publish_numbers_versions_and_records_lineage(store, collections, new_job, prefix):
    name = f"{prefix}ds"
    first_job, second_job = new_job(name), new_job(name, seed=1)
    rows = selection(collections.ids[:5], components=True)
    assert datasets.publish(store, name, rows, job_id=first_job,
                            lineage={"params": {"ratio": 0.5, "seed": 0}, "shortfall": 0}) == 1
    assert datasets.publish(store, name, selection(collections.ids[5:8]), job_id=second_job, lineage={}) == 2

    v1 = datasets.describe(store, name, 1)
    assert (v1.status, v1.size, v1.job_id) == ("complete", 5, first_job)
    assert v1.content_hash == datasets.content_hash(collections.ids[:5])
    assert (v1.method, v1.pool, v1.targets) == ("random", collections.pool, [collections.target])
    assert v1.params == {"ratio": 0.5, "seed": 0} and v1.lineage == {"shortfall": 0, "evaluations": []}
    assert v1.gradwalk_version == __version__ and v1.created_at
    assert datasets.describe(store, name, 2).params == {"ratio": 0.5, "seed": 1}  # the job's own
    assert store.read("MATCH (:Dataset {name: $d})-[:HAS_VERSION]->(v)-[:PRODUCED_BY]->(j:SelectionJob) "
                      "RETURN v.version AS v, j.id AS job ORDER BY v", {"d": name}) == [
        {"v": 1, "job": first_job}, {"v": 2, "job": second_job}]

    page = datasets.rows(store, name, 1, offset=1, limit=2)
    assert [(r["rank"], r["instruction_id"], r["component"], r["step"]) for r in page] == [
        (1, collections.ids[1], 1, 0), (2, collections.ids[2], 0, 1)]
    assert page[0]["messages"][-1] == {"role": "assistant", "content": f"{prefix}pool answer 1"}
    assert datasets.rows(store, name, 1, offset=10) == []

    # A redelivered job gets its version back instead of a new one.
    assert datasets.publish(store, name, rows, job_id=first_job, lineage={}) == 1
    assert [v.version for v in datasets.versions(store, name)] == [1, 2]
    assert {"name": name, "versions": 2, "latest": 2, "latest_complete": 2}.items() <= next(
        d for d in datasets.list_datasets(store) if d.name == name).model_dump().items()


def test_the_walk_trajectory_is_stored_and_queryable(store, collections, new_job, prefix):
    name, ids = f"{prefix}walked", collections.ids[:4]
    steps = [(None, "anchor"), (ids[0], "edge"), (ids[1], "fallback"), (None, "anchor")]
    rows = [{"instruction_id": i, "rank": r, "component": r // 3, "step": r % 3, "score": None,
             "predecessor": came_from, "reached_by": how} for r, (i, (came_from, how)) in enumerate(zip(ids, steps, strict=True))]
    datasets.publish(store, name, rows, job_id=new_job(name), lineage={})

    page = datasets.rows(store, name, 1)
    assert [(r["predecessor"], r["reached_by"]) for r in page] == steps
    documented = (ROOT / "docs" / "cypher.md").read_text().split("// The walk of one component as a path")[1]
    query = documented.split("\n", 1)[1].split("```")[0]
    walked = cypher_guard.run(store, query, {"dataset": name, "version": 1})
    assert [(r["step"], r["instruction"], r["came_from"], r["reached_by"]) for r in walked.rows] == [
        (0, ids[0], None, "anchor"), (1, ids[1], ids[0], "edge"), (2, ids[2], ids[1], "fallback")]
    with pytest.raises(errors.InvalidInput, match="row 1: predecessor"):
        datasets.publish(store, name, [rows[0], {**rows[1], "predecessor": 7}], job_id=new_job(name), lineage={})


def test_concurrent_publishes_get_consecutive_versions(settings, store, collections, new_job, prefix):
    name = f"{prefix}ds"
    job_ids = [new_job(name, seed=s) for s in range(4)]
    start = threading.Barrier(len(job_ids))
    got: list[int] = []
    failures: list[BaseException] = []

    def publish(job_id: str, offset: int) -> None:
        try:
            with GraphStore.connect(settings) as own:  # a driver of its own, like another worker
                start.wait()
                got.append(datasets.publish(own, name, selection(collections.ids[offset:offset + 4]),
                                            job_id=job_id, lineage={}, batch_size=1))
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=publish, args=(job, i)) for i, job in enumerate(job_ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    assert sorted(got) == [1, 2, 3, 4]
    published = {v.job_id: v for v in datasets.versions(store, name)}
    for i, job_id in enumerate(job_ids):
        assert version_ids(store, name, published[job_id].version) == collections.ids[i:i + 4]


def test_failed_publish_leaves_nothing_and_no_gap(store, collections, new_job, prefix):
    name = f"{prefix}ds"
    rows = selection([*collections.ids[:3], "0" * 64])  # the last instruction does not exist
    with pytest.raises(errors.NotFound, match="not in the graph"):
        datasets.publish(store, name, rows, job_id=new_job(name), lineage={}, batch_size=2)
    assert staged_nodes(store, name) == 0
    assert store.read("MATCH (d:Dataset {name: $d}) RETURN d", {"d": name}) == []
    with pytest.raises(errors.NotFound, match="no dataset"):
        datasets.versions(store, name)

    assert datasets.publish(store, name, selection(collections.ids[:3]), job_id=new_job(name), lineage={}) == 1


def test_an_error_before_commit_aborts_the_publish(store, collections, new_job, prefix):
    name = f"{prefix}ds"

    def cancelled() -> None:
        assert staged_nodes(store, name) == 1  # the rows are staged, not yet a version
        raise errors.Conflict("the job was cancelled")

    with pytest.raises(errors.Conflict, match="cancelled"):
        datasets.publish(store, name, selection(collections.ids[:3]), job_id=new_job(name), lineage={},
                         before_commit=cancelled)
    assert staged_nodes(store, name) == 0
    assert datasets.publish(store, name, selection(collections.ids[:3]), job_id=new_job(name), lineage={}) == 1


def test_a_crashed_publish_is_swept_by_the_next(store, collections, new_job, prefix):
    name = f"{prefix}ds"
    # What a publisher killed mid-way leaves: a pending, unnumbered version with some rows.
    store.write("CREATE (v:DatasetVersion {staging_id: $s, dataset: $d, status: 'pending', "
                "heartbeat: datetime() - duration('PT2H')}) WITH v "
                "MATCH (i:Instruction {id: $id}) CREATE (v)-[:CONTAINS {rank: 0}]->(i)",
                {"s": f"{prefix}crashed", "d": name, "id": collections.ids[0]})
    assert staged_nodes(store, name) == 1
    with pytest.raises(errors.NotFound):
        datasets.versions(store, name)  # invisible to readers

    assert datasets.publish(store, name, selection(collections.ids[:2]), job_id=new_job(name), lineage={}) == 1
    assert staged_nodes(store, name) == 0


@pytest.mark.parametrize(("rows", "message"), [
    ([], "nothing to publish"),
    ([{"instruction_id": "a", "rank": 0}, {"instruction_id": "a", "rank": 1}], "listed twice"),
    ([{"instruction_id": "a", "rank": 0}, {"instruction_id": "b", "rank": 0}], "rank 0 is given to two rows"),
    ([{"instruction_id": "a", "rank": -1}], "rank must be an integer >= 0"),
    ([{"instruction_id": "a", "rank": 0, "score": float("nan")}], "score must be a finite number"),
    ([{"instruction_id": "a", "rank": 0, "step": 1.5}], "step must be an integer or None"),
])
def test_bad_rows_are_refused_before_writing(store, new_job, prefix, rows, message):
    name = f"{prefix}ds"
    with pytest.raises(errors.InvalidInput, match=message):
        datasets.publish(store, name, rows, job_id=new_job(name), lineage={})
    assert staged_nodes(store, name) == 0


def test_publish_needs_a_known_job_and_a_valid_name(store, collections, new_job, prefix):
    with pytest.raises(errors.NotFound, match="no selection job"):
        datasets.publish(store, f"{prefix}ds", selection(collections.ids[:1]), job_id=f"{prefix}nojob", lineage={})
    with pytest.raises(errors.InvalidInput, match="dataset name"):
        datasets.publish(store, "bad name/", selection(collections.ids[:1]), job_id=new_job("x"), lineage={})


def test_published_version_is_immutable(store, collections, new_job, prefix):
    name = f"{prefix}ds"
    datasets.publish(store, name, selection(collections.ids[:4]), job_id=new_job(name), lineage={})
    before = datasets.describe(store, name, 1)

    with pytest.raises(errors.NotAllowed, match="immutable"):
        datasets.delete_version(store, name, 1)
    for query in ("MATCH (v:DatasetVersion {dataset: $d}) SET v.size = 0",
                  "MATCH (v:DatasetVersion {dataset: $d})-[c:CONTAINS]->() DELETE c"):
        with pytest.raises(errors.NotAllowed):
            cypher_guard.run(store, query, {"d": name})
        with pytest.raises(errors.NotAllowed):  # the READ transaction refuses it on its own too
            store.read(query, {"d": name})

    retired = datasets.retire(store, name, 1, "superseded by a better method")
    assert retired.status == "retired" and retired.retired_reason == "superseded by a better method"
    assert retired.retired_at
    with pytest.raises(errors.Conflict, match="already retired"):
        datasets.retire(store, name, 1, "again")
    after = datasets.describe(store, name, 1)
    assert (after.size, after.content_hash, after.created_at) == (before.size, before.content_hash, before.created_at)
    assert version_ids(store, name, 1) == collections.ids[:4]


def test_diff(store, collections, new_job, prefix):
    name, ids = f"{prefix}ds", collections.ids
    datasets.publish(store, name, selection(ids[:5]), job_id=new_job(name), lineage={})
    datasets.publish(store, name, selection([ids[7], ids[3], ids[6], ids[4]]), job_id=new_job(name, 1), lineage={})

    diff = datasets.diff(store, name, 1, 2)
    assert (diff.added, diff.removed, diff.kept) == (2, 3, 2)
    assert diff.added_ids == [ids[7], ids[6]]  # in version 2's rank order
    assert diff.removed_ids == ids[:3]  # in version 1's rank order
    reverse = datasets.diff(store, name, 2, 1, limit=1)
    assert (reverse.added, reverse.removed, reverse.kept) == (3, 2, 2)
    assert (reverse.added_ids, reverse.removed_ids) == ([ids[0]], [ids[7]])
    with pytest.raises(errors.NotFound, match="has no version 3"):
        datasets.diff(store, name, 1, 3)


def test_exports_round_trip(store, collections, new_job, prefix, tmp_path):
    from datasets import load_from_disk

    name = f"{prefix}ds"
    chosen = [collections.ids[i] for i in (4, 0, 9, 2)]  # includes the example with a system message
    datasets.publish(store, name, selection(chosen, components=True), job_id=new_job(name), lineage={})
    expected = list(datasets.iter_rows(store, name, 1))
    assert [r["instruction_id"] for r in expected] == chosen

    path = datasets.export(store, name, 1, "jsonl", tmp_path / "v1.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"messages": r["messages"], "id": None, "source": None, "metadata": {},
                      "gradwalk": {k: r[k] for k in ("instruction_id", "rank", "component", "step", "score")}}
                     for r in expected]
    assert [r.id for r in read_records(path).records] == chosen  # re-importable, same ids

    datasets.export(store, name, 1, "hf", tmp_path / "hf")
    assert load_from_disk(str(tmp_path / "hf")).to_list() == [exports.hf_record(r) for r in expected]

    (tmp_path / "lf").mkdir()
    (tmp_path / "lf" / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "other.json"}}))
    data_file = datasets.export(store, name, 1, "llamafactory", tmp_path / "lf")
    assert json.loads(data_file.read_text()) == [{"messages": r["messages"]} for r in expected]
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert info["other"] == {"file_name": "other.json"}
    assert info[f"{name}-v1"]["file_name"] == data_file.name
    assert info[f"{name}-v1"]["formatting"] == "sharegpt"
    assert info[f"{name}-v1"]["tags"]["system_tag"] == "system"

    with pytest.raises(errors.InvalidInput, match="unknown export format"):
        datasets.export(store, name, 1, "csv", tmp_path / "x.csv")
