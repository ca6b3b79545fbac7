"""Deleting pools, targets, feature runs and graphs without ever breaking a published version.

The rules, for every noun:

- **Lineage first.** Without ``force`` a delete is refused (Conflict) while anything depends on
  the record (:mod:`dependants`): feature runs, graphs, selection jobs, published versions; the
  message lists them. A queued or running job that uses it refuses the delete even with ``force``.
- **Versions stay whole.** A version's rows are never deleted: deleting a pool removes its
  membership edges, and only the instructions that no other pool and no version holds go. A
  feature run or graph that a job used (so a version's lineage may name it) is kept as a
  tombstone: its record stays with ``status: 'deleted'``, ``deleted_at`` and ``deleted_by``, its
  edges and artifacts go.
- **Resumable.** The record is first marked ``status: 'deleting'`` (imports, feature runs, builds
  and jobs stop taking it), then emptied in batches of ``batch`` rows or edges per transaction,
  and removed last. A delete killed at any point leaves a ``deleting`` record that the next
  delete of it finishes, without asking again (the first one decided).
- **Roles.** ``caller`` (a token) must be its maker (``created_by``) or an admin, for everything
  a forced delete takes with it too. Every delete has a caller: the service layer
  (platform/changes/deletes.py) is the way in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradwalk import errors
from gradwalk.graph.knn import build
from gradwalk.platform.catalog import listings
from gradwalk.platform.catalog.dependants import dependants
from gradwalk.platform.shared.schemas import DeletePublic, DependantsPublic
from gradwalk.statuses import FEATURE_RUN_BUSY, CollectionStatus, FeatureRunStatus, GraphStatus

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore
    from gradwalk.platform.access.auth import Principal
    from gradwalk.platform.artifacts.feature_store import FeatureStore

DELETE_BATCH = 5_000

_READ = {
    "pool": "MATCH (o:Pool {name: $key}) RETURN o.status AS status, o.created_by AS created_by",
    "target": "MATCH (o:Target {name: $key}) RETURN o.status AS status, o.created_by AS created_by",
    "feature run": "MATCH (o:FeatureRun {id: $key}) RETURN o.status AS status, o.created_by AS created_by",
    "graph": "MATCH (o:InstructionGraph {id: $key}) RETURN o.status AS status, o.created_by AS created_by",
}
_MATCH = {"pool": "(o:Pool {name: $key})", "target": "(o:Target {name: $key})",
          "feature run": "(o:FeatureRun {id: $key})", "graph": "(o:InstructionGraph {id: $key})"}

# The node's lock first, so an import that claims the name meanwhile is seen (and wins).
_MARK = """
MATCH {node}
SET o._lock = true
REMOVE o._lock
WITH o WHERE NOT o.status IN ['importing', 'deleting', 'deleted']
SET o.status_before_delete = o.status, o.status = 'deleting', o.deleting_by = $who,
    o.deleting_since = datetime()
RETURN o.status AS status
"""

_UNMARK = """
MATCH {node} WHERE o.status = 'deleting'
SET o.status = o.status_before_delete
REMOVE o.status_before_delete, o.deleting_by, o.deleting_since
"""

# One batch of a pool's (or target's) rows: the membership goes; a row goes with it only when no
# other collection and no dataset version (published or staged) holds it.
_REMOVE_MEMBERS = """
MATCH (n:{member})-[r:{rel}]->(:{label} {{name: $key}})
WITH n, r LIMIT $batch
DELETE r
WITH collect(n) AS rows
CALL (rows) {{
  UNWIND rows AS n
  WITH n WHERE NOT EXISTS {{ (n)-[:{rel}]->() }} AND NOT EXISTS {{ (:DatasetVersion)-[:CONTAINS]->(n) }}
  DETACH DELETE n
  RETURN count(*) AS dropped
}}
RETURN size(rows) AS removed, dropped
"""

# A target's rows are its validation part and its held-out test part.
_PARTS = {"target": [("ValExample", "OF_TARGET"), ("TestExample", "TEST_OF")]}

_DROP_IMPORTS = """
MATCH (h:ImportRecord)-[:IMPORTED_INTO]->{node}
DETACH DELETE h
RETURN count(*) AS imports
"""

_DROP_COLLECTION = "MATCH {node} WHERE o.status = 'deleting' DETACH DELETE o"

_DROP_PROGRESS = """
MATCH (:FeatureRun {id: $key})-[:SHARD_IN_FLIGHT]->(s:ShardProgress)
DETACH DELETE s
"""

# A run a job used stays as a tombstone, so the job's and its version's lineage still resolve.
_DROP_RUN = """
MATCH (o:FeatureRun {id: $key}) WHERE o.status = 'deleting'
WITH o, EXISTS { (o)<-[:USED]-(:SelectionJob) } AS used
FOREACH (_ IN CASE WHEN used THEN [] ELSE [1] END | DETACH DELETE o)
FOREACH (_ IN CASE WHEN used THEN [1] ELSE [] END |
  SET o.status = 'deleted', o.deleted_at = datetime(), o.deleted_by = o.deleting_by, o.parts = [],
      o.done_shards = []
  REMOVE o.status_before_delete, o.deleting_since, o.deleting_by)
