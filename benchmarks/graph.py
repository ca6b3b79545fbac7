"""How fast the instruction graph builds: exact kNN against one dense matmul, edges into Neo4j per second.

Prints one JSON line per pool size N (synthetic clustered unit rows, D = 512, k = 64, τ = 0):

- ``knn``: the build's kNN pass (graph.knn.knn_block over the build's row blocks) against the
  dense products of the same shapes alone (X_b·Xᵀ for the same blocks, i.e. one [N,D]×[D,N]
  matmul cut into the rows that fit memory; for N ≤ 20k also one unblocked X·Xᵀ). Large N are
  timed on the first ``--knn-rows`` rows and extrapolated: every block costs the same.
- ``write``: edges per second through the build's write path (graph.edge_writer.EdgeWriter)
  into a private Neo4j started for the run (the configured services are never touched), on
  ``--write-edges`` edges after ``--warmup-edges`` untimed ones (a fresh JVM compiles its hot paths
  first): as a block's first attempt writes them (nothing to delete), then again as a re-run block
  does (old edges deleted first); then the graph is deleted in batches and that rate reported
  too. Also edges per CPU-second of the Neo4j process, a figure that holds however busy the
  machine is. Two sides, in turn, each time on a graph of its own: one write transaction at a time
  (``write_one_at_a_time``) and as many in flight as the platform keeps (``write``); best of
  ``--repeat``.

    python benchmarks/graph.py                     # N = 10k and 100k
    python benchmarks/graph.py --n 10000           # one size
    python benchmarks/graph.py --write-edges 0     # the kNN part only (no Neo4j is started)
    python benchmarks/graph.py --n 100000 --write-edges 0 --extend-percent 1   # extend against rebuild

- ``extend`` (with ``--extend-percent P``): a graph is built on the first N·(1 − P/100) rows, the
  run grown to N, and the graph extended in place (graph.knn.extend) against a full rebuild of
  the N rows, both in this process into the private Neo4j; ``extend_s`` against ``rebuild_s``,
  and for ``--check-rows`` sampled rows whether the two graphs' neighbour lists are equal.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gradwalk.device import resolve_device
from gradwalk.graph.knn.topk import block_ranges, default_block_rows, knn_block
from gradwalk.ports import free_port


def synthetic_rows(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit rows around n/500 cluster centres that share a common direction, as gradient features do."""
    rng = np.random.default_rng(seed)
    clusters = max(1, n // 500)
    centres = 0.8 * rng.normal(size=dim) + rng.normal(size=(clusters, dim))
    x = (centres[rng.integers(clusters, size=n)] + 1.5 * rng.normal(size=(n, dim))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_knn(x: torch.Tensor, rows: int, k: int, tau: float, device: torch.device, repeat: int) -> dict:
    """Best-of-``repeat`` seconds of the kNN pass and of the bare products over the first ``rows`` rows."""
    n = x.shape[0]
    blocks = block_ranges(rows, default_block_rows(n, str(device)))
    knn_s, matmul_s = float("inf"), float("inf")
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        for lo, hi in blocks:
            x[lo:hi] @ x.T
        _sync(device)
        matmul_s = min(matmul_s, time.perf_counter() - start)
        start = time.perf_counter()
        for lo, hi in blocks:
            knn_block(x, lo, hi, k, tau, str(device))
        _sync(device)
        knn_s = min(knn_s, time.perf_counter() - start)
    scale = n / rows
    result = {
        "rows_timed": rows, "block_rows": blocks[0][1] - blocks[0][0], "knn_s": knn_s, "blocked_matmul_s": matmul_s,
        "ratio_to_matmul": knn_s / matmul_s, "knn_full_s_estimate": knn_s * scale,
        "knn_us_per_row": 1e6 * knn_s / rows,
    }
    if n <= 20_000:  # one unblocked X·Xᵀ still fits in memory
        dense_s = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            x @ x.T
            _sync(device)
            dense_s = min(dense_s, time.perf_counter() - start)
        result.update(dense_matmul_s=dense_s, ratio_to_dense_matmul=knn_s * scale / dense_s)
    return result



def private_neo4j(state: Path, pagecache_mb: int | None = None):
    """Settings and service of a Neo4j of this run's own (the configured one is left alone)."""
    from gradwalk.platform.local.stack import Neo4jService
    from gradwalk.settings import Settings

    sizes = {} if pagecache_mb is None else {"neo4j_pagecache_mb": pagecache_mb}
    settings = Settings(state_dir=state, neo4j_uri=f"bolt://127.0.0.1:{free_port()}",
                        neo4j_password=secrets.token_urlsafe(16), **sizes)
    return settings, Neo4jService(settings)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_writes(store, neo4j_pid: int, lease, ids: list[str], computed: list, fresh: bool, concurrency: int) -> dict:
    """Wall, Neo4j-CPU and client-CPU rates of one EdgeWriter fed the computed pieces, as write_block feeds it."""
    import dataclasses

    from gradwalk.graph.knn.edge_writer import EdgeWriter

    server, client, start = cpu_seconds(neo4j_pid), time.process_time(), time.perf_counter()
    with EdgeWriter(store, dataclasses.replace(lease, fresh=fresh), concurrency=concurrency) as writer:
        for lo, neighbor_ids, weights in computed:
            writer.write(ids, lo, neighbor_ids, weights)
    written, wall = writer.edges, time.perf_counter() - start
    server, client = cpu_seconds(neo4j_pid) - server, time.process_time() - client
    return {"edges": written, "s": wall, "edges_per_s": written / wall, "edges_per_neo4j_cpu_s": written / server,
            "edges_per_client_cpu_s": written / client}


def time_writes(store, neo4j_pid: int, features, x: np.ndarray, k: int, tau: float, edges: int,
                warmup_edges: int, tag: str, concurrency: int) -> dict:
    """Create the pool's instructions and feature run, then time write_edges (after a warm-up) and delete_graph.

    ``first_build`` writes rows that have no edges yet, as a block's first attempt does;
    ``rewrite`` writes the same rows again, as a re-run block does (old edges deleted first);
    ``concurrency`` write transactions are in flight at a time.
    Besides wall-clock rates it reports edges per CPU-second of the Neo4j process, which does not
    depend on what else the machine is running."""
    from gradwalk.graph.knn import build, edge_writer

    n = x.shape[0]
    ids = [hashlib.sha256(f"{tag}-{i}".encode()).hexdigest() for i in range(n)]
    start = time.perf_counter()
    store.write_rows("UNWIND $rows AS row CREATE (:Instruction {id: row.id})", ({"id": i} for i in ids),
                     batch_size=10_000)
    nodes_s = time.perf_counter() - start
    run = f"bench-{tag}"
    features.write_shard(run, build.TRAIN_PART, 0, ids, x)
    store.write("CREATE (:FeatureRun {id: $id, status: 'complete', dim: $dim, rows: $rows})",
                {"id": run, "dim": x.shape[1], "rows": n})
    info, _ = build.start_build(store, features, run, k, tau, block_rows=n)
    lease = build.claim_block(store, info, 0).lease  # one block: the rows below are all its own

    device = resolve_device("auto")
    features_on_device = torch.from_numpy(x).to(device)
    warm_rows = min(n - 1, warmup_edges // k)
    timed = block_ranges(min(n - warm_rows, max(1, edges // k)), default_block_rows(n, device))
    for lo, hi in block_ranges(warm_rows, default_block_rows(n, device)):
        edge_writer.write_edges(store, lease, ids, lo, *knn_block(features_on_device, lo, hi, k, tau, device))
    computed = [(warm_rows + lo, *knn_block(features_on_device, warm_rows + lo, warm_rows + hi, k, tau, device))
                for lo, hi in timed]
    first = _timed_writes(store, neo4j_pid, lease, ids, computed, True, concurrency)
    again = _timed_writes(store, neo4j_pid, lease, ids, computed, False, concurrency)
    start = time.perf_counter()
    deleted = build.delete_graph(store, info.id)
    delete_s = time.perf_counter() - start
    return {"concurrency": concurrency, "nodes_created_per_s": n / nodes_s, "warmup_edges": warm_rows * k, "edges_written": first["edges"],
            "write_s": first["s"], "edges_per_s": first["edges_per_s"],
            "edges_per_neo4j_cpu_s": first["edges_per_neo4j_cpu_s"],
            "edges_per_client_cpu_s": first["edges_per_client_cpu_s"], "rewrite_edges_per_s": again["edges_per_s"],
            "rewrite_edges_per_neo4j_cpu_s": again["edges_per_neo4j_cpu_s"], "edges_deleted": deleted,
            "edges_deleted_per_s": deleted / delete_s, "write_full_s_estimate": n * k * first["s"] / first["edges"]}


def time_extend(store, features, x: np.ndarray, k: int, tau: float, percent: float, check_rows: int,
                tag: str) -> dict:
    """Seconds to extend a graph of N·(1 − percent/100) rows to N rows, against a rebuild on N rows."""
    from gradwalk.graph.knn import build
    from gradwalk.graph.knn.extend import extend_graph
    from gradwalk.graph.knn.neighbors import neighbors

    n = x.shape[0]
    old = n - max(1, round(n * percent / 100))
    ids = [hashlib.sha256(f"{tag}-{i}".encode()).hexdigest() for i in range(n)]
    store.write_rows("UNWIND $rows AS row CREATE (:Instruction {id: row.id})", ({"id": i} for i in ids),
                     batch_size=10_000)
    run = f"bench-{tag}"
    features.write_shard(run, build.TRAIN_PART, 0, ids[:old], x[:old])
    store.write("CREATE (:FeatureRun {id: $id, status: 'complete', rows: $rows})", {"id": run, "rows": old})
    start = time.perf_counter()
    graph = build.build_graph(store, features, run, k, tau).id
    build_old_s = time.perf_counter() - start
    features.write_shard(run, build.TRAIN_PART, 1, ids[old:], x[old:])
    store.write("MATCH (r:FeatureRun {id: $id}) SET r.rows = $rows", {"id": run, "rows": n})
    start = time.perf_counter()
    extended = extend_graph(store, features, graph)
    extend_s = time.perf_counter() - start
    sample = [ids[i] for i in np.random.default_rng(0).choice(n, size=min(n, check_rows), replace=False)]
    after_extend = neighbors(store, graph, sample)
    build.delete_graph(store, graph)
    start = time.perf_counter()
    rebuilt = build.build_graph(store, features, run, k, tau)
    rebuild_s = time.perf_counter() - start
    equal = sum(set(after_extend[i]) == set(edges) for i, edges in neighbors(store, graph, sample).items())
    build.delete_graph(store, graph)
    return {"old_rows": old, "new_rows": n - old, "build_old_s": build_old_s, "extend_s": extend_s,
            "rebuild_s": rebuild_s, "rebuild_over_extend": rebuild_s / extend_s,
            "edges_equal": extended.edges == rebuilt.edges, "rows_checked": len(sample), "rows_equal": equal}


def private_store(tmp: Path, stack: contextlib.ExitStack, pagecache_mb: int | None = None):
    """A migrated Neo4j of this run's own and a store on it, both closed when ``stack`` unwinds."""
    from gradwalk.graph.store.adapter import GraphStore
    from gradwalk.graph.store.migrations import migrate

    settings, neo4j = private_neo4j(tmp / "state", pagecache_mb)
    neo4j.spawn()
    stack.callback(neo4j.stop)
    neo4j.wait_ready()
    store = stack.enter_context(GraphStore.connect(settings))
    migrate(store)
    return store, neo4j


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000], help="pool sizes")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--tau", type=float, default=0.0)
    parser.add_argument("--knn-rows", type=int, default=2_000, help="rows whose kNN is timed (at most N)")
    parser.add_argument("--write-edges", type=int, default=320_000,
                        help="edges timed per N (at most N·k); 0 skips the write part")
    parser.add_argument("--warmup-edges", type=int, default=192_000, help="edges written untimed first")
    parser.add_argument("--repeat", type=int, default=2, help="timings of each side; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extend-percent", type=float, default=0.0,
                        help="also time extending a graph by this share of N against a rebuild (0: skip)")
    parser.add_argument("--check-rows", type=int, default=2_000, help="rows compared after extend and rebuild")
    args = parser.parse_args()

    from gradwalk.platform.artifacts.feature_store import FeatureStore

    device = resolve_device("auto")
    with tempfile.TemporaryDirectory(prefix="gradwalk-bench-graph-") as tmp, contextlib.ExitStack() as stack:
        needs_neo4j = args.write_edges > 0 or args.extend_percent > 0
        store, neo4j = private_store(Path(tmp), stack) if needs_neo4j else (None, None)
        features = FeatureStore.from_settings(neo4j.settings) if needs_neo4j else None
        for n in args.n:
            x = synthetic_rows(n, args.dim, args.seed)
            knn = time_knn(torch.from_numpy(x).to(device), min(n, args.knn_rows), args.k, args.tau,
                           torch.device(device), args.repeat)
            writes = {}
            if args.extend_percent > 0:
                writes["extend"] = time_extend(store, features, x, args.k, args.tau,
                                               args.extend_percent, args.check_rows, f"n{n}-extend")
            if args.write_edges > 0:  # one write transaction at a time and the platform's default, in turn
                from gradwalk.graph.knn.edge_writer import CONCURRENT_WRITES

                for attempt in range(args.repeat):
                    for side, concurrency in (("write_one_at_a_time", 1), ("write", CONCURRENT_WRITES)):
                        timed = time_writes(store, neo4j.pid(), features, x, args.k, args.tau,
                                            args.write_edges, args.warmup_edges, f"n{n}-{side}-{attempt}", concurrency)
                        if side not in writes or timed["edges_per_s"] > writes[side]["edges_per_s"]:
                            writes[side] = timed
                writes["write_speedup"] = writes["write"]["edges_per_s"] / writes["write_one_at_a_time"]["edges_per_s"]
            print(json.dumps({
                "n": n, "dim": args.dim, "k": args.k, "tau": args.tau, "device": device,
                "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2), "knn": knn, **writes,
            }), flush=True)



if __name__ == "__main__":
    main()
