"""A version as one parquet file, built once per host and named by its strong ETag.

A version never changes, so its file is a function of the version: the ETag is a digest of the
dataset, the version number, its content hash, size and publish time, and :data:`FORMAT` (raised
when the writer's columns change). The first GET builds the file from the version's rows in rank
order (:func:`exports.write_parquet`, the same records as the Hugging Face export, a row batch
at a time) into this host's cache, ``<state_dir>/version-files/<etag>.parquet``, capped by
``GRADWALK_VERSION_FILE_CACHE_GB`` (least recently used evicted first, as the shard copies of
platform.artifacts.host_cache). Later GETs send that file; a request whose ``If-None-Match`` holds
the ETag gets 304 without the file being looked at. Two requests for a file being built in one
process wait for the first.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.artifacts.host_cache import ShardCache
from gradwalk.platform.shared.schemas import VersionPublic
from gradwalk.platform.versions import datasets, exports
from gradwalk.settings import Settings

FORMAT = 1
FOLDER = "version-files"
SUFFIX = ".parquet"

_building: dict[str, threading.Lock] = {}
_building_guard = threading.Lock()


def etag(info: VersionPublic) -> str:
    """The version file's entity tag (without quotes): the same for the same version, always."""
    key = json.dumps([FORMAT, info.dataset, info.version, info.content_hash, info.size, info.created_at])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def cache(settings: Settings) -> ShardCache:
    return ShardCache(Path(settings.state_dir) / FOLDER, settings.version_file_cache_bytes, suffix=SUFFIX)


def parquet(store: GraphStore, settings: Settings, info: VersionPublic) -> Path:
    """This host's parquet file of the version ``info`` describes, built if it has none."""
    tag, files = etag(info), cache(settings)
    found = files.get(tag)
    if found is not None:
        return found
    with _building_guard:
        lock = _building.setdefault(tag, threading.Lock())
    with lock:
        found = files.get(tag)  # built by the request this one waited for
        if found is not None:
            return found
        try:
            return files.put(tag, lambda part: _build(store, info, part))
        finally:
            with _building_guard:
                _building.pop(tag, None)


def _build(store: GraphStore, info: VersionPublic, part: Path) -> None:
    exports.write_parquet(datasets.iter_rows(store, info.dataset, info.version), part)
