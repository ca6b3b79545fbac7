"""Building and deleting instruction graphs in the session's real Neo4j: in-process, on the Celery
worker and by the CLI."""

from __future__ import annotations

import json

import pytest

from gradwalk import errors
from gradwalk.graph.knn import build, edge_writer, records
from gradwalk.graph.knn.topk import knn_block


def test_edges_equal_brute_force_and_two_graphs_coexist_until_one_is_deleted(store, run):
    first = build.build_graph(store, run.features, run.id, 10, 0.0, block_rows=64, device="cpu")
    second = build.build_graph(store, run.features, run.id, 7, 0.55, block_rows=64, device="cpu")

    for info, k, tau in ((first, 10, 0.0), (second, 7, 0.55)):
        expected = sum(len(edges) for edges in run.brute_force(k, tau))
        assert info.id == records.graph_id(run.id, k, tau) == f"{run.id}:k{k}:tau{tau!r}"
        assert (info.status, info.nodes, info.edges, info.blocks, info.blocks_done) == ("ready", run.rows, expected, 5, 5)
        assert info.build_s is not None and info.built_at is not None
        assert run.edge_count(info.id) == expected
        run.assert_edges_equal_brute_force(info.id, k, tau)
    assert second.edges < 7 * run.rows  # the threshold dropped some
    assert store.read("MATCH (:InstructionGraph {id: $g})-[:BUILT_FROM]->(r:FeatureRun) RETURN r.id AS run",
                      {"g": first.id}) == [{"run": run.id}]
    assert {g.id for g in records.list_graphs(store, run.id)} == {first.id, second.id}

    assert build.delete_graph(store, first.id, batch=700) == 3000
    assert run.edge_count(first.id) == 0
    with pytest.raises(errors.NotFound):
        records.get_graph(store, first.id)
    with pytest.raises(errors.NotFound):
        build.delete_graph(store, first.id)
    assert build.delete_graph(store, first.id, missing_ok=True) == 0
    assert [g.id for g in records.list_graphs(store, run.id)] == [second.id]
    assert run.edge_count(second.id) == second.edges
    run.assert_edges_equal_brute_force(second.id, 7, 0.55)


def test_rerun_block_resume_and_rebuild_leave_no_duplicates(store, run):
    first, todo = build.start_build(store, run.features, run.id, 10, 0.0, block_rows=64)
    assert todo == [0, 1, 2, 3, 4]
    row_ids, x = build.load_features(run.features, run.id, "cpu")
    for index in (0, 1, 1, 0):  # blocks written twice, as a retried task would
        assert build.write_block(store, first, row_ids, x, index, device="cpu") == 640
    with pytest.raises(errors.Conflict, match="being built by another build"):
        build.start_build(store, run.features, run.id, 10, 0.0)
    build.fail_build(store, first, "worker lost")  # then the build dies
    assert records.get_graph(store, first.id).status == "failed"

    resumed = build.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert (resumed.status, resumed.edges, resumed.block_rows, resumed.blocks_done) == ("ready", 3000, 64, 5)
    assert run.edge_count(first.id) == 3000 and run.duplicates(first.id) == 0
    run.assert_edges_equal_brute_force(first.id, 10, 0.0)

    again = build.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert again == resumed  # a ready graph is kept as it is
    with pytest.raises(errors.Conflict, match="no longer being built"):  # a late task of the dead build
        build.write_block(store, first, row_ids, x, 2, device="cpu")

    rebuilt = build.build_graph(store, run.features, run.id, 10, 0.0, device="cpu", rebuild=True)
    assert rebuilt.edges == 3000 and rebuilt.blocks == 1 and rebuilt.built_at != resumed.built_at
    assert run.edge_count(first.id) == 3000 and run.duplicates(first.id) == 0


def test_only_a_blocks_first_attempt_skips_the_delete(store, run):
    info, _ = build.start_build(store, run.features, run.id, 10, 0.0, block_rows=100)
    first = build.claim_block(store, info, 0)
    assert first.outcome == "owned" and first.lease.fresh  # never started: its sources have no edges
    assert build.claim_block(store, info, 0).outcome == "held"  # another copy waits while the lease runs
    ids, weights = knn_block(run.x, 0, 50, 10)
    edge_writer.write_edges(store, first.lease, run.ids, 0, ids, weights)  # then the attempt dies halfway
    store.write("MATCH (b:GraphBlock {graph: $graph, index: 0}) SET b.lease_until = datetime() - duration('PT1S')",
                {"graph": info.id})  # its lease runs out
    second = build.claim_block(store, info, 0)  # the default lease: 120 s
    assert second.outcome == "owned" and not second.lease.fresh  # started before: it may have some
    build.fail_build(store, info, "worker lost")

    again, todo = build.start_build(store, run.features, run.id, 10, 0.0)  # resuming releases the dead lease
    assert todo == [0, 1, 2] and again.build_id != info.build_id
    assert build.claim_block(store, again, 0).outcome == "owned"
    with pytest.raises(errors.Conflict, match="no longer being built"):  # the failed build's writer is refused
        edge_writer.write_edges(store, second.lease, run.ids, 0, ids, weights)
    build.fail_build(store, again, "worker lost again")

    resumed = build.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert (resumed.status, resumed.edges) == ("ready", 3000)
    assert run.edge_count(info.id) == 3000 and run.duplicates(info.id) == 0


