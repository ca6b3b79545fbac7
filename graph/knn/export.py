"""A whole instruction graph read out of Neo4j: edge arrays, the walk's in-memory neighbour
table, networkx and igraph graphs, and the statistics the CLI prints."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwalk.graph.knn.neighbors import RowIndex
from gradwalk.graph.knn.pages import stored_table
from gradwalk.graph.knn.records import get_graph, ready_graph
from gradwalk.graph.store.adapter import GraphStore

if TYPE_CHECKING:
    import igraph
    import networkx

NODES_PER_READ = 2_000  # source nodes per neighbour read when exporting a whole graph


def iter_edges(store: GraphStore, graph: str, row_ids: Sequence[str], *, chunk: int = NODES_PER_READ,
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A graph's edges as (source rows, target rows, w) arrays, ``chunk`` source nodes per read."""
    rows = RowIndex(graph, row_ids)
    for start in range(0, len(rows), chunk):
        lists = list(rows.edges(store, list(range(start, min(start + chunk, len(rows))))))
        none = np.empty(0, dtype=np.int64)
        yield (np.concatenate([none, *(np.full(t.size, s) for s, t, _ in lists)]),
               np.concatenate([none, *(t for _, t, _ in lists)]),
               np.concatenate([none.astype(np.float64), *(w for _, _, w in lists)]))


def edge_arrays(store: GraphStore, graph: str, row_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All edges of a graph as (source rows, target rows, w)."""
    sources, targets, weights = zip(*iter_edges(store, graph, row_ids), strict=True)
    return np.concatenate(sources), np.concatenate(targets), np.concatenate(weights)


def neighbor_table(store: GraphStore, graph: str, row_ids: Sequence[str]) -> np.ndarray:
    """A ``ready`` graph read whole into graph.knn's table: int32 [N, k] row ids (-1 = none), most
    similar first, equal cosines by row index. Read from its neighbour pages when they index
    ``row_ids`` (graph.knn.pages), else assembled from its edges."""
    info = ready_graph(store, graph, row_ids)
    stored = stored_table(store, graph, row_ids)
    if stored is not None:
        return stored
    table = np.full((len(row_ids), info.k), -1, dtype=np.int32)
    for sources, targets, weights in iter_edges(store, graph, row_ids):
        order = np.lexsort((targets, -weights, sources))
        sources, targets = sources[order], targets[order]
        first = np.searchsorted(sources, sources)  # where each source's run of edges starts
        table[sources, np.arange(sources.size) - first] = targets
    return table


def to_networkx(store: GraphStore, graph: str, row_ids: Sequence[str]) -> networkx.DiGraph:
    """The graph as a networkx DiGraph: nodes are instruction ids, edges carry ``w``."""
    import networkx as nx

    sources, targets, weights = edge_arrays(store, graph, row_ids)
    out = nx.DiGraph(graph=graph)
    out.add_nodes_from(row_ids)
    edges = zip(sources.tolist(), targets.tolist(), weights.tolist(), strict=True)
    out.add_weighted_edges_from(((row_ids[s], row_ids[t], w) for s, t, w in edges), weight="w")
    return out


def to_igraph(store: GraphStore, graph: str, row_ids: Sequence[str]) -> igraph.Graph:
    """The graph as a directed igraph Graph: vertex ``name`` = instruction id (row order), edges carry ``w``."""
    import igraph as ig

    sources, targets, weights = edge_arrays(store, graph, row_ids)
    out = ig.Graph(n=len(row_ids), edges=np.column_stack([sources, targets]).tolist(), directed=True)
    out.vs["name"] = list(row_ids)
    out.es["w"] = weights.tolist()
    out["graph"] = graph
    return out


def _distribution(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    q = np.percentile(values, [10, 50, 90, 99])
    return {"min": float(values.min()), "p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2]),
            "p99": float(q[3]), "max": float(values.max()), "mean": float(values.mean())}


def graph_stats(store: GraphStore, graph: str, row_ids: Sequence[str]) -> dict[str, Any]:
    """Node and edge counts, degree distributions, weights and connected components of a graph."""
    info = get_graph(store, graph)
    g = to_igraph(store, graph, row_ids)
    out_degree, in_degree = np.asarray(g.outdegree()), np.asarray(g.indegree())
    weak, strong = g.connected_components(mode="weak"), g.connected_components(mode="strong")
    weights = np.asarray(g.es["w"] if g.ecount() else [], dtype=np.float64)
    return {
        "graph": graph, "status": info.status, "feature_run": info.feature_run, "k": info.k, "tau": info.tau,
        "nodes": g.vcount(), "edges": g.ecount(),
        "out_degree": _distribution(out_degree), "in_degree": _distribution(in_degree),
        "out_degree_below_k": int((out_degree < info.k).sum()),
        "isolated": int(((out_degree + in_degree) == 0).sum()),
        "weight": _distribution(weights),
        "weak_components": len(weak), "largest_weak_component": max(weak.sizes(), default=0),
        "strong_components": len(strong), "largest_strong_component": max(strong.sizes(), default=0),
    }
