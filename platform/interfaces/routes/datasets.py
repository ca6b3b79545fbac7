"""Datasets and their versions: list, show, rows (paged), export (streamed), diff, retire.

A published version is immutable: there is no route that changes its rows, and DELETE answers
403 with what to do instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.catalog import names
from gradwalk.platform.changes import evaluations as evaluation_changes
from gradwalk.platform.changes import versions
from gradwalk.platform.interfaces.routes.deps import ChangeDep, SettingsDep, StoreDep
from gradwalk.platform.shared.schemas import (
    DatasetPublic,
    DiffPublic,
    ErrorPublic,
    EvaluationPublic,
    EvaluationRequest,
    ExportFormat,
    RetireRequest,
    RowsPage,
    VersionPublic,
)
from gradwalk.platform.versions import datasets, evaluations, exports, generations

router = APIRouter(prefix="/datasets", tags=["datasets"])

MAX_VERSION = 2**31 - 1
Name = Annotated[str, Path(pattern=datasets.NAME.pattern, description="Dataset name")]
Version = Annotated[int, Path(ge=1, le=MAX_VERSION, description="Version number (1, 2, ...)")]
DIFF_IDS = 1_000


@router.get("", response_model=list[DatasetPublic], name="list_datasets")
def list_datasets(store: StoreDep) -> list[DatasetPublic]:
    return datasets.list_datasets(store)


@router.get("/{name}", response_model=DatasetPublic, name="get_dataset")
def get_dataset(name: Name, store: StoreDep) -> DatasetPublic:
    """One dataset: its number of versions and its latest (complete) version."""
    found = {d.name: d for d in datasets.list_datasets(store)}
    if name not in found:
        raise names.not_found("dataset", name, list(found), "gradwalk dataset list")
    return found[name]


@router.get("/{name}/versions", response_model=list[VersionPublic], name="list_versions")
def list_versions(name: Name, store: StoreDep) -> list[VersionPublic]:
    return datasets.versions(store, name)


@router.get("/{name}/versions/{version}", response_model=VersionPublic, name="get_version")
def get_version(name: Name, version: Version, store: StoreDep) -> VersionPublic:
    return datasets.describe(store, name, version)


@router.get("/{name}/versions/{version}/rows", response_model=RowsPage, name="get_rows")
def get_rows(name: Name, version: Version, store: StoreDep,
             offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
             limit: Annotated[int, Query(ge=1, le=datasets.MAX_PAGE_ROWS)] = 100) -> dict:
    """A page of the version's rows in rank order, with each instruction's messages."""
    total = datasets.describe(store, name, version).size
    page = datasets.rows(store, name, version, offset=offset, limit=limit)
    return {"dataset": name, "version": version, "offset": offset, "limit": limit, "total": total, "rows": page}


@router.get("/{name}/versions/{version}/export", name="export_version", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}},
                             "description": "One JSON object per line, in rank order"}})
def export_version(name: Name, version: Version, store: StoreDep,
                   format: Annotated[ExportFormat, Query(description="jsonl: training records "
                                                         "({messages, id, source, metadata, gradwalk}); rows: "
                                                         "every field of each row")] = "jsonl",
                   ) -> StreamingResponse:
    """The whole version as JSON Lines, streamed."""
    datasets.describe(store, name, version)
    stream = datasets.iter_rows(store, name, version)
    lines: Iterator[str] = (exports.jsonl_lines(stream) if format == "jsonl"
                            else (json.dumps(row, ensure_ascii=False) + "\n" for row in stream))
    suffix = "jsonl" if format == "jsonl" else "rows.jsonl"
    return StreamingResponse(lines, media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="{name}-v{version}.{suffix}"'})


@router.get("/{name}/diff", response_model=DiffPublic, name="diff_versions")
def diff_versions(name: Name, store: StoreDep, settings: SettingsDep, a: Annotated[int, Query(ge=1, le=MAX_VERSION)],
                  b: Annotated[int, Query(ge=1, le=MAX_VERSION)],
                  limit: Annotated[int, Query(ge=0, le=100_000, description="Most ids listed per side")] = DIFF_IDS,
                  ) -> DiffPublic:
    """Rows added in ``b``, removed from ``a`` and kept, with counts; ``added_new`` says how many of
    the added rows the pool gained after ``a`` was selected (both selected from one growing run)."""
    return generations.diff(store, FeatureStore.from_settings(settings), name, a, b, limit=limit)


@router.post("/{name}/versions/{version}/evaluations", response_model=EvaluationPublic, status_code=202,
             name="evaluate_version")
def evaluate_version(name: Name, version: Version, body: EvaluationRequest, ctx: ChangeDep) -> EvaluationPublic:
    """Queue an evaluation of the version on the target's test part: LoRA fine-tunes on its rows
    and on random same-size subsets of its pool, the base model, each scored, and the version's
    difference to random with a 95% interval; poll GET /evaluations/{id}. Needs a curator or admin token."""
    return evaluation_changes.submit(ctx, name, version, body)


@router.get("/{name}/versions/{version}/evaluations", response_model=list[EvaluationPublic],
            name="list_evaluations")
def list_evaluations(name: Name, version: Version, store: StoreDep) -> list[EvaluationPublic]:
    """The version's evaluations, oldest first, with their figures once they succeeded."""
    return evaluations.list_for(store, name, version)


@router.post("/{name}/versions/{version}/retire", response_model=VersionPublic, name="retire_version")
def retire_version(name: Name, version: Version, body: RetireRequest, ctx: ChangeDep) -> VersionPublic:
    """Mark the version retired (recorded with the reason); its rows stay as they are. Only the
    curator token whose job published it, or an admin token."""
    return versions.retire(ctx, name, version, body.reason)


@router.delete("/{name}/versions/{version}", name="delete_version", status_code=204,
               responses={403: {"model": ErrorPublic, "description": "Published versions are immutable"}})
def delete_version(name: Name, version: Version, ctx: ChangeDep) -> None:
    """Always refused: a published version is immutable (retire it instead)."""
    versions.delete(ctx, name, version)
