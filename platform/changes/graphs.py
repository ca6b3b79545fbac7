"""Instruction graphs: build one from a feature run, cancel a build, extend one to the rows its run
gained (curators). Builds and extensions are queued on the gpu workers; the graph's record says how
far they got."""

from __future__ import annotations

from gradwalk import errors
from gradwalk.graph.knn import extend as graph_extend
from gradwalk.graph.knn import records
from gradwalk.graph.knn.build import DEFAULT_K, DEFAULT_TAU, check_build, fail_build
from gradwalk.platform.catalog import listings
from gradwalk.platform.changes import Context
from gradwalk.platform.shared.schemas import GraphExtension, GraphPublic
from gradwalk.platform.work import graph_queue
from gradwalk.statuses import GraphStatus

QUEUE_WAIT_S = 60.0  # how long a build waits for a gpu worker to create the graph's record


def build(ctx: Context, feature_run: str, k: int = DEFAULT_K, tau: float = DEFAULT_TAU, *,
          block_rows: int | None = None, rebuild: bool = False) -> GraphPublic:
    """Queue the build of ``feature_run``'s kNN graph (a ready one is kept, an unfinished one
    resumed, ``rebuild`` starts anew); the caller's token is the maker of a new graph."""
    ctx.caller.require("curator", f"building a graph of feature run {feature_run}")
    check_build(ctx.store, ctx.features, feature_run, k, tau, block_rows)
    reply = graph_queue.submit_build(feature_run, k, tau, block_rows=block_rows, rebuild=rebuild,
                                      timeout_s=QUEUE_WAIT_S)
    graph_queue.record_maker(ctx.store, reply["graph"], ctx.caller.name)
    return listings.show_graph(ctx.store, reply["graph"])


def cancel(ctx: Context, graph: str) -> GraphPublic:
    """Stop a graph's build (the token that built it, or an admin's): its blocks not yet written
    are skipped and it is marked failed with who cancelled it; building it again resumes it."""
    ctx.caller.require("curator", f"cancelling the build of graph {graph}")
    ctx.caller.require_owner(listings.show_graph(ctx.store, graph).created_by, f"graph {graph}")
    info = records.get_graph(ctx.store, graph)
    if info.status != GraphStatus.BUILDING:
        raise errors.Conflict(f"graph {graph} is {info.status}; only a graph being built can be cancelled")
    fail_build(ctx.store, info, f"cancelled by token {ctx.caller.name!r}; build it again to resume it")
    return listings.show_graph(ctx.store, graph)


def extend(ctx: Context, graph: str) -> GraphExtension:
    """Queue the addition of the rows ``graph``'s feature run gained (refused when there are none);
    ``rows_after`` is the graph's node count once the extension is done."""
    ctx.caller.require("curator", f"extending graph {graph}")
    *_, rows = graph_extend.pending_rows(ctx.store, ctx.features, graph)
    graph_extend.clear_refusal(ctx.store, graph)
    graph_queue.queue_extension(graph)
    shown = listings.show_graph(ctx.store, graph).model_dump(exclude={"dependants"})
    return GraphExtension(**shown, rows_after=len(rows))
