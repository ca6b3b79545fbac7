"""The instruction graph in the session's real Neo4j, built in-process, on the Celery worker and by the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from gradwalk import errors
from gradwalk.graph import instruction_graph as graphs
from gradwalk.graph.knn import knn_block
from gradwalk.workers.artifacts import FeatureStore

ROWS, DIM = 300, 16

EDGE_COUNT = "MATCH ()-[r:SIMILAR {graph: $graph}]->() RETURN count(r) AS n"
DUPLICATES = """
MATCH (a)-[r:SIMILAR {graph: $graph}]->(b)
WITH a, b, count(r) AS copies WHERE copies > 1
RETURN count(*) AS n"""


@dataclass
class Run:
    id: str
    ids: list[str]
    x: np.ndarray
    features: FeatureStore


@pytest.fixture
def run(store, settings, prefix) -> Run:
    """A complete feature run of unit rows in two shards, its instructions and its FeatureRun node."""
    x = np.random.default_rng(0).normal(size=(ROWS, DIM)) + 0.3
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"{prefix}{i:04d}" for i in range(ROWS)]
    run_id = f"{prefix}run"
    features = FeatureStore(settings.artifacts)  # where the session's workers look
    features.write_shard(run_id, graphs.FEATURE_PART, 0, ids[:200], x[:200])
    features.write_shard(run_id, graphs.FEATURE_PART, 1, ids[200:], x[200:])
    store.write_rows("UNWIND $rows AS row CREATE (:Instruction {id: row.id})", [{"id": i} for i in ids])
    store.write("CREATE (:FeatureRun {id: $id, status: 'complete', dim: $dim, rows: $rows})",
                {"id": run_id, "dim": DIM, "rows": ROWS})
    return Run(run_id, ids, x, features)


def brute_force(x: np.ndarray, k: int, tau: float) -> list[list[tuple[int, float]]]:
    """Each row's top-k other rows by (cosine descending, row ascending) with cosine >= tau, in float64."""
    sims = x.astype(np.float64) @ x.astype(np.float64).T
    out = []
    for i in range(x.shape[0]):
        order = [j for j in np.lexsort((np.arange(x.shape[0]), -sims[i])) if j != i and sims[i, j] >= tau][:k]
        out.append([(int(j), float(sims[i, j])) for j in order])
    return out


def assert_edges_equal_brute_force(store, graph: str, run: Run, k: int, tau: float) -> None:
    got = graphs.neighbors(store, graph, run.ids)
    row = {node: i for i, node in enumerate(run.ids)}
    for i, want in enumerate(brute_force(run.x, k, tau)):
        edges = got[run.ids[i]]
        assert [row[t] for t, _ in edges] == [j for j, _ in want], f"row {i}"
        np.testing.assert_allclose([w for _, w in edges], [w for _, w in want], atol=1e-6)


def edge_count(store, graph: str) -> int:
    return store.read(EDGE_COUNT, {"graph": graph})[0]["n"]


def duplicates(store, graph: str) -> int:
    return store.read(DUPLICATES, {"graph": graph})[0]["n"]


def test_edges_equal_brute_force_and_two_graphs_coexist_until_one_is_deleted(store, run):
    first = graphs.build_graph(store, run.features, run.id, 10, 0.0, block_rows=64, device="cpu")
    second = graphs.build_graph(store, run.features, run.id, 7, 0.55, block_rows=64, device="cpu")

    for info, k, tau in ((first, 10, 0.0), (second, 7, 0.55)):
        expected = sum(len(edges) for edges in brute_force(run.x, k, tau))
        assert info.id == graphs.graph_id(run.id, k, tau) == f"{run.id}:k{k}:tau{tau!r}"
        assert (info.status, info.nodes, info.edges, info.blocks, info.blocks_done) == ("ready", ROWS, expected, 5, 5)
        assert info.build_s is not None and info.built_at is not None
        assert edge_count(store, info.id) == expected
        assert_edges_equal_brute_force(store, info.id, run, k, tau)
    assert second.edges < 7 * ROWS  # the threshold dropped some
    assert store.read("MATCH (:InstructionGraph {id: $g})-[:BUILT_FROM]->(r:FeatureRun) RETURN r.id AS run",
                      {"g": first.id}) == [{"run": run.id}]
    assert {g.id for g in graphs.list_graphs(store, run.id)} == {first.id, second.id}

    assert graphs.delete_graph(store, first.id, batch=700) == 3000
    assert edge_count(store, first.id) == 0
    with pytest.raises(errors.NotFound):
        graphs.get_graph(store, first.id)
    with pytest.raises(errors.NotFound):
        graphs.delete_graph(store, first.id)
    assert graphs.delete_graph(store, first.id, missing_ok=True) == 0
    assert [g.id for g in graphs.list_graphs(store, run.id)] == [second.id]
    assert edge_count(store, second.id) == second.edges
    assert_edges_equal_brute_force(store, second.id, run, 7, 0.55)


