"""Local services without Docker: Neo4j (embedded, Maven-built), Redis, the Celery workers, the API.

``gradwalk services up`` starts what is not already running, waits until each one really answers
(a Bolt query, a Redis PING, a ping task on each worker's queue, the API's /health) and applies
migrations; ``down`` stops only the processes ``up`` started (pid files record each process and a
marker of its command line, so a recycled pid is never killed); ``status`` prints each service,
its address and pid. Logs and pid files live under the state folder; the Neo4j launcher is built
once into the cache folder, keyed by a hash of its sources.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gradwalk import errors
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.graph.store.migrations import migrate as apply_migrations
from gradwalk.platform.access.cypher_guard import READ_PROCEDURES
from gradwalk.platform.changes.tokens import local_admin
from gradwalk.platform.local import s3proxy
from gradwalk.platform.local.neo4j_launcher import build_launcher, check_java, launcher_build, log_tail
from gradwalk.platform.work import broker
from gradwalk.platform.work.task_names import SYSTEM_PING
from gradwalk.ports import port_answers
from gradwalk.settings import Settings

LAUNCHER_MAIN = "dev.gradwalk.neo4j.Launcher"
START_LINE = "gradwalk starts {name}"


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a child process needs to see exactly these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"GRADWALK_{name.upper()}"] = str(value)
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None

    @property
    def running(self) -> bool:
        return self.pid is not None


class LocalService:
    """A process started by gradwalk, tracked by a pid file under ``state/run``."""

    name: str
    ready_timeout_s: float = 120.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.state_dir / "run"
        self.log_dir = settings.state_dir / "logs"
        self._process: subprocess.Popen | None = None  # set when this object started the process

    # -- what each service defines ---------------------------------------------------------
    @property
    def address(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def marker(self) -> str:
        """A piece of the command line that only this service's process carries."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Checks and set-up before the process is spawned (tools present, port free)."""

    def is_ready(self) -> bool:
        raise NotImplementedError

    # -- shared lifecycle --------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """Pid of this service's process if the one we started is still running."""
        try:
            record = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        pid = int(record.get("pid", 0))
        if pid > 0 and _alive(pid) and record.get("marker", "\0") in _cmdline(pid):
            return pid
        return None

    def status(self) -> ServiceStatus:
        return ServiceStatus(self.name, self.address, self.pid())

    def spawn(self) -> bool:
        """Start the process unless ours already runs; return True when it was started now."""
        if self.pid() is not None:
            return False
        self.prepare()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n--- {stamp} {START_LINE.format(name=self.name)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=settings_env(self.settings), cwd=self.settings.state_dir, start_new_session=True,
            )
        self.pid_file.write_text(json.dumps({"pid": process.pid, "marker": self.marker()}))
        self._process = process
        return True

    def _exit_code(self) -> int | None:
        """The exit code if the process has ended (known exactly when this object started it)."""
        if self._process is not None:
            return self._process.poll()
        return None if self.pid() is not None else -1

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            code = self._exit_code()
            if code is not None:
                raise errors.ServiceUnavailable(
                    f"{self.name} exited while starting (exit code {code}); "
                    f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
            if self.is_ready():
                return
            if time.monotonic() > deadline:
                raise errors.ServiceUnavailable(
                    f"{self.name} did not become ready in {self.ready_timeout_s:.0f}s; "
                    f"see {self.log_file}:\n{log_tail(self.log_file)}"
                )
            time.sleep(0.5)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop our process (SIGTERM, then SIGKILL after ``timeout_s``); True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _refuse_taken_port(self, host: str, port: int, setting: str) -> None:
        if port_answers(host, port):
            raise errors.Conflict(
                f"{self.name}: port {port} on {host} is already taken by another process; "
                f"stop that process or choose another port with {setting}"
            )


class Neo4jService(LocalService):
    name = "neo4j"
    ready_timeout_s = 180.0

    @property
    def address(self) -> str:
        return self.settings.neo4j_uri

    @property
    def home(self) -> Path:
        return self.settings.state_dir / "neo4j"

    def marker(self) -> str:
        return str(self.home)

    def command(self) -> list[str]:
        build = launcher_build(self.settings)
        host, port = self.settings.neo4j_address
        classpath = f"{build / 'neo4j-launcher.jar'}:{build / 'lib'}/*"
        # The throughput collector writes edges faster than G1 (docs/measurements.md, "Neo4j"); its pauses stay
        # short with a 1 GB heap.
        return [
            self.settings.java_bin, f"-Xmx{self.settings.neo4j_heap_mb}m", "-XX:+UseParallelGC",
            "-cp", classpath, LAUNCHER_MAIN, str(self.home), host, str(port), ",".join(sorted(READ_PROCEDURES)),
        ]

    def prepare(self) -> None:
        check_java(self.settings.java_bin)
        host, port = self.settings.neo4j_address
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise errors.InvalidInput(
                f"the local Neo4j binds to loopback only; GRADWALK_NEO4J_URI points at {host}"
            )
        self._refuse_taken_port(host, port, "GRADWALK_NEO4J_URI")
        build_launcher(self.settings)
        self.home.mkdir(parents=True, exist_ok=True)

    def is_ready(self) -> bool:
        # Bolt opens before the launcher has set the password: a login attempt then would fail
        # and count towards Neo4j's lock-out, so wait for the launcher's ready line first.
        if not self._launcher_ready():
            return False
        try:
            with GraphStore.connect(self.settings) as store:
                store.ping()
            return True
        except errors.ServiceUnavailable:
            return False

    def _launcher_ready(self) -> bool:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return False
        return "GRADWALK-NEO4J-READY" in text.rsplit(START_LINE.format(name=self.name), 1)[-1]


class RedisService(LocalService):
    name = "redis"
    ready_timeout_s = 30.0

    @property
    def address(self) -> str:
        host, port = self.settings.redis_address
        return f"redis://{host}:{port}"

    @property
    def folder(self) -> Path:
        return self.settings.state_dir / "redis"

    def marker(self) -> str:
        return str(self.folder / "redis.conf")

    def command(self) -> list[str]:
        return [self.settings.redis_server_bin, str(self.folder / "redis.conf")]

    def prepare(self) -> None:
        if shutil.which(self.settings.redis_server_bin) is None:
            raise errors.ServiceUnavailable(
                f"{self.settings.redis_server_bin} not found: apt-get install redis-server "
                "(or set GRADWALK_REDIS_SERVER_BIN)"
            )
        host, port = self.settings.redis_address
        self._refuse_taken_port(host, port, "GRADWALK_REDIS_URL")
        self.folder.mkdir(parents=True, exist_ok=True)
        from urllib.parse import urlsplit

        password = urlsplit(self.settings.redis_url).password
        lines = [
            f"bind {host}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            "set-proc-title no",  # keep the command line, which pid checks match against
            f"dir {self.folder}",
            # Queued jobs survive a restart, a crash included: append-only file, fsync before each
            # reply, so a task that was accepted is on disk (jobs are few; the cost is small).
            "appendonly yes",
            "appendfsync always",
            "dbfilename dump.rdb",
            "save 60 1",
            'logfile ""',
        ]
        if password:
            lines.append(f"requirepass {password}")
        (self.folder / "redis.conf").write_text("\n".join(lines) + "\n")
        (self.folder / "redis.conf").chmod(0o600)

    def is_ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.settings.redis_url, socket_timeout=1).ping())
        except redis.exceptions.RedisError:
            return False


