"""Java parts built once with Maven into the cache folder: the Neo4j launcher and s3proxy.

Each part has a source folder (a ``pom.xml`` and whatever else it needs) in ``services/``; its
build lands in ``<cache>/<name>/<digest of the sources>``, so an edited part is built anew and an
unchanged one never again. Maven works in a private folder and the result is renamed into place
only when whole, so a failed or concurrent build never leaves half of one behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from gradwalk import errors

MIN_JAVA = 17


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, for an error message that says what went wrong."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def check_java(java_bin: str, purpose: str = "the local Neo4j") -> None:
    try:
        out = subprocess.run([java_bin, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise errors.ServiceUnavailable(
            f"Java {MIN_JAVA}+ is needed for {purpose} but '{java_bin}' was not found: "
            "apt-get install openjdk-17-jre-headless (or set GRADWALK_JAVA_BIN)"
        ) from None
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match.group(1)) < MIN_JAVA:
        raise errors.ServiceUnavailable(
            f"Java {MIN_JAVA}+ is needed for {purpose}; '{java_bin}' is "
            f"{match.group(1) if match else 'of unknown version'}: install openjdk-17 or set GRADWALK_JAVA_BIN"
        )


def source_fingerprint(source: Path) -> str:
    """A digest of every file of a part's source folder (``target/`` left out)."""
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and relative.parts[0] != "target":
            digest.update(str(relative).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def maven_build(source: Path, target: Path, goals: list[str], outputs: list[str], *, maven_bin: str,
                java_bin: str, what: str, echo: Callable[[str], None] = lambda _: None) -> Path:
    """Run ``mvn goals`` in a copy of ``source`` and move ``outputs`` (paths inside the copy) into
    ``target`` under their base names; a target that exists already is returned as it is."""
    if target.is_dir():
        return target
    if shutil.which(maven_bin) is None:
        raise errors.ServiceUnavailable(f"Maven ('{maven_bin}') is needed once to build {what}: apt-get install maven")
    check_java(java_bin, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    echo(f"building {what} with Maven (once; about a minute)")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        work = Path(tmp) / "src"
        shutil.copytree(source, work, ignore=shutil.ignore_patterns("target"))
        log = target.parent / "build.log"
        with log.open("w") as out:
            done = subprocess.run([maven_bin, "-q", "-B", *goals], cwd=work, stdout=out,
                                  stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise errors.ServiceUnavailable(
                f"the Maven build of {what} failed (exit {done.returncode}); see {log}:\n{log_tail(log)}")
        staged = Path(tmp) / "out"
        staged.mkdir()
        for output in outputs:
            shutil.move(str(work / output), staged / Path(output).name)
        with contextlib.suppress(OSError):  # another process may have finished the same build
            staged.rename(target)
    return target
