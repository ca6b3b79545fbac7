"""Extending a feature run to the rows its pool gained since: new rows only, same settings.

A run's settings (engine, warm-up checkpoints and their learning rates, LoRA shape, projection
seed) are fixed when it first runs; an extension featurises the pool rows the run lacks with those
same settings, so each new row gets the row a full run with these checkpoints gives it. A run that
should change any of them is a new run (``gradwalk features run``). New rows are written as new
shards after the run's last one, so the run's row order only ever grows at the end: its old rows
keep their positions, and the graphs built on it can be extended in place (graph.knn.extend).

Each extension is one *generation* of the run: ``generations`` lists, in order, the train rows the
run held after it (``rows``), how many it added and when. One extension at a time: claiming one
moves the run from ``complete`` to ``extending`` under the node's lock, so a second is refused.
A failed extension can be started again; it redoes only the rows still missing.
"""

from __future__ import annotations

import json

from gradwalk import errors
from gradwalk.graph.knn.build import TRAIN_PART
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.shared.schemas import FeatureRunExtension, FeatureRunPublic, Generation
from gradwalk.platform.work import feature_runs
from gradwalk.platform.work.task_names import FEATURES_EXTEND
from gradwalk.statuses import FEATURE_RUN_FINISHED, FeatureRunStatus

# Only a complete run, or one whose extension failed, may be extended; the lock makes the check
# and the status change one step, so two extensions never both start.
_CLAIM = """
MATCH (fr:FeatureRun {id: $id})
SET fr._lock = true REMOVE fr._lock
WITH fr, fr.status AS was
WHERE was = 'complete' OR (was = 'failed' AND fr.extension IS NOT NULL)
SET fr.status = 'extending', fr.extension = coalesce(fr.extension, $generation), fr.error = null,
    fr.finished_at = null
RETURN was"""

_GENERATION_DONE = """
MATCH (fr:FeatureRun {id: $id})
SET fr.generations = $generations, fr.extension = null"""


def run_rows(features: FeatureStore, run_id: str) -> list[str]:
    """Every pool row a run holds, in row order, rows without a feature (skipped) included."""
    return [row for m in features.manifests(run_id, TRAIN_PART) for row in (*m.row_ids, *m.skipped)]


def generations(run: FeatureRunPublic) -> list[Generation]:
    """The run's generations; a run never extended has one, its first featurisation."""
    if run.generations:
        return list(run.generations)
    rows = (run.rows or 0) + run.skipped.get(TRAIN_PART, 0)
    return [Generation(generation=1, rows=rows, added=rows, at=run.finished_at)]


def plan(store: GraphStore, features: FeatureStore, run: FeatureRunPublic) -> tuple[list[str], list[str]]:
    """(rows the run holds, pool rows it lacks, in id order); refuses a pool that lost rows."""
    have = run_rows(features, run.id)
    pool = feature_runs.member_ids(store, run.pool)
    members = set(pool)
    lost = [row for row in have if row not in members]
    if lost:
        raise errors.Conflict(
            f"feature run {run.id}: pool {run.pool!r} no longer holds {len(lost)} of its rows "
            f"(e.g. {lost[0]}); a run only grows, so featurise the pool anew: "
            f"gradwalk features run {run.pool} --target ...")
    held = set(have)
    return have, [row for row in pool if row not in held]


def extend(store: GraphStore, features: FeatureStore, run_id: str) -> FeatureRunExtension:
    """Queue the featurisation of the pool rows run ``run_id`` lacks; returns the run record with
    ``adding`` (rows queued; 0 when the run already holds every pool row, and nothing is queued)."""
    run = feature_runs.get(store, run_id)
    if run.status not in FEATURE_RUN_FINISHED:
        raise errors.Conflict(f"feature run {run_id} is {run.status!r}; extend it once it is complete")
    _, new = plan(store, features, run)
    if not new and run.status == FeatureRunStatus.COMPLETE:
        return FeatureRunExtension(**run.model_dump(), adding=0)
    claimed = store.write(_CLAIM, {"id": run_id, "generation": len(generations(run)) + 1})
    if not claimed:
        now = feature_runs.get(store, run_id).status
        raise errors.Conflict(f"feature run {run_id} is {now!r}: only a complete run (or one whose "
                              "extension failed) can be extended; wait for it")
    FEATURES_EXTEND.send(run_id)
    return FeatureRunExtension(**feature_runs.get(store, run_id).model_dump(), adding=len(new))


def finish_generation(store: GraphStore, run: FeatureRunPublic, rows: int) -> None:
    """Record the generation an extension made (the run now holds ``rows`` train rows)."""
    if run.extension is None:
        return
    before = generations(run)
    entry = Generation(generation=len(before) + 1, rows=rows, added=rows - before[-1].rows,
                       at=store.read("RETURN toString(datetime()) AS now")[0]["now"])
    store.write(_GENERATION_DONE, {"id": run.id, "generations": json.dumps([g.model_dump() for g in [*before, entry]])})
