"""The files under the artifact store's root, through fsspec: a local folder or an S3 prefix.

Two writes matter to the store, and each keeps its meaning on both backends:

- :meth:`ArtifactFiles.put` makes an object appear whole or not at all. A local file is written
  beside its name and renamed; an S3 PUT is atomic by itself (a reader sees the old object, the
  new one, or none; never part of one).
- :meth:`ArtifactFiles.create` writes only if nothing is there yet and says whether it did. A local
  file is linked into place (``link`` fails on an existing name); on S3 the PUT carries
  ``If-None-Match: *``, so a server with conditional writes (AWS S3, MinIO) refuses a second
  writer. A server that ignores or refuses the header (s3proxy 2.6.0 ignores it) still gets the
  check before the PUT; the store's layout makes the remaining race harmless (see feature_store.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gradwalk import errors
from gradwalk.atomic import atomic_writer

S3_SCHEME = "s3://"


def s3_options(settings: Any) -> dict[str, Any]:
    """The S3 client options the settings name (endpoint, keys, region)."""
    secret = settings.s3_secret_access_key
    return {"endpoint_url": settings.s3_endpoint_url, "key": settings.s3_access_key_id,
            "secret": secret.get_secret_value() if secret is not None else None, "region": settings.s3_region}


def _s3_filesystem(options: dict[str, Any]):
    try:
        import s3fs
    except ImportError as e:
        raise errors.ServiceUnavailable("an s3:// artifact store needs s3fs: pip install 'gradwalk[server]'") from e
    return s3fs.S3FileSystem(
        key=options.get("key"), secret=options.get("secret"), endpoint_url=options.get("endpoint_url"),
        client_kwargs={"region_name": options.get("region") or "us-east-1"},
        # Integrity is the manifests' SHA-256; the client's own per-request checksums are headers
        # that S3-compatible servers (s3proxy among them) refuse.
        config_kwargs={"request_checksum_calculation": "when_required",
                       "response_checksum_validation": "when_required"},
        use_listings_cache=False,  # other hosts add shards: a listing must always be fresh
        skip_instance_cache=True,  # one client per store: no event loop shared across a fork
    )


class ArtifactFiles:
    """Keys (``a/b/c.npy``) under one root, with whole-object writes and exclusive creates."""

    def __init__(self, root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> None:
        text = str(root)
        self.is_local = not text.startswith(S3_SCHEME)
        if self.is_local:
            import fsspec

            self.fs = fsspec.filesystem("file")
            self.base = str(Path(text).expanduser().resolve())
            self.location = self.base
        else:
            parts = urlsplit(text)
            self.fs = _s3_filesystem(storage_options or {})
            self.base = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
            self.location = f"{S3_SCHEME}{self.base}"
        self._conditional = True  # until the server says it has no conditional writes

    def path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def local_path(self, key: str) -> Path | None:
        """The key's file on this host when the store is a local folder, else None."""
        return Path(self.path(key)) if self.is_local else None

    def put(self, key: str, data: bytes) -> None:
        """Replace ``key`` by ``data`` as a whole."""
        if self.is_local:
            with atomic_writer(self.path(key), binary=True) as f:
                f.write(data)
        else:
            self.fs.pipe_file(self.path(key), data)

    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist; True if this call wrote it."""
        if self.is_local:
            return self._create_local(Path(self.path(key)), data)
        if self.exists(key):
            return False
        if self._conditional:
            try:
                self.fs.pipe_file(self.path(key), data, mode="create")
                return True
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in (errno.ENOSYS, errno.EINVAL):
                    raise
                self._conditional = False  # the server has no conditional writes
        self.fs.pipe_file(self.path(key), data)
        return True

    @staticmethod
    def _create_local(path: Path, data: bytes) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        with atomic_writer(tmp, binary=True) as f:
            f.write(data)
        try:
            os.link(tmp, path)  # fails on an existing name: the first writer wins
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            return None

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The objects of ``keys`` that exist, fetched concurrently on S3."""
        keys = list(keys)
        if not keys:
            return {}
        paths = {self.path(k): k for k in keys}
        found = self.fs.cat(list(paths), on_error="omit")
        return {paths[p]: data for p, data in found.items() if not isinstance(data, BaseException)}

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder), sorted; temporary files left out."""
        folder = self.path(prefix.rstrip("/"))
        try:
            found = self.fs.find(folder)
        except FileNotFoundError:
            return []
        inside = self.base + "/"
        keys = [str(p)[len(inside):] for p in found if str(p).startswith(inside)]
        folders = {k.rsplit("/", 1)[0] for k in keys if "/" in k}  # some servers list folder markers
        return sorted(k for k in keys if k not in folders and not Path(k).name.startswith("."))

    def download(self, key: str, target: Path) -> None:
        """Copy ``key`` to the local file ``target`` (whole or not at all)."""
        with atomic_writer(target, binary=True) as f, self.fs.open(self.path(key), "rb", block_size=8 << 20) as src:
            while chunk := src.read(8 << 20):
                f.write(chunk)

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(key))
