"""Evaluations of dataset versions: submit one, cancel one."""

from __future__ import annotations

from gradwalk.platform.changes import Context
from gradwalk.platform.shared.schemas import EvaluationPublic, EvaluationRequest
from gradwalk.platform.versions import evaluations


def submit(ctx: Context, dataset: str, version: int, request: EvaluationRequest) -> EvaluationPublic:
    """Record an evaluation of a version on a target's test part, made by the caller's token, and
    queue it (curators)."""
    ctx.caller.require("curator", f"evaluating {dataset!r} version {version}")
    return evaluations.submit(ctx.store, dataset, version, request, created_by=ctx.caller.name)


def cancel(ctx: Context, evaluation_id: str) -> EvaluationPublic:
    """Cancel a queued or running evaluation: the token that submitted it, or an admin's."""
    ctx.caller.require("curator", f"cancelling evaluation {evaluation_id}")
    ctx.caller.require_owner(evaluations.get(ctx.store, evaluation_id).created_by, f"evaluation {evaluation_id}")
    return evaluations.cancel(ctx.store, evaluation_id)
