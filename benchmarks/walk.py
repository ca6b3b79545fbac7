"""How much faster the in-memory G2IS walk is than a per-candidate transcription of docs/architecture.md §4.4,
and how much slower the walk is when it reads its neighbour lists from Neo4j.

Prints one JSON line. Both walks run on the same synthetic pool (clustered unit rows sharing a
common direction, as gradient features do; neighbour lists exact within each cluster, built with
graph/knn/topk.py) and must pick identical rows. The per-candidate baseline is the tests' oracle,
tests/graph/walk_reference.py, so "identical" means identical to what the tests trust.

Then the same neighbour table is stored as an instruction graph (SIMILAR relationships and the
neighbour pages written with them, graph.knn.pages) in a private Neo4j started for the run, and
the walk is timed again fed by the platform's neighbour source (graph.neighbors.open_neighbors), as
selection jobs run it, the read of the pages included; it must pick the same rows. ``neo4j_ratio``
is its time over the in-memory walk's; ``neo4j_edges_ratio`` the same walk reading lists through
the SIMILAR edges instead, a batch per round trip (how graphs without pages are read). ``*_with_server_cpu_ratio`` adds the Neo4j
process's CPU seconds to the walk's own: on a busy machine the steadier figure.

    python -m benchmarks.walk                   # N = 100k, D = 512, k = 64, ratio 5%
    python -m benchmarks.walk --n 20000         # a quick run
    python -m benchmarks.walk --no-neo4j        # the in-memory walks only
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from gradwalk.graph.knn.topk import knn_graph
from gradwalk.graph.selection.registry import allocate_budgets, core_components, gradient_walk

_HERE = Path(__file__).resolve().parent


def _load(path: Path, name: str):
    """A module by path, so this works run as a script or as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_walk():
    return _load(_HERE.parent / "tests" / "graph" / "walk_reference.py", "gradwalk_tests_walk_reference").reference_walk