def test_edges_left_under_a_new_graphs_id_are_replaced_not_duplicated(store, run):
    # A writer that raced a deletion can leave edges behind the deleted graph node.
    gid = records.graph_id(run.id, 10, 0.0)
    store.write("MATCH (a:Instruction {id: $a}), (b:Instruction {id: $b}) "
                "CREATE (a)-[:SIMILAR {graph: $g, w: 1.0}]->(b), (a)-[:SIMILAR {graph: $g, w: 1.0}]->(b)",
                {"a": run.ids[0], "b": run.ids[1], "g": gid})

    info = build.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert info.edges == run.edge_count(gid) == 3000 and run.duplicates(gid) == 0
    run.assert_edges_equal_brute_force(gid, 10, 0.0)


def test_a_silent_build_is_taken_over_and_its_late_writes_are_refused(store, run):
    silent, _ = build.start_build(store, run.features, run.id, 5, 0.0, block_rows=100)
    row_ids, x = build.load_features(run.features, run.id, "cpu")
    build.write_block(store, silent, row_ids, x, 0, device="cpu")

    taken, todo = build.start_build(store, run.features, run.id, 5, 0.0, stale_after_s=0)
    assert taken.build_id != silent.build_id and todo == [1, 2]
    with pytest.raises(errors.Conflict, match="no longer being built"):
        build.write_block(store, silent, row_ids, x, 1, device="cpu")
    for index in todo:
        build.write_block(store, taken, row_ids, x, index, device="cpu")
    assert build.finish_build(store, taken).edges == 1500
    build.fail_build(store, silent, "late failure of the old build")
    assert records.get_graph(store, taken.id).status == "ready"
    assert run.edge_count(taken.id) == 1500 and run.duplicates(taken.id) == 0


def test_a_graph_a_selection_job_used_keeps_its_record(store, run, prefix):
    info = build.build_graph(store, run.features, run.id, 3, 0.0, device="cpu")
    store.write("MATCH (g:InstructionGraph {id: $g}) CREATE (:SelectionJob {id: $job, status: 'succeeded', "
                "method: 'g2is', params: '{}', pool: $g, targets: [], dataset: $job, progress: 1.0, "
                "created_at: datetime()})-[:USED]->(g)",  # a whole job record: other tests list the jobs
                {"g": info.id, "job": f"{prefix}job"})
    assert build.delete_graph(store, info.id) == 900
    assert records.get_graph(store, info.id).status == "deleted" and run.edge_count(info.id) == 0
    rebuilt = build.build_graph(store, run.features, run.id, 3, 0.0, device="cpu")
    assert (rebuilt.status, rebuilt.edges) == ("ready", 900)


def test_bad_requests_are_refused_before_anything_is_written(store, run, prefix):
    with pytest.raises(errors.NotFound, match=r"feature run .*no-such-run does not exist"):
        build.build_graph(store, run.features, f"{prefix}no-such-run", 5, 0.0)
    with pytest.raises(errors.InvalidInput, match="k must be"):
        build.build_graph(store, run.features, run.id, 0, 0.0)
    with pytest.raises(errors.InvalidInput, match="tau must be"):
        build.build_graph(store, run.features, run.id, 5, 1.5)
    store.write("MATCH (r:FeatureRun {id: $id}) SET r.status = 'running'", {"id": run.id})
    with pytest.raises(errors.Conflict, match="not 'complete'"):
        build.build_graph(store, run.features, run.id, 5, 0.0)
    store.write("MATCH (r:FeatureRun {id: $id}) SET r.status = 'complete'", {"id": run.id})
    store.write("MATCH (n:Instruction {id: $id}) DELETE n", {"id": run.ids[123]})
    with pytest.raises(errors.InvalidInput, match=run.ids[123]):
        build.build_graph(store, run.features, run.id, 5, 0.0)
    assert records.list_graphs(store, run.id) == []


