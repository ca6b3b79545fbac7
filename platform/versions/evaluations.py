"""Evaluations of dataset versions: the one place that writes an evaluation's record, and the
artifact keys of its per-example scores and of the cached random baselines.

An ``(:Evaluation {id})`` is ``-[:OF]->`` a ``(:DatasetVersion)`` and ``-[:ON]->`` a ``(:Target)``,
made by a token (``created_by``). It is queued, then run on the gpu queue
(workers/tasks/evaluate.py); status moves as a selection job's does, and a cancel is seen at the
next progress report (when a unit of work begins, and every second inside a fine-tune or a scoring). Its figures (``summary``) and the key of its scores file are written in one
transaction, after the scores file is whole, so a failed or cancelled evaluation holds no figures
and an evaluation never names a file that is not there. A succeeded evaluation never changes.

Random baselines are fine-tunes of random same-size subsets of the pool the version was selected
from. Their scores are kept under a key made of everything they depend on (the candidate rows, the
size, the seed, the settings, the test part), so a second version of the same size reuses them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from gradwalk import errors
from gradwalk.graph.knn.build import feature_row_ids
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.shared.schemas import EvaluationPublic, EvaluationRequest, VersionPublic
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import broker, feature_extend, feature_runs
from gradwalk.platform.work.jobs import Cancelled
from gradwalk.platform.work.task_names import EVALUATE_RUN
from gradwalk.statuses import EVALUATION_FINISHED, EvaluationStatus

__all__ = ["Cancelled", "create", "get", "list_for", "submit"]

_TARGET = """
MATCH (t:Target {name: $target})
RETURN t.status AS status, coalesce(t.test_size, 0) AS test_size
"""

_CREATE = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {version: $version})
MATCH (t:Target {name: $target})
CREATE (e:Evaluation {id: $id, dataset: $dataset, version: $version, target: $target, settings: $settings,
                      status: 'queued', progress: 0.0, stage: 'queued', created_by: $created_by,
                      created_at: datetime()})
CREATE (e)-[:OF]->(v)
CREATE (e)-[:ON]->(t)
"""

_FIELDS = """
e {.*, created_at: toString(e.created_at), started_at: toString(e.started_at),
   finished_at: toString(e.finished_at)} AS evaluation
"""

_GET = f"MATCH (e:Evaluation {{id: $id}}) RETURN {_FIELDS}"

_LIST = f"""
MATCH (e:Evaluation)-[:OF]->(:DatasetVersion {{dataset: $dataset, version: $version}})
RETURN {_FIELDS} ORDER BY e.created_at
"""

# The node's lock first, so a cancel and the worker's last write never both win.
_TRANSITION = """
MATCH (e:Evaluation {id: $id})
SET e._lock = true
REMOVE e._lock
WITH e WHERE e.status IN $from
SET e.status = $to, e += $extra
FOREACH (_ IN CASE WHEN $to IN $finished THEN [1] ELSE [] END | SET e.finished_at = datetime())
FOREACH (_ IN CASE WHEN $to = 'running' THEN [1] ELSE [] END | SET e.started_at = datetime())
RETURN e.status AS status
"""

_REPORT = """
MATCH (e:Evaluation {id: $id})
SET e.stage = CASE WHEN e.status = 'running' THEN $stage ELSE e.stage END,
    e.progress = CASE WHEN e.status = 'running' THEN $progress ELSE e.progress END,
    e.eta_s = CASE WHEN e.status = 'running' THEN $eta_s ELSE e.eta_s END
RETURN e.status AS status
"""

_TEST_EXAMPLES = """
MATCH (n:TestExample)-[:TEST_OF]->(:Target {name: $target})
RETURN n.id AS id, n.messages AS messages, n.metadata AS metadata ORDER BY n.id
"""

BASELINES = "evaluations/baselines"


def create(store: GraphStore, dataset: str, version: int, request: EvaluationRequest, *,
           created_by: str | None = None) -> str:
    """Check and record a queued evaluation of ``dataset`` ``version``; returns its id. The target
    must be ready and have a test part: an evaluation never scores on validation data."""
    datasets.describe(store, dataset, version)  # NotFound names what is missing
    found = store.read(_TARGET, {"target": request.target})
    if not found or found[0]["status"] != "ready":
        raise errors.NotFound(f"no ready target {request.target!r} (gradwalk target list)")
    if not found[0]["test_size"]:
        raise errors.InvalidInput(
            f"target {request.target!r} has no test part to score on: import one with `gradwalk target import "
            f"{request.target} VAL_FILE --test TEST_FILE` (or --test-fraction)")
    evaluation_id = f"eval-{uuid.uuid4().hex[:12]}"
    store.write(_CREATE, {"id": evaluation_id, "dataset": dataset, "version": version, "target": request.target,
                          "settings": json.dumps(request.settings(), sort_keys=True), "created_by": created_by})
    return evaluation_id


def submit(store: GraphStore, dataset: str, version: int, request: EvaluationRequest, *,
           created_by: str | None = None) -> EvaluationPublic:
    """Record an evaluation (made by token ``created_by``) and queue it on the ``gpu`` workers."""
    evaluation_id = create(store, dataset, version, request, created_by=created_by)
    EVALUATE_RUN.send(evaluation_id, task_id=evaluation_id)
    return get(store, evaluation_id)