def test_rerun_block_resume_and_rebuild_leave_no_duplicates(store, run):
    first, todo = graphs.start_build(store, run.features, run.id, 10, 0.0, block_rows=64)
    assert todo == [0, 1, 2, 3, 4]
    row_ids, x = graphs.load_features(run.features, run.id, "cpu")
    for index in (0, 1, 1, 0):  # blocks written twice, as a retried task would
        assert graphs.write_block(store, first, row_ids, x, index, device="cpu") == 640
    with pytest.raises(errors.Conflict, match="being built by another build"):
        graphs.start_build(store, run.features, run.id, 10, 0.0)
    graphs.fail_build(store, first, "worker lost")  # then the build dies
    assert graphs.get_graph(store, first.id).status == "failed"

    resumed = graphs.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert (resumed.status, resumed.edges, resumed.block_rows, resumed.blocks_done) == ("ready", 3000, 64, 5)
    assert edge_count(store, first.id) == 3000 and duplicates(store, first.id) == 0
    assert_edges_equal_brute_force(store, first.id, run, 10, 0.0)

    again = graphs.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert again == resumed  # a ready graph is kept as it is
    with pytest.raises(errors.Conflict, match="no longer being built"):  # a late task of the dead build
        graphs.write_block(store, first, row_ids, x, 2, device="cpu")

    rebuilt = graphs.build_graph(store, run.features, run.id, 10, 0.0, device="cpu", rebuild=True)
    assert rebuilt.edges == 3000 and rebuilt.blocks == 1 and rebuilt.built_at != resumed.built_at
    assert edge_count(store, first.id) == 3000 and duplicates(store, first.id) == 0


def test_only_a_blocks_first_attempt_skips_the_delete(store, run):
    info, _ = graphs.start_build(store, run.features, run.id, 10, 0.0, block_rows=100)
    assert graphs.claim_block(store, info, 0) is True  # never started: its sources have no edges
    assert graphs.claim_block(store, info, 0) is False  # started before: it may have some
    ids, weights = knn_block(run.x, 0, 50, 10)
    graphs.write_edges(store, info, run.ids, 0, ids, weights, fresh=True)  # then the attempt dies halfway
    graphs.fail_build(store, info, "worker lost")

    resumed = graphs.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert (resumed.status, resumed.edges) == ("ready", 3000)
    assert edge_count(store, info.id) == 3000 and duplicates(store, info.id) == 0


def test_a_writer_with_many_batches_in_flight_writes_each_edge_once(store, run):
    info, todo = graphs.start_build(store, run.features, run.id, 10, 0.0, block_rows=ROWS)
    assert todo == [0] and graphs.claim_block(store, info, 0)
    pieces = [(lo, *knn_block(run.x, lo, min(lo + 70, ROWS), 10)) for lo in range(0, ROWS, 70)]
    for fresh in (True, False):  # a first attempt, then a re-run that replaces every edge
        with graphs.EdgeWriter(store, info, fresh=fresh, concurrency=3, edges_per_write=40) as writer:
            for lo, ids, weights in pieces:  # 5 pieces of up to 70 rows, 4 rows a batch: 80 batches
                writer.write(run.ids, lo, ids, weights)
        assert writer.edges == 3000
    graphs.finish_block(store, info, 0, writer.edges)
    assert graphs.finish_build(store, info).edges == 3000
    assert edge_count(store, info.id) == 3000 and duplicates(store, info.id) == 0
    assert_edges_equal_brute_force(store, info.id, run, 10, 0.0)


def test_a_failed_batch_stops_the_writer(store, run):
    info, _ = graphs.start_build(store, run.features, run.id, 10, 0.0, block_rows=ROWS)
    ids, weights = knn_block(run.x, 0, ROWS, 10)
    graphs.delete_graph(store, info.id)  # the build is gone: every batch is refused
    with (pytest.raises(errors.Conflict, match="no longer being built"),
          graphs.EdgeWriter(store, info, concurrency=2, edges_per_write=40) as writer):
        writer.write(run.ids, 0, ids, weights)
    assert writer.edges == 0 and edge_count(store, info.id) == 0


def test_edges_left_under_a_new_graphs_id_are_replaced_not_duplicated(store, run):
    # A writer that raced a deletion can leave edges behind the deleted graph node.
    gid = graphs.graph_id(run.id, 10, 0.0)
    store.write("MATCH (a:Instruction {id: $a}), (b:Instruction {id: $b}) "
                "CREATE (a)-[:SIMILAR {graph: $g, w: 1.0}]->(b), (a)-[:SIMILAR {graph: $g, w: 1.0}]->(b)",
                {"a": run.ids[0], "b": run.ids[1], "g": gid})

    info = graphs.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert info.edges == edge_count(store, gid) == 3000 and duplicates(store, gid) == 0
    assert_edges_equal_brute_force(store, gid, run, 10, 0.0)


