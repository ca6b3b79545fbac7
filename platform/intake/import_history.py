"""Each finished import into a pool or target, kept as its history: when, from where, by whom,
what it read, added and skipped (with the first skipped lines' reasons).

``(:ImportRecord {import_id, ...})-[:IMPORTED_INTO]->(:Pool|:Target)``, written once per import
(MERGE by id, so recording twice is harmless) and removed with its collection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradwalk.platform.shared.schemas import ImportPublic

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore
    from gradwalk.platform.intake.pools import ImportReport

MAX_SKIP_REASONS = 100  # skipped lines kept per import; the count is always whole
OWNERS = {"pool": "Pool", "target": "Target"}

_RECORD = """
MATCH (o:{owner} {{name: $name}})
MERGE (h:ImportRecord {{import_id: $import_id}})
  ON CREATE SET h += $fields, h.at = datetime()
MERGE (h)-[:IMPORTED_INTO]->(o)
"""

_HISTORY = """
MATCH (h:ImportRecord)-[:IMPORTED_INTO]->(:{owner} {{name: $name}})
RETURN h {{.*, at: toString(h.at)}} AS record ORDER BY h.at
"""


def record(store: GraphStore, report: ImportReport, created_by: str | None) -> None:
    """Keep ``report`` in its collection's history."""
    read = report.records
    fields: dict[str, Any] = {
        "kind": report.kind, "name": report.name, "source": report.source, "created_by": created_by,
        "read": read.read, "imported": read.imported, "duplicates": read.duplicates, "skipped": read.skipped,
        "skip_reasons": list(read.skip_reasons[:MAX_SKIP_REASONS]), "added": report.added,
        "created": report.created, "size": report.size, "part": report.part,
    }
    store.write(_RECORD.format(owner=OWNERS[report.kind]),
                {"name": report.name, "import_id": report.import_id, "fields": fields})


def history(store: GraphStore, kind: str, name: str) -> list[ImportPublic]:
    """The imports into ``kind`` ``name``, oldest first."""
    rows = store.read(_HISTORY.format(owner=OWNERS[kind]), {"name": name})
    return [ImportPublic.model_validate({k: v for k, v in row["record"].items() if v is not None})
            for row in rows]
