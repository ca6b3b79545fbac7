"""The artifact store: gradient features as checksummed shards, in a folder or an S3 prefix.

Features never go into Neo4j (1M × 8192 float32 is 32 GB). A feature run's rows live as
``features/<run>/<part>/shard-<NNNNN>-<sha>.npy`` (float32 [rows, dim], named by the first hex
digits of its SHA-256) with a manifest ``shard-<NNNNN>.json`` that names the array, the row ids in
order, the array's full SHA-256 and the ids of the shard's rows that have no feature (an example
with no response token left has no gradient, so it has no cosine either and never becomes a node
of a graph or a candidate of a selection). ``part`` is ``train`` for the pool's rows and
``val-<target>`` for a target's.

The manifest is written last and only if none exists yet (:meth:`ArtifactFiles.create`), so it
doubles as the shard's completion marker: a shard whose manifest exists is finished, a worker
killed mid-shard leaves at most an array no manifest names, and of two copies of one shard (a task
redelivered while its first copy still runs) the first manifest stands. Because each array is
named by its own checksum, a manifest always names the very bytes it vouches for, even on a
server that lets a second writer replace the manifest: both manifests are whole, both name
complete arrays of the same rows.

Reading never needs the whole matrix in memory: :meth:`FeatureStore.matrix` hands out one shard at
a time (memory-mapped; on S3 each shard is downloaded once into the host's cache folder, checked
against its manifest, and memory-mapped from there).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradwalk import errors
from gradwalk.platform.artifacts.files import ArtifactFiles, s3_options
from gradwalk.platform.artifacts.host_cache import ShardCache


@dataclass(frozen=True)
class ShardManifest:
    run: str
    part: str
    shard: int
    rows: int
    dim: int
    sha256: str
    row_ids: list[str]
    skipped: list[str] = field(default_factory=list)
    array: str = ""  # the array's file name beside the manifest (empty: shard-<NNNNN>.npy, the old layout)

    @property
    def array_name(self) -> str:
        return self.array or f"shard-{self.shard:05d}.npy"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _npy_bytes(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x, allow_pickle=False)
    return buffer.getvalue()


class FeatureStore:
    """Feature shards under one root: a local folder (the default) or ``s3://bucket/prefix``.

    ``cache_dir`` holds this host's copies of what it reads from S3 (shards, the warm-up), under
    ``artifact-cache/``; a local root needs none. The shards' copies are kept under
    ``cache_bytes`` (None: no cap), least recently used evicted first (platform.artifacts.host_cache)."""

    def __init__(self, root: str | os.PathLike[str], *, cache_dir: Path | None = None,
                 storage_options: dict[str, Any] | None = None, cache_bytes: int | None = None) -> None:
        self.files = ArtifactFiles(root, storage_options)
        self.storage_options = dict(storage_options or {})
        self.root = self.files.location
        base = cache_dir or Path(tempfile.gettempdir()) / "gradwalk"
        self.cache = Path(base) / "artifact-cache"
        self.shard_copies = ShardCache(self.cache, cache_bytes)

    @classmethod
    def from_settings(cls, settings: Any) -> FeatureStore:
        """The store the settings name (GRADWALK_ARTIFACT_URL, else the artifact folder)."""
        # The copies are this host's own state, like its logs: never a folder that hosts share.
        return cls(settings.artifacts, cache_dir=settings.state_dir, storage_options=s3_options(settings),
                   cache_bytes=settings.artifact_cache_bytes)

    @staticmethod
    def _prefix(run: str, part: str) -> str:
        return f"features/{run}/{part}"

    def folder(self, run: str, part: str) -> Path:
        """The part's local folder (a local store only)."""
        path = self.files.local_path(self._prefix(run, part))
        if path is None:
            raise errors.InvalidInput(f"the artifact store {self.root} is not a local folder")
        return path

    def _manifest_key(self, run: str, part: str, shard: int) -> str:
        return f"{self._prefix(run, part)}/shard-{shard:05d}.json"

    @staticmethod
    def _is_manifest(key: str) -> bool:
        name = key.rsplit("/", 1)[-1]
        return name.startswith("shard-") and name.endswith(".json")

    # -- writing -------------------------------------------------------------------------------
    def write_shard(self, run: str, part: str, shard: int, row_ids: list[str], x: np.ndarray,
                    skipped: list[str] | None = None) -> ShardManifest:
        """Write one shard (array first, manifest last, the manifest only if none exists yet).

        Rewriting a finished shard changes nothing and returns the manifest that stands.
        ``skipped`` names the shard's rows that have no feature row (they are not in ``x``)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(row_ids):
            raise errors.InvalidInput(f"shard {shard} of {run}/{part}: {len(row_ids)} ids for an array of shape {x.shape}")
        data = _npy_bytes(x)
        sha = hashlib.sha256(data).hexdigest()
        array = f"shard-{shard:05d}-{sha[:16]}.npy"
        array_key = f"{self._prefix(run, part)}/{array}"
        manifest = ShardManifest(run, part, shard, x.shape[0], x.shape[1], sha, list(row_ids),
                                 list(skipped or []), array)
        self.files.put(array_key, data)
        if self.files.create(self._manifest_key(run, part, shard), json.dumps(asdict(manifest)).encode()):
            return manifest
        standing = self.manifest(run, part, shard)
        if standing is None:
            raise errors.Conflict(f"shard {shard} of {run}/{part}: a manifest exists but cannot be read")
        if standing.array_name != array:
            self.files.remove(array_key)  # the first copy's array stands; ours is named by no manifest
        return standing

    # -- reading -------------------------------------------------------------------------------
    @staticmethod
    def _parse(data: bytes) -> ShardManifest:
        return ShardManifest(**json.loads(data))

    def delete_run(self, run: str) -> int:
        """Remove every object of feature run ``run`` (shards, manifests, warm-up checkpoints) and
        this host's copies of them; returns the objects removed. What is already gone is skipped,
        so a delete cut short is finished by the next one."""
        if not run or "/" in run or "\\" in run or run in (".", ".."):
            raise errors.InvalidInput(f"feature run id {run!r} cannot name a folder")
        prefix = f"features/{run}"
        keys = sorted(self.files.keys(prefix), key=lambda k: not k.endswith(".json"))
        copies = [self._parse(data).sha256 for data in self.files.get_many(list(filter(self._is_manifest, keys))).values()]
        for key in keys:  # manifests first: a half-deleted run never reads as finished
            self.files.remove(key)
        self.shard_copies.discard(copies)
        for local in (self.files.local_path(prefix), self._folder_copies(run)):
            if local is not None:
                shutil.rmtree(local, ignore_errors=True)
        return len(keys)

    def manifest(self, run: str, part: str, shard: int) -> ShardManifest | None:
        """The shard's manifest if the shard is finished, else None."""
        data = self.files.get(self._manifest_key(run, part, shard))
        return None if data is None else self._parse(data)

    def manifests(self, run: str, part: str) -> list[ShardManifest]:
        """The finished shards of a part, in shard order."""
        keys = [k for k in self.files.keys(self._prefix(run, part)) if self._is_manifest(k)]
        found = self.files.get_many(keys)
        return sorted((self._parse(found[k]) for k in keys if k in found), key=lambda m: m.shard)

    def shard_array(self, m: ShardManifest, *, verify: bool = True) -> np.ndarray:
        """One shard's rows, memory-mapped read-only: from the store's folder, or from this host's
        cache (filled once per shard from S3, checked against the manifest on the way in)."""
        key = f"{self._prefix(m.run, m.part)}/{m.array_name}"
        path = self.files.local_path(key)
        if path is None:
            try:
                array = np.load(self._copy(key, m), mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:  # another process evicted the copy between finding and opening it
                array = np.load(self._copy(key, m), mmap_mode="r", allow_pickle=False)
        elif verify and _sha256_file(path) != m.sha256:
            raise errors.Conflict(f"feature shard {path} does not match its manifest's checksum")
        else:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        if array.shape != (m.rows, m.dim):
            raise errors.Conflict(f"feature shard {key} has shape {array.shape}; its manifest says {(m.rows, m.dim)}")
        return array

    def _copy(self, key: str, m: ShardManifest) -> Path:
        """This host's copy of a shard in the store, downloaded and checked the first time."""

        def download(part: Path) -> None:
            try:
                self.files.download(key, part)
            except FileNotFoundError:
                raise errors.NotFound(f"feature shard {self.root}/{key} named by its manifest is missing") from None
            if _sha256_file(part) != m.sha256:
                raise errors.Conflict(f"feature shard {self.root}/{key} does not match its manifest's checksum")

        return self.shard_copies.get(m.sha256) or self.shard_copies.put(m.sha256, download)

    def matrix(self, run: str, part: str) -> FeatureMatrix:
        """A part's finished shards as one matrix that is read a shard at a time."""
        manifests = self.manifests(run, part)
        if not manifests:
            raise errors.NotFound(f"feature run {run} has no finished shards for {part} in {self.root}")
        return FeatureMatrix(self, manifests)

    def load(self, run: str, part: str, *, verify: bool = True) -> tuple[list[str], np.ndarray]:
        """All finished shards of a part, in shard order: row ids and one float32 matrix in memory."""
        matrix = self.matrix(run, part)
        out = np.empty(matrix.shape, dtype=np.float32)
        for start, block in matrix.blocks(verify=verify):
            out[start:start + block.shape[0]] = block
        return matrix.row_ids, out

    # -- folders a run keeps beside its shards (the warm-up's checkpoints) -----------------------
    def staging_folder(self, run: str, name: str) -> Path:
        """Where this host reads and writes the folder ``name`` of a run: in the store itself when
        it is local, else in this host's cache (:meth:`publish_folder` copies it up)."""
        local = self.files.local_path(self._prefix(run, name))
        return local if local is not None else self._folder_copies(run) / name

    def publish_folder(self, run: str, name: str, marker: str) -> None:
        """Copy a finished staging folder into the store, its ``marker`` file last."""
        if self.files.is_local:
            return
        folder = self.staging_folder(run, name)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != marker)
        for path in [*files, folder / marker]:
            self.files.put(f"{self._prefix(run, name)}/{path.relative_to(folder).as_posix()}", path.read_bytes())

    def fetch_folder(self, run: str, name: str, marker: str) -> Path:
        """The run's folder ``name`` on this host, fetched from the store once (when its marker is there)."""
        folder = self.staging_folder(run, name)
        if (folder / marker).is_file():
            return folder
        if self.files.is_local:
            raise errors.NotFound(f"{folder} is not finished (no {marker})")
        prefix = f"{self._prefix(run, name)}/"
        keys = self.files.keys(prefix)
        if prefix + marker not in keys:
            raise errors.NotFound(f"{self.root}/{prefix} is not finished (no {marker})")
        staged = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self._parent(folder)))
        try:
            for key in keys:
                self.files.download(key, staged / key[len(prefix):])
            try:
                staged.rename(folder)
            except OSError:
                if not (folder / marker).is_file():  # another process fetched it first, or it failed
                    raise
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return folder

    def _folder_copies(self, run: str) -> Path:
        """This host's copies of a run's folders, when the store is not local."""
        return self.cache / "folders" / run

    @staticmethod
    def _parent(folder: Path) -> Path:
        folder.parent.mkdir(parents=True, exist_ok=True)
        return folder.parent