def test_a_silent_build_is_taken_over_and_its_late_writes_are_refused(store, run):
    silent, _ = graphs.start_build(store, run.features, run.id, 5, 0.0, block_rows=100)
    row_ids, x = graphs.load_features(run.features, run.id, "cpu")
    graphs.write_block(store, silent, row_ids, x, 0, device="cpu")

    taken, todo = graphs.start_build(store, run.features, run.id, 5, 0.0, stale_after_s=0)
    assert taken.build_id != silent.build_id and todo == [1, 2]
    with pytest.raises(errors.Conflict, match="no longer being built"):
        graphs.write_block(store, silent, row_ids, x, 1, device="cpu")
    for index in todo:
        graphs.write_block(store, taken, row_ids, x, index, device="cpu")
    assert graphs.finish_build(store, taken).edges == 1500
    graphs.fail_build(store, silent, "late failure of the old build")
    assert graphs.get_graph(store, taken.id).status == "ready"
    assert edge_count(store, taken.id) == 1500 and duplicates(store, taken.id) == 0


def test_a_graph_a_selection_job_used_keeps_its_record(store, run, prefix):
    info = graphs.build_graph(store, run.features, run.id, 3, 0.0, device="cpu")
    store.write("MATCH (g:InstructionGraph {id: $g}) CREATE (:SelectionJob {id: $job})-[:USED]->(g)",
                {"g": info.id, "job": f"{prefix}job"})
    assert graphs.delete_graph(store, info.id) == 900
    assert graphs.get_graph(store, info.id).status == "deleted" and edge_count(store, info.id) == 0
    rebuilt = graphs.build_graph(store, run.features, run.id, 3, 0.0, device="cpu")
    assert (rebuilt.status, rebuilt.edges) == ("ready", 900)


def test_neighbor_lists_come_back_sorted_and_drive_the_walk(store, run):
    from gradwalk.graph.knn import knn_graph
    from gradwalk.graph.selection import core_components, gradient_walk

    info = graphs.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    lists = graphs.neighbors(store, info.id, [run.ids[5], run.ids[7], "not-an-instruction"])
    assert list(lists) == [run.ids[5], run.ids[7], "not-an-instruction"]
    assert lists["not-an-instruction"] == []
    for edges in (lists[run.ids[5]], lists[run.ids[7]]):
        assert len(edges) == 10 and [w for _, w in edges] == sorted((w for _, w in edges), reverse=True)

    table, _ = knn_graph(run.x, k=10, tau=0.0, device="cpu")
    np.testing.assert_array_equal(graphs.neighbor_table(store, info.id, run.ids), table)
    rng = np.random.default_rng(1)
    val = run.x[rng.choice(ROWS, 40)] + 0.05 * rng.normal(size=(40, DIM))
    components, weights = core_components(val / np.linalg.norm(val, axis=1, keepdims=True))
    with graphs.open_neighbors(store, info.id, run.ids, prefetch_limit=20) as source:
        source.prefetch(np.arange(20))
        assert source.round_trips == 1
        for row in range(20):
            np.testing.assert_array_equal(source[row], table[row])
        assert source.round_trips == 1  # served from the prefetched lists
        from_neo4j = gradient_walk(run.x, components, weights, source, 0.1)
    in_memory = gradient_walk(run.x, components, weights, table, 0.1)
    assert in_memory.indices.size > 0
    np.testing.assert_array_equal(from_neo4j.indices, in_memory.indices)


def test_the_walks_reader_orders_equal_cosines_by_row_not_by_id(store, run):
    info, _ = graphs.start_build(store, run.features, run.id, 6, 0.0, block_rows=ROWS)
    graphs.write_edges(store, info, run.ids, 0, np.array([[5, 9, 7, 8, 3, 4]]),
                       np.array([[0.9, 0.5, 0.5, 0.5, 0.2, 0.2]], dtype=np.float32), fresh=True)
    assert [t for t, _ in graphs.neighbors(store, info.id, [run.ids[0]])[run.ids[0]]] == [
        run.ids[i] for i in (5, 7, 8, 9, 3, 4)]

    rows = run.ids[::-1]  # the walk's rows in another order than the ids: row of id i is ROWS - 1 - i
    with graphs.GraphNeighbors(store, info.id, rows) as lists:
        assert (ROWS - 1 - lists[ROWS - 1]).tolist() == [5, 9, 8, 7, 4, 3]
        assert lists[0].size == 0 and lists.round_trips == 2