class WorkerService(LocalService):
    """A Celery worker consuming one queue (device auto: CUDA when present)."""

    ready_timeout_s = 180.0

    def __init__(self, settings: Settings, queue: str) -> None:
        super().__init__(settings)
        self.queue = queue
        self.name = f"worker-{queue}"

    @property
    def address(self) -> str:
        return f"queue {self.queue}"

    def node_name(self) -> str:
        return f"{self.queue}@{socket.gethostname()}.{self.settings.redis_address[1]}"

    def marker(self) -> str:
        return self.node_name()

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "gradwalk.workers.app", "worker",
            "-Q", self.queue, "-n", self.node_name(), "--concurrency", str(self.settings.worker_concurrency),
            "--pool", "prefork", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ]

    def is_ready(self) -> bool:
        from celery.exceptions import TimeoutError as CeleryTimeout

        try:
            ping = broker.producer(self.settings).send_task(SYSTEM_PING.name, queue=self.queue)
            reply = broker.result_within(ping, 5)
        except CeleryTimeout:
            return False
        return bool(reply.get("pid"))

    def answers(self) -> bool:
        """Alive even while busy: the worker's main process answers a control ping between tasks' work."""
        return bool(broker.producer(self.settings).control.ping(destination=[self.node_name()], timeout=2.0))


