"""Pools and targets written into Neo4j from any source :mod:`ingest` reads, all or nothing.

An import writes in batches (one transaction each, so a million rows never sit in one
transaction) and still leaves nothing half-written:

1. The whole source is read and validated first; its normalised rows are spooled to a temporary
   file. Bad input raises :class:`InvalidInput` before Neo4j is touched, and the rows written are
   exactly the rows validated even if the source changes meanwhile.
2. The pool (or target) is claimed: ``status: 'importing'`` and this import's id. A second import
   of the same name meanwhile is refused with :class:`Conflict`, unless the holder has not written
   for ``stale_after_s`` (it crashed): then its leftovers are rolled back and the name taken over.
3. Rows are MERGEd by id in batches; nodes and edges that this import creates carry its id
   (``import_id``, kept afterwards as provenance). Every batch checks that the import still holds
   the name, and refreshes the heartbeat.
4. At the end the pool becomes ``status: 'ready'`` with its ``size``. On any failure this import's
   new edges are deleted, then its new nodes that nothing else links to, then the pool itself if
   this import created it; an existing pool goes back to ``'ready'`` as it was.

Readers use pools and targets whose status is ``'ready'``. Re-importing a file changes nothing;
importing into an existing pool adds the rows it lacks. Instructions are shared between pools.

A node keeps the record's own fields (``original_id``, ``source``, ``metadata`` as a JSON map) of
the first record that brought its messages. Every record is an origin: an ``ORIGIN {original_id,
source, at}`` edge to the ``(:Import {id, kind, name, file})`` that read it, so rows that
collapse into one node (the same messages under two ids or sources, in one file or across
imports) lose no origin. The file is the import's provenance, never a row's source; reading the
same record again (same file, place, id and source) adds no second edge.
"""

from __future__ import annotations

import json
import logging
import random
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any, TypedDict, Unpack

import neo4j

from gradwalk import errors
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.intake import import_history
from gradwalk.platform.intake.ingest import (
    DEFAULT_MAX_METADATA_BYTES,
    DEFAULT_MAX_RECORD_BYTES,
    ReadReport,
    Record,
    RecordReader,
)
from gradwalk.platform.shared.schemas import Format, ImportReportPublic
from gradwalk.statuses import CollectionStatus

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 5_000
# Messages may be up to max_record_bytes each: a batch also stops at this many characters.
BATCH_CHARS = 8_000_000
DEFAULT_STALE_AFTER_S = 600.0
_SPOOL_IN_MEMORY_CHARS = 32_000_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class Queries:
    """The Cypher of one kind of collection (pool or target); labels are fixed, values are
    parameters. ``$import_id`` is the import holding the name, ``$undo_id`` one to roll back."""

    claim: str
    start: str
    write_rows: str
    write_origins: str
    pending_ids: str
    undo_rows: str
    drop_import: str
    cleared: str
    drop_new: str
    release: str
    finish: str
    overlap: str | None = None  # ids of the rows that the other part of the collection holds


# An evaluation never scores on validation data: a row of one part of a target may not be in the other.
_OVERLAP = """
UNWIND $ids AS id
MATCH (n:{other} {{id: id}})-[:{other_rel}]->(:Target {{name: $name}})
RETURN n.id AS id LIMIT 1"""


# One origin of a row (``row.at`` is where the record was read); not written twice for one record.
_ORIGIN = """
            FOREACH (_ IN CASE WHEN EXISTS { (n)-[x:ORIGIN]->(:Import {file: imp.file})
                                             WHERE x.at = row.at AND x.key = row.key }
                          THEN [] ELSE [1] END |
              CREATE (n)-[:ORIGIN {original_id: row.original_id, source: row.source, at: row.at,
                                   key: row.key}]->(imp))"""


