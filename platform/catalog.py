"""Read-only listings of pools and targets, and of feature runs by pool and kind.

The modules that create these records own their writes and their shapes: a feature run reads as
:func:`gradwalk.platform.feature_runs.get` gives it; graphs are listed by
:mod:`gradwalk.graph.graph_records`. The API and the CLI list and show them through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradwalk import errors
from gradwalk.platform import feature_runs
from gradwalk.platform.schemas import CollectionPublic, FeatureRunPublic

if TYPE_CHECKING:
    from gradwalk.graph.store import GraphStore

_COLLECTION = """
MATCH (c:{label}) WHERE $name IS NULL OR c.name = $name
RETURN c {{.name, .status, .size, .last_import_id}} AS item, toString(c.created_at) AS created_at,
       toString(c.updated_at) AS updated_at
ORDER BY c.name
"""

_FEATURE_RUNS = """
MATCH (fr:FeatureRun)-[:OF_POOL]->(p:Pool)
WHERE ($pool IS NULL OR p.name = $pool) AND ($kind IS NULL OR fr.kind = $kind)
RETURN fr.id AS id ORDER BY fr.created_at DESC
"""


def _collections(store: GraphStore, label: str, name: str | None) -> list[CollectionPublic]:
    rows = store.read(_COLLECTION.format(label=label), {"name": name})
    return [CollectionPublic.model_validate({**row["item"], "created_at": row["created_at"],
                                             "updated_at": row["updated_at"]}) for row in rows]


def _one(found: list[CollectionPublic], what: str) -> CollectionPublic:
    if not found:
        raise errors.NotFound(f"no {what}")
    return found[0]


def list_pools(store: GraphStore) -> list[CollectionPublic]:
    return _collections(store, "Pool", None)


def get_pool(store: GraphStore, name: str) -> CollectionPublic:
    return _one(_collections(store, "Pool", name), f"pool {name!r}")


def list_targets(store: GraphStore) -> list[CollectionPublic]:
    return _collections(store, "Target", None)


def get_target(store: GraphStore, name: str) -> CollectionPublic:
    return _one(_collections(store, "Target", name), f"target {name!r}")


def list_feature_runs(store: GraphStore, *, pool: str | None = None, kind: str | None = None) -> list[FeatureRunPublic]:
    """Feature runs (of ``pool``, of ``kind``: gradient or embedding), newest first."""
    if kind is not None and kind not in feature_runs.KINDS:
        raise errors.InvalidInput(f"kind must be one of {', '.join(feature_runs.KINDS)}, not {kind!r}")
    rows = store.read(_FEATURE_RUNS, {"pool": pool, "kind": kind})
    return [feature_runs.get(store, row["id"]) for row in rows]
