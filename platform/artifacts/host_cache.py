"""This host's copies of feature shards read from S3, kept under a size cap.

A gpu host reads every shard of a run for each graph block it builds, so it keeps a copy of each
shard it downloads, named by its SHA-256 (the manifest's checksum, so a copy can never be stale).
Left alone those copies grow without end: a 1M × 8,192 run is 32 GB per host. Past the cap
(``GRADWALK_ARTIFACT_CACHE_GB``) the copies used least recently go first; a copy is "used" when it
is written or read, which refreshes its modification time. Evicting is safe while another process
reads a copy: a file unlinked on POSIX stays readable through every open handle and memory map,
and a reader that finds its copy gone between looking and opening downloads it again.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_SUFFIX = ".npy"


class ShardCache:
    """Copies named ``<sha256><suffix>`` in ``folder``, at most ``max_bytes`` in all (None: no cap).
    The suffix is ``.npy`` for shards; other files named by a digest (a version's parquet file,
    platform/versions/version_files.py) use the same rules in a folder of their own."""

    def __init__(self, folder: Path, max_bytes: int | None = None, *, suffix: str = _SUFFIX) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.suffix = suffix

    def path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}{self.suffix}"

    def get(self, sha256: str) -> Path | None:
        """The copy of a shard, marked as used now; None when this host has none."""
        path = self.path(sha256)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def put(self, sha256: str, fill: Callable[[Path], None]) -> Path:
        """Make the copy of a shard: ``fill(path)`` writes (and checks) it at a private path, which
        then takes the copy's name at once, so no reader ever sees half a file. Then the cap is
        enforced, never at the cost of this copy."""
        path = self.path(sha256)
        self.folder.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.download")  # per call: threads too
        try:
            fill(part)
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)
        self.evict(keep=path)
        return path

    def discard(self, sha256s: Iterable[str]) -> None:
        """Remove the copies of these shards (their run was deleted)."""
        for sha256 in sha256s:
            self.path(sha256).unlink(missing_ok=True)

    def size(self) -> int:
        return sum(size for _, _, size in self._copies())

    def evict(self, keep: Path | None = None) -> int:
        """Remove the least recently used copies until the rest fit the cap; returns bytes freed."""
        if self.max_bytes is None:
            return 0
        copies = sorted(self._copies())  # oldest use first
        total, freed = sum(size for _, _, size in copies), 0
        for _, path, size in copies:
            if total - freed <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            freed += size
        if total - freed > self.max_bytes:
            log.warning("artifact cache %s holds %d MB, over its cap of %d MB, with nothing left to evict: "
                        "one shard is bigger than the cap (GRADWALK_ARTIFACT_CACHE_GB)",
                        self.folder, (total - freed) >> 20, self.max_bytes >> 20)
        return freed

    def _copies(self) -> list[tuple[float, Path, int]]:
        """(last use, path, bytes) of every finished copy."""
        found = []
        for entry in os.scandir(self.folder) if self.folder.is_dir() else ():
            if entry.name.endswith(self.suffix) and not entry.name.startswith(".") and entry.is_file():
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
                found.append((stat.st_mtime, Path(entry.path), stat.st_size))
        return found