def _queries(member: str, rel: str, owner: str, size: str = "size", overlap: str | None = None) -> Queries:
    held = f"MATCH (o:{owner} {{name: $name}}) WHERE o.import_id = $import_id"
    return Queries(
        # Neo4j's locking idiom: a write takes the node's lock, so the status read after it is
        # not stale; the property itself does not outlive the statement.
        claim=f"""
            MERGE (o:{owner} {{name: $name}})
              ON CREATE SET o.status = 'new', o.created_at = datetime(), o.created_by = $created_by
            SET o._lock = true
            REMOVE o._lock
            RETURN o.status AS status, o.import_id AS holder, o.import_new AS holder_new,
                   coalesce(o.abandoned_imports, []) AS abandoned,
                   duration.inSeconds(coalesce(o.import_heartbeat, datetime()), datetime()).seconds
                     AS idle_s""",
        start=f"""
            MATCH (o:{owner} {{name: $name}})
            SET o.status = 'importing', o.import_id = $import_id, o.import_new = $new,
                o.import_heartbeat = datetime(), o.abandoned_imports = $abandoned""",
        write_rows=f"""
            {held}
            SET o.import_heartbeat = datetime()
            MERGE (imp:Import {{id: $import_id}})
              ON CREATE SET imp.kind = $kind, imp.name = $name, imp.file = $file,
                            imp.path = $path, imp.created_at = datetime()
            WITH o, imp
            UNWIND $rows AS row
            MERGE (n:{member} {{id: row.id}})
              ON CREATE SET n.messages = row.messages, n.import_id = $import_id
            WITH o, imp, row, n,
                 n.source IS NULL AND n.original_id IS NULL AND n.metadata IS NULL AS fill
            SET n.source = CASE WHEN fill THEN row.source ELSE n.source END,
                n.original_id = CASE WHEN fill THEN row.original_id ELSE n.original_id END,
                n.metadata = CASE WHEN fill THEN row.metadata ELSE n.metadata END
            {_ORIGIN}
            MERGE (n)-[r:{rel}]->(o)
              ON CREATE SET r.import_id = $import_id
            RETURN count(r) AS rows,
                   count(CASE WHEN r.import_id = $import_id THEN 1 END) AS added,
                   count(CASE WHEN n.import_id = $import_id THEN 1 END) AS created""",
        write_origins=f"""
            {held}
            SET o.import_heartbeat = datetime()
            WITH o
            MATCH (imp:Import {{id: $import_id}})
            UNWIND $rows AS row
            MATCH (n:{member} {{id: row.id}})
            {_ORIGIN}""",
        pending_ids=f"""
            MATCH (n:{member})-[r:{rel}]->(:{owner} {{name: $name}})
            WHERE r.import_id = $undo_id
            RETURN n.id AS id
            UNION
            MATCH (n:{member})-[:ORIGIN]->(:Import {{id: $undo_id}})
            RETURN n.id AS id""",
        undo_rows=f"""
            {held}
            SET o.import_heartbeat = datetime()
            WITH o
            UNWIND $ids AS id
            MATCH (n:{member} {{id: id}})
            CALL (n) {{
              MATCH (n)-[og:ORIGIN]->(:Import {{id: $undo_id}})
              DELETE og
            }}
            WITH o, n
            OPTIONAL MATCH (n)-[r:{rel}]->(o) WHERE r.import_id = $undo_id
            DELETE r
            WITH DISTINCT n
            WHERE n.import_id = $undo_id AND NOT EXISTS {{ (n)--() }}
            DELETE n""",
        drop_import="""
            MATCH (imp:Import {id: $undo_id})
            WHERE NOT EXISTS { (imp)--() }
            DELETE imp""",
        cleared=f"""
            {held}
            SET o.abandoned_imports = [x IN o.abandoned_imports WHERE x <> $undo_id]""",
        drop_new=f"""
            {held} AND o.import_new AND NOT EXISTS {{ (o)--() }}
            DELETE o""",
        release=f"""
            {held}
            SET o.status = 'ready', o.{size} = COUNT {{ ()-[:{rel}]->(o) }},
                o.abandoned_imports = CASE WHEN o.abandoned_imports = [] THEN null
                                           ELSE o.abandoned_imports END
            REMOVE o.import_id, o.import_heartbeat, o.import_new""",
        finish=f"""
            {held}
            SET o.status = 'ready', o.updated_at = datetime(), o.last_import_id = $import_id,
                o.{size} = COUNT {{ ()-[:{rel}]->(o) }},
                o.abandoned_imports = CASE WHEN o.abandoned_imports = [] THEN null
                                           ELSE o.abandoned_imports END
            REMOVE o.import_id, o.import_heartbeat, o.import_new
            RETURN o.{size} AS size""",
        overlap=overlap,
    )


POOL_QUERIES = _queries("Instruction", "IN_POOL", "Pool")
TARGET_QUERIES = _queries("ValExample", "OF_TARGET", "Target",
                          overlap=_OVERLAP.format(other="TestExample", other_rel="TEST_OF"))
