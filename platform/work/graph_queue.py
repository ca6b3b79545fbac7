"""Queue an instruction-graph build on the gpu workers and follow it to the end.

The client side of :mod:`gradwalk.workers.tasks.graph`, by task name: the service layer
(platform/changes/graphs.py) queues through these; progress (blocks written) is read from the
graph's record in Neo4j.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from gradwalk import errors
from gradwalk.graph.knn import build, records
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.shared.waiting import wait_until
from gradwalk.platform.work import broker
from gradwalk.platform.work.task_names import GRAPH_BUILD, GRAPH_EXTEND
from gradwalk.statuses import GraphStatus


def queue_extension(graph: str) -> None:
    """Queue the extension of a graph on a gpu worker (graph/knn/extend.py); the graph's record
    says when it is done (``ready`` again with its new rows) or failed."""
    try:
        GRAPH_EXTEND.send(graph)
    except OperationalError as e:
        raise errors.ServiceUnavailable(f"the Celery broker is not reachable: {e}") from e


def submit_build(run_id: str, k: int = build.DEFAULT_K, tau: float = build.DEFAULT_TAU, *,
                 block_rows: int | None = None, rebuild: bool = False, timeout_s: float = 300.0) -> dict[str, Any]:
    """Queue a build and return the orchestrator's reply (graph id, blocks, the finisher's task id)."""
    try:
        return broker.result_within(
            GRAPH_BUILD.send(run_id, k, tau, block_rows, rebuild), timeout_s)
    except CeleryTimeout as e:
        raise errors.ServiceUnavailable(
            f"no gpu worker took the graph build within {timeout_s:.0f}s; start one with `gradwalk services up`"
        ) from e
    except OperationalError as e:
        raise errors.ServiceUnavailable(f"the Celery broker is not reachable: {e}") from e


def wait_build(store: GraphStore, reply: dict[str, Any], *, progress: Callable[[int, int], None] | None = None,
               poll_s: float = 0.5, timeout_s: float = 24 * 3600) -> records.GraphInfo:
    """Wait until a submitted build is ready, telling ``progress(done, total)`` in blocks; a build
    that stops (failed, deleted, or its finishing task failed) raises with the reason."""
    graph = reply["graph"]
    finisher = AsyncResult(reply["finish_task"], app=broker.producer()) if reply.get("finish_task") else None

    def read() -> records.GraphInfo:
        info = records.get_graph(store, graph)
        if info.status == GraphStatus.BUILDING and finisher is not None and finisher.failed():
            return dataclasses.replace(info, status=GraphStatus.FAILED, error=repr(finisher.result))
        return info

    def show(info: records.GraphInfo) -> None:
        if progress is not None:
            progress(info.blocks_done, info.blocks)

    stopped = {GraphStatus.FAILED, GraphStatus.DELETING, GraphStatus.DELETED}
    return wait_until(read, done={GraphStatus.READY}, failed=stopped, what=f"building graph {graph}",
                      progress=show, timeout_s=timeout_s, poll_s=poll_s)


def record_maker(store: GraphStore, graph: str, created_by: str) -> None:
    """Record token ``created_by`` as the graph's maker, unless it has one (the first build's)."""
    store.write("MATCH (g:InstructionGraph {id: $graph}) SET g.created_by = coalesce(g.created_by, $who)",
                {"graph": graph, "who": created_by})