class FeatureMatrix:
    """A part's rows as one [rows, dim] matrix over its shards, never loaded whole."""

    def __init__(self, store: FeatureStore, manifests: list[ShardManifest]) -> None:
        self.store = store
        self.manifests = manifests
        dims = {m.dim for m in manifests if m.rows}
        if len(dims) > 1:
            raise errors.Conflict(f"feature shards of {manifests[0].run}/{manifests[0].part} differ in width: {dims}")
        self.dim = dims.pop() if dims else manifests[0].dim
        self.starts = np.cumsum([0, *(m.rows for m in manifests)])
        self.row_ids = [row for m in manifests for row in m.row_ids]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.starts[-1]), self.dim

    def blocks(self, *, verify: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) for each shard in order, one shard in memory at a time."""
        for start, m in zip(self.starts[:-1], self.manifests, strict=True):
            if m.rows:
                yield int(start), self.store.shard_array(m, verify=verify)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (a copy), reading only the shards they fall in."""
        start, stop = max(0, start), min(stop, self.shape[0])
        out = np.empty((max(0, stop - start), self.dim), dtype=np.float32)
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        for i in range(max(first, 0), len(self.manifests)):
            lo, hi = int(self.starts[i]), int(self.starts[i + 1])
            if lo >= stop:
                break
            if hi > start and self.manifests[i].rows:
                block = self.store.shard_array(self.manifests[i], verify=False)
                a, b = max(lo, start), min(hi, stop)
                out[a - start:b - start] = block[a - lo:b - lo]
        return out
