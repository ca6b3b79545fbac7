"""A whole instruction graph read out of the session's real Neo4j: networkx, igraph, statistics."""

from __future__ import annotations

from gradwalk.graph.knn import build, export, neighbors


def test_export_to_networkx_and_igraph_and_stats(store, run):
    import networkx as nx

    info = build.build_graph(store, run.features, run.id, 5, 0.0, device="cpu")
    g = export.to_networkx(store, info.id, run.ids)
    assert (g.number_of_nodes(), g.number_of_edges()) == (run.rows, 1500)
    source, (target, w) = run.ids[0], neighbors.neighbors(store, info.id, [run.ids[0]])[run.ids[0]][0]
    assert g[source][target]["w"] == w

    h = export.to_igraph(store, info.id, run.ids)
    assert (h.vcount(), h.ecount(), h.vs[0]["name"]) == (run.rows, 1500, run.ids[0])
    assert sorted(h.es["w"]) == sorted(d["w"] for _, _, d in g.edges(data=True))

    stats = export.graph_stats(store, info.id, run.ids)
    assert (stats["nodes"], stats["edges"], stats["isolated"], stats["out_degree_below_k"]) == (run.rows, 1500, 0, 0)
    assert stats["out_degree"]["min"] == stats["out_degree"]["max"] == 5
    assert stats["in_degree"]["mean"] == 5
    assert stats["weak_components"] == nx.number_weakly_connected_components(g)
    assert stats["strong_components"] == nx.number_strongly_connected_components(g)
    assert stats["largest_strong_component"] == max(len(c) for c in nx.strongly_connected_components(g))
