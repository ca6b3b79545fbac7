"""Instruction graphs: build one from a feature run, extend one to the rows its run gained
(curators). Both are queued on the gpu workers; the graph's record says how far they got."""

from __future__ import annotations

from gradwalk.graph.knn import extend as graph_extend
from gradwalk.graph.knn.build import DEFAULT_K, DEFAULT_TAU, check_build
from gradwalk.platform.catalog import listings
from gradwalk.platform.changes import Context
from gradwalk.platform.shared.schemas import GraphExtension, GraphPublic
from gradwalk.platform.work import graph_queue

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


def extend(ctx: Context, graph: str) -> GraphExtension:
    """Queue the addition of the rows ``graph``'s feature run gained (refused when there are none);
    ``rows_after`` is the graph's node count once the extension is done."""
    ctx.caller.require("curator", f"extending graph {graph}")
    *_, rows = graph_extend.pending_rows(ctx.store, ctx.features, graph)
    graph_extend.clear_refusal(ctx.store, graph)
    graph_queue.queue_extension(graph)
    shown = listings.show_graph(ctx.store, graph).model_dump(exclude={"dependants"})
    return GraphExtension(**shown, rows_after=len(rows))
