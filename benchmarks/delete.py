"""What deleting a pool costs beside importing it: rows per second of each, and their ratio.

A pool of N synthetic chat rows is imported into a private Neo4j (the configured services are
never touched); a version is published holding 10% of its rows; then the pool is deleted with
``force`` in batches of ``--batch`` rows, which keeps the version's rows and drops the rest. The
ratio (delete rows/s over import rows/s) is what carries to other machines. Prints JSON.

    .venv/bin/python benchmarks/delete.py --n 20000 --batch 5000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph import private_store  # benchmarks/graph.py, beside this script


def measure(store, features, n: int, batch: int) -> dict:
    from gradwalk.platform.access.auth import Principal
    from gradwalk.platform.catalog import deletion
    from gradwalk.platform.intake import pools
    from gradwalk.platform.versions import datasets
    from gradwalk.platform.work import feature_runs

    rows = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(n)]
    start = time.perf_counter()
    pools.import_pool(store, "bench", rows)
    import_s = time.perf_counter() - start
    kept = feature_runs.member_ids(store, "bench")[::10]
    store.write("CREATE (:SelectionJob {id: 'bench-job', status: 'succeeded', pool: 'bench', targets: []})")
    datasets.publish(store, "bench-ds", [{"instruction_id": i, "rank": r} for r, i in enumerate(kept)],
                     job_id="bench-job", lineage={})
    start = time.perf_counter()
    report = deletion.delete_collection(store, "pool", "bench", features=features,
                                        caller=Principal("benchmark", "admin"), force=True, batch=batch)
    delete_s = time.perf_counter() - start
    return {"rows": n, "batch": batch, "import_s": round(import_s, 2), "delete_s": round(delete_s, 2),
            "import_rows_per_s": round(n / import_s), "delete_rows_per_s": round(n / delete_s),
            "delete_over_import_speed": round(import_s / delete_s, 2), "rows_kept_for_the_version": report.kept["rows"],
            "rows_deleted": report.removed["rows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="pool rows")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per delete transaction")
    args = parser.parse_args()
    from gradwalk.platform.artifacts.feature_store import FeatureStore

    with tempfile.TemporaryDirectory(prefix="gradwalk-bench-") as tmp, contextlib.ExitStack() as stack:
        store, neo4j = private_store(Path(tmp), stack)
        result = measure(store, FeatureStore.from_settings(neo4j.settings), args.n, args.batch)
    print(json.dumps({"benchmark": "delete", **result}, indent=1))


if __name__ == "__main__":
    main()
