"""Feature runs: start, cancel, extend, list, show, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gradwalk.platform.catalog import listings
from gradwalk.platform.changes import deletes, features
from gradwalk.platform.interfaces.routes.deps import ChangeDep, Force, StoreDep
from gradwalk.platform.shared.schemas import (
    DeletePublic,
    FeatureRunCreate,
    FeatureRunDetail,
    FeatureRunExtension,
    FeatureRunPublic,
)

router = APIRouter(prefix="/feature-runs", tags=["feature-runs"])


@router.get("", response_model=list[FeatureRunPublic], name="list_feature_runs")
def list_feature_runs(store: StoreDep, pool: Annotated[str | None, Query(max_length=200)] = None,
                      kind: Annotated[str | None, Query(max_length=50)] = None) -> list[FeatureRunPublic]:
    """Feature runs, newest first; each record says its ``kind`` (gradient or embedding)."""
    return listings.list_feature_runs(store, pool=pool, kind=kind)


@router.post("", response_model=FeatureRunPublic, status_code=202, name="start_feature_run")
def start_feature_run(body: FeatureRunCreate, ctx: ChangeDep) -> FeatureRunPublic:
    """Record a feature run of a pool and its targets and queue it on the gpu workers; poll it until
    it is ``complete``. Needs a curator or admin token, recorded as the run's maker."""
    return features.start(ctx, body.pool, body.targets, kind=body.kind, engine=body.engine, warmup=body.warmup)


@router.get("/{key}", response_model=FeatureRunDetail, name="get_feature_run")
def get_feature_run(key: str, store: StoreDep) -> FeatureRunDetail:
    """Show one feature run and what depends on it."""
    return listings.show_feature_run(store, key)


@router.post("/{key}/cancel", response_model=FeatureRunPublic, name="cancel_feature_run")
def cancel_feature_run(key: str, ctx: ChangeDep) -> FeatureRunPublic:
    """Cancel a queued, warming-up or featurizing run (its maker's token or an admin's); its
    workers stop at their next step and it stays ``cancelled``."""
    return features.cancel(ctx, key)


@router.post("/{key}/extend", response_model=FeatureRunExtension, status_code=202, name="extend_feature_run")
def extend_feature_run(key: str, ctx: ChangeDep) -> FeatureRunExtension:
    """Queue the featurisation of the pool rows the run lacks, with the run's own settings (a run
    with other settings is a new run); ``adding`` says how many. Needs a curator or admin token."""
    return features.extend(ctx, key)


@router.delete("/{key}", response_model=DeletePublic, name="delete_feature_run")
def delete_feature_run(key: str, ctx: ChangeDep, force: Force = False) -> DeletePublic:
    """Delete a feature run with its artifact files (its maker's token or an admin's); a tombstone
    stays when a job used it."""
    return deletes.delete_feature_run(ctx, key, force=force)
