"""An uploaded file, made ready to import on this host: copied to a private temporary folder
under a safe name, a gzip inflated and a parquet file measured under the upload limits
(GRADWALK_API_MAX_INFLATED_BYTES, GRADWALK_API_MAX_INFLATE_RATIO). The REST upload and the web
page's upload form share it, so a file is refused alike whichever way it came in."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from gradwalk import errors
from gradwalk.platform.intake import record_sources
from gradwalk.settings import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_GZIP = 16 + zlib.MAX_WBITS  # zlib's window bits for a gzip header and trailer
_CHUNK = 1 << 20
_RATIO_FLOOR = 1 << 20  # below this many inflated bytes any ratio is fine (small files compress oddly)


def upload_name(filename: str | None) -> str:
    """A safe local name for an uploaded file that keeps what the reader looks at (``.gz``)."""
    name = _UNSAFE.sub("_", Path(filename or "").name).strip("._")[:200]
    return name or "upload.jsonl"


def inflate_upload(packed: Path, settings: Settings) -> Path:
    """The gzip upload ``packed`` decompressed next to it (its name without ``.gz``), refused (413)
    the moment it outgrows GRADWALK_API_MAX_INFLATED_BYTES or inflates more than
    GRADWALK_API_MAX_INFLATE_RATIO times: a small bomb costs milliseconds, not a worker thread."""
    limit, ratio = settings.api_max_inflated_bytes, settings.api_max_inflate_ratio
    inflated = packed.with_suffix("")
    inflater, pending, data = zlib.decompressobj(_GZIP), False, b""
    read = written = 0
    with packed.open("rb") as src, inflated.open("wb") as out:
        while True:
            if not data:
                data = src.read(_CHUNK)
                read += len(data)
                if not data:
                    break
            try:
                piece = inflater.decompress(data, _CHUNK)
            except zlib.error as e:
                raise errors.InvalidInput(f"{packed.name}: not a valid gzip file ({e})") from e
            pending, data = True, inflater.unconsumed_tail
            if inflater.eof:  # a member ends; another may follow
                inflater, pending, data = zlib.decompressobj(_GZIP), False, inflater.unused_data + data
            written += len(piece)
            if written > limit:
                raise errors.LimitExceeded(f"{packed.name}: inflates to more than {limit:,} bytes "
                                           "(GRADWALK_API_MAX_INFLATED_BYTES): split it, or import it from the "
                                           "server's import folder")
            if written > _RATIO_FLOOR and written > ratio * read:
                raise errors.LimitExceeded(f"{packed.name}: inflates more than {ratio:g} times its size "
                                           "(GRADWALK_API_MAX_INFLATE_RATIO): refused as a likely gzip bomb")
            out.write(piece)
    if pending:
        raise errors.InvalidInput(f"{packed.name}: the gzip file ends early (truncated upload?)")
    return inflated


def check_parquet_upload(path: Path, label: str, settings: Settings) -> None:
    """Refuse (413) a parquet upload whose footer says it decompresses past the gzip limits: its
    pages are compressed too, so a small file could otherwise hold a bomb."""
    meta = record_sources.open_parquet(path, label).metadata
    inflated = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    limit, ratio = settings.api_max_inflated_bytes, settings.api_max_inflate_ratio
    if inflated > limit:
        raise errors.LimitExceeded(f"{label}: decompresses to more than {limit:,} bytes "
                                   "(GRADWALK_API_MAX_INFLATED_BYTES): split it, or import it from the "
                                   "server's import folder")
    if inflated > _RATIO_FLOOR and inflated > ratio * path.stat().st_size:
        raise errors.LimitExceeded(f"{label}: decompresses more than {ratio:g} times its size "
                                   "(GRADWALK_API_MAX_INFLATE_RATIO): refused as a likely bomb")


@contextlib.contextmanager
def received(stream: BinaryIO, filename: str | None, settings: Settings) -> Iterator[tuple[Path, str]]:
    """The upload ``stream`` as a file ready to import and the name it was sent as, both valid
    inside the ``with``; the temporary folder is removed afterwards, whatever happened."""
    label = upload_name(filename)
    with tempfile.TemporaryDirectory(prefix="gradwalk-upload-") as folder:
        path = Path(folder) / label
        with path.open("wb") as out:
            shutil.copyfileobj(stream, out, _CHUNK)
        if path.suffix == ".gz":
            path = inflate_upload(path, settings)
        if record_sources.is_parquet(path):
            check_parquet_upload(path, label, settings)
        yield path, label
