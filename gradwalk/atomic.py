"""Files that appear whole or not at all: the one way gradwalk writes a file that others read."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, binary: bool = False, gzipped: bool = False,
                  mode: int = 0o666) -> Iterator[IO[Any]]:
    """A file object for ``path`` (UTF-8 text unless ``binary``; gzip if ``gzipped``), written
    beside it, flushed to disk and only then renamed over it. ``mode`` is its permission bits
    before the umask (0o600: its owner's only, from the first byte).

    A reader sees the old file or the whole new one, never half of one; an error before the rename
    leaves ``path`` as it was and removes the partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # and the umask, as for open()
    try:
        with os.fdopen(fd, "wb") as raw:
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if gzipped else raw
            if binary:
                yield stream
            else:
                text = io.TextIOWrapper(stream, encoding="utf-8", newline="\n")
                yield text
                text.flush()
                text.detach()
            if gzipped:
                stream.close()  # writes the gzip trailer; the file itself stays open
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """``path`` replaced by ``text`` as a whole."""
    with atomic_writer(path) as fh:
        fh.write(text)
