"""Selection job records: the one place that writes a job's status, progress, error and timings.

A job is a ``(:SelectionJob)`` node with ``USED`` edges to the feature run, graph and targets it
reads. Its parameters are checked before it is queued (names, ranges, that the pool, targets,
feature run and graph exist and belong together), so a job that starts has everything it needs.
The feature run is of the kind its method reads (:attr:`Method.feature_kind`: gradient features
or embeddings): the one named, or else the pool's latest complete run of that kind; the graph is
one built from that run.
Status moves queued → running → succeeded | failed | cancelled; a cancel request on a running job
is seen by the worker at its next progress report.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from gradwalk import errors
from gradwalk.graph.selection.registry import get_method
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.shared.schemas import JobPublic
from gradwalk.platform.shared.waiting import wait_until
from gradwalk.platform.work import broker
from gradwalk.platform.work.task_names import SELECT_RUN
from gradwalk.statuses import JOB_FINISHED, JobStatus


class Cancelled(errors.GradwalkError):
    """Raised inside a job whose cancellation was requested."""


@dataclass(frozen=True)
class JobRequest:
    """What a user asks for. ``targets`` pools several targets' validation features (multi-target);
    ``sources`` (record sources, as imported) narrows the pool to the rows from those sources."""

    pool: str
    targets: list[str]
    method: str
    dataset: str
    params: dict[str, Any] = field(default_factory=dict)
    feature_run: str | None = None
    graph: str | None = None
    sources: list[str] | None = None


MAX_SOURCES = 100

# Rows of the pool from each of the requested sources.
_SOURCE_ROWS = """
MATCH (i:Instruction)-[:IN_POOL]->(:Pool {name: $pool})
WHERE i.source IN $sources
RETURN i.source AS source, count(*) AS rows
"""

_POOL_SOURCES = """
MATCH (i:Instruction)-[:IN_POOL]->(:Pool {name: $pool})
WHERE i.source IS NOT NULL
RETURN i.source AS source, count(*) AS rows ORDER BY rows DESC, source LIMIT 20
"""


# The named run, or the latest complete run of the method's kind; none when the method reads none.
_RESOLVE = """
MATCH (p:Pool {name: $pool})
OPTIONAL MATCH (fr:FeatureRun {status: 'complete'})-[:OF_POOL]->(p)
  WHERE $kind IS NOT NULL AND (fr.id = $feature_run OR ($feature_run IS NULL AND fr.kind = $kind))
WITH p, fr ORDER BY fr.created_at DESC LIMIT 1
OPTIONAL MATCH (g:InstructionGraph {status: 'ready'})-[:BUILT_FROM]->(fr)
  WHERE $graph IS NULL OR g.id = $graph
WITH p, fr, g ORDER BY g.built_at DESC LIMIT 1
RETURN p.status AS pool_status, fr.id AS feature_run, fr.kind AS kind, fr.parts AS parts, g.id AS graph
"""

_GRAPH_RUN = "MATCH (g:InstructionGraph {id: $graph}) OPTIONAL MATCH (g)-[:BUILT_FROM]->(fr:FeatureRun) RETURN fr.id AS run"

_CREATE = """
CREATE (j:SelectionJob {id: $id, method: $method, params: $params, pool: $pool, targets: $targets, sources: $sources,
                        dataset: $dataset, status: 'queued', progress: 0.0, stage: 'queued',
                        created_by: $created_by, created_at: datetime()})
WITH j
OPTIONAL MATCH (fr:FeatureRun {id: $feature_run})
FOREACH (_ IN CASE WHEN fr IS NULL THEN [] ELSE [1] END | CREATE (j)-[:USED]->(fr))
WITH j
OPTIONAL MATCH (g:InstructionGraph {id: $graph})
FOREACH (_ IN CASE WHEN g IS NULL THEN [] ELSE [1] END | CREATE (j)-[:USED]->(g))
WITH j
UNWIND $targets AS name
MATCH (t:Target {name: name})
CREATE (j)-[:USED]->(t)
"""

_GET = """
MATCH (j:SelectionJob {id: $id})
OPTIONAL MATCH (j)-[:USED]->(fr:FeatureRun)
OPTIONAL MATCH (j)-[:USED]->(g:InstructionGraph)
RETURN j {.*, created_at: toString(j.created_at), started_at: toString(j.started_at),
          finished_at: toString(j.finished_at)} AS job, fr.id AS feature_run, g.id AS graph
