"""Graph-build throughput with 1 and 2 worker processes, and the per-unit costs behind docs/scale.md.

Each worker process does what a gpu worker's pool process does for a ``gradwalk.graph.block``
task: it loads the run's features once, then for each block it is handed calls
graph.knn.build.write_block (kNN pieces on its device, edges and neighbour pages written under
the block's lease). The processes share one private Neo4j started for the run (the configured
services are left alone), as workers share the cluster's. For each process count the graph is
built from scratch and the benchmark prints one JSON line: wall seconds, rows and edges per
second, and CPU seconds per edge of the workers and of Neo4j (the steadier figures on a busy
machine), with the machine's load.

    python -m benchmarks.throughput                       # N = 8000, D = 512, k = 64, 1 then 2 processes
    python -m benchmarks.throughput --n 20000 --processes 2 1 2   # the first build also warms Neo4j up
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_worker: dict = {}


def _bench_graph():
    spec = importlib.util.spec_from_file_location("gradwalk_benchmarks_graph", _HERE / "graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start_worker(settings, run: str) -> None:
    """A pool process: one store and the run's features, kept for all its blocks (as a worker does)."""
    import torch

    from gradwalk.graph.knn import build
    from gradwalk.graph.store.adapter import GraphStore
    from gradwalk.platform.artifacts.feature_store import FeatureStore

    torch.set_num_threads(1)  # one core each: the processes, not threads, are what is compared
    _worker["store"] = GraphStore.connect(settings)
    _worker["rows"] = build.load_features(FeatureStore.from_settings(settings), run, "cpu")


def _write_block(job: tuple) -> int:
    from gradwalk.graph.knn import build

    info, index = job
    row_ids, x = _worker["rows"]
    return build.write_block(_worker["store"], info, row_ids, x, index, device="cpu")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tx_log_bytes(state: Path) -> int:
    """Bytes of Neo4j's transaction logs under ``state`` (written as each transaction commits; the
    store files are written at checkpoints, so their size says little right after a build)."""
    return sum(p.stat().st_size for p in state.rglob("*") if "transactions" in p.parts and p.is_file())


def build_with(processes: int, store, settings, server, run: str, k: int, block_rows: int) -> dict:
    """Build the run's graph from scratch with ``processes`` worker processes; rates and CPU per unit."""
    from gradwalk.graph.knn import build
    from gradwalk.platform.artifacts.feature_store import FeatureStore

    bench_graph = _bench_graph()
    info, todo = build.start_build(store, FeatureStore.from_settings(settings), run, k, 0.0, block_rows=block_rows,
                                   rebuild=True)
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_start_worker, initargs=(settings, run)) as pool:
        pool.map(time.sleep, [0.5] * processes)  # every process started and loaded before the clock runs
        workers_cpu, server_cpu, start = _children_cpu(), bench_graph.cpu_seconds(server.pid()), time.perf_counter()
        edges = sum(pool.imap_unordered(_write_block, [(info, index) for index in todo]))
        wall = time.perf_counter() - start
        server_cpu = bench_graph.cpu_seconds(server.pid()) - server_cpu
    workers_cpu = _children_cpu() - workers_cpu  # counted once the pool's processes have ended
    done = build.finish_build(store, info)
    if done.edges != edges or done.status != "ready":
        raise SystemExit(f"the build ended {done.status} with {done.edges} edges, {edges} written")
    return {"processes": processes, "blocks": len(todo), "wall_s": round(wall, 2),
            "rows_per_s": round(info.nodes / wall, 1), "edges_per_s": round(edges / wall),
            "worker_cpu_us_per_edge": round(1e6 * workers_cpu / edges, 2),
            "neo4j_cpu_us_per_edge": round(1e6 * server_cpu / edges, 2),
            "load_average_1m": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8_000, help="pool size")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--block-rows", type=int, default=500, help="rows per block task")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from gradwalk.graph.knn import build
    from gradwalk.platform.artifacts.feature_store import FeatureStore

    bench_graph = _bench_graph()
    x = bench_graph.synthetic_rows(args.n, args.dim, seed=0)
    ids = [hashlib.sha256(f"throughput-{i}".encode()).hexdigest() for i in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="gradwalk-bench-throughput-") as tmp, contextlib.ExitStack() as stack:
        store, server = bench_graph.private_store(Path(tmp), stack)
        run = "bench-throughput"
        FeatureStore.from_settings(server.settings).write_shard(run, build.TRAIN_PART, 0, ids, x)
        store.write_rows("UNWIND $rows AS row CREATE (:Instruction {id: row.id})", ({"id": i} for i in ids),
                         batch_size=10_000)
        store.write("CREATE (:FeatureRun {id: $id, status: 'complete', dim: $dim, rows: $rows})",
                    {"id": run, "dim": args.dim, "rows": args.n})
        for processes in args.processes:
            logged = tx_log_bytes(Path(tmp) / "state")
            result = build_with(processes, store, server.settings, server, run, args.k, args.block_rows)
            # a rebuild first deletes the graph before: its log counts the deletes too
            result["tx_log_bytes_per_edge"] = round((tx_log_bytes(Path(tmp) / "state") - logged) / (args.n * args.k), 1)
            print(json.dumps({"benchmark": "graph.throughput", "n": args.n, "dim": args.dim, "k": args.k,
                              "block_rows": args.block_rows, "cpus": os.cpu_count(), **result}), flush=True)


if __name__ == "__main__":
    main()
