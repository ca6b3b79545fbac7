"""Peak memory of importing a parquet pool, at two sizes: an import's memory must not grow with
the pool (issue 30). Prints JSON.

Each size gets a parquet file of synthetic two-turn chat rows written as ONE row group (pyarrow's
default for files under a million rows: the hard case, since a reader that takes a row group
whole holds the file). Three fresh interpreters measure their own peak RSS (``VmHWM``):

- ``baseline``: gradwalk's modules imported and the store connected, nothing read;
- ``import``: the same, then the file imported through the service layer as the REST upload
  and the web page's form do it (``changes.imports.import_upload``: spooled copy, parquet
  checks, batched writes to Neo4j);
- ``whole_table``: the baseline, then ``pyarrow.parquet.read_table(...).to_pylist()``: what a
  reader that loads the file whole would hold before writing anything.

The figures that carry to other machines are the import's growth over the baseline at the large
size against the small (about 1 when memory is bounded; the sizes' ratio when it grows with the
pool) and, at each size, the whole-table read's growth over the import's. The Neo4j is this
run's own; the configured services are never touched.

    .venv/bin/python benchmarks/import_memory.py --n 10000 100000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph import private_store  # benchmarks/graph.py, beside this script

_CONNECT = """
import sys, time
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access.auth import Principal
from gradwalk.platform.changes import Context, imports
from gradwalk.settings import Settings
settings = Settings()
with GraphStore.connect(settings) as store:
    store.read("RETURN 1")
"""
_PROBES = {
    "baseline": _CONNECT + "    pass\n",
    "import": _CONNECT + """\
    ctx = Context(store, settings, Principal("benchmark", "curator"))
    start = time.perf_counter()
    with open(sys.argv[1], "rb") as fh:
        report = imports.import_upload(ctx, "pool", sys.argv[2], fh, "pool.parquet")
    assert report.added == int(sys.argv[3]), report
    print(time.perf_counter() - start)
""",
    "whole_table": _CONNECT + """\
    import pyarrow.parquet as pq
    rows = pq.read_table(sys.argv[1]).to_pylist()
    assert len(rows) == int(sys.argv[3])
""",
}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
_PEAK = ("\nprint(next(int(line.split()[1]) * 1024 for line in open('/proc/self/status')"
         " if line.startswith('VmHWM:')))\n")


def write_pool(path: Path, n: int, seed: int) -> int:
    """N two-turn chat rows of 200-1,400 characters each, in one row group; the file's bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5_000)]

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choices(words, k=rng.randint(lo, hi) // 5))

    rows = [{"id": f"row-{i}", "messages": [{"role": "user", "content": text(100, 400)},
                                            {"role": "assistant", "content": text(100, 1_000)}]}
            for i in range(n)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=n)
    return path.stat().st_size


def run_probe(probe: str, env: dict[str, str], *args: str) -> list[str]:
    """What one fresh interpreter running ``probe`` printed: its peak RSS in bytes comes last."""
    done = subprocess.run([sys.executable, "-c", _PROBES[probe] + _PEAK, *args], check=False, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{probe} failed:\n{done.stderr[-3000:]}")
    return done.stdout.split()


def measure(tmp: Path, env: dict[str, str], n: int, seed: int) -> dict:
    path = tmp / f"pool-{n}.parquet"
    size = write_pool(path, n, seed)
    args = (str(path), f"pool{n}", str(n))
    printed = {probe: run_probe(probe, env, *args) for probe in _PROBES}
    import_s = float(printed["import"][0])
    mb = {probe: round(int(out[-1]) / 2**20, 1) for probe, out in printed.items()}
    return {"rows": n, "file_mb": round(size / 2**20, 1), "row_groups": 1,
            "peak_rss_mb": mb, "import_growth_mb": round(mb["import"] - mb["baseline"], 1),
            "whole_table_growth_mb": round(mb["whole_table"] - mb["baseline"], 1),
            "import_rows_per_s": round(n / import_s),
            "whole_table_over_import_growth": round((mb["whole_table"] - mb["baseline"])
                                                    / (mb["import"] - mb["baseline"]), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs=2, default=[10_000, 100_000], metavar=("SMALL", "LARGE"),
                        help="the two pool sizes (default 10000 100000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradwalk-bench-") as tmp, contextlib.ExitStack() as stack:
        _, neo4j = private_store(Path(tmp), stack)
        s = neo4j.settings
        env = {**os.environ, "GRADWALK_STATE_DIR": str(s.state_dir), "GRADWALK_NEO4J_URI": s.neo4j_uri,
               "GRADWALK_NEO4J_PASSWORD": s.neo4j_password.get_secret_value()}
        small, large = (measure(Path(tmp), env, n, args.seed) for n in args.n)
    print(json.dumps({"benchmark": "import_memory", "small": small, "large": large,
                      "growth_large_over_small": round(large["import_growth_mb"] / small["import_growth_mb"], 2),
                      "rows_large_over_small": round(large["rows"] / small["rows"], 1)}, indent=1))


if __name__ == "__main__":
    main()