def test_celery_build_runs_the_blocks_on_the_worker(store, run):
    from gradwalk.platform.work.graph_queue import submit_build, wait_build
    from gradwalk.workers.tasks.graph import block

    seen: list[tuple[int, int]] = []
    reply = submit_build(run.id, 10, 0.0, block_rows=100)
    assert (reply["blocks"], reply["dispatched"]) == (3, 3)
    info = wait_build(store, reply, progress=lambda done, total: seen.append((done, total)), poll_s=0.2)
    assert (info.status, info.edges, info.blocks_done) == ("ready", 3000, 3)
    assert seen[-1] == (3, 3)
    run.assert_edges_equal_brute_force(info.id, 10, 0.0)

    assert submit_build(run.id, 10, 0.0)["dispatched"] == 0  # ready: nothing to do
    late = block.apply_async(kwargs={"graph_id": info.id, "index": 0, "build_id": reply["build_id"]})
    assert late.get(timeout=60)["skipped"] == "build superseded"  # a late duplicate of a finished build
    assert run.edge_count(info.id) == 3000 and run.duplicates(info.id) == 0


def test_its_maker_cancels_a_build_from_the_client_or_the_cli_and_building_again_resumes(
        store, settings, run, prefix, gradwalk_cli):
    """A build that wrote one of its two blocks and that no worker goes on with: a reader's cancel
    is refused; the maker's (by the CLI) marks it failed naming the maker; a second cancel is a
    conflict; building it again resumes it (in process: a worker's build costs 20 s here, and
    test_celery_build_runs_the_blocks_on_the_worker has it)."""
    from gradwalk import Client
    from gradwalk.platform.access import auth
    from gradwalk.platform.work import graph_queue

    maker, reader = (auth.create(store, f"{prefix}{role}", role) for role in ("curator", "reader"))
    info, _ = build.start_build(store, run.features, run.id, 10, 0.0, block_rows=150)
    graph_queue.record_maker(store, info.id, f"{prefix}curator")
    row_ids, x = build.load_features(run.features, run.id, "cpu")
    build.write_block(store, info, row_ids, x, 0, device="cpu")
    with Client(settings.local_api_url, reader) as client, pytest.raises(errors.NotAllowed, match="role 'reader'"):
        client.graph(info.id).cancel()

    done = gradwalk_cli("graph", "cancel", info.id, token=maker)
    assert done.returncode == 0, done.stderr
    assert "failed" in done.stdout.split() and f"cancelled by token '{prefix}curator'" in done.stdout
    again = gradwalk_cli("graph", "cancel", info.id, token=maker)
    refusal = f"error: graph {info.id} is failed; only a graph being built can be cancelled\n"
    assert (again.returncode, again.stderr) == (4, refusal)
    with Client(settings.local_api_url, maker) as client:
        with pytest.raises(errors.Conflict, match="only a graph being built"):
            client.graph(info.id).cancel()
        assert client.graph(info.id).show().blocks_done == 1
    resumed = build.build_graph(store, run.features, run.id, 10, 0.0, device="cpu")
    assert (resumed.id, resumed.status, resumed.edges, resumed.blocks_done) == (info.id, "ready", 3000, 2)
    assert run.edge_count(info.id) == 3000 and run.duplicates(info.id) == 0


def test_cli_builds_on_the_workers_then_prints_stats_and_exports(store, run, tmp_path):
    import networkx as nx
    from typer.testing import CliRunner

    from gradwalk.platform.access import auth
    from gradwalk.platform.interfaces.cli import app

    token = auth.create(store, f"{run.id}-admin", "admin")  # list and delete go through the API

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, ["graph", *args], env={"GRADWALK_API_TOKEN": token})
        assert result.exit_code == 0, result.output
        return result.stdout

    built = json.loads(cli("build", "--features", run.id, "--k", "4", "--tau", "0.1", "--json"))
    assert (built["status"], built["nodes"]) == ("ready", run.rows)
    stats = json.loads(cli("stats", built["id"], "--json"))
    assert stats["edges"] == built["edges"] == run.edge_count(built["id"])
    assert stats["out_degree"]["max"] == 4
    cli("export", built["id"], str(tmp_path / "graph.graphml"))
    exported = nx.read_graphml(tmp_path / "graph.graphml")
    assert (exported.number_of_nodes(), exported.number_of_edges()) == (run.rows, built["edges"])
    assert built["id"] in cli("list", "--features", run.id)
    assert "deleted" in cli("delete", built["id"])
    assert records.list_graphs(store, run.id) == []
