"""Neighbour lists read back from the session's real Neo4j, by id and as the walk's source."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.graph.knn import build, edge_writer, export, neighbors


def test_neighbor_lists_come_back_sorted_and_drive_the_walk(store, run):
    from gradwalk.graph.knn.topk import knn_graph
    from gradwalk.graph.selection.registry import core_components, gradient_walk

    info = build.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    lists = neighbors.neighbors(store, info.id, [run.ids[5], run.ids[7], "not-an-instruction"])
    assert list(lists) == [run.ids[5], run.ids[7], "not-an-instruction"]
    assert lists["not-an-instruction"] == []
    for edges in (lists[run.ids[5]], lists[run.ids[7]]):
        assert len(edges) == 10 and [w for _, w in edges] == sorted((w for _, w in edges), reverse=True)

    table, _ = knn_graph(run.x, k=10, tau=0.0, device="cpu")
    np.testing.assert_array_equal(export.neighbor_table(store, info.id, run.ids), table)
    rng = np.random.default_rng(1)
    val = run.x[rng.choice(run.rows, 40)] + 0.05 * rng.normal(size=(40, run.x.shape[1]))
    components, weights = core_components(val / np.linalg.norm(val, axis=1, keepdims=True))
    with neighbors.open_neighbors(store, info.id, run.ids) as source:
        assert source.uses_lists and source.round_trips == 1  # the whole table, from its pages
        for row in range(20):
            np.testing.assert_array_equal(source[row], table[row])
        from_neo4j = gradient_walk(run.x, components, weights, source, 0.1)
        assert source.round_trips == 1  # the walk ran on the table
        with pytest.raises(errors.InvalidInput, match="rows must lie in"):
            source[run.rows]
    in_memory = gradient_walk(run.x, components, weights, table, 0.1)
    assert in_memory.indices.size > 0
    np.testing.assert_array_equal(from_neo4j.indices, in_memory.indices)

    # A graph built before neighbour pages existed has neither them nor the row order they index:
    # it is read through its edges, a batch of lists per round trip, and the walk picks the same rows.
    store.write("MATCH (g:InstructionGraph {id: $graph}) REMOVE g.row_order", {"graph": info.id})
    store.write("MATCH (p:NeighborPage {graph: $graph}) DELETE p", {"graph": info.id})
    np.testing.assert_array_equal(export.neighbor_table(store, info.id, run.ids), table)
    with neighbors.open_neighbors(store, info.id, run.ids, prefetch_limit=20) as old:
        assert not old.uses_lists
        old.prefetch(np.arange(20))
        assert old.round_trips == 1
        for row in range(20):
            np.testing.assert_array_equal(old[row], table[row])
        assert old.round_trips == 1  # served from the prefetched lists
        np.testing.assert_array_equal(gradient_walk(run.x, components, weights, old, 0.1).indices,
                                      in_memory.indices)


def test_the_walks_reader_orders_equal_cosines_by_row_not_by_id(store, run):
    info, _ = build.start_build(store, run.features, run.id, 6, 0.0, block_rows=run.rows)
    lease = build.claim_block(store, info, 0).lease
    ids = np.full((run.rows, 6), -1)
    ids[0] = [5, 9, 7, 8, 3, 4]
    weights = np.zeros((run.rows, 6), dtype=np.float32)
    weights[0] = [0.9, 0.5, 0.5, 0.5, 0.2, 0.2]
    edge_writer.write_edges(store, lease, run.ids, 0, ids[:1], weights[:1])
    assert [t for t, _ in neighbors.neighbors(store, info.id, [run.ids[0]])[run.ids[0]]] == [
        run.ids[i] for i in (5, 7, 8, 9, 3, 4)]
    with neighbors.GraphNeighbors(store, info.id, run.ids) as lists:  # one page, row 0's: read the edges
        assert not lists.uses_lists and lists[0].tolist() == [5, 7, 8, 9, 3, 4]

    edge_writer.write_edges(store, lease, run.ids, 1, ids[1:], weights[1:])  # the other rows: no edges
    with neighbors.GraphNeighbors(store, info.id, run.ids) as lists:  # the pages cover every row: the table
        assert lists.uses_lists and lists[0].tolist() == [5, 7, 8, 9, 3, 4] and (lists[1] == -1).all()

    rows = run.ids[::-1]  # the walk's rows in another order than the ids: row of id i is run.rows - 1 - i
    with neighbors.GraphNeighbors(store, info.id, rows) as lists:  # the pages do not index these: edges
        assert not lists.uses_lists
        assert (run.rows - 1 - lists[run.rows - 1]).tolist() == [5, 9, 8, 7, 4, 3]
        assert lists[0].size == 0 and lists.round_trips == 2


def test_a_rewritten_batch_replaces_the_pages_it_overlaps(store, run):
    from gradwalk.graph.knn.pages import stored_table

    info, _ = build.start_build(store, run.features, run.id, 4, 0.0, block_rows=run.rows)
    lease = build.claim_block(store, info, 0).lease
    table = np.random.default_rng(2).integers(0, run.rows, size=(run.rows, 4))
    weights = np.tile(np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32), (run.rows, 1))
    pages = "MATCH (p:NeighborPage {graph: $graph}) RETURN p.first AS first, p.rows AS rows ORDER BY first"
    with edge_writer.EdgeWriter(store, lease, edges_per_write=4 * 30) as writer:  # pages of 30 rows
        writer.write(run.ids, 0, table, weights)
    assert [(p["first"], p["rows"]) for p in store.read(pages, {"graph": info.id})][:2] == [(0, 30), (30, 30)]
    np.testing.assert_array_equal(stored_table(store, info.id, run.ids), table)

    table[40:90] = table[40:90, ::-1]  # rows 40-89 again, under another layout: pages 30-59 and 60-89 go
    with edge_writer.EdgeWriter(store, dataclasses.replace(lease, fresh=False), edges_per_write=4 * 50) as writer:
        writer.write(run.ids, 40, table[40:90], weights[40:90])
    layout = [(p["first"], p["rows"]) for p in store.read(pages, {"graph": info.id})]
    assert (40, 50) in layout and not any(first < 90 < first + rows or first < 40 < first + rows
                                          for first, rows in layout)
    assert stored_table(store, info.id, run.ids) is None  # rows 30-39 lost their page

    with edge_writer.EdgeWriter(store, dataclasses.replace(lease, fresh=False), edges_per_write=4 * 30) as writer:
        writer.write(run.ids, 0, table, weights)  # the whole block again, as a rebuild writes it
    np.testing.assert_array_equal(stored_table(store, info.id, run.ids), table)
    assert neighbors.neighbors(store, info.id, [run.ids[40]])[run.ids[40]] == [
        (run.ids[t], pytest.approx(w)) for t, w in zip(table[40], weights[40].tolist(), strict=True)]


def test_graphs_with_per_row_lists_lose_them_to_the_migration_and_read_their_edges(store, run, caplog):
    from gradwalk.graph.store.migrations import discover

    info = build.build_graph(store, run.features, run.id, 5, 0.0, device="cpu")
    table = export.neighbor_table(store, info.id, run.ids)
    store.write("MATCH (p:NeighborPage {graph: $graph}) DELETE p", {"graph": info.id})  # the layout before pages
    store.write("UNWIND range(0, size($lists) - 1) AS row CREATE (:NeighborList {graph: $graph, row: row, "
                "targets: $lists[row]})", {"graph": info.id, "lists": table.tolist()})
    [pages] = [m for m in discover() if m.name == "neighbor_pages"]
    for _ in range(2):  # a second run changes nothing
        store.run_schema(pages.statements)
    assert store.read("MATCH (l:NeighborList {graph: $graph}) RETURN count(l) AS n", {"graph": info.id}) == [{"n": 0}]

    with neighbors.open_neighbors(store, info.id, run.ids) as source:
        assert not source.uses_lists
        np.testing.assert_array_equal(source[3], table[3])
    assert f"graph {info.id}: its neighbour pages are incomplete (the pages end at row 0 of {run.rows})" in caplog.text

    build.build_graph(store, run.features, run.id, 5, 0.0, device="cpu", rebuild=True)
    with neighbors.open_neighbors(store, info.id, run.ids) as source:
        assert source.uses_lists
        np.testing.assert_array_equal(source[3], table[3])
