"""The artifact store: gradient features as checksummed shards in a folder.

Features never go into Neo4j (1M × 8192 float32 is 32 GB). A feature run's rows live as
``features/<run>/<part>/shard-<NNNNN>.npy`` (float32 [rows, dim]) with a manifest
``shard-<NNNNN>.json`` that names the row ids in order and the array's SHA-256 (and the ids of the
shard's rows that have no feature: an example with no response token left has no gradient, so it
has no cosine either and never becomes a node of a graph or a candidate of a selection). The manifest is
written last, by rename, so it doubles as the shard's completion marker: a shard whose manifest
exists is finished, and a worker killed mid-shard leaves at most a temp file that the redo
overwrites. ``part`` is ``train`` for the pool's rows and ``val-<target>`` for a target's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gradwalk import errors
from gradwalk.atomic import atomic_writer, write_text


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FeatureStore:
    """Feature shards under one root folder (the settings' artifact folder)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, run: str, part: str) -> Path:
        return self.root / "features" / run / part

    def _paths(self, run: str, part: str, shard: int) -> tuple[Path, Path]:
        stem = self.folder(run, part) / f"shard-{shard:05d}"
        return stem.with_suffix(".npy"), stem.with_suffix(".json")

    def write_shard(self, run: str, part: str, shard: int, row_ids: list[str], x: np.ndarray,
                    skipped: list[str] | None = None) -> ShardManifest:
        """Write one shard atomically (array first, manifest last); rewriting it is harmless.

        ``skipped`` names the shard's rows that have no feature row (they are not in ``x``)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != len(row_ids):
            raise errors.InvalidInput(f"shard {shard} of {run}/{part}: {len(row_ids)} ids for an array of shape {x.shape}")
        array_path, manifest_path = self._paths(run, part, shard)
        with atomic_writer(array_path, binary=True) as f:
            np.save(f, x, allow_pickle=False)
        manifest = ShardManifest(run, part, shard, x.shape[0], x.shape[1], _sha256(array_path), list(row_ids),
                                 list(skipped or []))
        write_text(manifest_path, json.dumps(asdict(manifest)))
        return manifest

    def delete_run(self, run: str) -> int:
        """Remove every file of feature run ``run`` (shards, manifests, warm-up checkpoints) and its
        folder; returns the files removed. What is already gone is skipped, so a delete cut short
        is finished by the next one."""
        if not run or "/" in run or "\\" in run or run in (".", ".."):
            raise errors.InvalidInput(f"feature run id {run!r} cannot name a folder")
        folder = self.root / "features" / run
        removed = 0
        for path in sorted(folder.rglob("*"), reverse=True):  # a folder's files sort after it
            if path.is_dir() and not path.is_symlink():
                with contextlib.suppress(FileNotFoundError):  # another delete of the run got there first
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)
                removed += 1
        with contextlib.suppress(FileNotFoundError):
            folder.rmdir()
        return removed

    def manifest(self, run: str, part: str, shard: int) -> ShardManifest | None:
        """The shard's manifest if the shard is finished, else None."""
        _, manifest_path = self._paths(run, part, shard)
        try:
            return ShardManifest(**json.loads(manifest_path.read_text()))
        except FileNotFoundError:
            return None

    def manifests(self, run: str, part: str) -> list[ShardManifest]:
        folder = self.folder(run, part)
        return [ShardManifest(**json.loads(p.read_text())) for p in sorted(folder.glob("shard-*.json"))]

    def load(self, run: str, part: str, *, verify: bool = True) -> tuple[list[str], np.ndarray]:
        """All finished shards of a part, in shard order: row ids and one float32 matrix."""
        manifests = self.manifests(run, part)
        if not manifests:
            raise errors.NotFound(f"feature run {run} has no finished shards for {part}")
        ids: list[str] = []
        blocks = []
        for m in manifests:
            array_path, _ = self._paths(run, part, m.shard)
            if verify and _sha256(array_path) != m.sha256:
                raise errors.Conflict(f"feature shard {array_path} does not match its manifest's checksum")
            blocks.append(np.load(array_path, allow_pickle=False))
            ids.extend(m.row_ids)
        return ids, np.concatenate(blocks, axis=0)
