"""Named datasets and their numbered, immutable versions: publish, read, diff, export, retire.

A ``(:Dataset {name})`` owns ``(:DatasetVersion {dataset, version})`` nodes through ``HAS_VERSION``;
a version ``CONTAINS {rank, component, step, score, predecessor, reached_by}`` its instructions
(``predecessor``: the id of the row the walk came from, docs/cypher.md) and was ``PRODUCED_BY``
one selection job, whose ``USED`` edges name the feature run, graph and targets it read.

Publishing is all or nothing and numbers versions 1, 2, 3, ... without gaps, also when several
jobs publish to one dataset at once:

1. The rows are checked, and staged under a ``pending`` version node that has **no number** and no
   ``HAS_VERSION`` edge, so no reader sees it; its ``CONTAINS`` edges are written in batches.
2. One final transaction takes the dataset's lock, numbers the version ``max + 1``, checks that
   every row is there, records the lineage and attaches it: the only step that makes a version
   visible, so a number is never handed out to a version that then fails.
3. On any failure the staged node and its edges are deleted; a publisher that crashed leaves a
   pending node that the next publish to the dataset deletes once it is stale.

A job publishes at most one version of a dataset: a redelivered task gets its version back.
Published versions are never changed (Neo4j Community has no triggers, so the platform holds the
rule): no function here writes to a published version except :func:`retire`, which records when
and why on it and leaves its rows alone, and the read-only Cypher endpoint cannot write at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import neo4j

from gradwalk import __version__, errors
from gradwalk.checks import check_int
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.shared.schemas import DatasetPublic, DiffPublic, VersionPublic
from gradwalk.platform.versions import exports
from gradwalk.platform.versions.rows import checked_rows
from gradwalk.statuses import JobStatus, VersionStatus

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
BATCH_ROWS = 5_000
MAX_PAGE_ROWS = 10_000
STALE_PENDING_S = 3600.0


class JobEnded(errors.Conflict):
    """The job was cancelled (or failed) before its version was committed; nothing was published."""


# --- Cypher -------------------------------------------------------------------------------------

_STAGE = """
CREATE (v:DatasetVersion {staging_id: $staging_id, dataset: $dataset, status: 'pending',
                          job_id: $job_id, staged_at: datetime(), heartbeat: datetime()})
"""

_STAGE_ROWS = """
MATCH (v:DatasetVersion {staging_id: $staging_id}) WHERE v.status = 'pending'
SET v.heartbeat = datetime()
WITH v
UNWIND $rows AS row
MATCH (i:Instruction {id: row.instruction_id})
MERGE (v)-[c:CONTAINS]->(i)
SET c.rank = row.rank, c.component = row.component, c.step = row.step, c.score = row.score,
    c.predecessor = row.predecessor, c.reached_by = row.reached_by
RETURN count(c) AS written
"""

# Neo4j's locking idiom: the write takes the dataset node's lock for the rest of the transaction,
# so the statements after it see every version committed before and none can slip in between.
_LOCK = """
MERGE (d:Dataset {name: $dataset}) ON CREATE SET d.created_at = datetime()
SET d._lock = true
REMOVE d._lock
"""

_PUBLISHED_BY_JOB = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {job_id: $job_id})
RETURN v.version AS version
"""

# The job's lock, as platform.jobs takes it to change the job's status: a job cancelled before the
# commit publishes nothing, and one whose version is committed can no longer be cancelled.
_LOCK_JOB = """
MATCH (j:SelectionJob {id: $job_id})
SET j._lock = true
REMOVE j._lock
RETURN j.status AS status
"""

