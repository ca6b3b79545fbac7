"""The local Neo4j: a small Java launcher of an embedded Neo4j 5, built once with Maven.

The launcher's sources live in ``services/neo4j-launcher``; its build goes into the cache folder
under a digest of those sources (gradwalk/java_build.py), so an edited launcher is built anew and
an unchanged one never again. Java 17 runs it; Maven is needed only for the build.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gradwalk import errors
from gradwalk.java_build import MIN_JAVA, check_java, log_tail, maven_build, source_fingerprint
from gradwalk.settings import Settings

__all__ = ["LAUNCHER_SOURCE", "MIN_JAVA", "build_launcher", "check_java", "launcher_build", "log_tail"]

LAUNCHER_SOURCE = Path(__file__).resolve().parents[2] / "services" / "neo4j-launcher"


def launcher_build(settings: Settings) -> Path:
    """Folder of the cached launcher build for the current sources (may not exist yet)."""
    if not (LAUNCHER_SOURCE / "pom.xml").is_file():
        raise errors.ServiceUnavailable(
            f"the local Neo4j needs gradwalk's source checkout ({LAUNCHER_SOURCE} is missing); "
            "point GRADWALK_NEO4J_URI at a running Neo4j 5 server instead"
        )
    return settings.cache_dir / "neo4j-launcher" / source_fingerprint(LAUNCHER_SOURCE)


def build_launcher(settings: Settings, *, echo: Callable[[str], None] = lambda _: None) -> Path:
    """Build the launcher with Maven once; later calls return the cached build."""
    return maven_build(LAUNCHER_SOURCE, launcher_build(settings), ["package", "-DskipTests"],
                       ["target/neo4j-launcher.jar", "target/lib"], maven_bin=settings.maven_bin,
                       java_bin=settings.java_bin, what="the local Neo4j launcher", echo=echo)
