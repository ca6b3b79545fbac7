"""Neighbour lists read back from the session's real Neo4j, by id and as the walk's source."""

from __future__ import annotations

import numpy as np

from gradwalk.graph import edge_writer, graph_build, graph_export, neighbors


def test_neighbor_lists_come_back_sorted_and_drive_the_walk(store, run):
    from gradwalk.graph.knn import knn_graph
    from gradwalk.graph.selection import core_components, gradient_walk

    info = graph_build.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    lists = neighbors.neighbors(store, info.id, [run.ids[5], run.ids[7], "not-an-instruction"])
    assert list(lists) == [run.ids[5], run.ids[7], "not-an-instruction"]
    assert lists["not-an-instruction"] == []
    for edges in (lists[run.ids[5]], lists[run.ids[7]]):
        assert len(edges) == 10 and [w for _, w in edges] == sorted((w for _, w in edges), reverse=True)

    table, _ = knn_graph(run.x, k=10, tau=0.0, device="cpu")
    np.testing.assert_array_equal(graph_export.neighbor_table(store, info.id, run.ids), table)
    rng = np.random.default_rng(1)
    val = run.x[rng.choice(run.rows, 40)] + 0.05 * rng.normal(size=(40, run.x.shape[1]))
    components, weights = core_components(val / np.linalg.norm(val, axis=1, keepdims=True))
    with neighbors.open_neighbors(store, info.id, run.ids, prefetch_limit=20) as source:
        source.prefetch(np.arange(20))
        assert source.round_trips == 1
        for row in range(20):
            np.testing.assert_array_equal(source[row], table[row])
        assert source.round_trips == 1  # served from the prefetched lists
        from_neo4j = gradient_walk(run.x, components, weights, source, 0.1)
    in_memory = gradient_walk(run.x, components, weights, table, 0.1)
    assert in_memory.indices.size > 0 and source.uses_lists
    np.testing.assert_array_equal(from_neo4j.indices, in_memory.indices)

    # A graph built before neighbour arrays existed has neither them nor the row order they index:
    # it is read through its edges, and the walk picks the same rows.
    store.write("MATCH (g:InstructionGraph {id: $graph}) REMOVE g.row_order", {"graph": info.id})
    store.write("MATCH (l:NeighborList {graph: $graph}) DELETE l", {"graph": info.id})
    with neighbors.open_neighbors(store, info.id, run.ids) as old:
        assert not old.uses_lists
        np.testing.assert_array_equal(gradient_walk(run.x, components, weights, old, 0.1).indices,
                                      in_memory.indices)


def test_the_walks_reader_orders_equal_cosines_by_row_not_by_id(store, run):
    info, _ = graph_build.start_build(store, run.features, run.id, 6, 0.0, block_rows=run.rows)
    edge_writer.write_edges(store, graph_build.claim_block(store, info, 0).lease, run.ids, 0,
                            np.array([[5, 9, 7, 8, 3, 4]]), np.array([[0.9, 0.5, 0.5, 0.5, 0.2, 0.2]], dtype=np.float32))
    assert [t for t, _ in neighbors.neighbors(store, info.id, [run.ids[0]])[run.ids[0]]] == [
        run.ids[i] for i in (5, 7, 8, 9, 3, 4)]

    with neighbors.GraphNeighbors(store, info.id, run.ids) as lists:  # the build's rows: stored arrays
        assert lists.uses_lists and lists[0].tolist() == [5, 7, 8, 9, 3, 4] and lists[1].size == 0

    rows = run.ids[::-1]  # the walk's rows in another order than the ids: row of id i is run.rows - 1 - i
    with neighbors.GraphNeighbors(store, info.id, rows) as lists:  # the arrays do not index these: edges
        assert not lists.uses_lists
        assert (run.rows - 1 - lists[run.rows - 1]).tolist() == [5, 9, 8, 7, 4, 3]
        assert lists[0].size == 0 and lists.round_trips == 2