class ApiService(LocalService):
    """The REST API under uvicorn, on settings.api_host:api_port."""

    name = "api"
    ready_timeout_s = 90.0

    @property
    def address(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def marker(self) -> str:
        s = self.settings
        return f"gradwalk.platform.interfaces.api:create_app --factory --host {s.api_host} --port {s.api_port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", *self.marker().split()]

    def prepare(self) -> None:
        self._refuse_taken_port(self.settings.api_host, self.settings.api_port, "GRADWALK_API_PORT")

    def is_ready(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.settings.local_api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


class S3ProxyService(LocalService):
    """The local S3 server (platform/local/s3proxy.py), objects as files under ``state/s3``."""

    name = "s3proxy"
    ready_timeout_s = 60.0

    @property
    def address(self) -> str:
        return self.settings.s3_endpoint_url or ""

    @property
    def properties(self) -> Path:
        return self.settings.state_dir / "run" / "s3proxy.conf"

    def marker(self) -> str:
        return str(self.properties)

    def command(self) -> list[str]:
        return s3proxy.command(self.settings, self.properties)

    def prepare(self) -> None:
        check_java(self.settings.java_bin, "the local S3 server")
        self._refuse_taken_port(*s3proxy.address(self.settings), "GRADWALK_S3_ENDPOINT_URL")
        s3proxy.build_s3proxy(self.settings)
        s3proxy.write_properties(self.settings, self.properties, self.settings.state_dir / "s3")

    def is_ready(self) -> bool:
        import httpx

        try:  # any S3 answer (an anonymous request is refused) means the server is up
            return httpx.get(self.address, timeout=2).status_code in (200, 403)
        except httpx.HTTPError:
            return False


# -- the set of services --------------------------------------------------------------------------
def local_services(settings: Settings) -> list[LocalService]:
    """Every local service, in start order (s3proxy only when the artifact store is S3 on this host)."""
    s3 = [S3ProxyService(settings)] if s3proxy.wanted(settings) else []
    return [Neo4jService(settings), RedisService(settings), *s3,
            *(WorkerService(settings, q) for q in broker.QUEUES), ApiService(settings)]


def up(settings: Settings, *, echo: Callable[[str], None] = print, migrate: bool = True) -> list[ServiceStatus]:
    """Start every local service not yet running, wait until each answers, apply migrations and
    keep a live local admin token in the state folder (:func:`changes.tokens.local_admin`).

    Neo4j starts first and warms up while Redis and the workers come up; the API starts after the
    migrations."""
    neo4j, redis_service, *middle, api = local_services(settings)
    s3 = [s for s in middle if isinstance(s, S3ProxyService)]
    workers = [s for s in middle if isinstance(s, WorkerService)]
    build_launcher(settings, echo=echo)
    if s3:
        s3proxy.build_s3proxy(settings, echo=echo)
    started = {s.name: s.spawn() for s in (neo4j, redis_service, *s3)}
    redis_service.wait_ready()
    echo(f"redis   ready at {redis_service.address}")
    for service in s3:
        service.wait_ready()
        echo(f"s3proxy ready at {service.address}")
    for worker in workers:
        started[worker.name] = worker.spawn()
    start = time.monotonic()
    neo4j.wait_ready()
    echo(f"neo4j   ready at {neo4j.address}" + (f" ({time.monotonic() - start:.1f}s)" if started["neo4j"] else ""))
    with GraphStore.connect(settings) as store:
        if migrate:
            newly = apply_migrations(store)
            echo(f"migrations applied: {', '.join(m.path.name for m in newly) or 'none pending'}")
        admin = local_admin(store, settings)  # the bootstrap: the CLI and client here need no exported token
    echo(f"token   {admin.name} (admin) in {settings.local_token_file}, for the CLI and client on this machine")
    api.spawn()
    for worker in workers:
        worker.wait_ready()
        echo(f"{worker.name:<13} ready on {worker.address}")
    api.wait_ready()
    echo(f"api     ready at {api.address}")
    echo(f"web ui  at {api.address}/ui (sign in with an API token: `gradwalk token create NAME`)")
    return [s.status() for s in (neo4j, redis_service, *s3, *workers, api)]


def down(settings: Settings, *, echo: Callable[[str], None] = print) -> None:
    """Stop the processes ``up`` started, workers first."""
    for service in reversed(local_services(settings)):
        echo(f"{service.name:<13} {'stopped' if service.stop() else 'was not running'}")


def status(settings: Settings) -> list[ServiceStatus]:
    return [s.status() for s in local_services(settings)]


@contextlib.contextmanager
def running(settings: Settings, *, echo: Callable[[str], None] = lambda _: None) -> Iterator[list[ServiceStatus]]:
    """Services up for the body, and down afterwards (tests, one-shot jobs)."""
    try:
        yield up(settings, echo=echo)
    finally:
        down(settings, echo=echo)
