"""Read-only listings: pools and targets (list, show, rows), feature runs and graphs (list, show).

The modules that create these records own their writes and their shapes: a feature run reads as
:func:`gradwalk.platform.work.feature_runs.get` gives it; graphs as :mod:`gradwalk.graph.knn.records`
gives them. ``show`` adds what depends on the record (:mod:`dependants`), and for a pool or
target its rows by source and its import history. A wrong name is answered with the names that
exist (:mod:`names`). The API, the CLI (through the client) and the web UI all read through here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gradwalk import errors
from gradwalk.checks import check_int
from gradwalk.graph.knn import records
from gradwalk.platform.catalog import names
from gradwalk.platform.catalog.dependants import dependants
from gradwalk.platform.intake import import_history
from gradwalk.platform.shared.schemas import (
    CollectionDetail,
    CollectionPublic,
    FeatureRunDetail,
    FeatureRunPublic,
    GraphDetail,
    GraphPublic,
    MembersPage,
)
from gradwalk.platform.work import feature_runs

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore

MAX_PAGE_ROWS = 10_000
# kind -> (owner label, member label, membership relationship, the CLI noun that lists it)
COLLECTIONS = {"pool": ("Pool", "Instruction", "IN_POOL", "gradwalk pool list"),
               "target": ("Target", "ValExample", "OF_TARGET", "gradwalk target list")}

_COLLECTION = """
MATCH (c:{label}) WHERE $name IS NULL OR c.name = $name
RETURN c {{.name, .status, .size, .test_size, .last_import_id, .created_by}} AS item,
       toString(c.created_at) AS created_at, toString(c.updated_at) AS updated_at
ORDER BY c.name
"""

_SOURCES = """
MATCH (n:{member})-[:{rel}]->(:{label} {{name: $name}})
RETURN coalesce(n.source, '(unknown)') AS source, count(*) AS rows ORDER BY source
"""

_MEMBERS = """
MATCH (n:{member})-[:{rel}]->(:{label} {{name: $name}})
RETURN n.id AS id, n.messages AS messages, n.source AS source
ORDER BY n.id SKIP $offset LIMIT $limit
"""

_FEATURE_RUNS = """
MATCH (fr:FeatureRun)
WHERE fr.pool IS NOT NULL AND ($pool IS NULL OR fr.pool = $pool) AND ($kind IS NULL OR fr.kind = $kind)
RETURN fr.id AS id ORDER BY fr.created_at DESC
"""

_KEYS = {"pool": "MATCH (c:Pool) RETURN c.name AS key", "target": "MATCH (c:Target) RETURN c.name AS key",
         "feature run": "MATCH (c:FeatureRun) RETURN c.id AS key",
         "graph": "MATCH (c:InstructionGraph) RETURN c.id AS key",
         "job": "MATCH (c:SelectionJob) RETURN c.id AS key"}
_LIST_COMMANDS = {"pool": "gradwalk pool list", "target": "gradwalk target list",
                  "feature run": "gradwalk features list", "graph": "gradwalk graph list",
                  "job": "gradwalk job list"}

_GRAPH_EXTRA = """
MATCH (g:InstructionGraph {id: $id})
RETURN g.created_by AS created_by, g.deleted_by AS deleted_by, toString(g.deleted_at) AS deleted_at,
       g.extension_refused AS extension_refused