# A target's held-out test part: what an evaluation scores on, never what selection reads.
TEST_QUERIES = _queries("TestExample", "TEST_OF", "Target", size="test_size",
                        overlap=_OVERLAP.format(other="ValExample", other_rel="OF_TARGET"))
PARTS = {"validation": TARGET_QUERIES, "test": TEST_QUERIES}


@dataclass(frozen=True)
class ImportReport:
    """What one import did: ``records`` is the read, ``added`` rows were new to the collection,
    ``created`` nodes new to the database, ``size`` is the collection's size afterwards."""

    kind: str
    name: str
    import_id: str
    source: str
    records: ReadReport
    added: int
    created: int
    size: int
    part: str | None = None  # a target's "validation" or "test" part
    test: ImportReport | None = None  # the test part a seeded split imported beside it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line a person reads: records read, unique, duplicates, skipped, added, size."""
        return ImportReportPublic.model_validate(self.to_dict()).summary()


class ImportOptions(TypedDict, total=False):
    """How an import reads and writes, shared by :func:`import_pool` and :func:`import_target`
    (each defaults as :func:`_import` says)."""

    fmt: Format
    split: str | None
    skip_invalid: bool
    source_label: str | None
    batch_size: int
    max_record_bytes: int
    max_metadata_bytes: int
    stale_after_s: float
    progress: Callable[[int, int], None] | None
    created_by: str | None
    sent_as: str | None


def import_pool(store: GraphStore, name: str, source: Any, **options: Unpack[ImportOptions]) -> ImportReport:
    """Add every record of ``source`` to pool ``name`` (created if new) as ``:Instruction`` nodes.

    ``source`` is anything :class:`RecordReader` reads (a file named ``sent_as`` when given: an
    upload's own name, in messages and provenance); ``source_label`` is the ``source`` of
    records that carry none of their own (default: none; the file or dataset name is kept as the
    import's provenance, never as a row's source). ``progress(done, total)`` is called after each
    batch. All or nothing: on any error, nothing of this import remains. The import is recorded
    in the pool's history (:mod:`import_history`); ``created_by`` (a token's name) owns the pool
    if this import creates it.
    """
    return _import("pool", POOL_QUERIES, store, name, source, **options)


def import_target(store: GraphStore, name: str, source: Any, *, part: str = "validation",
                  keep: Callable[[str], bool] | None = None, **options: Unpack[ImportOptions]) -> ImportReport:
    """Add every record of ``source`` to target ``name``'s ``part``: ``:ValExample`` nodes for
    "validation", ``:TestExample`` for the held-out "test" part. A row whose messages the other
    part holds is refused, naming it. ``keep(id)`` picks the records of a split; as
    :func:`import_pool` otherwise."""
    if part not in PARTS:
        raise errors.InvalidInput(f"part must be one of {', '.join(PARTS)}, not {part!r}")
    return _import("target", PARTS[part], store, name, source, part=part, keep=keep, **options)


def held_out_ids(source: Any, *, fraction: float, seed: int, fmt: Format = "auto", split: str | None = None,
               skip_invalid: bool = False, sent_as: str | None = None) -> set[str]:
    """The ids of ``source``'s records that a seeded split holds out as the test part: a
    ``fraction`` of its distinct rows (at least one, and at least one left for validation), drawn
    by ``seed`` from the ids in sorted order, so the same file and seed always split the same way."""
    if not 0 < fraction < 1:
        raise errors.InvalidInput(f"test fraction must lie strictly between 0 and 1, not {fraction}")
    reader = RecordReader(source, fmt=fmt, split=split, skip_invalid=skip_invalid, label=sent_as)
    ids = sorted({record.id for record in reader.records(ReadReport(source=reader.label))})
    if len(ids) < 2:
        raise errors.InvalidInput(f"{reader.label}: a test split needs at least 2 distinct examples, "
                                  f"it has {len(ids)}")
    n_test = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    return set(random.Random(seed).sample(ids, n_test))


