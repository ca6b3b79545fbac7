"""A kNN block delivered twice, both copies running at once on real gpu workers: the block's lease
in Neo4j lets one copy write while the other waits for it, so no edge is written twice, and the
chord counts the block once (the graph ends ready, with every block's edges exactly once). The
test holds the block's lease as a stalled first copy until both worker copies are seen running
and waiting, so the overlap happens on any machine, however busy; then the stalled copy's lease
runs out and exactly one of them takes the block over."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from gradwalk.graph.knn.build import TRAIN_PART, claim_block
from gradwalk.graph.knn.neighbors import neighbors
from gradwalk.graph.knn.pages import stored_table
from gradwalk.graph.knn.records import get_graph
from gradwalk.platform.artifacts.feature_store import FeatureStore

ROWS, DIM, K, BLOCK_ROWS = 2000, 16, 48, 1000  # two blocks of 48,000 edges: seconds each to write here
pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def more_gpu_slots(settings):
    """A second gpu worker with three pool processes beside the session's: both copies of block 0 and
    block 1 each get a process even while the session's worker is still busy with an earlier test's work."""
    from gradwalk.platform.local.stack import WorkerService

    class Twin(WorkerService):
        def __init__(self) -> None:
            super().__init__(settings, "gpu")
            self.name = "worker-gpu-twin"

        def node_name(self) -> str:
            return f"gpu-twin@{socket.gethostname()}.{self.settings.redis_address[1]}"

        def command(self) -> list[str]:
            command = super().command()
            command[command.index("--concurrency") + 1] = "3"
            return command

    twin = Twin()
    twin.spawn()
    try:
        twin.wait_ready()
        yield twin
    finally:
        twin.stop()


def _wait(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_block_delivered_twice_at_once_is_written_once(store, settings, prefix, more_gpu_slots):
    from celery.signals import before_task_publish

    from gradwalk.workers.app import app
    from gradwalk.workers.tasks import graph as graph_tasks

    rng = np.random.default_rng(3)
    x = rng.normal(size=(ROWS, DIM)).astype(np.float32) + 0.2
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"{prefix}{i:05d}" for i in range(ROWS)]
    run_id = f"{prefix}run"
    FeatureStore(settings.artifacts).write_shard(run_id, TRAIN_PART, 0, ids, x)
    store.write_rows("UNWIND $rows AS row CREATE (:Instruction {id: row.id})", [{"id": i} for i in ids])
    store.write("CREATE (:FeatureRun {id: $id, status: 'complete', dim: $dim, rows: $rows})",
                {"id": run_id, "dim": DIM, "rows": ROWS})

    # A copy of block 0 that stalled while alive: it holds the block's lease from before the block's
    # message reaches the broker (taken as the build publishes it), so both worker copies of the
    # message find the lease held and wait, however slowly either starts on a busy machine.
    stalled = "stalled-first-copy"
    sent: list[dict] = []

    def keep(sender=None, body=None, exchange=None, routing_key=None, headers=None, properties=None,
             declare=None, **_):
        if sender == graph_tasks.block.name:
            sent.append({"body": body, "exchange": exchange, "routing_key": routing_key, "headers": dict(headers),
                         "properties": dict(properties), "declare": declare})
            if body[1]["index"] == 0:
                info = get_graph(store, body[1]["graph_id"])
                assert claim_block(store, info, 0, stalled, lease_s=900).outcome == "owned"

    before_task_publish.connect(keep)
    try:  # the build's chord is published from this process, so its messages can be kept
        reply = graph_tasks.build.apply(args=[run_id], kwargs={"k": K, "block_rows": BLOCK_ROWS}).get()
    finally:
        before_task_publish.disconnect(keep)
    graph = reply["graph"]
    first = next(m for m in sent if m["body"][1]["index"] == 0)
    with app.producer_or_acquire() as producer:  # the same message again, as a broker redelivers it
        producer.publish(first["body"], exchange=first["exchange"], routing_key=first["routing_key"],
                         headers=first["headers"], declare=first["declare"], serializer="json",
                         **first["properties"])

    def copies_running() -> int:
        active = app.control.inspect(timeout=5).active() or {}
        return sum(task["id"] == first["headers"]["id"] for tasks in active.values() for task in tasks)

    block_zero = "MATCH (b:GraphBlock {graph: $graph, index: 0}) RETURN b.claims AS claims, b.refused AS refused"
    _wait(lambda: copies_running() == 2 and store.read(block_zero, {"graph": graph})[0]["refused"] >= 1, 300,
          "both copies of block 0 to run at once, waiting for the lease")
    # The stalled copy dies: its lease runs out, one waiting copy takes the block over, the other
    # keeps waiting and then returns what the new owner recorded.
    store.write("MATCH (b:GraphBlock {graph: $graph, index: 0}) WHERE b.owner = $owner "
                "SET b.lease_until = datetime() - duration({seconds: 1})", {"graph": graph, "owner": stalled})

    status = "MATCH (g:InstructionGraph {id: $graph}) RETURN g.status AS status, g.edges AS edges, g.error AS error"
    done = _wait(lambda: (g := store.read(status, {"graph": graph})[0])["status"] in ("ready", "failed") and g, 600,
                 "the build to end")
    assert done["status"] == "ready", done["error"]
    assert done["edges"] == ROWS * K
    _wait(lambda: copies_running() == 0, 120, "both copies of block 0 to end")
    assert store.read(block_zero, {"graph": graph})[0]["claims"] == 2  # the stalled copy, then one worker copy

    edges = store.read("MATCH ()-[r:SIMILAR {graph: $graph}]->() RETURN count(r) AS n", {"graph": graph})[0]["n"]
    twice = store.read("MATCH (a)-[r:SIMILAR {graph: $graph}]->(b) WITH a, b, count(r) AS c WHERE c > 1 "
                       "RETURN count(*) AS n", {"graph": graph})[0]["n"]
    assert (edges, twice) == (ROWS * K, 0)
    table = stored_table(store, graph, ids)  # the pages cover every row once ...
    by_id = neighbors(store, graph, ids[:50])  # ... and say what the edges say
    for row in range(50):
        assert [ids[t] for t in table[row] if t >= 0] == [t for t, _ in by_id[ids[row]]]
