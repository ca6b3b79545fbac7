"""Selections over a growing pool: which generation a version was selected from, re-running a
dataset's last job on the grown pool, and which of a new version's rows are new data.

A feature run (platform/work/feature_extend.py) and a graph (graph/knn/extend.py) each list their
generations: the rows they held after each extension, in row order, so the rows a generation added
are a slice of the run's rows. A selection job records, in its version's lineage, the generation
of the graph it walked (or, for methods without a graph, of the feature run) and the rows there
were; the diff of two versions then names the added rows that came from generations after the
older version's.
"""

from __future__ import annotations

from typing import Any

from gradwalk import errors
from gradwalk.graph.knn.build import feature_row_ids
from gradwalk.graph.knn.extend import generations as graph_generations
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.shared.schemas import DiffPublic, VersionPublic
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import feature_extend, feature_runs, jobs
from gradwalk.statuses import FeatureRunStatus

_LAST_JOB = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion)-[:PRODUCED_BY]->(j:SelectionJob)
RETURN j.id AS job, v.version AS version ORDER BY v.version DESC LIMIT 1"""

_GRAPH = "MATCH (g:InstructionGraph {id: $graph}) RETURN g {.*} AS graph"

_POOL_ROWS = "MATCH (:Instruction)-[:IN_POOL]->(:Pool {name: $pool}) RETURN count(*) AS n"


def selected_from(store: GraphStore, feature_run: str | None, graph: str | None) -> dict[str, Any] | None:
    """The generation a job reads: ``{"of", "id", "generation", "rows"}`` (None without a feature run)."""
    if graph is not None:
        found = store.read(_GRAPH, {"graph": graph})
        if found:
            history = graph_generations(found[0]["graph"])
            return {"of": "graph", "id": graph, "generation": history[-1]["generation"], "rows": history[-1]["rows"]}
    if feature_run is None:
        return None
    last = feature_extend.generations(feature_runs.get(store, feature_run))[-1]
    return {"of": "feature_run", "id": feature_run, "generation": last.generation, "rows": last.rows}


def like(store: GraphStore, dataset: str) -> jobs.JobRequest:
    """The request of ``dataset``'s last job, to be run again on the grown pool (its next version).

    Refused, with what to run, while the pool holds rows that the job's feature run or graph lack."""
    found = store.read(_LAST_JOB, {"dataset": dataset})
    if not found:
        raise errors.NotFound(f"dataset {dataset!r} has no version made by a selection job")
    job = jobs.get(store, found[0]["job"])
    request = jobs.JobRequest(pool=job.pool, targets=list(job.targets), method=job.method, dataset=dataset,
                              params=job.params, feature_run=job.feature_run, graph=job.graph,
                              sources=job.sources)
    if request.feature_run is not None:
        run = feature_runs.get(store, request.feature_run)
        held = feature_extend.generations(run)[-1].rows
        pool_rows = store.read(_POOL_ROWS, {"pool": request.pool})[0]["n"]
        if pool_rows != held or run.status != FeatureRunStatus.COMPLETE:
            raise errors.Conflict(
                f"pool {request.pool!r} has {pool_rows} rows but feature run {request.feature_run} holds {held} "
                f"({run.status}): run `gradwalk features extend {request.feature_run}` first")
        if request.graph is not None:
            graph = store.read(_GRAPH, {"graph": request.graph})
            nodes = graph[0]["graph"]["nodes"] if graph else None
            if nodes != held:
                raise errors.Conflict(f"graph {request.graph} holds {nodes} of the run's {held} rows: "
                                      f"run `gradwalk graph extend {request.graph}` first")
    return request


def new_rows(features: FeatureStore, older: VersionPublic, newer: VersionPublic) -> set[str] | None:
    """The rows of ``newer``'s feature run added after ``older`` was selected (None when the two
    versions were not selected from the same growing run)."""
    first, last = older.lineage.get("selected_from"), newer.lineage.get("selected_from")
    if not first or not last or newer.feature_run is None or older.feature_run != newer.feature_run:
        return None
    if first["of"] != last["of"] or last["rows"] <= first["rows"]:
        return set()
    run = newer.feature_run  # rows in the order the generations count them: graph nodes, or all run rows
    rows = feature_row_ids(features, run) if last["of"] == "graph" else feature_extend.run_rows(features, run)
    return set(rows[first["rows"]:last["rows"]])


def diff(store: GraphStore, features: FeatureStore, dataset: str, a: int, b: int, *,
         limit: int | None = None) -> DiffPublic:
    """:func:`datasets.diff`, plus ``added_new``: how many of the rows added in ``b`` came from
    rows the pool gained after ``a`` was selected (``added_new_ids``: which; None when the two
    versions were not selected from generations of one run)."""
    whole = datasets.diff(store, dataset, a, b)
    fresh = new_rows(features, datasets.describe(store, dataset, a), datasets.describe(store, dataset, b))
    capped = datasets.diff(store, dataset, a, b, limit=limit) if limit is not None else whole
    if fresh is None:
        return capped
    ids = [row for row in whole.added_ids if row in fresh]
    return capped.model_copy(update={"added_new": len(ids), "added_new_ids": ids[:limit] if limit is not None else ids})
