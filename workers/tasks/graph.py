"""Instruction-graph builds on Celery: one orchestrator, one task per row block, one finisher.

``gradwalk.graph.build`` creates (or resumes) the graph node and fans the missing blocks out as a
chord of ``gradwalk.graph.block`` tasks, any number of gpu workers taking them; the chord's body
``gradwalk.graph.finish`` marks the graph ready. Progress (blocks written) lives on the graph node,
so any process can watch it. The task bodies only call :mod:`gradwalk.graph.graph_build`,
the same functions an in-process build runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from celery import chord
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from celery.signals import task_failure
from kombu.exceptions import OperationalError

from gradwalk import errors
from gradwalk.graph import graph_build, graph_records
from gradwalk.graph.store import GraphStore
from gradwalk.workers.app import app, result_within
from gradwalk.workers.context import feature_store, graph_store
from gradwalk.workers.device import resolve_device
from gradwalk.workers.recovery import wait_for_neo4j

if TYPE_CHECKING:
    import torch


@functools.lru_cache(maxsize=1)
def _features(run_id: str, device: str) -> tuple[list[str], torch.Tensor]:
    """The run's rows, loaded and checksummed once per worker process for all its blocks."""
    return graph_build.load_features(feature_store(), run_id, device)


@app.task(name="gradwalk.graph.build")
def build(run_id: str, k: int = graph_build.DEFAULT_K, tau: float = graph_build.DEFAULT_TAU, block_rows: int | None = None,
          rebuild: bool = False) -> dict[str, Any]:
    info, todo = graph_build.start_build(graph_store(), feature_store(), run_id, k, tau, block_rows=block_rows,
                                    rebuild=rebuild)
    reply = {"graph": info.id, "status": info.status, "blocks": info.blocks, "dispatched": len(todo)}
    if info.status == graph_records.READY:
        return reply
    body = finish.si(graph_id=info.id, build_id=info.build_id)
    blocks = [block.si(graph_id=info.id, index=index, build_id=info.build_id) for index in todo]
    result = chord(blocks)(body) if blocks else body.apply_async()
    return {**reply, "build_id": info.build_id, "finish_task": result.id}


def _current(graph_id: str, build_id: str) -> graph_records.GraphInfo | None:
    """The graph if this build may still write it; None when it was deleted, finished or taken over."""
    try:
        info = graph_records.get_graph(graph_store(), graph_id)
    except errors.NotFound:
        return None
    return info if info.status == graph_records.BUILDING and info.build_id == build_id else None


# Neo4j unreachable for longer than the driver's own retries (a restart, a failover): a block or
# finish task waits until Neo4j answers (up to NEO4J_WAIT_S) and is retried at once, at most
# NEO4J_RETRIES times, before the build is given up. A block rewrites its rows' edges whole, so a
# retried block is harmless.
NEO4J_WAIT_S = 600.0
NEO4J_RETRIES = 3


def _retry_when_neo4j_is_back(task: Any, error: errors.ServiceUnavailable) -> NoReturn:
    if task.request.retries < task.max_retries and wait_for_neo4j(graph_store(), NEO4J_WAIT_S):
        raise task.retry(exc=error, countdown=0)
    raise error


@app.task(name="gradwalk.graph.block", bind=True, max_retries=NEO4J_RETRIES)
def block(self, graph_id: str, index: int, build_id: str) -> dict[str, Any]:
    try:
        return _block(graph_id, index, build_id)
    except errors.ServiceUnavailable as e:
        _retry_when_neo4j_is_back(self, e)


def _block(graph_id: str, index: int, build_id: str) -> dict[str, Any]:
    info = _current(graph_id, build_id)
    if info is None:
        return {"graph": graph_id, "block": index, "skipped": "build superseded"}
    device = resolve_device()
    row_ids, features = _features(info.feature_run, device)
    edges = graph_build.write_block(graph_store(), info, row_ids, features, index, device=device)
    return {"graph": graph_id, "block": index, "edges": edges}


@app.task(name="gradwalk.graph.finish", bind=True, max_retries=NEO4J_RETRIES)
def finish(self, graph_id: str, build_id: str) -> dict[str, Any]:
    try:
        return _finish(graph_id, build_id)
    except errors.ServiceUnavailable as e:
        _retry_when_neo4j_is_back(self, e)


def _finish(graph_id: str, build_id: str) -> dict[str, Any]:
    info = _current(graph_id, build_id)
    if info is None:
        return {"graph": graph_id, "skipped": "build superseded"}
    return graph_build.finish_build(graph_store(), info).to_dict()


@task_failure.connect
def _record_failure(sender: Any = None, kwargs: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    """A block or finish task that gave up marks its build failed (building again resumes it)."""
    if getattr(sender, "name", None) in (block.name, finish.name) and kwargs:
        info = _current(kwargs["graph_id"], kwargs["build_id"])
        if info is not None:
            graph_build.fail_build(graph_store(), info, f"{sender.name} failed: {type(exception).__name__}: {exception}")


def submit_build(run_id: str, k: int = graph_build.DEFAULT_K, tau: float = graph_build.DEFAULT_TAU, *,
                 block_rows: int | None = None, rebuild: bool = False, timeout_s: float = 300.0) -> dict[str, Any]:
    """Queue a build and return the orchestrator's reply (graph id, blocks, the finisher's task id)."""
    try:
        return result_within(build.apply_async(args=[run_id, k, tau, block_rows, rebuild]), timeout_s)
    except CeleryTimeout as e:
        raise errors.ServiceUnavailable(
            f"no gpu worker took the graph build within {timeout_s:.0f}s; start one with `gradwalk services up`"
        ) from e
    except OperationalError as e:
        raise errors.ServiceUnavailable(f"the Celery broker is not reachable: {e}") from e


def wait_build(store: GraphStore, reply: dict[str, Any], *, progress: Callable[[int, int], None] | None = None,
               poll_s: float = 0.5) -> graph_records.GraphInfo:
    """Wait until a submitted build is ready, telling ``progress(done, total)`` in blocks."""
    graph = reply["graph"]
    finisher = AsyncResult(reply["finish_task"], app=app) if reply.get("finish_task") else None
    while True:
        info = graph_records.get_graph(store, graph)
        if progress is not None:
            progress(info.blocks_done, info.blocks)
        if info.status == graph_records.READY:
            return info
        if info.status != graph_records.BUILDING:
            raise errors.Conflict(f"building graph {graph} stopped: it is {info.status}" +
                                  (f" ({info.error})" if info.error else ""))
        if finisher is not None and finisher.failed():
            raise errors.Conflict(f"building graph {graph} failed: {finisher.result!r}")
        time.sleep(poll_s)