RETURN used
"""

_GRAPH_DELETED_BY = """
MATCH (o:InstructionGraph {id: $key}) WHERE o.status = 'deleted'
SET o.deleted_by = coalesce(o.deleting_by, $who)
REMOVE o.deleting_by, o.deleting_since, o.status_before_delete
"""

_LIVE_RUNS = "MATCH (o:FeatureRun {pool: $key}) WHERE o.status <> 'deleted' RETURN o.id AS id ORDER BY id"
_LIVE_GRAPHS = ("MATCH (o:InstructionGraph)-[:BUILT_FROM]->(:FeatureRun {id: $key}) WHERE o.status <> 'deleted' "
                "RETURN o.id AS id ORDER BY id")


def _record(store: GraphStore, kind: str, key: str) -> dict[str, Any]:
    found = store.read(_READ[kind], {"key": key})
    if not found:
        raise listings.missing(store, kind, key)
    return found[0]


def _allowed(caller: Principal, kind: str, key: str, owner: str | None) -> None:
    caller.require_owner(owner, f"{kind} {key!r}")


def _refuse_orphaning(kind: str, key: str, found: DependantsPublic, force: bool) -> None:
    if found.active_jobs:
        raise errors.Conflict(f"{kind} {key!r} is in use by queued or running job(s) "
                              f"{', '.join(found.active_jobs)}: cancel them or wait, then delete it")
    if found.names() and not force:
        listed = "; ".join(found.names())
        raise errors.Conflict(
            f"{kind} {key!r} has dependants: {listed}. Delete those first, or delete with --force "
            "(force=true): published versions keep their rows, and runs and graphs a job used stay as "
            "tombstones its lineage shows")


def _begin(store: GraphStore, kind: str, key: str, status: str, caller: Principal, force: bool,
           cascade: list[tuple[str, str]]) -> bool:
    """Check and mark ``key`` deleting; False when a cut-short delete is being finished instead.
    ``cascade`` lists what a forced delete takes with it, each of which ``caller`` must own too."""
    if status == CollectionStatus.DELETING:
        return False
    if status == CollectionStatus.IMPORTING:
        raise errors.Conflict(f"{kind} {key!r} is being imported; delete it when the import has finished")
    found = dependants(store, kind, key)
    _refuse_orphaning(kind, key, found, force)
    for other_kind, other in cascade:
        _allowed(caller, other_kind, other, _record(store, other_kind, other)["created_by"])
    node = _MATCH[kind]
    if not store.write(_MARK.format(node=node), {"key": key, "who": caller.name}):
        raise errors.Conflict(f"{kind} {key!r} changed meanwhile (an import or another delete); try again")
    if not force and dependants(store, kind, key).names():  # one appeared between the check and the mark
        store.write(_UNMARK.format(node=node), {"key": key})
        _refuse_orphaning(kind, key, dependants(store, kind, key), force)
    return True


def delete_collection(store: GraphStore, kind: str, name: str, *, features: FeatureStore, caller: Principal,
                      force: bool = False, batch: int = DELETE_BATCH) -> DeletePublic:
    """Delete pool (or target) ``name``: its membership and its rows that nothing else holds, its
    import history, and with ``force`` a pool's feature runs and graphs (tombstones where a job used
    them). Instructions a version contains stay."""
    label, member, rel, _ = listings.COLLECTIONS[kind]
    record = _record(store, kind, name)
    _allowed(caller, kind, name, record["created_by"])
    runs = [r["id"] for r in store.read(_LIVE_RUNS, {"key": name})] if kind == "pool" else []
    cascade = [("feature run", r) for r in runs]
    cascade += [("graph", g) for r in runs for g in _live_graphs(store, r)]
    _begin(store, kind, name, record["status"], caller, force, cascade)
    done = [delete_feature_run(store, r, features=features, force=True, caller=caller, batch=batch)
            for r in ([r["id"] for r in store.read(_LIVE_RUNS, {"key": name})] if kind == "pool" else [])]
    removed = dropped = 0
    for query in [_REMOVE_MEMBERS.format(label=label, member=m, rel=r) for m, r in _PARTS.get(kind, [(member, rel)])]:
        while True:
            step = store.write(query, {"key": name, "batch": batch})[0]
            removed, dropped = removed + step["removed"], dropped + step["dropped"]
            if step["removed"] < batch:
                break
    node = f"(o:{label} {{name: $key}})"
    imports = store.write(_DROP_IMPORTS.format(node=node), {"key": name})[0]["imports"]
    store.write(_DROP_COLLECTION.format(node=node), {"key": name})
    return DeletePublic(kind=kind, name=name, outcome="deleted", cascaded=done,
                        removed={"memberships": removed, "rows": dropped, "imports": imports},
                        kept={"rows": removed - dropped})


def _live_graphs(store: GraphStore, run_id: str) -> list[str]:
    return [r["id"] for r in store.read(_LIVE_GRAPHS, {"key": run_id})]


def delete_feature_run(store: GraphStore, run_id: str, *, features: FeatureStore, caller: Principal,
                       force: bool = False, batch: int = DELETE_BATCH) -> DeletePublic:
    """Delete a feature run: its graphs (with ``force``), its artifact files, then its record (a
    tombstone when a job used it). A run a worker may still write needs ``force``."""
    record = _record(store, "feature run", run_id)
    if record["status"] == FeatureRunStatus.DELETED:
        return DeletePublic(kind="feature run", name=run_id, outcome="already deleted")
    _allowed(caller, "feature run", run_id, record["created_by"])
    if record["status"] in FEATURE_RUN_BUSY and not force:
        raise errors.Conflict(f"feature run {run_id} is {record['status']}: wait until it has finished, or "
                              "delete it with --force (a worker still running may leave files that a second "
                              "delete removes)")
    _begin(store, "feature run", run_id, record["status"], caller, force,
           [("graph", g) for g in _live_graphs(store, run_id)])
    done = [delete_graph(store, g, force=True, caller=caller, batch=batch) for g in _live_graphs(store, run_id)]
    files = features.delete_run(run_id)
    store.write(_DROP_PROGRESS, {"key": run_id})
    used = store.write(_DROP_RUN, {"key": run_id})
    tombstone = bool(used and used[0]["used"])
    return DeletePublic(kind="feature run", name=run_id, outcome="tombstone" if tombstone else "deleted",
                        cascaded=done, removed={"files": files})


def delete_graph(store: GraphStore, graph: str, *, caller: Principal, force: bool = False,
                 batch: int = DELETE_BATCH) -> DeletePublic:
    """Delete an instruction graph's edges in batches, then its record (a tombstone when a job used it)."""
    record = _record(store, "graph", graph)
    if record["status"] == GraphStatus.DELETED:
        return DeletePublic(kind="graph", name=graph, outcome="already deleted")
    _allowed(caller, "graph", graph, record["created_by"])
    if record["status"] == GraphStatus.BUILDING and not force:
        raise errors.Conflict(f"graph {graph} is being built: wait until it has finished, or delete it with --force")
    _begin(store, "graph", graph, record["status"], caller, force, [])
    edges = build.delete_graph(store, graph, batch=batch, missing_ok=True)
    store.write(_GRAPH_DELETED_BY, {"key": graph, "who": caller.name})
    left = store.read(_READ["graph"], {"key": graph})
    return DeletePublic(kind="graph", name=graph, outcome="tombstone" if left else "deleted",
                        removed={"edges": edges})
