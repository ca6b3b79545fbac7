"""Pools and targets: list, show, rows, delete, import from an upload (streamed to a temporary file,
gzip inflated and parquet measured under the same limits: platform/intake/uploads.py) or from a path
in the server's import folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from gradwalk import errors
from gradwalk.platform.catalog import listings
from gradwalk.platform.changes import deletes, imports
from gradwalk.platform.interfaces.routes.deps import ChangeDep, Force, StoreDep
from gradwalk.platform.shared.schemas import (
    TEST_FRACTION,
    CollectionDetail,
    CollectionPublic,
    DeletePublic,
    Format,
    ImportFromPath,
    ImportReportPublic,
    MembersPage,
    TargetPart,
)

router = APIRouter()

Offset = Annotated[int, Query(ge=0, le=2**62, description="Skip this many rows.")]
Limit = Annotated[int, Query(ge=1, le=listings.MAX_PAGE_ROWS, description="At most this many rows.")]


def server_path(root: Path, requested: str) -> Path:
    """The file or folder ``requested`` names inside the import folder ``root`` (a relative path is
    taken from it), with symlinks and ``..`` resolved; :class:`errors.NotAllowed` for anything
    outside it, so the API never reads a server file that no one put there to be imported."""
    base = root.resolve()
    try:
        resolved = (base / requested).resolve()  # an absolute ``requested`` replaces ``base``
    except RuntimeError as e:  # a symlink loop
        raise errors.InvalidInput(f"{requested[:200]}: cannot be resolved on the server ({e})") from e
    if not resolved.is_relative_to(base):
        raise errors.NotAllowed(
            f"{requested[:200]}: the server imports files from its import folder only (GRADWALK_IMPORT_DIR); "
            "put the file there, or upload it (POST /pools/NAME/upload, or Client.import_pool without on_server)")
    return resolved


def _collection_routes(kind: str) -> None:
    plural = f"{kind}s"
    tags: list[str | Enum] = [plural]  # FastAPI's type for route tags

    def list_all(store: StoreDep) -> list[CollectionPublic]:
        return listings.list_collections(store, kind)

    def show(name: str, store: StoreDep) -> CollectionDetail:
        return listings.show_collection(store, kind, name)

    def rows(name: str, store: StoreDep, offset: Offset = 0, limit: Limit = 100) -> MembersPage:
        return listings.collection_rows(store, kind, name, offset=offset, limit=limit)

    def delete(name: str, ctx: ChangeDep, force: Force = False) -> DeletePublic:
        return deletes.delete_collection(ctx, kind, name, force=force)

    def import_path(name: str, body: ImportFromPath, ctx: ChangeDep) -> dict:
        try:
            path = server_path(ctx.settings.import_root, body.path)
            return imports.import_records(ctx, kind, name, path, fmt=body.format, split=body.split,
                                          skip_invalid=body.skip_invalid, source_label=body.source_label,
                                          part=body.part, test_fraction=body.test_fraction,
                                          seed=body.seed).to_dict()
        except OSError as e:  # e.g. a name too long for the file system
            raise errors.InvalidInput(f"{body.path[:200]}: cannot be read on the server ({e.strerror or e})") from e

    def upload(name: str, ctx: ChangeDep,
               file: Annotated[UploadFile, File(description="A .jsonl/.json file (optionally .gz) or a .parquet file")],
               format: Annotated[Format, Form()] = "auto",
               skip_invalid: Annotated[bool, Form()] = False,
               source_label: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
               part: Annotated[TargetPart, Form()] = "validation",
               test_fraction: Annotated[float | None, Form(gt=0, lt=1, description=TEST_FRACTION)] = None,
               seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0) -> dict:
        return imports.import_upload(ctx, kind, name, file.file, file.filename, fmt=format,
                                     skip_invalid=skip_invalid, source_label=source_label, part=part,
                                     test_fraction=test_fraction, seed=seed).to_dict()

    router.add_api_route(f"/{plural}", list_all, methods=["GET"], name=f"list_{plural}", tags=tags,
                         response_model=list[CollectionPublic], summary=f"List {plural}")
    router.add_api_route(f"/{plural}/{{name}}", show, methods=["GET"], name=f"get_{kind}", tags=tags,
                         response_model=CollectionDetail,
                         summary=f"Show one {kind}: size, rows per source, imports, dependants")
    router.add_api_route(f"/{plural}/{{name}}/rows", rows, methods=["GET"], name=f"get_{kind}_rows", tags=tags,
                         response_model=MembersPage, summary=f"A page of the {kind}'s rows, by id")
    router.add_api_route(f"/{plural}/{{name}}", delete, methods=["DELETE"], name=f"delete_{kind}", tags=tags,
                         response_model=DeletePublic,
                         summary=f"Delete a {kind} (its maker's token or an admin's); versions keep their rows")
    router.add_api_route(f"/{plural}/{{name}}/import", import_path, methods=["POST"], tags=tags,
                         name=f"import_{kind}_from_path", response_model=ImportReportPublic,
                         summary=f"Import a file or folder of the server's import folder into {kind} NAME")
    router.add_api_route(f"/{plural}/{{name}}/upload", upload, methods=["POST"], tags=tags,
                         name=f"upload_{kind}", response_model=ImportReportPublic,
                         summary=f"Import an uploaded file into {kind} NAME")


_collection_routes("pool")
_collection_routes("target")
