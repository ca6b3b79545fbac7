"""Feature run records: the one place that writes a run's status, settings and progress.

A ``(:FeatureRun)-[:OF_POOL]->(:Pool)`` node describes one featurisation of a pool (and of the
targets it was asked for, ``(:FeatureRun)-[:FOR_TARGET]->(:Target)``): its ``kind``, the engine
settings every shard uses, the warm-up checkpoints and their learning rates, and progress as rows
done out of rows total. Shards report themselves done by key, so a redelivered shard never counts
twice.

A run's ``kind`` says what its rows are: ``gradient`` — LoRA gradient features after a warm-up
(docs/architecture.md §4.1), what G2IS, its w/o-graph ablation and LESS read — or ``embedding`` —
all-MiniLM-L6-v2 sentence embeddings, no warm-up, what the embedding baseline and the w/o-gradient
ablation read (§4.5). Both kinds store the same parts, shards and manifests.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from gradwalk import errors
from gradwalk.graph.selection.registry import EMBEDDING, FEATURE_INPUTS, GRADIENT
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.shared.schemas import FeatureRunPublic
from gradwalk.platform.shared.waiting import wait_until
from gradwalk.platform.work.task_names import FEATURES_RUN
from gradwalk.statuses import FEATURE_RUN_BUSY, FeatureRunStatus

KINDS = tuple(FEATURE_INPUTS)
EMBEDDING_ENGINE_KEYS = ("model", "batch_size")  # what an embedding run's engine settings may hold
# The model a run of each kind uses when its engine names none (the workers' pinned packages).
DEFAULT_MODELS = {GRADIENT: "SmolLM2-135M-Instruct", EMBEDDING: "all-MiniLM-L6-v2"}


def val_part(target: str) -> str:
    return f"val-{target}"


_CREATE = """
MATCH (p:Pool {name: $pool, status: 'ready'})
CREATE (fr:FeatureRun {id: $id, pool: $pool, targets: $targets, kind: $kind, status: 'queued', engine: $engine,
                       warmup: $warmup, rows_total: 0, rows_done: 0, done_shards: [], parts: [],
                       created_by: $created_by, created_at: datetime()})-[:OF_POOL]->(p)
WITH fr
UNWIND $targets AS name
MATCH (t:Target {name: name, status: 'ready'})
CREATE (fr)-[:FOR_TARGET]->(t)
"""

_GET = """
MATCH (fr:FeatureRun {id: $id})
OPTIONAL MATCH (fr)-[:SHARD_IN_FLIGHT]->(s:ShardProgress)
WITH fr, coalesce(sum(s.rows), 0) AS in_flight
RETURN fr {.*, created_at: toString(fr.created_at), finished_at: toString(fr.finished_at),
           stage_at: toString(fr.stage_at),
           deleted_at: toString(fr.deleted_at), deleting_since: toString(fr.deleting_since),
           rows_in_flight: in_flight} AS run