_COMMIT = """
MATCH (d:Dataset {name: $dataset})
MATCH (v:DatasetVersion {staging_id: $staging_id}) WHERE v.status = 'pending'
MATCH (j:SelectionJob {id: $job_id})
OPTIONAL MATCH (d)-[:HAS_VERSION]->(old:DatasetVersion)
WITH d, v, j, coalesce(max(old.version), 0) + 1 AS next
WHERE COUNT { (v)-[:CONTAINS]->() } = $size
SET v.version = next, v.status = 'complete', v.created_at = datetime(), v.size = $size,
    v.content_hash = $content_hash, v.gradwalk_version = $gradwalk_version,
    v.params = coalesce($params, j.params), v.lineage = $lineage, v.method = j.method,
    v.source_mix = $source_mix,
    v.pool = j.pool, v.created_by = j.created_by,
    v.targets = [(j)-[:USED]->(t:Target) | t.name],
    v.feature_run = head([(j)-[:USED]->(fr:FeatureRun) | fr.id]),
    v.graph = head([(j)-[:USED]->(g:InstructionGraph) | g.id])
REMOVE v.staging_id, v.staged_at, v.heartbeat
CREATE (d)-[:HAS_VERSION]->(v)
CREATE (v)-[:PRODUCED_BY]->(j)
RETURN v.version AS version
"""

# How many of a version's rows come from each source (a record's own ``source``; none: null).
_MIX = ("MATCH (v:DatasetVersion {%s})-[:CONTAINS]->(i:Instruction) "
        "RETURN i.source AS source, count(*) AS rows ORDER BY rows DESC, source")

_DISCARD_EDGES = """
MATCH (v:DatasetVersion {staging_id: $staging_id})-[c:CONTAINS]->() WHERE v.status = 'pending'
WITH c LIMIT $batch
DELETE c
RETURN count(*) AS deleted
"""

_DISCARD_NODE = """
MATCH (v:DatasetVersion {staging_id: $staging_id}) WHERE v.status = 'pending'
DETACH DELETE v
"""

_STALE = """
MATCH (v:DatasetVersion {dataset: $dataset, status: 'pending'})
WHERE v.heartbeat < datetime() - duration({seconds: $stale_s})
RETURN v.staging_id AS staging_id
"""

_VERSION_FIELDS = """
v {.dataset, .version, .status, .size, .content_hash, .job_id, .created_by, .method, .pool, .targets,
   .feature_run, .graph, .params, .lineage, .source_mix, .gradwalk_version, .retired_reason,
   created_at: toString(v.created_at), retired_at: toString(v.retired_at),
   evaluations: [(e:Evaluation)-[:OF]->(v) | e {.id, .target, .status, created_ms: e.created_at.epochMillis}]}
  AS version
"""

_DESCRIBE = f"""
MATCH (:Dataset {{name: $dataset}})-[:HAS_VERSION]->(v:DatasetVersion {{version: $version}})
RETURN {_VERSION_FIELDS}
"""

_VERSIONS = f"""
MATCH (d:Dataset {{name: $dataset}})
OPTIONAL MATCH (d)-[:HAS_VERSION]->(v:DatasetVersion)
WITH v ORDER BY v.version
WHERE v IS NOT NULL
RETURN {_VERSION_FIELDS}
"""

_DATASET_EXISTS = "MATCH (d:Dataset {name: $dataset}) RETURN d.name AS name"

_LIST = """
MATCH (d:Dataset)
OPTIONAL MATCH (d)-[:HAS_VERSION]->(v:DatasetVersion)
WITH d, max(v.version) AS latest, count(v) AS versions,
     max(CASE WHEN v.status = 'complete' THEN v.version END) AS latest_complete
WHERE versions > 0
RETURN d.name AS name, toString(d.created_at) AS created_at, versions, latest, latest_complete
ORDER BY name
"""

_ROWS = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {version: $version})
MATCH (v)-[c:CONTAINS]->(i:Instruction)
WHERE $after IS NULL OR c.rank > $after
RETURN c.rank AS rank, i.id AS instruction_id, i.messages AS messages, c.component AS component,
       c.step AS step, c.score AS score, c.predecessor AS predecessor, c.reached_by AS reached_by,
       i.original_id AS original_id, i.source AS source, i.metadata AS metadata
ORDER BY rank SKIP $offset LIMIT $limit
"""

_ONLY_IN = """
MATCH (d:Dataset {name: $dataset})-[:HAS_VERSION]->(mine:DatasetVersion {version: $mine})
MATCH (d)-[:HAS_VERSION]->(other:DatasetVersion {version: $other})
MATCH (mine)-[c:CONTAINS]->(i:Instruction)
WHERE NOT EXISTS { (other)-[:CONTAINS]->(i) }
WITH i, c ORDER BY c.rank
RETURN count(i) AS n, collect(i.id)[..$limit] AS ids
"""

_RETIRE = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {version: $version})
WHERE v.status = 'complete'
SET v.status = 'retired', v.retired_at = datetime(), v.retired_reason = $reason
RETURN v.version AS version
"""