"""


def missing(store: GraphStore, kind: str, name: str) -> errors.NotFound:
    """The NotFound for ``kind`` ``name``, naming the ones that exist."""
    return names.not_found(kind, name, [r["key"] for r in store.read(_KEYS[kind])], _LIST_COMMANDS[kind])


def _collections(store: GraphStore, kind: str, name: str | None) -> list[CollectionPublic]:
    rows = store.read(_COLLECTION.format(label=COLLECTIONS[kind][0]), {"name": name})
    return [CollectionPublic(**{k: v for k, v in row["item"].items() if v is not None},
                             created_at=row["created_at"], updated_at=row["updated_at"]) for row in rows]


def list_collections(store: GraphStore, kind: str) -> list[CollectionPublic]:
    """Every pool (or target) with its status and size, by name."""
    return _collections(store, kind, None)


def get_collection(store: GraphStore, kind: str, name: str) -> CollectionPublic:
    found = _collections(store, kind, name)
    if not found:
        raise missing(store, kind, name)
    return found[0]


def show_collection(store: GraphStore, kind: str, name: str) -> CollectionDetail:
    """A pool or target whole: size, rows per source, imports (with skipped lines), dependants."""
    base = get_collection(store, kind, name)
    label, member, rel, _ = COLLECTIONS[kind]
    sources = {r["source"]: r["rows"] for r in store.read(_SOURCES.format(label=label, member=member, rel=rel),
                                                          {"name": name})}
    return CollectionDetail(**base.model_dump(), kind=kind, sources=sources,
                            imports=import_history.history(store, kind, name),
                            dependants=dependants(store, kind, name))


def collection_rows(store: GraphStore, kind: str, name: str, *, offset: int = 0, limit: int = 100) -> MembersPage:
    """A page of a pool's (or target's) rows, ordered by id (the row order of its feature runs)."""
    check_int(offset, "offset", low=0)
    check_int(limit, "limit", low=1, high=MAX_PAGE_ROWS)
    base = get_collection(store, kind, name)
    label, member, rel, _ = COLLECTIONS[kind]
    found = store.read(_MEMBERS.format(label=label, member=member, rel=rel),
                       {"name": name, "offset": offset, "limit": limit})
    rows = [{**row, "messages": json.loads(row["messages"])} for row in found]
    return MembersPage(kind=kind, name=name, offset=offset, limit=limit, total=base.size or 0, rows=rows)


def list_pools(store: GraphStore) -> list[CollectionPublic]:
    return list_collections(store, "pool")


def get_pool(store: GraphStore, name: str) -> CollectionPublic:
    return get_collection(store, "pool", name)


def list_targets(store: GraphStore) -> list[CollectionPublic]:
    return list_collections(store, "target")


def get_target(store: GraphStore, name: str) -> CollectionPublic:
    return get_collection(store, "target", name)


def list_feature_runs(store: GraphStore, *, pool: str | None = None, kind: str | None = None) -> list[FeatureRunPublic]:
    """Feature runs (of ``pool``, of ``kind``: gradient or embedding), newest first; deleted runs a
    lineage names are listed as their tombstones (``status: 'deleted'``)."""
    if kind is not None and kind not in feature_runs.KINDS:
        raise errors.InvalidInput(f"kind must be one of {', '.join(feature_runs.KINDS)}, not {kind!r}")
    rows = store.read(_FEATURE_RUNS, {"pool": pool, "kind": kind})
    return [feature_runs.get(store, row["id"]) for row in rows]


def show_feature_run(store: GraphStore, run_id: str) -> FeatureRunDetail:
    """One feature run with what depends on it."""
    try:
        run = feature_runs.get(store, run_id)
    except errors.NotFound:
        raise missing(store, "feature run", run_id) from None
    return FeatureRunDetail(**run.model_dump(), dependants=dependants(store, "feature run", run_id))


def list_graphs(store: GraphStore, feature_run: str | None = None) -> list[GraphPublic]:
    return [_graph(store, info.to_dict()) for info in records.list_graphs(store, feature_run)]


def _graph(store: GraphStore, info: dict[str, Any]) -> GraphPublic:
    extra = {k: v for k, v in store.read(_GRAPH_EXTRA, {"id": info["id"]})[0].items() if v is not None}
    return GraphPublic.model_validate({**info, **extra})


def show_graph(store: GraphStore, graph: str) -> GraphDetail:
    """One instruction graph with its maker, its deletion (a tombstone) and what depends on it."""
    try:
        info = records.get_graph(store, graph)
    except errors.NotFound:
        raise missing(store, "graph", graph) from None
    return GraphDetail(**_graph(store, info.to_dict()).model_dump(), dependants=dependants(store, "graph", graph))