def _import(kind: str, queries: Queries, store: GraphStore, name: str, source: Any, *,
            fmt: Format = "auto", split: str | None = None, skip_invalid: bool = False,
            source_label: str | None = None, batch_size: int = DEFAULT_BATCH_ROWS,
            max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
            stale_after_s: float = DEFAULT_STALE_AFTER_S, progress: Callable[[int, int], None] | None = None,
            created_by: str | None = None, sent_as: str | None = None, part: str | None = None,
            keep: Callable[[str], bool] | None = None) -> ImportReport:
    if not isinstance(name, str) or not _NAME.match(name):
        raise errors.InvalidInput(f"{kind} name {name!r}: use 1-200 letters, digits, '.', '_' "
                                  "or '-', starting with a letter or digit")
    if batch_size < 1:
        raise errors.InvalidInput("batch_size must be positive")
    if source_label is not None and (not isinstance(source_label, str) or not source_label.strip()):
        raise errors.InvalidInput("source_label must be a non-empty string")
    reader = RecordReader(source, fmt=fmt, split=split, skip_invalid=skip_invalid,
                          max_record_bytes=max_record_bytes, max_metadata_bytes=max_metadata_bytes, label=sent_as)
    report = ReadReport(source=reader.label)
    label = reader.name
    repeats: list[Record] = []
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY_CHARS, mode="w+",
                                       encoding="utf-8", newline="\n") as spool:
        for record in reader.records(report, duplicates=repeats):
            if keep is None or keep(record.id):
                spool.write(json.dumps(_row(record, source_label), ensure_ascii=False) + "\n")
        if keep is not None:
            repeats = [r for r in repeats if keep(r.id)]
        if queries.overlap:
            _refuse_overlap(store, queries.overlap, name, part, spool, batch_size)
        job = _Import(store, queries, kind, name, uuid.uuid4().hex, batch_size,
                      {"file": label, "path": reader.label}, created_by)
        job.claim(stale_after_s)
        try:
            job.clear_abandoned()
            added = created = done = 0
            for batch in _batches(spool, batch_size):
                batch_added, batch_created = job.write(batch)
                added, created, done = added + batch_added, created + batch_created, done + len(batch)
                if progress is not None:
                    progress(done, report.imported)
            for start in range(0, len(repeats), batch_size):
                job.write_origins([_row(r, source_label, messages=False)
                                   for r in repeats[start:start + batch_size]])
            size = job.finish()
        except BaseException as exc:
            try:
                job.roll_back(_spooled_ids(spool))
            except Exception as undo_error:  # noqa: BLE001 - the first error is re-raised, this one noted on it
                exc.add_note(f"rolling back import {job.import_id} failed too ({undo_error}); the "
                             f"next import of {kind} {name!r} after {stale_after_s:.0f}s cleans up")
            raise
    log.info("imported %s %r from %s: %d added, %d new", kind, name, label, added, created)
    imported = ImportReport(kind, name, job.import_id, label, report, added, created, size, part)
    import_history.record(store, imported, created_by)
    return imported