# --- checks -------------------------------------------------------------------------------------

def check_name(dataset: object) -> str:
    if not isinstance(dataset, str) or not NAME.match(dataset):
        raise errors.InvalidInput(f"dataset name {dataset!r}: use 1-200 letters, digits, '.', '_' or '-', "
                                  "starting with a letter or digit")
    return dataset


def _check_version(version: object) -> int:
    return check_int(version, "version", low=1)


def content_hash(instruction_ids: Sequence[str]) -> str:
    """sha256 over the instruction ids in rank order: equal hashes, equal datasets."""
    digest = hashlib.sha256()
    for instruction_id in instruction_ids:
        digest.update(instruction_id.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise errors.InvalidInput(f"{what} must be JSON-serialisable: {e}") from e


# --- publish ------------------------------------------------------------------------------------

def publish(store: GraphStore, dataset: str, rows: Sequence[Mapping[str, Any]], *, job_id: str,
            lineage: Mapping[str, Any], before_commit: Callable[[], None] | None = None,
            batch_size: int = BATCH_ROWS, stale_after_s: float = STALE_PENDING_S) -> int:
    """Publish ``rows`` (``instruction_id``, ``rank``, and ``component``/``step``/``score`` or
    None) as the next version of ``dataset`` and return its number.

    ``lineage`` is recorded on the version as JSON; its ``params`` (the parameters the run used,
    defaults included) replace the job's requested ones when given. The job's method, pool,
    targets, feature run and graph are read from the job itself. ``before_commit`` runs once the
    rows are staged, just before the version is numbered: whatever it raises (a cancelled job)
    aborts the publish. All or nothing; calling it again for a job that already published to
    ``dataset`` returns that version.
    """
    check_name(dataset)
    checked = checked_rows(rows)
    if not isinstance(lineage, Mapping):
        raise errors.InvalidInput("lineage must be a mapping")
    extra = {k: v for k, v in lineage.items() if k != "params"}
    params = _json(lineage["params"], "lineage params") if "params" in lineage else None
    meta = {
        "dataset": dataset, "job_id": job_id, "size": len(checked),
        "content_hash": content_hash([r["instruction_id"] for r in checked]),
        "params": params, "lineage": _json(extra, "lineage"), "gradwalk_version": __version__,
    }
    if not store.read("MATCH (j:SelectionJob {id: $id}) RETURN j.id AS id", {"id": job_id}):
        raise errors.NotFound(f"no selection job {job_id!r} to record as the version's producer")
    done = store.read(_PUBLISHED_BY_JOB, meta)
    if done:
        return done[0]["version"]
    _sweep_stale(store, dataset, stale_after_s)

    staging_id = uuid.uuid4().hex
    store.write(_STAGE, {"staging_id": staging_id, "dataset": dataset, "job_id": job_id})
    try:
        for start in range(0, len(checked), batch_size):
            batch = checked[start:start + batch_size]
            written = store.write(_STAGE_ROWS, {"staging_id": staging_id, "rows": batch})[0]["written"]
            if written != len(batch):
                missing = _missing_instructions(store, [r["instruction_id"] for r in batch])
                if missing:
                    raise errors.NotFound(f"{len(missing)} selected instruction(s) are not in the graph, "
                                          f"e.g. {missing[0]}")
                raise errors.Conflict(f"the staged version of {dataset!r} was removed while it was written "
                                      "(it looked stale); publish again")
        mix = json.dumps(store.read(_MIX % "staging_id: $staging_id", {"staging_id": staging_id}),
                         ensure_ascii=False)
        if before_commit is not None:
            before_commit()
        version = store.transaction(
            lambda tx: _commit(tx, {**meta, "staging_id": staging_id, "source_mix": mix}), write=True)
    except BaseException as exc:
        try:
            _discard(store, staging_id, batch_size)
        except Exception as undo_error:  # noqa: BLE001 - the first error is re-raised, this one noted on it
            exc.add_note(f"removing the staged version failed too ({undo_error}); the next publish "
                         f"to {dataset!r} removes it after {stale_after_s:.0f}s")
        raise
    if version.get("existing"):  # the job's version was committed by a redelivered twin meanwhile
        _discard(store, staging_id, batch_size)
    return version["version"]


def _commit(tx: neo4j.ManagedTransaction, params: dict[str, Any]) -> dict[str, Any]:
    tx.run(_LOCK, params).consume()
    existing = tx.run(_PUBLISHED_BY_JOB, params).single()
    if existing is not None:
        return {"version": existing["version"], "existing": True}
    job = tx.run(_LOCK_JOB, params).single()
    if job is not None and job["status"] in (JobStatus.CANCELLED, JobStatus.FAILED):
        raise JobEnded(f"job {params['job_id']} is {job['status']}: its version of {params['dataset']!r} "
                       "is not published")
    record = tx.run(_COMMIT, params).single()
    if record is None:
        raise errors.Conflict(
            f"could not commit the new version of {params['dataset']!r}: its staged rows are incomplete "
            f"or job {params['job_id']} is gone; publish again")
    return {"version": record["version"], "existing": False}


def _missing_instructions(store: GraphStore, ids: list[str]) -> list[str]:
    found = {row["id"] for row in store.read(
        "MATCH (i:Instruction) WHERE i.id IN $ids RETURN i.id AS id", {"ids": ids})}
    return [i for i in ids if i not in found]


def _discard(store: GraphStore, staging_id: str, batch_size: int) -> None:
    """Delete a pending (never a published) version node and its edges, in batches."""
    params = {"staging_id": staging_id, "batch": batch_size}
    while store.write(_DISCARD_EDGES, params)[0]["deleted"]:
        pass
    store.write(_DISCARD_NODE, params)


def _sweep_stale(store: GraphStore, dataset: str, stale_after_s: float) -> None:
    for row in store.read(_STALE, {"dataset": dataset, "stale_s": int(stale_after_s)}):
        _discard(store, row["staging_id"], BATCH_ROWS)


# --- read ---------------------------------------------------------------------------------------

def _public(store: GraphStore, version: dict[str, Any]) -> VersionPublic:
    out = dict(version)
    for key in ("params", "lineage"):
        out[key] = json.loads(out[key]) if out.get(key) else {}
    # What was made of the version since joins where it came from: its evaluations, oldest first
    # (by epoch milliseconds: Neo4j's time strings vary in length, so they do not sort as text).
    made = sorted(out.pop("evaluations", None) or [], key=lambda e: e.pop("created_ms") or 0)
    out["lineage"]["evaluations"] = made
    out["targets"] = list(out.get("targets") or [])
    mix = out.pop("source_mix", None)
    out["source_mix"] = json.loads(mix) if mix else source_mix(store, out["dataset"], out["version"])
    return VersionPublic.model_validate(out)


def source_mix(store: GraphStore, dataset: str, version: int) -> list[dict[str, Any]]:
    """``[{source, rows}]`` of a version, most rows first (recorded at publish; counted here for
    versions published before sources were kept)."""
    return store.read(_MIX % "dataset: $dataset, version: $version", {"dataset": dataset, "version": version})


def describe(store: GraphStore, dataset: str, version: int) -> VersionPublic:
    """One published version: size, content hash, status, created time, lineage, source mix."""
    rows = store.read(_DESCRIBE, {"dataset": check_name(dataset), "version": _check_version(version)})
    if not rows:
        _require_dataset(store, dataset)
        raise errors.NotFound(f"dataset {dataset!r} has no version {version}")
    return _public(store, rows[0]["version"])


def _require_dataset(store: GraphStore, dataset: str) -> None:
    if not store.read(_DATASET_EXISTS, {"dataset": dataset}):
        raise errors.NotFound(f"no dataset {dataset!r}")


def versions(store: GraphStore, dataset: str) -> list[VersionPublic]:
    """Every published version of ``dataset``, oldest first."""
    rows = store.read(_VERSIONS, {"dataset": check_name(dataset)})
    if not rows:
        _require_dataset(store, dataset)
    return [_public(store, row["version"]) for row in rows]


def list_datasets(store: GraphStore) -> list[DatasetPublic]:
    """Datasets with at least one published version: name, versions, latest (and latest complete)."""
    return [DatasetPublic.model_validate(row) for row in store.read(_LIST)]


def rows(store: GraphStore, dataset: str, version: int, *, offset: int = 0,
         limit: int = 100) -> list[dict[str, Any]]:
    """A page of a version's rows in rank order, each with its instruction's messages."""
    check_int(offset, "offset", low=0)
    check_int(limit, "limit", low=1, high=MAX_PAGE_ROWS)
    page = _page(store, dataset, version, after=None, offset=offset, limit=limit)
    if not page:
        describe(store, dataset, version)  # NotFound unless the page is simply past the end
    return page


def _page(store: GraphStore, dataset: str, version: int, *, after: int | None, offset: int,
          limit: int) -> list[dict[str, Any]]:
    found = store.read(_ROWS, {"dataset": check_name(dataset), "version": _check_version(version),
                               "after": after, "offset": offset, "limit": limit})
    for row in found:
        row["messages"] = json.loads(row["messages"])
        row["metadata"] = json.loads(row["metadata"]) if row["metadata"] else {}
    return found


def iter_rows(store: GraphStore, dataset: str, version: int, *,
              batch_size: int = BATCH_ROWS) -> Iterator[dict[str, Any]]:
    """Every row of a version in rank order, fetched in batches."""
    describe(store, dataset, version)
    after = None
    while True:
        page = _page(store, dataset, version, after=after, offset=0, limit=batch_size)
        yield from page
        if len(page) < batch_size:
            return
        after = page[-1]["rank"]


def diff(store: GraphStore, dataset: str, a: int, b: int, *, limit: int | None = None) -> DiffPublic:
    """Rows added in ``b``, removed from ``a``, and kept by both; ``limit`` caps the id lists."""
    first, second = describe(store, dataset, a), describe(store, dataset, b)
    cap = second.size + first.size if limit is None else check_int(limit, "limit", low=0)

    def only_in(mine: int, other: int) -> dict[str, Any]:
        return store.read(_ONLY_IN, {"dataset": dataset, "mine": mine, "other": other, "limit": cap})[0]

    added, removed = only_in(b, a), only_in(a, b)
    return DiffPublic(dataset=dataset, a=first.version, b=second.version, added=added["n"],
                      removed=removed["n"], kept=second.size - added["n"], added_ids=added["ids"],
                      removed_ids=removed["ids"])


# --- change -------------------------------------------------------------------------------------

def retire(store: GraphStore, dataset: str, version: int, reason: str) -> VersionPublic:
    """Mark a version retired, recording when and why; its rows stay readable and unchanged."""
    if not isinstance(reason, str) or not reason.strip():
        raise errors.InvalidInput("give the reason for retiring the version")
    current = describe(store, dataset, version)
    if current.status == VersionStatus.RETIRED:
        raise errors.Conflict(f"version {version} of {dataset!r} was already retired on "
                              f"{current.retired_at} ({current.retired_reason})")
    if not store.write(_RETIRE, {"dataset": dataset, "version": version, "reason": reason.strip()[:1000]}):
        raise errors.Conflict(f"version {version} of {dataset!r} was retired meanwhile")
    return describe(store, dataset, version)


def delete_version(store: GraphStore, dataset: str, version: int) -> None:
    """Always refused: a published version is immutable. Says what to do instead."""
    describe(store, dataset, version)
    raise errors.NotAllowed(
        f"version {version} of {dataset!r} is published and immutable: its rows cannot be changed or "
        f"deleted; retire it (`gradwalk dataset retire {dataset} {version} --reason ...`) and publish "
        "a new version instead")


# --- export -------------------------------------------------------------------------------------

def export(store: GraphStore, dataset: str, version: int, fmt: str,
           dest: str | os.PathLike[str]) -> Path:
    """Write a version as ``jsonl`` (a file), ``hf`` (a save_to_disk folder) or ``llamafactory``
    (``<name>-v<version>.json``, its ``dataset_info.json`` entry and the ``.origins.jsonl``
    sidecar in folder ``dest``)."""
    return exports.write(fmt, iter_rows(store, dataset, version), dest, f"{dataset}-v{version}")
