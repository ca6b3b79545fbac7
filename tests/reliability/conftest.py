"""A private stack for the fault tests: its own Neo4j, Redis, two gpu workers, a cpu worker and
the API, on free loopback ports with a state folder of their own.

The fault tests stop, kill and restart these processes; the session's services (tests/conftest.py)
are never touched, so the rest of the suite runs on unharmed. Every test leaves the stack running
(``stack.heal()``), whatever it killed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gradwalk.platform.work.task_names import FEATURES_RUN, SELECT_RUN
from gradwalk.ports import free_port


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False



def wait_for(check: Callable[[], Any], *, timeout_s: float, poll_s: float = 0.2, what: str = "condition") -> Any:
    """``check()``'s first truthy value, polled until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


# The real model, as small as a run gets: a rank-2 adapter on q only, 64 tokens, 64 dims, one
# warm-up epoch. The stack cuts shards of 4 rows: a tiny run of 16 + 4 rows is five shard tasks.
TINY_ENGINE = {"lora_r": 2, "lora_alpha": 8, "lora_targets": ["q_proj"], "max_length": 64, "batch_size": 4,
               "proj_dim": 64}
TINY_WARMUP = {"fraction": 0.1, "epochs": 1, "examples_per_step": 4}
TINY_POOL_ROWS, TINY_TARGET_ROWS = 16, 4


def start_tiny_run(stack, name: str) -> tuple[str, str, str, str]:
    """Import a tiny pool and target named after ``name``, queue a gradient run of them on the
    stack: (pool, target, run id, the orchestrator's task id)."""
    from gradwalk.platform.intake import pools
    from gradwalk.platform.work import feature_runs

    pool, target = f"{name}-pool", f"{name}-target"
    pools.import_pool(stack.store, pool, [chat(pool, i) for i in range(TINY_POOL_ROWS)])
    pools.import_target(stack.store, target, [chat(target, i) for i in range(TINY_TARGET_ROWS)])
    run_id = feature_runs.create(stack.store, pool, [target], engine=TINY_ENGINE, warmup=TINY_WARMUP)
    return pool, target, run_id, stack.send(FEATURES_RUN.name, run_id, queue="gpu").id


def running_shards(stack, exclude: set[str]) -> list[dict]:
    """Tasks of the stack that a live process is executing now: {id, pid, hostname}."""
    client = stack.redis_client()
    out = []
    for key in client.scan_iter("celery-task-meta-*", count=1000):
        meta = json.loads(client.get(key) or "{}")
        info = meta.get("result") or {}
        if meta.get("status") != "STARTED" or meta.get("task_id") in exclude or not isinstance(info, dict):
            continue
        pid = info.get("pid")
        try:
            alive = b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            alive = False
        if alive:
            out.append({"id": meta["task_id"], "pid": pid, "hostname": info.get("hostname")})
    return out


def _named_worker(settings, queue: str, tag: str):
    """A Celery worker of ``queue`` with a node name and pid file of its own (``tag``), so that
    two workers can consume one queue side by side."""
    from gradwalk.platform.local import stack as local

    class Worker(local.WorkerService):
        def __init__(self) -> None:
            super().__init__(settings, queue)
            self.name = f"worker-{tag}"

        def node_name(self) -> str:
            return f"{tag}@{socket.gethostname()}.{self.settings.redis_address[1]}"

    return Worker()


