"""The local Neo4j: a small Java launcher of an embedded Neo4j 5, built once with Maven.

The launcher's sources live in ``services/neo4j-launcher``; its build goes into the cache folder
under a digest of those sources, so an edited launcher is built anew and an unchanged one never
again. Java 17 runs it; Maven is needed only for the build.
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
from gradwalk.settings import Settings

LAUNCHER_SOURCE = Path(__file__).resolve().parent.parent / "services" / "neo4j-launcher"
MIN_JAVA = 17


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, for an error message that says what went wrong."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def check_java(java_bin: str) -> None:
    try:
        out = subprocess.run([java_bin, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise errors.ServiceUnavailable(
            f"Java {MIN_JAVA}+ is needed for the local Neo4j but '{java_bin}' was not found: "
            "apt-get install openjdk-17-jre-headless (or set GRADWALK_JAVA_BIN)"
        ) from None
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match.group(1)) < MIN_JAVA:
        raise errors.ServiceUnavailable(
            f"Java {MIN_JAVA}+ is needed for the local Neo4j; '{java_bin}' is "
            f"{match.group(1) if match else 'of unknown version'}: install openjdk-17 or set GRADWALK_JAVA_BIN"
        )


def _launcher_fingerprint() -> str:
    digest = hashlib.sha256()
    files = [LAUNCHER_SOURCE / "pom.xml", *sorted((LAUNCHER_SOURCE / "src").rglob("*"))]
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(LAUNCHER_SOURCE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def launcher_build(settings: Settings) -> Path:
    """Folder of the cached launcher build for the current sources (may not exist yet)."""
    if not (LAUNCHER_SOURCE / "pom.xml").is_file():
        raise errors.ServiceUnavailable(
            f"the local Neo4j needs gradwalk's source checkout ({LAUNCHER_SOURCE} is missing); "
            "point GRADWALK_NEO4J_URI at a running Neo4j 5 server instead"
        )
    return settings.cache_dir / "neo4j-launcher" / _launcher_fingerprint()


def build_launcher(settings: Settings, *, echo: Callable[[str], None] = lambda _: None) -> Path:
    """Build the launcher with Maven once; later calls return the cached build."""
    target = launcher_build(settings)
    if (target / "neo4j-launcher.jar").is_file():
        return target
    if shutil.which(settings.maven_bin) is None:
        raise errors.ServiceUnavailable(
            f"Maven ('{settings.maven_bin}') is needed once to build the local Neo4j: apt-get install maven"
        )
    check_java(settings.java_bin)
    target.parent.mkdir(parents=True, exist_ok=True)
    echo("building the local Neo4j launcher with Maven (once; about a minute)")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        work = Path(tmp) / "src"
        shutil.copytree(LAUNCHER_SOURCE, work, ignore=shutil.ignore_patterns("target"))
        log = target.parent / "build.log"
        with log.open("w") as out:
            done = subprocess.run(
                [settings.maven_bin, "-q", "-B", "package", "-DskipTests"],
                cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False,
            )
        if done.returncode != 0:
            raise errors.ServiceUnavailable(
                f"the Maven build of the local Neo4j failed (exit {done.returncode}); see {log}:\n{log_tail(log)}"
            )
        staged = Path(tmp) / "out"
        staged.mkdir()
        shutil.move(str(work / "target" / "neo4j-launcher.jar"), staged / "neo4j-launcher.jar")
        shutil.move(str(work / "target" / "lib"), staged / "lib")
        with contextlib.suppress(OSError):  # another process may have finished the same build
            staged.rename(target)
    return target