"""

_LIST = """
MATCH (j:SelectionJob) WHERE $status IS NULL OR j.status = $status
RETURN j.id AS id ORDER BY j.created_at DESC LIMIT $limit
"""

# The job's lock first, so the status read after it is the latest: a cancel and the commit of the
# job's version (datasets.publish, which takes the same lock) never both win. A job whose version
# is published can no longer be cancelled.
_TRANSITION = """
MATCH (j:SelectionJob {id: $id})
SET j._lock = true
REMOVE j._lock
WITH j
WHERE j.status IN $from AND ($to <> 'cancelled' OR NOT EXISTS { (:DatasetVersion)-[:PRODUCED_BY]->(j) })
SET j.status = $to, j += $extra
RETURN j.status AS status
"""

_PUBLISHED = """
MATCH (d:Dataset)-[:HAS_VERSION]->(v:DatasetVersion)-[:PRODUCED_BY]->(:SelectionJob {id: $id})
RETURN d.name AS dataset, v.version AS version
"""


def _check_request(request: JobRequest) -> dict[str, Any]:
    if not request.targets:
        raise errors.InvalidInput("a selection job needs at least one target")
    if not request.dataset or len(request.dataset) > 200:
        raise errors.InvalidInput("dataset: give the name of the dataset the selection is published to")
    method = get_method(request.method)
    parsed = method.parse(request.params)  # refuses unknown and missing parameters
    if request.feature_run is not None and method.feature_kind is None:
        raise errors.InvalidInput(f"feature_run: method {method.name} reads no feature run; leave it out")
    if request.sources is not None:
        if (not isinstance(request.sources, list) or not request.sources
                or len(request.sources) > MAX_SOURCES):
            raise errors.InvalidInput(f"sources: give 1 to {MAX_SOURCES} source names, or leave it out "
                                      "to select from the whole pool")
        for source in request.sources:
            if not isinstance(source, str) or not source.strip() or len(source) > 1000:
                raise errors.InvalidInput(f"sources: {source!r} is not a source name (a non-empty string)")
    needs_graph = "neighbors" in method.needs
    if request.graph is not None and not needs_graph:
        raise errors.InvalidInput(f"graph: method {method.name} reads no instruction graph; leave it out")
    return {"kind": method.feature_kind, "needs_graph": needs_graph, "params": parsed}


def create(store: GraphStore, request: JobRequest, *, created_by: str | None = None) -> str:
    """Check a request and record it as a queued job; returns the job id."""
    checked = _check_request(request)
    kind = checked["kind"]
    resolved = store.read(_RESOLVE, {"pool": request.pool, "kind": kind, "feature_run": request.feature_run,
                                     "graph": request.graph})
    if not resolved or resolved[0]["pool_status"] != "ready":
        raise errors.NotFound(f"pool {request.pool!r} does not exist (or its import has not finished)")
    found = resolved[0]
    known = {row["name"] for row in store.read(
        "MATCH (t:Target) WHERE t.name IN $names AND t.status = 'ready' RETURN t.name AS name",
        {"names": request.targets})}
    missing = [t for t in request.targets if t not in known]
    if missing:
        raise errors.NotFound(f"unknown target {', '.join(map(repr, missing))}")
    if kind is not None:
        if found["feature_run"] is None:
            raise errors.NotFound(
                f"pool {request.pool!r} has no complete feature run"
                + (f" with id {request.feature_run!r}" if request.feature_run else f" of kind {kind!r}")
                + f": run `gradwalk features run {request.pool} -t TARGET --kind {kind}` first")
        if found["kind"] != kind:
            raise errors.InvalidInput(
                f"feature_run: {found['feature_run']} is of kind {found['kind']!r}; method {request.method} "
                f"needs a feature run of kind {kind!r}")
        lacking = [t for t in request.targets if f"val-{t}" not in (found["parts"] or [])]
        if lacking:
            raise errors.InvalidInput(
                f"feature run {found['feature_run']} has no validation features for target "
                f"{', '.join(map(repr, lacking))}: featurise the target with that run first")
    if checked["needs_graph"]:
        if request.graph is not None and found["graph"] is None:
            built_from = store.read(_GRAPH_RUN, {"graph": request.graph})
            if not built_from:
                raise errors.NotFound(f"unknown instruction graph {request.graph!r}")
            raise errors.InvalidInput(
                f"graph {request.graph!r} was built from feature run {built_from[0]['run']!r}, "
                f"not from the job's feature run {found['feature_run']!r}")
        if found["graph"] is None:
            raise errors.NotFound(
                f"feature run {found['feature_run']} has no ready instruction graph: run `gradwalk graph build` first")
    sources = _check_sources(store, request) if request.sources is not None else None
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    store.write(_CREATE, {
        "id": job_id, "method": request.method, "params": json.dumps(request.params, sort_keys=True),
        "pool": request.pool, "targets": request.targets, "dataset": request.dataset,
        "feature_run": found["feature_run"], "graph": found["graph"] if checked["needs_graph"] else None,
        "created_by": created_by, "sources": sources,
    })
    return job_id


def _check_sources(store: GraphStore, request: JobRequest) -> list[str]:
    """The requested sources, each named once; one with no row in the pool is refused, with the
    sources the pool has."""
    sources = list(dict.fromkeys(request.sources or []))
    found = {row["source"] for row in store.read(_SOURCE_ROWS, {"pool": request.pool, "sources": sources})}
    missing = [s for s in sources if s not in found]
    if missing:
        known = [row["source"] for row in store.read(_POOL_SOURCES, {"pool": request.pool})]
        raise errors.InvalidInput(
            f"sources: pool {request.pool!r} has no rows from {', '.join(map(repr, missing))}; its sources "
            f"include {', '.join(map(repr, known)) or 'none (its records name no source)'}")
    return sources


def submit(store: GraphStore, request: JobRequest, *, created_by: str | None = None) -> str:
    """Record a job (made by token ``created_by``) and queue it on the ``cpu`` workers."""
    job_id = create(store, request, created_by=created_by)
    SELECT_RUN.send(job_id, task_id=job_id)
    return job_id


def get(store: GraphStore, job_id: str) -> JobPublic:
    rows = store.read(_GET, {"id": job_id})
    if not rows:
        raise errors.NotFound(f"no selection job {job_id!r}")
    job = {k: v for k, v in rows[0]["job"].items() if v is not None and not k.startswith("_")}
    for key in ("params", "summary"):
        if key in job:
            job[key] = json.loads(job[key])
    return JobPublic.model_validate({**job, "feature_run": rows[0]["feature_run"], "graph": rows[0]["graph"]})


def list_jobs(store: GraphStore, *, status: str | None = None, limit: int = 100) -> list[JobPublic]:
    if status is not None and status not in set(JobStatus):
        raise errors.InvalidInput(f"status must be one of {', '.join(JobStatus)}")
    return [get(store, row["id"]) for row in store.read(_LIST, {"status": status, "limit": limit})]


def _transition(store: GraphStore, job_id: str, allowed: tuple[JobStatus, ...], to: JobStatus,
                **extra: Any) -> bool:
    rows = store.write(_TRANSITION, {"id": job_id, "from": [s.value for s in allowed], "to": to.value, "extra": extra})
    return bool(rows)


def start(store: GraphStore, job_id: str) -> JobPublic:
    """Mark a queued job running and return it; a job redelivered after a crash starts again,
    and a finished or cancelled one raises :class:`Cancelled` so the worker skips it."""
    job = get(store, job_id)
    if job.status in JOB_FINISHED:
        raise Cancelled(f"job {job_id} is already {job.status}")
    _transition(store, job_id, (JobStatus.QUEUED, JobStatus.RUNNING), JobStatus.RUNNING,
                stage="starting", progress=0.0)
    store.write("MATCH (j:SelectionJob {id: $id}) SET j.started_at = datetime()", {"id": job_id})
    return get(store, job_id)


def report(store: GraphStore, job_id: str, stage: str, progress: float) -> None:
    """Record progress (0..1) of a running job; raises :class:`Cancelled` if a cancel was asked."""
    rows = store.write(
        "MATCH (j:SelectionJob {id: $id}) SET j.stage = CASE WHEN j.status = 'running' THEN $stage ELSE j.stage END, "
        "j.progress = CASE WHEN j.status = 'running' THEN $progress ELSE j.progress END RETURN j.status AS status",
        {"id": job_id, "stage": stage, "progress": float(progress)},
    )
    if not rows or rows[0]["status"] != JobStatus.RUNNING:
        raise Cancelled(f"job {job_id} was cancelled")


def succeed(store: GraphStore, job_id: str, *, dataset: str, version: int, summary: dict[str, Any]) -> None:
    _transition(store, job_id, (JobStatus.RUNNING,), JobStatus.SUCCEEDED, stage="done", progress=1.0,
                version=version, summary=json.dumps(summary))
    store.write("MATCH (j:SelectionJob {id: $id}) SET j.finished_at = datetime()", {"id": job_id})


def fail(store: GraphStore, job_id: str, error: str) -> None:
    if _transition(store, job_id, (JobStatus.QUEUED, JobStatus.RUNNING), JobStatus.FAILED, error=error[:4000]):
        store.write("MATCH (j:SelectionJob {id: $id}) SET j.finished_at = datetime()", {"id": job_id})


def cancel(store: GraphStore, job_id: str) -> JobPublic:
    """Cancel a queued or running job (a finished one is refused)."""
    job = get(store, job_id)
    if job.status in JOB_FINISHED:
        raise errors.Conflict(f"job {job_id} is already {job.status}; only queued or running jobs can be cancelled")
    if _transition(store, job_id, (JobStatus.QUEUED, JobStatus.RUNNING), JobStatus.CANCELLED, stage="cancelled"):
        store.write("MATCH (j:SelectionJob {id: $id}) SET j.finished_at = datetime()", {"id": job_id})
        broker.revoke(job_id)
        return get(store, job_id)
    published = store.read(_PUBLISHED, {"id": job_id})
    if published:
        raise errors.Conflict(f"job {job_id} has already published version {published[0]['version']} of "
                              f"{published[0]['dataset']!r}; it is too late to cancel it (retire the version "
                              "instead)")
    job = get(store, job_id)
    raise errors.Conflict(f"job {job_id} is already {job.status}; only queued or running jobs can be cancelled")


def wait(store: GraphStore, job_id: str, *, timeout_s: float = 24 * 3600, poll_s: float = 1.0,
         progress: Any = None) -> JobPublic:
    """Block until the job succeeded (returned) or failed / was cancelled (raised)."""
    return wait_until(lambda: get(store, job_id), done={JobStatus.SUCCEEDED}, failed={JobStatus.FAILED, JobStatus.CANCELLED},
                      what=f"selection job {job_id}", progress=progress, timeout_s=timeout_s, poll_s=poll_s)
