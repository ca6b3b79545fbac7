"""Instruction-graph builds on Celery: one orchestrator, one task per row block, one finisher.

``gradwalk.graph.build`` creates (or resumes) the graph node and fans the missing blocks out as a
chord of ``gradwalk.graph.block`` tasks, any number of gpu workers taking them; the chord's body
``gradwalk.graph.finish`` marks the graph ready. Progress (blocks written) lives on the graph node,
so any process can watch it. The task bodies only call :mod:`gradwalk.graph.knn.build`,
the same functions an in-process build runs. A block task delivered twice (the broker redelivers
one whose worker seems gone while it still runs) meets the block's lease in Neo4j: the second copy
waits for the first and returns the same result, so the chord counts the block once.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from celery import chord
from celery.signals import task_failure

from gradwalk import errors
from gradwalk.device import resolve_device
from gradwalk.graph.knn import build as graph_build
from gradwalk.graph.knn import extend as graph_extend
from gradwalk.graph.knn import records
from gradwalk.platform.work.task_names import GRAPH_BLOCK, GRAPH_BUILD, GRAPH_EXTEND, GRAPH_FINISH
from gradwalk.statuses import GraphStatus
from gradwalk.workers.app import app
from gradwalk.workers.context import feature_store, graph_store
from gradwalk.workers.recovery import NEO4J_RETRIES, retry_when_neo4j_is_back

if TYPE_CHECKING:
    import torch


@functools.lru_cache(maxsize=1)
def _features(run_id: str, device: str) -> tuple[list[str], torch.Tensor]:
    """The run's rows, loaded and checksummed once per worker process for all its blocks."""
    return graph_build.load_features(feature_store(), run_id, device)


@app.task(name=GRAPH_BUILD.name)
def build(run_id: str, k: int = graph_build.DEFAULT_K, tau: float = graph_build.DEFAULT_TAU, block_rows: int | None = None,
          rebuild: bool = False) -> dict[str, Any]:
    info, todo = graph_build.start_build(graph_store(), feature_store(), run_id, k, tau, block_rows=block_rows,
                                    rebuild=rebuild)
    reply = {"graph": info.id, "status": info.status, "blocks": info.blocks, "dispatched": len(todo)}
    if info.status == GraphStatus.READY:
        return reply
    body = finish.si(graph_id=info.id, build_id=info.build_id)
    blocks = [block.si(graph_id=info.id, index=index, build_id=info.build_id) for index in todo]
    result = chord(blocks)(body) if blocks else body.apply_async()
    return {**reply, "build_id": info.build_id, "finish_task": result.id}


@app.task(name=GRAPH_EXTEND.name)
def extend(graph_id: str) -> dict[str, Any]:
    """Add the rows the graph's feature run gained (graph/knn/extend.py), in this worker: the
    work is new rows × N, small next to a build, so it is one task."""
    return graph_extend.extend_graph(graph_store(), feature_store(), graph_id, device=resolve_device()).to_dict()


def _current(graph_id: str, build_id: str) -> records.GraphInfo | None:
    """The graph if this build may still write it; None when it was deleted, finished or taken over."""
    try:
        info = records.get_graph(graph_store(), graph_id)
    except errors.NotFound:
        return None
    return info if info.status == GraphStatus.BUILDING and info.build_id == build_id else None


@app.task(name=GRAPH_BLOCK.name, bind=True, max_retries=NEO4J_RETRIES)
def block(self, graph_id: str, index: int, build_id: str) -> dict[str, Any]:
    try:
        return _block(graph_id, index, build_id)
    except errors.ServiceUnavailable as e:
        retry_when_neo4j_is_back(self, e, graph_store())
        raise


def _block(graph_id: str, index: int, build_id: str) -> dict[str, Any]:
    info = _current(graph_id, build_id)
    if info is None:
        return {"graph": graph_id, "block": index, "skipped": "build superseded"}
    device = resolve_device()
    row_ids, features = _features(info.feature_run, device)
    edges = graph_build.write_block(graph_store(), info, row_ids, features, index, device=device)
    return {"graph": graph_id, "block": index, "edges": edges}


@app.task(name=GRAPH_FINISH.name, bind=True, max_retries=NEO4J_RETRIES)
def finish(self, graph_id: str, build_id: str) -> dict[str, Any]:
    try:
        return _finish(graph_id, build_id)
    except errors.ServiceUnavailable as e:
        retry_when_neo4j_is_back(self, e, graph_store())
        raise


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
