"""Evaluations of dataset versions by id: show (status, progress, ETA, figures), per-example
scores, cancel. They are submitted and listed beside their version (routes/datasets.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gradwalk import errors
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.changes import evaluations as evaluation_changes
from gradwalk.platform.interfaces.routes.deps import ChangeDep, SettingsDep, StoreDep
from gradwalk.platform.shared.schemas import EvaluationPublic
from gradwalk.platform.versions import evaluations

router = APIRouter(prefix="/evaluations", tags=["evaluations"])


@router.get("/{evaluation_id}", response_model=EvaluationPublic, name="get_evaluation")
def get_evaluation(evaluation_id: str, store: StoreDep) -> EvaluationPublic:
    return evaluations.get(store, evaluation_id)


@router.get("/{evaluation_id}/scores", name="get_evaluation_scores")
def get_scores(evaluation_id: str, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """The per-example scores every figure of a succeeded evaluation is computed from: per test
    example, the base model's, the version's and each random subset's."""
    found = evaluations.get(store, evaluation_id)
    scores = evaluations.read_json(FeatureStore.from_settings(settings), found.scores) if found.scores else None
    if scores is None:
        raise errors.NotFound(f"evaluation {evaluation_id} is {found.status}: it has no scores")
    return scores


@router.post("/{evaluation_id}/cancel", response_model=EvaluationPublic, name="cancel_evaluation")
def cancel_evaluation(evaluation_id: str, ctx: ChangeDep) -> EvaluationPublic:
    """Cancel a queued or running evaluation: the curator token that submitted it, or an admin token."""
    return evaluation_changes.cancel(ctx, evaluation_id)
