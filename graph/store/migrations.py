"""Ordered, checksummed schema migrations applied under a lock.

Files ``migrations/V<NNN>__<name>.cypher`` hold ``;``-separated statements. Each applied file is
recorded as ``(:Migration {version, name, checksum, applied_at})``; a file edited after it was
applied is refused by name; a second run is a no-op; a ``(:MigrationLock)`` node held with an
expiry keeps two processes from applying at once (a crashed holder's lock expires).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import neo4j

from gradwalk import errors
from gradwalk.graph.store.adapter import GraphStore

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
_FILE_NAME = re.compile(r"^V(?P<version>\d{3,})__(?P<name>[A-Za-z0-9_]+)\.cypher$")
_LOCK_NAME = "migrations"

_BOOTSTRAP = (
    ("CREATE CONSTRAINT gradwalk_migration_version IF NOT EXISTS "
     "FOR (m:Migration) REQUIRE m.version IS UNIQUE"),
    ("CREATE CONSTRAINT gradwalk_migration_lock IF NOT EXISTS "
     "FOR (l:MigrationLock) REQUIRE l.name IS UNIQUE"),
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str
    statements: tuple[str, ...]


def _statements(text: str) -> tuple[str, ...]:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("//")]
    parts = re.split(r";\s*(?:\n|$)", "\n".join(lines))
    return tuple(p.strip() for p in parts if p.strip())


def discover(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of ``folder`` in version order; misnamed or clashing files refused."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.cypher")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise errors.InvalidInput(f"{path}: migration files are named V<NNN>__<name>.cypher")
        version = int(match["version"])
        if version in found:
            raise errors.Conflict(f"{path} and {found[version].path} share version {version}")
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        found[version] = Migration(
            version=version,
            name=match["name"],
            path=path,
            checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            statements=_statements(text),
        )
    return [found[v] for v in sorted(found)]


def applied(store: GraphStore) -> dict[int, dict]:
    """Recorded migrations by version."""
    rows = store.read(
        "MATCH (m:Migration) RETURN m.version AS version, m.name AS name, "
        "m.checksum AS checksum, toString(m.applied_at) AS applied_at ORDER BY version"
    )
    return {row["version"]: row for row in rows}


def _check_unchanged(files: list[Migration], done: dict[int, dict]) -> None:
    for migration in files:
        record = done.get(migration.version)
        if record is not None and record["checksum"] != migration.checksum:
            raise errors.Conflict(
                f"migration {migration.path.name} was edited after it was applied on "
                f"{record['applied_at']} (checksum {record['checksum'][:12]}… → "
                f"{migration.checksum[:12]}…); add a new V-file instead of editing an applied one"
            )


def _try_lock(store: GraphStore, owner: str, ttl_s: float) -> str:
    """Take the lock if it is free or expired; return its holder after the attempt."""

    def work(tx: neo4j.ManagedTransaction) -> str:
        # MERGE + SET takes the node's write lock first, so the read below sees the latest commit.
        tx.run("MERGE (l:MigrationLock {name: $name}) SET l.touched = timestamp()", name=_LOCK_NAME).consume()
        record = tx.run(
            "MATCH (l:MigrationLock {name: $name}) "
            "WITH l, (l.owner IS NULL OR l.expires_ms < timestamp()) AS free "
            "SET l.owner = CASE WHEN free THEN $owner ELSE l.owner END, "
            "    l.expires_ms = CASE WHEN free THEN timestamp() + $ttl_ms ELSE l.expires_ms END "
            "RETURN l.owner AS owner",
            name=_LOCK_NAME, owner=owner, ttl_ms=int(ttl_s * 1000),
        ).single()
        return record["owner"]

    return store.transaction(work, write=True)


def _unlock(store: GraphStore, owner: str) -> None:
    store.write(
        "MATCH (l:MigrationLock {name: $name, owner: $owner}) REMOVE l.owner, l.expires_ms",
        {"name": _LOCK_NAME, "owner": owner},
    )


def migrate(store: GraphStore, folder: Path = MIGRATIONS_DIR, *, lock_ttl_s: float = 600.0,
            wait_s: float = 120.0) -> list[Migration]:
    """Apply the pending migrations of ``folder`` in order; return those applied now."""
    files = discover(folder)
    store.run_schema(_BOOTSTRAP)
    _check_unchanged(files, applied(store))

    owner = f"{uuid.uuid4()}"
    deadline = time.monotonic() + wait_s
    while (holder := _try_lock(store, owner, lock_ttl_s)) != owner:
        if time.monotonic() >= deadline:
            raise errors.Conflict(f"migrations are locked by another process ({holder}); try again later")
        time.sleep(0.2)
    try:
        done = applied(store)  # re-read under the lock: another process may have just applied some
        _check_unchanged(files, done)
        newly: list[Migration] = []
        for migration in files:
            if migration.version in done:
                continue
            log.info("applying migration %s", migration.path.name)
            store.run_schema(migration.statements)
            store.write(
                "CREATE (m:Migration {version: $version, name: $name, checksum: $checksum, "
                "applied_at: datetime()})",
                {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
            )
            newly.append(migration)
        return newly
    finally:
        _unlock(store, owner)
