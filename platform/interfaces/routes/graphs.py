"""Instruction graphs: build, cancel a build, extend, list, show, statistics, GraphML export, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from gradwalk.graph.knn import export as graph_export
from gradwalk.graph.knn.build import feature_row_ids
from gradwalk.graph.knn.records import get_graph
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.catalog import listings
from gradwalk.platform.changes import deletes, graphs
from gradwalk.platform.interfaces.routes.deps import ChangeDep, Force, SettingsDep, StoreDep
from gradwalk.platform.shared.schemas import DeletePublic, GraphCreate, GraphDetail, GraphExtension, GraphPublic

router = APIRouter(prefix="/graphs", tags=["graphs"])


@router.get("", response_model=list[GraphPublic], name="list_graphs")
def list_graphs(store: StoreDep, feature_run: Annotated[str | None, Query(max_length=200)] = None) -> list[GraphPublic]:
    return listings.list_graphs(store, feature_run)


@router.post("", response_model=GraphPublic, status_code=202, name="build_graph")
def build_graph(body: GraphCreate, ctx: ChangeDep) -> GraphPublic:
    """Queue the build of a complete feature run's kNN graph on the gpu workers (a ready graph is
    kept, an unfinished one resumed; ``rebuild`` starts anew); poll it until it is ``ready``.
    Needs a curator or admin token, recorded as the graph's maker."""
    return graphs.build(ctx, body.feature_run, body.k, body.tau, block_rows=body.block_rows, rebuild=body.rebuild)


@router.get("/{key}", response_model=GraphDetail, name="get_graph")
def get_graph_detail(key: str, store: StoreDep) -> GraphDetail:
    """Show one graph and what depends on it."""
    return listings.show_graph(store, key)


@router.post("/{key}/cancel", response_model=GraphPublic, name="cancel_graph_build")
def cancel_graph_build(key: str, ctx: ChangeDep) -> GraphPublic:
    """Stop a graph's build (its maker's token or an admin's): it is marked failed with who
    cancelled it, and building it again resumes it."""
    return graphs.cancel(ctx, key)


@router.post("/{key}/extend", response_model=GraphExtension, status_code=202, name="extend_graph")
def extend_graph(key: str, ctx: ChangeDep) -> GraphExtension:
    """Queue the addition of the rows the graph's feature run gained (extend the run first); poll
    the graph until it is ``ready`` with ``rows_after`` nodes. Needs a curator or admin token."""
    return graphs.extend(ctx, key)


def _rows(store: GraphStore, settings: Any, key: str) -> list[str]:
    """A graph's node ids: its feature run's pool rows, in row order."""
    return feature_row_ids(FeatureStore.from_settings(settings), get_graph(store, key).feature_run)


@router.get("/{key}/stats", response_model=dict[str, Any], name="get_graph_stats")
def graph_stats(key: str, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Node and edge counts, degree and weight distributions, connected components."""
    return graph_export.graph_stats(store, key, _rows(store, settings, key))


@router.get("/{key}/graphml", name="export_graph", response_class=StreamingResponse,
            responses={200: {"content": {"application/graphml+xml": {}}, "description": "The graph as GraphML"}})
def export_graph(key: str, store: StoreDep, settings: SettingsDep) -> StreamingResponse:
    """The whole graph as GraphML (networkx, igraph and Gephi read it): node id = instruction id,
    edge attribute ``w`` = cosine."""
    import networkx as nx

    exported = graph_export.to_networkx(store, key, _rows(store, settings, key))
    return StreamingResponse((line + "\n" for line in nx.generate_graphml(exported)),
                             media_type="application/graphml+xml",
                             headers={"Content-Disposition": f'attachment; filename="{key}.graphml"'})


@router.delete("/{key}", response_model=DeletePublic, name="delete_graph")
def delete_graph(key: str, ctx: ChangeDep, force: Force = False) -> DeletePublic:
    """Delete a graph's edges in batches, then its record (its maker's token or an admin's); a
    tombstone stays when a job used it."""
    return deletes.delete_graph(ctx, key, force=force)
