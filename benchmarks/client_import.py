"""How long `from gradwalk import Client` takes, in fresh interpreters: the client is what a user's
laptop installs, and its import should stay under 0.3 s (issue 17). Prints JSON.

Each run is a new process (`python -X importtime` would add its own overhead); the figure is the
median of the runs' in-process import times, beside the bare interpreter's start for scale.

    .venv/bin/python benchmarks/client_import.py --runs 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

BUDGET_S = 0.3
PROBE = ("import time; t = time.perf_counter(); from gradwalk import Client; Client; "
         "print(time.perf_counter() - t)")


def import_seconds(runs: int) -> list[float]:
    return [float(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout)
            for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters to time (default 15)")
    args = parser.parse_args()
    times = import_seconds(args.runs)
    median = statistics.median(times)
    print(json.dumps({"benchmark": "client_import", "runs": args.runs, "median_s": round(median, 4),
                      "min_s": round(min(times), 4), "max_s": round(max(times), 4), "budget_s": BUDGET_S,
                      "ratio_to_budget": round(median / BUDGET_S, 3)}, indent=1))


if __name__ == "__main__":
    main()
