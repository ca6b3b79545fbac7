"""Pools and targets (list, show, import from an upload or a server-side path), feature runs, graphs."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from gradwalk import errors
from gradwalk.graph import graph_records
from gradwalk.platform import catalog, feature_runs, pools
from gradwalk.platform.cypher import jsonable
from gradwalk.platform.routes.deps import SettingsDep, StoreDep
from gradwalk.platform.schemas import CollectionPublic, Format, ImportFromPath, ImportReportPublic, RecordPublic

router = APIRouter()

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


def _upload_name(filename: str | None) -> str:
    """A safe local name for an uploaded file that keeps what the reader looks at (``.gz``)."""
    name = _UNSAFE.sub("_", Path(filename or "").name).strip("._")[:200]
    return name or "upload.jsonl"


def _collection_routes(kind: str, importer: Callable[..., pools.ImportReport],
                       lister: Callable[..., list[dict]], getter: Callable[..., dict]) -> None:
    plural = f"{kind}s"
    tags = [plural]

    def list_all(store: StoreDep) -> list[dict]:
        return lister(store)

    def show(name: str, store: StoreDep) -> dict:
        return getter(store, name)

    def import_path(name: str, body: ImportFromPath, store: StoreDep, settings: SettingsDep) -> dict:
        try:
            path = server_path(settings.import_root, body.path)
            return importer(store, name, path, fmt=body.format, split=body.split,
                            skip_invalid=body.skip_invalid, source_label=body.source_label).to_dict()
        except OSError as e:  # e.g. a name too long for the file system
            raise errors.InvalidInput(f"{body.path[:200]}: cannot be read on the server ({e.strerror or e})") from e

    def upload(name: str, store: StoreDep,
               file: Annotated[UploadFile, File(description="A .jsonl/.json file, optionally .gz")],
               format: Annotated[Format, Form()] = "auto",
               skip_invalid: Annotated[bool, Form()] = False) -> dict:
        label = _upload_name(file.filename)
        with tempfile.TemporaryDirectory(prefix="gradwalk-upload-") as folder:
            path = Path(folder) / label
            with path.open("wb") as out:
                shutil.copyfileobj(file.file, out, 1 << 20)
            return importer(store, name, path, fmt=format, skip_invalid=skip_invalid,
                            source_label=label).to_dict()

    router.add_api_route(f"/{plural}", list_all, methods=["GET"], name=f"list_{plural}", tags=tags,
                         response_model=list[CollectionPublic], summary=f"List {plural}")
    router.add_api_route(f"/{plural}/{{name}}", show, methods=["GET"], name=f"get_{kind}", tags=tags,
                         response_model=CollectionPublic, summary=f"Show one {kind}")
    router.add_api_route(f"/{plural}/{{name}}/import", import_path, methods=["POST"], tags=tags,
                         name=f"import_{kind}_from_path", response_model=ImportReportPublic,
                         summary=f"Import a file or folder of the server's import folder into {kind} NAME")
    router.add_api_route(f"/{plural}/{{name}}/upload", upload, methods=["POST"], tags=tags,
                         name=f"upload_{kind}", response_model=ImportReportPublic,
                         summary=f"Import an uploaded file into {kind} NAME")


_collection_routes("pool", pools.import_pool, catalog.list_pools, catalog.get_pool)
_collection_routes("target", pools.import_target, catalog.list_targets, catalog.get_target)


@router.get("/feature-runs", response_model=list[RecordPublic], tags=["feature-runs"])
def list_feature_runs(store: StoreDep, pool: Annotated[str | None, Query(max_length=200)] = None,
                      kind: Annotated[str | None, Query(max_length=50)] = None) -> list[dict]:
    """Feature runs, newest first; each record says its ``kind`` (gradient or embedding)."""
    return [jsonable(run) for run in catalog.list_feature_runs(store, pool=pool, kind=kind)]


@router.get("/feature-runs/{run_id}", response_model=RecordPublic, tags=["feature-runs"])
def get_feature_run(run_id: str, store: StoreDep) -> dict:
    return jsonable(feature_runs.get(store, run_id))


@router.get("/graphs", response_model=list[RecordPublic], tags=["graphs"])
def list_graphs(store: StoreDep, feature_run: Annotated[str | None, Query(max_length=200)] = None) -> list[dict]:
    return [info.to_dict() for info in graph_records.list_graphs(store, feature_run)]


@router.get("/graphs/{graph_id}", response_model=RecordPublic, tags=["graphs"])
def get_graph(graph_id: str, store: StoreDep) -> dict:
    return graph_records.get_graph(store, graph_id).to_dict()
