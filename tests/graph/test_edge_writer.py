"""The edge writer against the session's real Neo4j: many batches in flight, each edge once."""

from __future__ import annotations

import dataclasses
import time

import pytest

from gradwalk import errors
from gradwalk.graph.knn import build, edge_writer
from gradwalk.graph.knn.topk import knn_block


def test_a_writer_with_many_batches_in_flight_writes_each_edge_once(store, run):
    info, todo = build.start_build(store, run.features, run.id, 10, 0.0, block_rows=run.rows)
    lease = build.claim_block(store, info, 0).lease
    assert todo == [0] and lease.fresh
    pieces = [(lo, *knn_block(run.x, lo, min(lo + 70, run.rows), 10)) for lo in range(0, run.rows, 70)]
    for fresh in (True, False):  # a first attempt, then a re-run that replaces every edge
        with edge_writer.EdgeWriter(store, dataclasses.replace(lease, fresh=fresh), concurrency=3,
                                    edges_per_write=40) as writer:
            for lo, ids, weights in pieces:  # 5 pieces of up to 70 rows, 4 rows a batch: 80 batches
                writer.write(run.ids, lo, ids, weights)
        assert writer.edges == 3000
    build.finish_block(store, lease, writer.edges)
    assert build.finish_build(store, info).edges == 3000
    assert run.edge_count(info.id) == 3000 and run.duplicates(info.id) == 0
    run.assert_edges_equal_brute_force(info.id, 10, 0.0)
    run.assert_lists_match_edges(info.id)


def test_a_writer_whose_lease_was_taken_over_cannot_commit(store, run):
    info, _ = build.start_build(store, run.features, run.id, 10, 0.0, block_rows=run.rows)
    stalled = build.claim_block(store, info, 0, lease_s=0.2).lease
    ids, weights = knn_block(run.x, 0, run.rows, 10)
    time.sleep(0.5)  # the first writer stalls past its lease; a second copy of the block takes it over
    taker = build.claim_block(store, info, 0).lease
    assert not taker.fresh
    with pytest.raises(edge_writer.LeaseLost), edge_writer.EdgeWriter(store, stalled, edges_per_write=400) as late:
        late.write(run.ids, 0, ids, weights)
    assert late.edges == 0 and run.edge_count(info.id) == 0  # nothing of the stalled writer committed
    assert edge_writer.write_edges(store, taker, run.ids, 0, ids, weights) == 3000
    with pytest.raises(edge_writer.LeaseLost):
        build.finish_block(store, stalled, 3000)
    build.finish_block(store, taker, 3000)
    assert build.finish_build(store, info).edges == run.edge_count(info.id) == 3000
    assert run.duplicates(info.id) == 0
    run.assert_lists_match_edges(info.id)


def test_a_failed_batch_stops_the_writer(store, run):
    info, _ = build.start_build(store, run.features, run.id, 10, 0.0, block_rows=run.rows)
    ids, weights = knn_block(run.x, 0, run.rows, 10)
    lease = build.claim_block(store, info, 0).lease
    build.delete_graph(store, info.id)  # the build is gone: every batch is refused
    with (pytest.raises(errors.Conflict, match="no longer being built"),
          edge_writer.EdgeWriter(store, lease, concurrency=2, edges_per_write=40) as writer):
        writer.write(run.ids, 0, ids, weights)
    assert writer.edges == 0 and run.edge_count(info.id) == 0