"""

# Rows a running shard has done so far: one small node per shard, removed when the shard is counted.
_SHARD_PROGRESS = """
MATCH (fr:FeatureRun {id: $id})
SET fr._lock = true REMOVE fr._lock
WITH fr WHERE NOT $key IN fr.done_shards
MERGE (fr)-[:SHARD_IN_FLIGHT]->(s:ShardProgress {key: $key})
SET s.rows = $rows
"""

_SHARD_DONE = """
MATCH (fr:FeatureRun {id: $id})
SET fr._lock = true REMOVE fr._lock
WITH fr
OPTIONAL MATCH (fr)-[:SHARD_IN_FLIGHT]->(s:ShardProgress {key: $key})
DETACH DELETE s
WITH DISTINCT fr WHERE NOT $key IN fr.done_shards
SET fr.done_shards = fr.done_shards + $key, fr.rows_done = fr.rows_done + $rows
"""


def _check_kind(kind: str, engine: dict[str, Any], warmup: dict[str, Any]) -> None:
    """Refuse an unknown kind, and settings an embedding run has no use for, before anything is recorded."""
    if kind not in KINDS:
        raise errors.InvalidInput(f"feature run kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == EMBEDDING:
        unused = sorted(set(engine) - set(EMBEDDING_ENGINE_KEYS))
        if unused:
            raise errors.InvalidInput(f"an embedding feature run takes the engine settings "
                                      f"{', '.join(EMBEDDING_ENGINE_KEYS)}, not {', '.join(unused)}")
        if warmup:
            raise errors.InvalidInput(f"an embedding feature run has no warm-up; drop the warm-up settings "
                                      f"{', '.join(sorted(warmup))}")


def create(store: GraphStore, pool: str, targets: list[str], *, kind: str = GRADIENT, engine: dict[str, Any],
           warmup: dict[str, Any], created_by: str | None = None) -> str:
    """Record a queued feature run of ``pool`` (and validation features of ``targets``), made by
    token ``created_by``."""
    _check_kind(kind, engine, warmup)
    found = store.read("MATCH (p:Pool {name: $pool, status: 'ready'}) RETURN p.size AS size", {"pool": pool})
    if not found:
        raise errors.NotFound(f"pool {pool!r} does not exist (or its import has not finished)")
    known = {r["name"] for r in store.read(
        "MATCH (t:Target) WHERE t.name IN $names AND t.status = 'ready' RETURN t.name AS name", {"names": targets})}
    missing = [t for t in targets if t not in known]
    if missing:
        raise errors.NotFound(f"unknown target {', '.join(map(repr, missing))}")
    run_id = f"fr-{uuid.uuid4().hex[:12]}"
    store.write(_CREATE, {"id": run_id, "pool": pool, "targets": targets, "kind": kind, "created_by": created_by,
                          "engine": json.dumps(engine, sort_keys=True), "warmup": json.dumps(warmup, sort_keys=True)})
    return run_id


def get(store: GraphStore, run_id: str) -> FeatureRunPublic:
    rows = store.read(_GET, {"id": run_id})
    if not rows:
        raise errors.NotFound(f"no feature run {run_id!r}")
    run = {k: v for k, v in rows[0]["run"].items() if v is not None and not k.startswith("_")}
    for key in ("engine", "warmup", "checkpoints", "skipped", "generations"):
        if key in run:
            run[key] = json.loads(run[key])
    return FeatureRunPublic.model_validate(run)


def mark(store: GraphStore, run_id: str, status: FeatureRunStatus, **extra: Any) -> bool:
    """Set the status (and JSON-encoded dict/list extras) of a run; False, and nothing set, for a
    run that was cancelled or is being deleted (or a tombstone), so a late worker cannot bring it
    back. ``stage_at`` says when the status last changed (what the pages' ETA counts from)."""
    encoded = {k: json.dumps(v) if isinstance(v, dict | list) and k not in ("parts",) else v for k, v in extra.items()}
    return bool(store.write(
        "MATCH (fr:FeatureRun {id: $id}) SET fr._lock = true REMOVE fr._lock "  # the lock first, as _CANCEL
        "WITH fr WHERE NOT fr.status IN ['cancelled', 'deleting', 'deleted'] "
        "SET fr.stage_at = CASE WHEN fr.status = $status THEN coalesce(fr.stage_at, fr.created_at) "
        "ELSE datetime() END, fr.status = $status, fr += $extra "
        "FOREACH (_ IN CASE WHEN $status IN ['complete', 'failed'] THEN [1] ELSE [] END | "
        "SET fr.finished_at = datetime()) RETURN fr.id AS id",
        {"id": run_id, "status": status, "extra": encoded}))


# The run's lock first, so a cancel and a worker's status change never both win.
_CANCEL = """
MATCH (fr:FeatureRun {id: $id})
SET fr._lock = true REMOVE fr._lock
WITH fr WHERE fr.status IN $busy
SET fr.status = 'cancelled', fr.error = $reason, fr.finished_at = datetime(), fr.stage_at = datetime()
WITH fr
OPTIONAL MATCH (fr)-[:SHARD_IN_FLIGHT]->(s:ShardProgress)
DETACH DELETE s
RETURN DISTINCT fr.id AS id"""


def cancel(store: GraphStore, run_id: str, by: str) -> FeatureRunPublic:
    """Cancel a queued, warming-up or featurizing run for token ``by``: its workers stop at their
    next step (:func:`mark` refuses it, a shard not yet begun is skipped) and it stays cancelled."""
    if not store.write(_CANCEL, {"id": run_id, "reason": f"cancelled by token {by!r}",
                                 "busy": [str(status) for status in FEATURE_RUN_BUSY]}):
        run = get(store, run_id)
        raise errors.Conflict(f"feature run {run_id} is {run.status}; only a queued, warming-up or featurizing "
                              "run can be cancelled")
    return get(store, run_id)


def shard_progress(store: GraphStore, run_id: str, key: str, rows: int) -> None:
    """Record how many rows a running shard has done, so progress moves within a shard."""
    store.write(_SHARD_PROGRESS, {"id": run_id, "key": key, "rows": rows})


def shard_done(store: GraphStore, run_id: str, key: str, rows: int) -> None:
    """Count a finished shard's rows once, however often the shard is redelivered."""
    store.write(_SHARD_DONE, {"id": run_id, "key": key, "rows": rows})


def examples(store: GraphStore, ids: list[str], *, label: str = "Instruction") -> list[dict[str, Any]]:
    """The records of ``ids`` (in that order) as engine examples: ``{"id", "messages"}``."""
    if label not in ("Instruction", "ValExample"):
        raise ValueError(label)
    rows = store.read(f"UNWIND $ids AS id MATCH (n:{label} {{id: id}}) RETURN n.id AS id, n.messages AS messages",
                      {"ids": ids})
    by_id = {r["id"]: json.loads(r["messages"]) for r in rows}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise errors.NotFound(f"{len(missing)} {label} rows are gone (e.g. {missing[0]})")
    return [{"id": i, "messages": by_id[i]} for i in ids]


def member_ids(store: GraphStore, pool: str) -> list[str]:
    """The ids of a pool's instructions, sorted (the row order of its feature runs)."""
    return [r["id"] for r in store.read(
        "MATCH (n:Instruction)-[:IN_POOL]->(:Pool {name: $pool}) RETURN n.id AS id ORDER BY id", {"pool": pool})]


def target_ids(store: GraphStore, target: str) -> list[str]:
    return [r["id"] for r in store.read(
        "MATCH (n:ValExample)-[:OF_TARGET]->(:Target {name: $t}) RETURN n.id AS id ORDER BY id", {"t": target})]




def submit(store: GraphStore, pool: str, targets: list[str], *, kind: str = GRADIENT,
           engine: dict[str, Any] | None = None, warmup: dict[str, Any] | None = None,
           created_by: str | None = None) -> str:
    """Record a feature run of ``kind`` (``gradient`` or ``embedding``) and queue it on the ``gpu``
    workers; returns the run id.

    For a gradient run ``engine`` overrides the worker's device defaults (e.g.
    ``{"lora_r": 8, "proj_dim": 1024}``) and ``warmup`` the warm-up settings (``fraction``,
    ``epochs``, ``lr``, ``seed``, ...). An embedding run takes only ``model`` (a local
    sentence-transformers folder) and ``batch_size``, and no warm-up."""
    run_id = create(store, pool, targets, kind=kind, engine=engine or {}, warmup=warmup or {},
                    created_by=created_by)
    FEATURES_RUN.send(run_id)
    return run_id


def wait(store: GraphStore, run_id: str, *, timeout_s: float = 24 * 3600, poll_s: float = 1.0,
         progress: Any = None) -> FeatureRunPublic:
    """Block until the run is complete (returned) or failed or cancelled (raised); ``progress(run)`` per poll."""
    return wait_until(lambda: get(store, run_id), done={FeatureRunStatus.COMPLETE},
                      failed={FeatureRunStatus.FAILED, FeatureRunStatus.CANCELLED},
                      what=f"feature run {run_id}", progress=progress, timeout_s=timeout_s, poll_s=poll_s)
