"""The selection job: load the job's inputs, run its method, publish the result as a version.

Thin on purpose: job state goes through :mod:`gradwalk.platform.work.jobs`, the algorithm is a pure
function of :mod:`gradwalk.graph.selection.registry`, publishing is :func:`gradwalk.platform.versions.datasets.publish`
(atomic: a failed or cancelled job leaves no version behind). A job that loses Neo4j waits for it
and runs again; a cancel is seen at every progress report and every few seconds of a walk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any

import numpy as np

from gradwalk import __version__, errors
from gradwalk.graph.knn.build import TRAIN_PART
from gradwalk.graph.knn.neighbors import open_neighbors
from gradwalk.graph.selection.registry import FEATURE_INPUTS, SelectionInputs, get_method
from gradwalk.graph.selection.subset import restrict
from gradwalk.platform.intake import pools
from gradwalk.platform.shared.schemas import JobPublic
from gradwalk.platform.versions import generations
from gradwalk.platform.versions.datasets import JobEnded, publish
from gradwalk.platform.work import feature_runs, jobs
from gradwalk.platform.work.feature_runs import val_part
from gradwalk.platform.work.task_names import SELECT_RUN
from gradwalk.statuses import JobStatus
from gradwalk.workers.app import app
from gradwalk.workers.context import feature_store, graph_store
from gradwalk.workers.recovery import NEO4J_RETRIES, retry_when_neo4j_is_back

log = logging.getLogger(__name__)


def _inputs(job: JobPublic, stack: contextlib.ExitStack) -> tuple[list[str], SelectionInputs]:
    """Row ids of the candidate pool and what the job's method reads about them, narrowed to the
    rows of the job's record sources when it names some."""
    ids, inputs = _pool_inputs(job, stack)
    if not job.sources:
        return ids, inputs
    kept = pools.member_ids_from_sources(graph_store(), job.pool, job.sources)
    rows = np.fromiter((row for row, node in enumerate(ids) if node in kept), dtype=np.int64)
    if rows.size == 0:
        raise errors.InvalidInput(f"pool {job.pool!r} has no rows from sources {job.sources}")
    return [ids[row] for row in rows], restrict(inputs, rows, len(ids))


def _pool_inputs(job: JobPublic, stack: contextlib.ExitStack) -> tuple[list[str], SelectionInputs]:
    """Row ids of the whole pool and what the job's method reads about them.

    The feature run's arrays fill the inputs of its kind (gradient features or embeddings); the
    job was checked to use a run of the kind its method reads (:func:`jobs.create`). The graph's
    neighbour source stays open until ``stack`` closes."""
    method = get_method(job.method)
    if method.feature_kind is None:
        ids = feature_runs.member_ids(graph_store(), job.pool)
        return ids, SelectionInputs(pool_size=len(ids))
    run = job.feature_run
    ids, train = feature_store().load(run, TRAIN_PART)
    val_parts = [feature_store().load(run, val_part(t))[1] for t in job.targets]
    subtasks = [t for t, part in zip(job.targets, val_parts, strict=True) for _ in range(part.shape[0])]
    neighbors = None
    if "neighbors" in method.needs:
        neighbors = stack.enter_context(open_neighbors(graph_store(), job.graph, ids))
    train_input, val_input = FEATURE_INPUTS[method.feature_kind]
    return ids, SelectionInputs(
        **{train_input: train, val_input: np.concatenate(val_parts)}, val_subtasks=subtasks,
        neighbors=neighbors, pool_size=len(ids),
    )


CANCEL_CHECK_S = 2.0  # how often a walk over the graph asks whether its job was cancelled


@app.task(name=SELECT_RUN.name, bind=True, max_retries=NEO4J_RETRIES)
def run_selection(self, job_id: str) -> dict[str, Any]:
    store = graph_store()
    try:
        return _run(store, job_id)
    except jobs.Cancelled:
        log.info("job %s cancelled", job_id)
        return {"job": job_id, "status": JobStatus.CANCELLED}
    except errors.ServiceUnavailable as e:
        log.warning("job %s: %s; waiting for Neo4j", job_id, e)
        retry_when_neo4j_is_back(self, e, store)  # a rerun publishes at most one version (datasets.publish)
        _fail(store, job_id, str(e))
        raise
    except errors.GradwalkError as e:
        _fail(store, job_id, str(e))
        raise
    except Exception as e:
        _fail(store, job_id, f"{type(e).__name__}: {e}")
        raise


def _fail(store, job_id: str, error: str) -> None:
    """Record the job's failure, unless Neo4j cannot be reached to record it (then it is logged)."""
    try:
        jobs.fail(store, job_id, error)
    except errors.ServiceUnavailable as e:
        log.error("job %s failed (%s); Neo4j could not record it: %s", job_id, error, e)


class _Watched:
    """A walk's neighbour source that asks, every CANCEL_CHECK_S of walking, whether the job was
    cancelled (``check`` raises :class:`jobs.Cancelled`), so a long walk stops within seconds of a
    cancel instead of at its end."""

    def __init__(self, source: Any, check: Any) -> None:
        self.source, self.check = source, check
        self.checked_at = time.monotonic()

    def _tick(self) -> None:
        if time.monotonic() - self.checked_at >= CANCEL_CHECK_S:
            self.check()
            self.checked_at = time.monotonic()

    def __getitem__(self, node: int) -> Any:
        self._tick()
        return self.source[node]

    def prefetch(self, nodes: Any) -> None:
        self._tick()
        prefetch = getattr(self.source, "prefetch", None)
        if prefetch is not None:
            prefetch(nodes)


def _run(store, job_id: str) -> dict[str, Any]:
    """Start the job, run its method, publish its version, record it done."""
    try:
        job = jobs.start(store, job_id)
    except jobs.Cancelled:
        return {"job": job_id, "status": "skipped"}
    jobs.report(store, job_id, "loading inputs", 0.05)
    origin = generations.selected_from(store, job.feature_run, job.graph)
    with contextlib.ExitStack() as stack:
        ids, inputs = _inputs(job, stack)
        stage = f"running {job.method}"
        jobs.report(store, job_id, stage, 0.3)
        if inputs.neighbors is not None and not isinstance(inputs.neighbors, np.ndarray):
            inputs = dataclasses.replace(inputs, neighbors=_Watched(inputs.neighbors,
                                                                    lambda: jobs.report(store, job_id, stage, 0.3)))
        selection = get_method(job.method).select(inputs, job.params)
    jobs.report(store, job_id, "publishing", 0.9)
    rows = [{**record, "instruction_id": ids[record.pop("row")]} for record in selection.records()]
    for row in rows:  # the walk's trajectory names pool rows; the version names instructions
        if row.get("predecessor") is not None:
            row["predecessor"] = ids[row["predecessor"]]
    lineage = {
        "job": job_id, "method": job.method, "params": job.params, "pool": job.pool,
        "targets": job.targets, "feature_run": job.feature_run, "graph": job.graph,
        "sources": job.sources, "candidates": len(ids),
        "gradwalk_version": __version__, "selected_from": origin,
    }
    try:
        version = publish(store, job.dataset, rows, job_id=job_id, lineage=lineage,
                          before_commit=lambda: jobs.report(store, job_id, "publishing", 0.95))
    except JobEnded as e:  # cancelled between the last progress report and the commit
        raise jobs.Cancelled(str(e)) from e
    summary = selection.summary()
    jobs.succeed(store, job_id, dataset=job.dataset, version=version, summary=summary)
    return {"job": job_id, "status": JobStatus.SUCCEEDED, "dataset": job.dataset, "version": version}
