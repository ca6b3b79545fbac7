"""What evaluating a version costs (issue #29 item 5): the units of ``gradwalk eval`` timed one by one.

An evaluation scores the base model, fine-tunes on the version and on ``--random-seeds`` random
subsets of the same size, and scores each fine-tune on the target's test part
(workers/tasks/evaluate.py). This runs the same engine calls with the device's evaluation defaults
(on a CPU: 2 epochs, no greedy decoding) on a ``--rows``-row "version" (the first rows of the
demo's pool) and gsm8k test examples, with the demo's model (SmolLM2-135M-Instruct from its pinned
package), and prints one JSON object: seconds per unit, the total, seconds per test example
scored and per row·epoch trained, and the projection of the total to ``--project-to`` test
examples. Scoring grows with the test part and fine-tuning does not, so the projection is
``scorings × examples × s/example + fine-tunes``; with 5 scorings it shows the floor that
scoring alone sets.

    nice -n 19 python benchmarks/evaluation_cost.py --threads 1          # 40 test examples
    python benchmarks/evaluation_cost.py --test-size 200                  # the issue's size
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from gradwalk.platform.demo.sources import pool_records, target_records
from gradwalk.workers.engine.config import EngineConfig, default_cache_dir
from gradwalk.workers.engine.evaluation import EvaluationConfig, score, score_base
from gradwalk.workers.engine.finetune import finetune

GOAL_S = 600  # the goal: an evaluation in 10 minutes on 2 CPU cores at 200 test examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=30, help="rows of the version (and of each random subset)")
    parser.add_argument("--pool", type=int, default=600, help="pool rows the random subsets are drawn from")
    parser.add_argument("--random-seeds", type=int, default=3)
    parser.add_argument("--test-size", type=int, default=40, help="gsm8k test examples scored")
    parser.add_argument("--project-to", type=int, default=200, help="test examples the total is projected to")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = EngineConfig.for_device(args.device, cache_dir=args.cache_dir)
    ev = EvaluationConfig.for_device(config.device, random_seeds=args.random_seeds)
    pool = pool_records(args.pool, seed=0, cache_dir=args.cache_dir)
    test = target_records("gsm8k", args.cache_dir, val_size=0, test_size=args.test_size).test
    subsets = {"version": pool[:args.rows]}
    for seed in range(ev.random_seeds):
        subsets[f"random-{seed}"] = random.Random(seed).sample(pool, args.rows)

    units: dict[str, float] = {}
    started = time.perf_counter()
    score_base(test, config, ev)
    units["score base"] = time.perf_counter() - started
    for name, rows in subsets.items():
        t0 = time.perf_counter()
        tuned = finetune(rows, config, ev.finetune_config(len(rows), ev.seed))
        t1 = time.perf_counter()
        score(tuned.model, tuned.tokenizer, test, config, ev)
        units[f"fine-tune {name}"], units[f"score {name}"] = t1 - t0, time.perf_counter() - t1
    total = time.perf_counter() - started

    scoring = sum(s for k, s in units.items() if k.startswith("score"))
    training = total - scoring
    scorings = 1 + len(subsets)
    per_example = scoring / (scorings * len(test))
    projected = scorings * args.project_to * per_example + training
    print(json.dumps({
        "benchmark": "evaluation_cost", "device": config.device, "torch_threads": torch.get_num_threads(),
        "rows": args.rows, "epochs": ev.epochs, "random_seeds": ev.random_seeds, "test_examples": len(test),
        "steps_per_fine_tune": ev.finetune_config(args.rows, ev.seed).steps, "max_length": config.max_length,
        "units_s": {k: round(v, 1) for k, v in units.items()}, "total_s": round(total, 1),
        "s_per_test_example_scored": round(per_example, 3),
        "s_per_row_epoch_trained": round(training / (len(subsets) * args.rows * ev.epochs), 3),
        f"projected_s_at_{args.project_to}_test_examples": round(projected, 1),
        f"projected_scoring_s_at_{args.project_to}": round(scorings * args.project_to * per_example, 1),
        "goal_s": GOAL_S,
    }, indent=1))


if __name__ == "__main__":
    main()