def _public(row: dict[str, Any]) -> EvaluationPublic:
    found = {k: v for k, v in row.items() if v is not None and not k.startswith("_")}
    for key in ("settings", "summary"):
        if key in found:
            found[key] = json.loads(found[key])
    return EvaluationPublic.model_validate(found)


def get(store: GraphStore, evaluation_id: str) -> EvaluationPublic:
    rows = store.read(_GET, {"id": evaluation_id})
    if not rows:
        raise errors.NotFound(f"no evaluation {evaluation_id!r}")
    return _public(rows[0]["evaluation"])


def list_for(store: GraphStore, dataset: str, version: int) -> list[EvaluationPublic]:
    """A version's evaluations, oldest first."""
    datasets.describe(store, dataset, version)
    return [_public(row["evaluation"]) for row in store.read(_LIST, {"dataset": dataset, "version": version})]


def _transition(store: GraphStore, evaluation_id: str, allowed: tuple[EvaluationStatus, ...],
                to: EvaluationStatus, **extra: Any) -> bool:
    return bool(store.write(_TRANSITION, {"id": evaluation_id, "from": [s.value for s in allowed], "to": to.value,
                                          "extra": extra, "finished": [s.value for s in EVALUATION_FINISHED]}))


def start(store: GraphStore, evaluation_id: str) -> EvaluationPublic:
    """Mark a queued evaluation running; one redelivered after a crash starts again from its
    cached baselines, and a finished one raises :class:`Cancelled` so the worker skips it."""
    if get(store, evaluation_id).status in EVALUATION_FINISHED or not _transition(
            store, evaluation_id, (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING), EvaluationStatus.RUNNING,
            stage="starting", progress=0.0):
        raise Cancelled(f"evaluation {evaluation_id} has already finished")
    return get(store, evaluation_id)


def report(store: GraphStore, evaluation_id: str, stage: str, progress: float, eta_s: float | None) -> None:
    """Record progress (0..1) and the estimated seconds left; raises :class:`Cancelled` once a
    cancel was asked."""
    rows = store.write(_REPORT, {"id": evaluation_id, "stage": stage, "progress": float(progress), "eta_s": eta_s})
    if not rows or rows[0]["status"] != EvaluationStatus.RUNNING:
        raise Cancelled(f"evaluation {evaluation_id} was cancelled")


def succeed(store: GraphStore, evaluation_id: str, *, settings: dict[str, Any], summary: dict[str, Any],
            scores: str) -> None:
    """Keep the figures and the scores file's key, together; a cancel that came first wins."""
    if not _transition(store, evaluation_id, (EvaluationStatus.RUNNING,), EvaluationStatus.SUCCEEDED,
                       stage="done", progress=1.0, eta_s=0.0, settings=json.dumps(settings, sort_keys=True),
                       summary=json.dumps(summary), scores=scores):
        raise Cancelled(f"evaluation {evaluation_id} was cancelled before its figures were kept")


def fail(store: GraphStore, evaluation_id: str, error: str) -> None:
    _transition(store, evaluation_id, (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING), EvaluationStatus.FAILED,
                error=error[:4000])


def cancel(store: GraphStore, evaluation_id: str) -> EvaluationPublic:
    """Cancel a queued or running evaluation (a finished one is refused)."""
    if not _transition(store, evaluation_id, (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING),
                       EvaluationStatus.CANCELLED, stage="cancelled"):
        raise errors.Conflict(f"evaluation {evaluation_id} is already {get(store, evaluation_id).status}; only "
                              "queued or running evaluations can be cancelled")
    broker.revoke(evaluation_id)
    return get(store, evaluation_id)


def test_examples(store: GraphStore, target: str) -> list[dict[str, Any]]:
    """The target's test part as engine records: messages, and ``gold``/``options`` where the
    records had them (kept in their metadata at import)."""
    out = []
    for row in store.read(_TEST_EXAMPLES, {"target": target}):
        metadata = json.loads(row["metadata"]) if row["metadata"] else {}
        out.append({"id": row["id"], "messages": json.loads(row["messages"]),
                    **{k: metadata[k] for k in ("gold", "options") if k in metadata}})
    return out


def candidates(store: GraphStore, features: FeatureStore, version: VersionPublic) -> list[str]:
    """The pool rows the version was selected from, sorted: the generation its lineage names (the
    rows of its feature run or graph then), or the pool's rows for a version selected without one."""
    if version.pool is None:
        raise errors.InvalidInput(f"{version.dataset} v{version.version} names no pool: no random rows to compare with")
    origin, run = version.lineage.get("selected_from"), version.feature_run
    if not origin or run is None:
        return feature_runs.member_ids(store, version.pool)
    rows = feature_row_ids(features, run) if origin["of"] == "graph" else feature_extend.run_rows(features, run)
    return sorted(rows[:origin["rows"]])


def digest(value: Any) -> str:
    """The SHA-256 of a JSON value, keys sorted: the key of what depends on exactly that value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def scores_key(evaluation_id: str) -> str:
    return f"evaluations/{evaluation_id}/scores.json"


def baseline_key(depends_on: dict[str, Any]) -> str:
    return f"{BASELINES}/{digest(depends_on)}.json"


def read_json(features: FeatureStore, key: str) -> Any:
    """A JSON artifact, or None when there is none."""
    data = features.files.get(key)
    return None if data is None else json.loads(data)
