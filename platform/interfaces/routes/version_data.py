"""A version's rows as one parquet file at a stable address, for ``datasets.load_dataset``.

- ``GET|HEAD /datasets/{name}/versions/{version}/data/train.parquet`` with the token in the
  ``Authorization`` header, as every other read (any role);
- ``POST .../data/link`` answers a short-lived signed link (access/links.py) to
  ``GET|HEAD .../data/signed/{link}/train.parquet``, which needs no header.

The file is built once per host and cached (versions/version_files.py); it carries a strong ETag,
``If-None-Match`` with it answers 304, and ``Cache-Control`` lets the caller keep it, since a
version never changes. Byte ranges are served (parquet readers ask for the footer first).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import FileResponse

from gradwalk.platform.access import links
from gradwalk.platform.interfaces.routes.datasets import Name, Version
from gradwalk.platform.interfaces.routes.deps import CallerDep, SettingsDep, StoreDep, require_token
from gradwalk.platform.shared.schemas import LinkPublic, LinkRequest
from gradwalk.platform.versions import datasets, version_files

router = APIRouter(prefix="/datasets", tags=["datasets"])
CACHE_S = 7 * 24 * 3600
MEDIA_TYPE = "application/vnd.apache.parquet"
FILE_NAME = "train.parquet"
_PARQUET: dict[int | str, dict[str, Any]] = {200: {"content": {MEDIA_TYPE: {}}, "description": "The version's rows in rank order, as parquet"},
            304: {"description": "The caller's copy (If-None-Match) is this version's file"}}


def _matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == f'"{tag}"':
            return True
    return False


def _file(request: Request, store: StoreDep, settings: SettingsDep, name: str, version: int) -> Response:
    info = datasets.describe(store, name, version)
    tag = version_files.etag(info)
    headers = {"ETag": f'"{tag}"', "Cache-Control": f"private, max-age={CACHE_S}, immutable"}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    path = version_files.parquet(store, settings, info)
    return FileResponse(path, media_type=MEDIA_TYPE, headers=headers,
                        filename=f"{name}-v{version}.parquet", content_disposition_type="attachment")


_FILE_PATH = f"/{{name}}/versions/{{version}}/data/{FILE_NAME}"
_SIGNED_PATH = f"/{{name}}/versions/{{version}}/data/signed/{{link}}/{FILE_NAME}"


@router.head(_FILE_PATH, name="head_version_parquet", include_in_schema=False, dependencies=[Depends(require_token)])
@router.get(_FILE_PATH, name="get_version_parquet", response_class=FileResponse, responses=_PARQUET,
            dependencies=[Depends(require_token)])
def get_version_parquet(request: Request, name: Name, version: Version, store: StoreDep,
                        settings: SettingsDep) -> Response:
    """The version's rows as parquet (columns messages, id, source, metadata as a JSON string,
    gradwalk), for ``load_dataset("parquet", data_files=URL, storage_options={"headers": ...})``."""
    return _file(request, store, settings, name, version)


@router.post("/{name}/versions/{version}/data/link", response_model=LinkPublic, name="link_version_parquet")
def link_version_parquet(request: Request, name: Name, version: Version, store: StoreDep,
                         settings: SettingsDep, caller: CallerDep, body: LinkRequest | None = None) -> LinkPublic:
    """A signed link to the version's parquet file that needs no header, for
    ``load_dataset("parquet", data_files=url)``. It expires (default and most:
    GRADWALK_LINK_MAX_AGE_S) and ends when the token that asked for it is revoked."""
    datasets.describe(store, name, version)
    life = body.expires_in_s if body is not None else None
    link = links.sign(settings, caller, name, version, expires_in_s=life)
    url = request.url_for("get_signed_version_parquet", name=name, version=str(version), link=link.segment)
    return LinkPublic(url=str(url), path=url.path, expires_at=link.expires_at,
                      expires_in_s=life if life is not None else settings.link_max_age_s)


@router.head(_SIGNED_PATH, name="head_signed_version_parquet", include_in_schema=False)
@router.get(_SIGNED_PATH, name="get_signed_version_parquet", response_class=FileResponse, responses=_PARQUET)
def get_signed_version_parquet(request: Request, name: Name, version: Version,
                               link: Annotated[str, Path(max_length=1_000, description="From POST .../data/link")],
                               store: StoreDep, settings: SettingsDep) -> Response:
    """The same file through a signed link (no header needed); 403 once it expired, was forged or
    its token was revoked."""
    links.verify(store, settings, link, name, version)
    return _file(request, store, settings, name, version)