def test_export_to_networkx_and_igraph_and_stats(store, run):
    import networkx as nx

    info = graphs.build_graph(store, run.features, run.id, 5, 0.0, device="cpu")
    g = graphs.to_networkx(store, info.id, run.ids)
    assert (g.number_of_nodes(), g.number_of_edges()) == (ROWS, 1500)
    source, (target, w) = run.ids[0], graphs.neighbors(store, info.id, [run.ids[0]])[run.ids[0]][0]
    assert g[source][target]["w"] == w

    h = graphs.to_igraph(store, info.id, run.ids)
    assert (h.vcount(), h.ecount(), h.vs[0]["name"]) == (ROWS, 1500, run.ids[0])
    assert sorted(h.es["w"]) == sorted(d["w"] for _, _, d in g.edges(data=True))

    stats = graphs.graph_stats(store, info.id, run.ids)
    assert (stats["nodes"], stats["edges"], stats["isolated"], stats["out_degree_below_k"]) == (ROWS, 1500, 0, 0)
    assert stats["out_degree"]["min"] == stats["out_degree"]["max"] == 5
    assert stats["in_degree"]["mean"] == 5
    assert stats["weak_components"] == nx.number_weakly_connected_components(g)
    assert stats["strong_components"] == nx.number_strongly_connected_components(g)
    assert stats["largest_strong_component"] == max(len(c) for c in nx.strongly_connected_components(g))


def test_bad_requests_are_refused_before_anything_is_written(store, run, prefix):
    with pytest.raises(errors.NotFound, match=r"feature run .*no-such-run does not exist"):
        graphs.build_graph(store, run.features, f"{prefix}no-such-run", 5, 0.0)
    with pytest.raises(errors.InvalidInput, match="k must be"):
        graphs.build_graph(store, run.features, run.id, 0, 0.0)
    with pytest.raises(errors.InvalidInput, match="tau must be"):
        graphs.build_graph(store, run.features, run.id, 5, 1.5)
    store.write("MATCH (r:FeatureRun {id: $id}) SET r.status = 'running'", {"id": run.id})
    with pytest.raises(errors.Conflict, match="not 'complete'"):
        graphs.build_graph(store, run.features, run.id, 5, 0.0)
    store.write("MATCH (r:FeatureRun {id: $id}) SET r.status = 'complete'", {"id": run.id})
    store.write("MATCH (n:Instruction {id: $id}) DELETE n", {"id": run.ids[123]})
    with pytest.raises(errors.InvalidInput, match=run.ids[123]):
        graphs.build_graph(store, run.features, run.id, 5, 0.0)
    assert graphs.list_graphs(store, run.id) == []


def test_celery_build_runs_the_blocks_on_the_worker(store, run):
    from gradwalk.workers.tasks.graph import block, submit_build, wait_build

    seen: list[tuple[int, int]] = []
    reply = submit_build(run.id, 10, 0.0, block_rows=100)
    assert (reply["blocks"], reply["dispatched"]) == (3, 3)
    info = wait_build(store, reply, progress=lambda done, total: seen.append((done, total)), poll_s=0.2)
    assert (info.status, info.edges, info.blocks_done) == ("ready", 3000, 3)
    assert seen[-1] == (3, 3)
    assert_edges_equal_brute_force(store, info.id, run, 10, 0.0)

    assert submit_build(run.id, 10, 0.0)["dispatched"] == 0  # ready: nothing to do
    late = block.apply_async(kwargs={"graph_id": info.id, "index": 0, "build_id": reply["build_id"]})
    assert late.get(timeout=60)["skipped"] == "build superseded"  # a late duplicate of a finished build
    assert edge_count(store, info.id) == 3000 and duplicates(store, info.id) == 0


def test_cli_builds_on_the_workers_then_prints_stats_and_exports(store, run, tmp_path):
    import networkx as nx
    from typer.testing import CliRunner

    from gradwalk.platform.cli import app

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, ["graph", *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    built = json.loads(cli("build", "--features", run.id, "--k", "4", "--tau", "0.1", "--json"))
    assert (built["status"], built["nodes"]) == ("ready", ROWS)
    stats = json.loads(cli("stats", built["id"], "--json"))
    assert stats["edges"] == built["edges"] == edge_count(store, built["id"])
    assert stats["out_degree"]["max"] == 4
    cli("export", built["id"], str(tmp_path / "graph.graphml"))
    exported = nx.read_graphml(tmp_path / "graph.graphml")
    assert (exported.number_of_nodes(), exported.number_of_edges()) == (ROWS, built["edges"])
    assert built["id"] in cli("list", "--features", run.id)
    assert "deleted" in cli("delete", built["id"])
    assert graphs.list_graphs(store, run.id) == []