def synthetic_pool(
    n: int, dim: int, k: int, seed: int, shared: float = 0.8, val_noise: float = 1.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Train rows [n, dim] float32 in clusters of ~500, validation rows near 8 of them, neighbours and
    their cosines, build time.

    ``shared`` weighs a direction all rows share (less makes rows of different clusters conflict,
    so walks fall back and stop short more); ``val_noise`` blurs the target (less gives fewer,
    larger components).
    """
    rng = np.random.default_rng(seed)
    clusters = max(1, n // 500)
    centres = shared * rng.normal(size=dim) + rng.normal(size=(clusters, dim))
    labels = rng.integers(clusters, size=n)
    train = (centres[labels] + 1.5 * rng.normal(size=(n, dim))).astype(np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    near = rng.choice(clusters, size=min(8, clusters), replace=False)
    val = centres[rng.choice(near, size=300)] + val_noise * rng.normal(size=(300, dim))
    val /= np.linalg.norm(val, axis=1, keepdims=True)

    start = time.perf_counter()
    neighbors = np.full((n, k), -1, dtype=np.int32)
    cosines = np.zeros((n, k), dtype=np.float32)
    for cluster in range(clusters):
        members = np.flatnonzero(labels == cluster)
        if members.size > 1:
            local, cosines[members] = knn_graph(train[members], k=k, tau=0.0)
            neighbors[members] = np.where(local >= 0, members[np.maximum(local, 0)], -1)
    return train, val, neighbors, cosines, time.perf_counter() - start


def store_graph(store, features, train: np.ndarray, neighbors: np.ndarray, cosines: np.ndarray) -> tuple:
    """The pool's instructions, feature run and neighbour table written to Neo4j through the build's
    own steps (start_build, then claim, write and finish each block): (row ids, graph id)."""
    from gradwalk.graph.knn import build, edge_writer

    n, k = neighbors.shape
    ids = [hashlib.sha256(f"select-{i}".encode()).hexdigest() for i in range(n)]
    store.write_rows("UNWIND $rows AS row CREATE (:Instruction {id: row.id})", ({"id": i} for i in ids),
                     batch_size=10_000)
    run = "bench-select"
    features.write_shard(run, build.TRAIN_PART, 0, ids, train)
    store.write("CREATE (:FeatureRun {id: $id, status: 'complete', dim: $dim, rows: $rows})",
                {"id": run, "dim": train.shape[1], "rows": n})
    info, todo = build.start_build(store, features, run, k, 0.0)
    for index in todo:
        lo, hi = info.block(index)
        lease = build.claim_block(store, info, index).lease
        edges = edge_writer.write_edges(store, lease, ids, lo, neighbors[lo:hi], cosines[lo:hi])
        build.finish_block(store, lease, edges)
    return ids, build.finish_build(store, info).id


def neo4j_walk(train, neighbors, cosines, components, weights, args, expected, timed, timings) -> dict:
    """Store the table in a private Neo4j, then time the walk fed from it (it must pick ``expected``)."""
    from gradwalk.graph.knn.neighbors import open_neighbors
    from gradwalk.platform.artifacts.feature_store import FeatureStore

    bench_graph = _load(_HERE / "graph.py", "gradwalk_benchmarks_graph")
    with tempfile.TemporaryDirectory(prefix="gradwalk-bench-select-") as tmp, contextlib.ExitStack() as stack:
        # Page cache for the whole store (relationships, their properties and indexes): ~300 bytes an edge.
        store, server = bench_graph.private_store(Path(tmp), stack, pagecache_mb=max(512, neighbors.size * 300 >> 20))
        start = time.perf_counter()
        ids, graph = store_graph(store, FeatureStore.from_settings(server.settings), train, neighbors, cosines)
        store_s = time.perf_counter() - start

        def walk(lists: bool):  # a fresh source each time: nothing cached from the run before
            server_cpu = bench_graph.cpu_seconds(server.pid())
            with open_neighbors(store, graph, ids, lists=lists) as source:
                picked = gradient_walk(train, components, weights, source, args.ratio, args.delta,
                                       fallback=args.fallback)
            if source.uses_lists != lists:
                raise SystemExit(f"the walk {'did not read' if lists else 'read'} the stored neighbour pages")
            return source, picked, bench_graph.cpu_seconds(server.pid()) - server_cpu

        out = {"neo4j_store_s": round(store_s, 1)}
        for name, lists in (("neo4j_walk", True), ("neo4j_edges_walk", False)):
            for _ in range(args.repeat):
                source, picked, server_cpu = timed(name, lambda lists=lists: walk(lists))
                timings[f"{name}_server_cpu_s"] = min(timings.get(f"{name}_server_cpu_s", np.inf), server_cpu)
                if triples(picked) != expected:
                    raise SystemExit("the Neo4j-fed walk and the in-memory walk picked different rows")
            out[f"{name}_round_trips"] = source.round_trips
    return out


def neo4j_ratios(timings: dict) -> dict:
    """Each Neo4j-fed walk over the in-memory walk: wall, and this process's CPU plus Neo4j's."""
    out = {}
    for name, label in (("neo4j_walk", "neo4j"), ("neo4j_edges_walk", "neo4j_edges")):
        out[f"{label}_ratio"] = round(timings[f"{name}_s"] / timings["fast_walk_s"], 2)
        cpu = timings[f"{name}_cpu_s"] + timings[f"{name}_server_cpu_s"]
        out[f"{label}_with_server_cpu_ratio"] = round(cpu / timings["fast_walk_cpu_s"], 2)
    return out


def triples(selection) -> list[tuple[int, int, int]]:
    return list(zip(selection, selection.component.tolist(), selection.step.tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="pool size")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=64, help="neighbours per node")
    parser.add_argument("--ratio", type=float, default=0.05)
    parser.add_argument("--delta", type=float, default=0.8)
    parser.add_argument("--fallback", choices=("strict", "paper"), default="strict")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the fast walk; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=float, default=0.8, help="weight of the direction all rows share")
    parser.add_argument("--val-noise", type=float, default=1.5, help="noise around the target's clusters")
    parser.add_argument("--no-neo4j", action="store_true", help="skip the walk fed from Neo4j")
    args = parser.parse_args()

    train, val, neighbors, cosines, knn_s = synthetic_pool(args.n, args.dim, args.k, args.seed, args.shared,
                                                           args.val_noise)
    components, weights = core_components(val)
    budgets = allocate_budgets(args.n, args.ratio, weights)

    # Wall and CPU seconds: on a shared machine the CPU time of this process is the steadier figure.
    timings = {}

    def timed(name, run):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        for key, spent in ((f"{name}_s", time.perf_counter() - wall), (f"{name}_cpu_s", time.process_time() - cpu)):
            timings[key] = min(timings.get(key, np.inf), spent)
        return result

    for _ in range(args.repeat):
        fast = timed("fast_walk", lambda: gradient_walk(
            train, components, weights, neighbors, args.ratio, args.delta, fallback=args.fallback
        ))
    reference_walk = _reference_walk()
    with threadpool_limits(limits=1, user_api="blas"):  # as gradient_walk runs: a fair comparison
        naive = timed(
            "naive_walk", lambda: reference_walk(train, components, budgets, neighbors, args.delta, args.fallback)
        )
    if triples(fast) != naive:
        raise SystemExit("the fast walk and the per-candidate walk picked different rows")
    neo4j = {} if args.no_neo4j else neo4j_walk(train, neighbors, cosines, components, weights, args, naive, timed,
                                                     timings)

    print(json.dumps({
        "benchmark": "select.gradient_walk",
        "n": args.n,
        "dim": args.dim,
        "k": args.k,
        "ratio": args.ratio,
        "delta": args.delta,
        "fallback": args.fallback,
        "shared": args.shared,
        "val_noise": args.val_noise,
        "components": int(components.shape[0]),
        "budgets": budgets.tolist(),
        "selected": len(fast),
        "shortfall": fast.shortfall,
        "fallbacks": sum(c.fallbacks for c in fast.components),
        "neighbors": "exact top-k within each synthetic cluster (graph/knn/topk.py)",
        "neighbors_build_s": round(knn_s, 3),
        "blas_threads": 1,
        **{name: round(seconds, 4) for name, seconds in timings.items()},
        "speedup": round(timings["naive_walk_s"] / timings["fast_walk_s"], 1),
        "speedup_cpu": round(timings["naive_walk_cpu_s"] / timings["fast_walk_cpu_s"], 1),
        **neo4j,
        **({} if args.no_neo4j else neo4j_ratios(timings)),
        "identical": True,  # checked above: a difference ends the run instead
    }))


if __name__ == "__main__":
    main()
