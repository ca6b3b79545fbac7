"""The selection job: load the job's inputs, run its method, publish the result as a version.

Thin on purpose: job state goes through :mod:`gradwalk.platform.jobs`, the algorithm is a pure
function of :mod:`gradwalk.graph.selection`, publishing is :func:`gradwalk.platform.datasets.publish`
(atomic: a failed or cancelled job leaves no version behind).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from gradwalk import __version__, errors
from gradwalk.graph.selection import SelectionInputs, get_method
from gradwalk.platform import feature_runs, jobs
from gradwalk.workers.app import app
from gradwalk.workers.context import feature_store, graph_store

log = logging.getLogger(__name__)


def _inputs(job: dict[str, Any]) -> tuple[list[str], SelectionInputs]:
    """Row ids of the candidate pool and what the job's method reads about them."""
    method = get_method(job["method"])
    if job.get("feature_run") is None:
        ids = feature_runs.member_ids(graph_store(), job["pool"])
        return ids, SelectionInputs(pool_size=len(ids))
    run = job["feature_run"]
    ids, train = feature_store().load(run, "train")
    val_parts = [feature_store().load(run, f"val-{t}")[1] for t in job["targets"]]
    subtasks = [t for t, part in zip(job["targets"], val_parts, strict=True) for _ in range(part.shape[0])]
    neighbors = None
    if "neighbors" in method.needs:
        from gradwalk.graph.instruction_graph import open_neighbors

        neighbors = open_neighbors(graph_store(), job["graph"], ids)
    return ids, SelectionInputs(
        train_features=train, val_features=np.concatenate(val_parts), val_subtasks=subtasks,
        neighbors=neighbors, pool_size=len(ids),
    )


@app.task(name="gradwalk.select.run", bind=True)
def run_selection(self, job_id: str) -> dict[str, Any]:
    store = graph_store()
    try:
        job = jobs.start(store, job_id)
    except jobs.Cancelled:
        return {"job": job_id, "status": "skipped"}
    try:
        jobs.report(store, job_id, "loading inputs", 0.05)
        ids, inputs = _inputs(job)
        jobs.report(store, job_id, f"running {job['method']}", 0.3)
        selection = get_method(job["method"]).select(inputs, job["params"])
        jobs.report(store, job_id, "publishing", 0.9)
        from gradwalk.platform.datasets import publish

        rows = [
            {
                "instruction_id": ids[index],
                "rank": rank,
                "component": None if selection.component is None else int(selection.component[rank]),
                "step": None if selection.step is None else int(selection.step[rank]),
                "score": None if selection.score is None else float(selection.score[rank]),
            }
            for rank, index in enumerate(selection)
        ]
        lineage = {
            "job": job_id, "method": job["method"], "params": job["params"], "pool": job["pool"],
            "targets": job["targets"], "feature_run": job.get("feature_run"), "graph": job.get("graph"),
            "gradwalk_version": __version__,
        }
        version = publish(store, job["dataset"], rows, job_id=job_id, lineage=lineage,
                          before_commit=lambda: jobs.report(store, job_id, "publishing", 0.95))
        summary = selection.summary()
        jobs.succeed(store, job_id, dataset=job["dataset"], version=version, summary=summary)
        return {"job": job_id, "status": "succeeded", "dataset": job["dataset"], "version": version}
    except jobs.Cancelled:
        log.info("job %s cancelled", job_id)
        return {"job": job_id, "status": "cancelled"}
    except errors.GradwalkError as e:
        jobs.fail(store, job_id, str(e))
        raise
    except Exception as e:
        jobs.fail(store, job_id, f"{type(e).__name__}: {e}")
        raise