class _Import:
    """The steps of one import of one collection, each guarded by holding the name."""

    def __init__(self, store: GraphStore, queries: Queries, kind: str, name: str,
                 import_id: str, batch_size: int, provenance: dict[str, str],
                 created_by: str | None = None) -> None:
        self.store, self.q, self.kind, self.name = store, queries, kind, name
        self.import_id, self.batch_size, self.provenance = import_id, batch_size, provenance
        self.created_by = created_by
        self.abandoned: list[str] = []

    def _params(self, **more: Any) -> dict[str, Any]:
        return {"name": self.name, "import_id": self.import_id, **more}

    def claim(self, stale_after_s: float) -> None:
        """Take the name for this import, or raise Conflict while another import is alive."""

        def work(tx: neo4j.ManagedTransaction) -> list[str]:
            row = tx.run(self.q.claim, self._params(created_by=self.created_by)).single(strict=True)
            abandoned, new = list(row["abandoned"]), row["status"] == CollectionStatus.NEW
            if row["status"] == CollectionStatus.DELETING:
                raise errors.Conflict(f"{self.kind} {self.name!r} is being deleted; finish that with "
                                      f"`gradwalk {self.kind} delete {self.name}`, then import again")
            if row["status"] == CollectionStatus.IMPORTING:
                if row["idle_s"] < stale_after_s:
                    raise errors.Conflict(
                        f"{self.kind} {self.name!r} is being imported (import {row['holder']}, "
                        f"last active {row['idle_s']}s ago); try again when it has finished")
                log.warning("taking over %s %r from stalled import %s", self.kind, self.name,
                            row["holder"])
                abandoned.append(row["holder"])
                new = bool(row["holder_new"])
            tx.run(self.q.start, self._params(new=new, abandoned=abandoned)).consume()
            return abandoned

        self.abandoned = self.store.transaction(work, write=True)

    def clear_abandoned(self) -> None:
        """Roll back what stalled imports of this name left behind."""
        for old in self.abandoned:
            ids = [row["id"] for row in self.store.read(self.q.pending_ids,
                                                        {"name": self.name, "undo_id": old})]
            self._undo(old, ids)
            self.store.write(self.q.cleared, self._params(undo_id=old))

    def write(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        """MERGE one batch; (rows new to the collection, nodes new to the database)."""
        result = self.store.write(self.q.write_rows, self._params(rows=rows, kind=self.kind,
                                                                  **self.provenance))
        if not result or result[0]["rows"] != len(rows):
            self._taken_over()
        return result[0]["added"], result[0]["created"]

    def write_origins(self, rows: list[dict[str, Any]]) -> None:
        """Record the origins of records whose messages came earlier in the same source."""
        if not self.store.write(self.q.write_origins + " RETURN count(*) AS rows",
                                self._params(rows=rows)):
            self._taken_over()

    def _taken_over(self) -> None:
        raise errors.Conflict(f"import {self.import_id} of {self.kind} {self.name!r} was taken "
                              "over by another import after it stalled")

    def finish(self) -> int:
        rows = self.store.write(self.q.finish, self._params())
        if not rows:
            raise errors.Conflict(f"import {self.import_id} of {self.kind} {self.name!r} was taken "
                                  "over by another import before it finished")
        return rows[0]["size"]

    def roll_back(self, ids: Iterable[str]) -> None:
        """Remove this import's rows and give the name back as it was before."""
        self._undo(self.import_id, ids)

        def work(tx: neo4j.ManagedTransaction) -> None:
            tx.run(self.q.drop_new, self._params()).consume()
            tx.run(self.q.release, self._params()).consume()

        self.store.transaction(work, write=True)

    def _undo(self, undo_id: str, ids: Iterable[str]) -> None:
        chunk: list[str] = []
        for row_id in ids:
            chunk.append(row_id)
            if len(chunk) >= self.batch_size:
                self.store.write(self.q.undo_rows, self._params(undo_id=undo_id, ids=chunk))
                chunk = []
        if chunk:
            self.store.write(self.q.undo_rows, self._params(undo_id=undo_id, ids=chunk))
        self.store.write(self.q.drop_import, {"undo_id": undo_id})


def _row(record: Record, default_source: str | None, *, messages: bool = True) -> dict[str, Any]:
    """What the write queries get of one record; ``key`` tells its origins apart."""
    source = record.source if record.source is not None else default_source
    row = {"id": record.id, "original_id": record.original_id, "source": source,
           "at": record.where, "key": json.dumps([record.original_id, source], ensure_ascii=False)}
    if messages:
        row.update(messages=record.messages_json, metadata=record.metadata_json)
    return row


def _batches(spool: IO[str], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    spool.seek(0)
    batch: list[dict[str, Any]] = []
    chars = 0
    for line in spool:
        batch.append(json.loads(line))
        chars += len(line)
        if len(batch) >= batch_size or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _refuse_overlap(store: GraphStore, query: str, name: str, part: str | None, spool: IO[str],
                    batch_size: int) -> None:
    """Refuse, before anything is written, a row that target ``name``'s other part holds: the
    validation and test parts never share an example."""
    for batch in _batches(spool, batch_size):
        found = store.read(query, {"name": name, "ids": [row["id"] for row in batch]})
        if found:
            row = next(r for r in batch if r["id"] == found[0]["id"])
            other = "validation" if part == "test" else "test"
            named = f" (id {row['original_id']!r})" if row["original_id"] is not None else ""
            raise errors.InvalidInput(
                f"{row['at']}{named}: this {part} example has the same messages as a {other} example of "
                f"target {name!r} (row {row['id'][:12]}); a target's validation and test parts must not share "
                "examples")


def _spooled_ids(spool: IO[str]) -> Iterator[str]:
    spool.seek(0)
    for line in spool:
        yield json.loads(line)["id"]


def member_ids_from_sources(store: GraphStore, pool: str, sources: list[str]) -> set[str]:
    """The ids of a pool's instructions whose record ``source`` is one of ``sources``."""
    return {row["id"] for row in store.read(
        "MATCH (i:Instruction)-[:IN_POOL]->(:Pool {name: $pool}) WHERE i.source IN $sources "
        "RETURN i.id AS id", {"pool": pool, "sources": list(sources)})}
