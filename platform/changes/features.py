"""Feature runs: start one, cancel one, extend one to the rows its pool gained (curators)."""

from __future__ import annotations

from typing import Any

from gradwalk.graph.selection.registry import GRADIENT
from gradwalk.platform.changes import Context
from gradwalk.platform.shared.schemas import FeatureRunExtension, FeatureRunPublic
from gradwalk.platform.work import feature_extend, feature_runs


def start(ctx: Context, pool: str, targets: list[str], *, kind: str = GRADIENT,
          engine: dict[str, Any] | None = None, warmup: dict[str, Any] | None = None) -> FeatureRunPublic:
    """Record a feature run of ``pool`` (and ``targets``) and queue it on the gpu workers."""
    ctx.caller.require("curator", f"starting a feature run of pool {pool!r}")
    run_id = feature_runs.submit(ctx.store, pool, targets, kind=kind, engine=engine, warmup=warmup,
                                 created_by=ctx.caller.name)
    return feature_runs.get(ctx.store, run_id)


def extend(ctx: Context, run_id: str) -> FeatureRunExtension:
    """Queue the featurisation of the pool rows run ``run_id`` lacks, with the run's own settings."""
    ctx.caller.require("curator", f"extending feature run {run_id}")
    return feature_extend.extend(ctx.store, ctx.features, run_id)


def cancel(ctx: Context, run_id: str) -> FeatureRunPublic:
    """Cancel a queued, warming-up or featurizing run: the token that started it, or an admin's."""
    ctx.caller.require("curator", f"cancelling feature run {run_id}")
    ctx.caller.require_owner(feature_runs.get(ctx.store, run_id).created_by, f"feature run {run_id}")
    return feature_runs.cancel(ctx.store, run_id, ctx.caller.name)