@dataclass
class Stack:
    """The private services and what the tests need to reach them."""

    settings: Any
    neo4j: Any
    redis: Any
    workers: dict[str, Any]
    api: Any
    app: Any  # a Celery app on this stack's Redis (the process's own app talks to the session's)
    store: Any
    token: str
    faults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def services(self) -> list[Any]:
        return [self.neo4j, self.redis, *self.workers.values(), self.api]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def record(self, **fault: Any) -> None:
        """Keep one fault's outcome for the report printed at the end of the package."""
        self.faults.append(fault)

    def redis_client(self):
        import redis

        return redis.Redis.from_url(self.settings.redis_url, socket_timeout=5)

    def kill(self, service, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a service's whole process group (the process and its children)."""
        pid = service.pid()
        assert pid is not None, f"{service.name} is not running"
        os.killpg(pid, sig)
        if service._process is not None and service._process.pid == pid:
            service._process.wait(timeout=60)  # reaped: gone with its sockets
        deadline = time.monotonic() + 60
        while (service.pid() is not None or _alive(pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.pid() is None and not _alive(pid), f"{service.name} survived signal {sig}"

    def restart(self, service) -> None:
        service.spawn()
        service.wait_ready()

    def heal(self) -> None:
        """Start whatever is not running (Neo4j and Redis first), wait until each answers."""
        for service in self.services:
            if service.pid() is None:
                service.spawn()
        for service in self.services:
            service.wait_ready()

    def send(self, name: str, *args: Any, queue: str, task_id: str | None = None):
        return self.app.send_task(name, args=list(args), queue=queue, task_id=task_id)

    def submit_job(self, request) -> str:
        """``jobs.submit`` against this stack: record the job, queue it on this stack's Redis."""
        from gradwalk.platform.work import jobs

        job_id = jobs.create(self.store, request)
        self.send(SELECT_RUN.name, job_id, queue="cpu", task_id=job_id)
        return job_id

    def log(self, service) -> str:
        return service.log_file.read_text(errors="replace") if service.log_file.exists() else ""


@pytest.fixture(scope="package")
def stack(settings, tmp_path_factory) -> Iterator[Stack]:
    """The private stack, up for the whole package (about 30 s to start on two cores)."""
    from celery import Celery

    from gradwalk.graph.store.adapter import GraphStore
    from gradwalk.graph.store.migrations import migrate
    from gradwalk.platform.access import auth
    from gradwalk.platform.local import stack as local
    from gradwalk.platform.work.broker import celery_config

    state = tmp_path_factory.mktemp("reliability-state")
    own = settings.model_copy(update={
        "state_dir": state,
        "artifact_dir": None,
        "neo4j_uri": f"bolt://127.0.0.1:{free_port()}",
        "neo4j_password": SecretStr(secrets.token_urlsafe(16)),
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "api_port": free_port(),
        "feature_shard_rows": 4,
        # Faults show quickly: the driver gives up on an unreachable Neo4j after 3 s (the default
        # is 30 s) and hands the error to the task's own retries.
        "neo4j_max_retry_s": 3.0,
        "orphan_check_s": 2.0,
        "orphan_grace_s": 4.0,
        "import_dir": state / "imports",
    })
    neo4j, redis_service = local.Neo4jService(own), local.RedisService(own)
    cpu = own.model_copy(update={"worker_concurrency": 2})
    workers = {
        "gpu-a": _named_worker(own, "gpu", "gpu-a"),
        "gpu-b": _named_worker(own, "gpu", "gpu-b"),
        "cpu": _named_worker(cpu, "cpu", "cpu"),
    }
    api = local.ApiService(own)
    everything = [neo4j, redis_service, *workers.values(), api]
    started = time.monotonic()
    try:
        neo4j.spawn()
        redis_service.spawn()
        redis_service.wait_ready()
        for worker in workers.values():
            worker.spawn()
        neo4j.wait_ready()
        store = GraphStore.connect(own)
        migrate(store)
        api.spawn()
        for service in everything:
            service.wait_ready()
        app = Celery("gradwalk-reliability", set_as_current=False)
        app.conf.update(celery_config(own))
        token = auth.create(store, f"reliability-{uuid.uuid4().hex[:8]}", "admin")  # cancels any job
        built = Stack(own, neo4j, redis_service, workers, api, app, store, token)
        print(f"\nprivate stack up in {time.monotonic() - started:.1f}s")
        yield built
        _report(built)
    finally:
        for service in reversed(everything):
            service.stop()
        if "store" in locals():
            store.close()


def _report(stack: Stack) -> None:
    """Print every fault's outcome (docs/reliability.md's table comes from these lines)."""
    if not stack.faults:
        return
    out = os.environ.get("GRADWALK_RELIABILITY_REPORT")
    lines = [json.dumps(f, sort_keys=True, default=str) for f in stack.faults]
    print("\nreliability report:\n" + "\n".join(lines))
    if out:
        Path(out).write_text("\n".join(lines) + "\n")


@pytest.fixture
def healed(stack) -> Iterator[Stack]:
    """The stack, started again after the test whatever the test killed."""
    try:
        yield stack
    finally:
        stack.heal()


@dataclass(frozen=True)
class CraftedRun:
    """A pool, a target and a complete gradient feature run of random unit rows (no model)."""

    pool: str
    target: str
    id: str
    ids: list[str]  # the pool's instruction ids in row order
    x: Any  # float32 [rows, dim], unit rows


def chat(tag: str, i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"{tag}: what is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}


@pytest.fixture
def crafted(stack, prefix) -> Callable[..., CraftedRun]:
    """Make a :class:`CraftedRun` of ``rows`` instructions in this stack (shards where its workers
    read them), so graph builds and selection jobs run without featurising anything."""
    return _crafter(stack, prefix)


@dataclass(frozen=True)
class Walkable:
    run: CraftedRun
    graph: str  # a ready instruction graph of the run (k=8)


@pytest.fixture(scope="package")
def walkable(stack) -> Walkable:
    """A run of 2,000 rows with a ready graph, shared by the tests that walk it."""
    from gradwalk.graph.knn import build as graphs
    from gradwalk.platform.artifacts.feature_store import FeatureStore

    run = _crafter(stack, f"w{uuid.uuid4().hex[:8]}-")(2000)
    info = graphs.build_graph(stack.store, FeatureStore(stack.settings.artifacts), run.id, 8, 0.0, device="cpu")
    return Walkable(run, info.id)


def _crafter(stack, prefix: str) -> Callable[..., CraftedRun]:
    import numpy as np

    from gradwalk.platform.artifacts.feature_store import FeatureStore
    from gradwalk.platform.intake import pools
    from gradwalk.platform.work import feature_runs

    def make(rows: int, dim: int = 16, target_rows: int = 6, seed: int = 0) -> CraftedRun:
        pool, target = f"{prefix}pool-{rows}", f"{prefix}target"
        pools.import_pool(stack.store, pool, [chat(pool, i) for i in range(rows)])
        pools.import_target(stack.store, target, [chat(target, i) for i in range(target_rows)])
        ids = feature_runs.member_ids(stack.store, pool)
        rng = np.random.default_rng(seed)
        x = (rng.normal(size=(rows, dim)) + 0.2).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        val = rng.normal(size=(target_rows, dim)).astype(np.float32) + x[:target_rows]
        val /= np.linalg.norm(val, axis=1, keepdims=True)
        run_id = f"{prefix}run-{rows}"
        features = FeatureStore(stack.settings.artifacts)
        features.write_shard(run_id, "train", 0, ids, x)
        features.write_shard(run_id, f"val-{target}", 0, feature_runs.target_ids(stack.store, target), val)
        stack.store.write(
            "MATCH (p:Pool {name: $pool}), (t:Target {name: $target}) "
            "CREATE (fr:FeatureRun {id: $id, pool: $pool, targets: [$target], kind: 'gradient', status: 'complete', "
            "  parts: ['train', 'val-' + $target], dim: $dim, rows: $rows, rows_total: $rows, rows_done: $rows, "
            "  created_at: datetime()})-[:OF_POOL]->(p) "
            "CREATE (fr)-[:FOR_TARGET]->(t)",
            {"pool": pool, "target": target, "id": run_id, "dim": dim, "rows": rows})
        return CraftedRun(pool, target, run_id, ids, x)

    return make
