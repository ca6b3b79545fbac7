"""Server time of each web page (/ui) with a 100k-row pool and 5k-row versions.

Runs against the local services of the process's settings (start them with `gradwalk services up`).
It makes, once, under the names ``bench-ui-*``: a pool of N rows with random unit features (no
model), a k-NN graph of them, and two versions of M rows (a walk-shaped one whose rows record
component, step and predecessor, and a random one to diff against). Then it asks for each page
``--repeat`` times through the running API server and prints one JSON line: the first time (it also
fills the pages' caches of immutable tallies), then the median and worst of the rest, per page,
and the goal (300 ms). Time is measured from request to the last byte on
the same machine, so it is server time plus a loopback round trip.

    python -m benchmarks.ui_pages                     # N = 100,000, M = 5,000, k = 16
    python -m benchmarks.ui_pages --rows 20000 --version-rows 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import httpx
import numpy as np

from gradwalk.graph.knn import build
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access import auth
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.intake import pools
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import feature_runs, jobs
from gradwalk.settings import get_settings

GOAL_MS = 300
TOPICS = ("arithmetic", "geometry", "a poem", "a recipe", "history", "python code", "chemistry", "music")


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"bench question {i}: tell me about {TOPICS[i % 8]} ({i})"},
                         {"role": "assistant", "content": f"Answer {i} about {TOPICS[i % 8]}, in a few lines."}]}


def _prepare(store: GraphStore, settings, rows: int, version_rows: int, k: int) -> dict:
    """The pool, run, graph and two versions (made once; found again on later runs)."""
    pool, target, run = f"bench-ui-pool-{rows}", "bench-ui-target", f"bench-ui-run-{rows}"
    dataset = f"bench-ui-{rows}-{version_rows}"
    graph = build.graph_id(run, k, 0.0)
    timings = {}
    if not store.read("MATCH (p:Pool {name: $p, status: 'ready'}) RETURN p.name AS p", {"p": pool}):
        started = time.monotonic()
        pools.import_pool(store, pool, [_chat(i) for i in range(rows)])
        pools.import_target(store, target, [_chat(rows + i) for i in range(8)])
        timings["import_s"] = round(time.monotonic() - started, 1)
    ids = feature_runs.member_ids(store, pool)
    if not store.read("MATCH (fr:FeatureRun {id: $id}) RETURN fr.id AS id", {"id": run}):
        rng = np.random.default_rng(0)
        x = (rng.normal(size=(rows, 16)) + 0.3).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        features = FeatureStore.from_settings(settings)
        features.write_shard(run, "train", 0, ids, x)
        features.write_shard(run, f"val-{target}", 0, feature_runs.target_ids(store, target), x[:8])
        store.write("MATCH (p:Pool {name: $pool}), (t:Target {name: $target}) "
                    "CREATE (fr:FeatureRun {id: $id, pool: $pool, targets: [$target], kind: 'gradient', "
                    "status: 'complete', parts: ['train', 'val-' + $target], dim: 16, rows: $rows, "
                    "rows_total: $rows, rows_done: $rows, created_at: datetime()})-[:OF_POOL]->(p) "
                    "CREATE (fr)-[:FOR_TARGET]->(t)", {"pool": pool, "target": target, "id": run, "rows": rows})
    if not store.read("MATCH (g:InstructionGraph {id: $g, status: 'ready'}) RETURN g.id AS g", {"g": graph}):
        started = time.monotonic()
        build.build_graph(store, FeatureStore.from_settings(settings), run, k, 0.0, device="cpu")
        timings["graph_s"] = round(time.monotonic() - started, 1)
    if not store.read("MATCH (d:Dataset {name: $d})-[:HAS_VERSION]->(v {version: 2}) RETURN v.version AS v",
                      {"d": dataset}):
        _publish_versions(store, dataset, pool, target, run, graph, ids, version_rows)
    return {"pool": pool, "dataset": dataset, "graph": graph, "row": ids[0], "timings": timings}


def _publish_versions(store, dataset, pool, target, run, graph, ids, version_rows) -> None:
    """v1: random rows; v2: walk-shaped rows (4 components, each a chain of predecessors)."""
    rng = np.random.default_rng(1)
    for walked in (False, True):
        chosen = [ids[i] for i in rng.choice(len(ids), size=version_rows, replace=False)]
        request = jobs.JobRequest(pool=pool, targets=[target], method="g2is" if walked else "random",
                                  dataset=dataset, params={"ratio": version_rows / len(ids)},
                                  feature_run=run if walked else None, graph=graph if walked else None)
        job = jobs.create(store, request, created_by="bench")
        jobs.start(store, job)
        per = version_rows // 4
        rows = []
        for rank, instruction in enumerate(chosen):
            component, step = (min(rank // per, 3), rank - min(rank // per, 3) * per) if walked else (None, None)
            rows.append({"instruction_id": instruction, "rank": rank, "component": component, "step": step,
                         "score": None if walked else float(rng.random()),
                         "predecessor": chosen[rank - 1] if walked and step else None,
                         "reached_by": ("edge" if step else "anchor") if walked else None})
        number = datasets.publish(store, dataset, rows, job_id=job, lineage={"params": request.params})
        components = [{"component": c, "weight": 0.25, "budget": per, "selected": per, "shortfall": 0,
                       "anchor": c * per, "fallbacks": 0} for c in range(4)] if walked else []
        jobs.succeed(store, job, dataset=dataset, version=number, summary={"components": components})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--version-rows", type=int, default=5_000)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    settings = get_settings()
    with GraphStore.connect(settings) as store:
        made = _prepare(store, settings, args.rows, args.version_rows, args.k)
        token = auth.create(store, f"bench-ui-{uuid.uuid4().hex[:8]}", "reader")
    d, g, row = made["dataset"], made["graph"], made["row"]
    pages = {
        "overview": "/ui/", "jobs": "/ui/jobs", "datasets": "/ui/datasets", "dataset": f"/ui/datasets/{d}",
        "version": f"/ui/datasets/{d}/2", "version_page_50": f"/ui/datasets/{d}/2?offset=2500",
        "version_search": f"/ui/datasets/{d}/2?q=geometry", "why": f"/ui/datasets/{d}/2/why",
        "walk_json": f"/ui/datasets/{d}/2/walk/0", "diff": f"/ui/datasets/{d}/diff/1/2",
        "instruction": f"/ui/instructions/{row}?graph={g}",
        "neighbourhood_json": f"/ui/instructions/{row}/neighbourhood?graph={g}",
        "pool": f"/ui/catalog/pools/{made['pool']}", "pool_search": f"/ui/catalog/pools/{made['pool']}?q=poem",
        "catalog": "/ui/catalog", "graph": f"/ui/catalog/graphs/{g}", "cypher": "/ui/cypher",
    }
    url = f"http://{settings.api_host}:{settings.api_port}"
    results = {}
    with httpx.Client(base_url=url, timeout=120) as web:
        if web.post("/ui/signin", data={"token": token}).status_code != 303:  # the client keeps the session cookie
            raise SystemExit("signing in to the pages failed")
        for name, path in pages.items():
            times = []
            for _ in range(args.repeat + 1):  # the first also warms Neo4j's plan cache
                started = time.perf_counter()
                answer = web.get(path)
                times.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {answer.status_code}")
            results[name] = {"first_ms": round(times[0], 1), "median_ms": round(statistics.median(times[1:]), 1),
                             "max_ms": round(max(times[1:]), 1)}
    print(json.dumps({"rows": args.rows, "version_rows": args.version_rows, "k": args.k, "goal_ms": GOAL_MS,
                      "over_goal": sorted(n for n, r in results.items() if r["median_ms"] > GOAL_MS),
                      "setup": made["timings"], "pages": results}))


if __name__ == "__main__":
    main()
