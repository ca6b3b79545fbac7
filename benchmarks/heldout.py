"""Held-out quality: fine-tune on each whole subset and score the target's test examples (issue #28).

The pool, targets and features are the planted-recall study's (benchmarks/planted.py), so a
method that finds the target's planted rows can show what they teach. Every subset is trained on
whole: ``epochs`` passes over its rows (``ceil(epochs·n/batch)`` steps), once per training seed.
Random subsets (5 seeds) serve every target of a group; the base model is the floor. Each test
example's response loss (and, for multiple-choice targets, whether its most likely option is the
right one) is kept, so a method's difference to random is a paired bootstrap over test examples
(workers/engine/compare.py): "better" only where the 95% interval excludes 0.

Resumable: each (subset, training seed) result is written as it finishes and skipped on a re-run.

    python benchmarks/heldout.py --group tuning --targets gsm8k arc_challenge --ratios 0.05
    python benchmarks/heldout.py --report
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from planted import CONFIRMATION, TUNING, PlantedExperiment, PlantedSettings
from quality import log
from quality_results import Results

from gradwalk.workers.engine.compare import paired_difference
from gradwalk.workers.engine.config import default_cache_dir

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "heldout.json"
METHODS = (("less", "less", {}), ("g2is", "g2is", {}), ("g2is-target", "g2is-target", {}))
SUBSET_SEEDS = (0, 1, 2, 3, 4)
TRAIN_SEEDS = (0, 1, 2)
EPOCHS, BATCH, LR = 3, 8, 1e-3
EVAL_MAX_LENGTH, EVAL_BATCH = 512, 16


class HeldoutExperiment(PlantedExperiment):
    def scores(self, model, tokenizer, target: str) -> dict:
        from gradwalk.workers.engine.evaluate import option_correct, response_losses

        test = self.targets[target].test
        out = {"loss": [None if np.isnan(v) else round(float(v), 5)
                        for v in response_losses(model, tokenizer, test, EVAL_MAX_LENGTH, EVAL_BATCH)]}
        if "options" in test[0]:
            out["correct"] = option_correct(model, tokenizer, test, EVAL_MAX_LENGTH, EVAL_BATCH).astype(int).tolist()
        return out

    def score_base(self, targets: Sequence[str]) -> None:
        from gradwalk.workers.engine.models import load_model

        todo = [t for t in targets if f"{t}|base" not in self.table]
        if todo:
            model, tokenizer = load_model(self.model_path, self.device)
            for target in todo:
                self.table[f"{target}|base"] = {"target": target, "method": "base", **self.scores(model, tokenizer,
                                                                                                   target)}
                self.results.save()
                log(f"heldout: {target} base model scored")

    def train(self, method: str, ratio: float, rows: np.ndarray, train_seed: int, targets: Sequence[str],
              subset_seed: int | None = None) -> None:
        from gradwalk.workers.engine.finetune import FinetuneConfig, finetune

        keys = {t: f"{t}|{method}|{ratio}|{subset_seed}|{train_seed}" for t in targets}
        todo = [t for t, k in keys.items() if k not in self.table]
        if not todo:
            return
        t0 = time.perf_counter()
        steps = math.ceil(EPOCHS * len(rows) / BATCH)
        tuned = finetune([self.pool[i] for i in np.sort(rows)], self.config,
                         FinetuneConfig(steps=steps, batch_size=BATCH, lr=LR, seed=train_seed))
        trained = time.perf_counter() - t0
        for target in todo:
            t1 = time.perf_counter()
            self.table[keys[target]] = {"target": target, "method": method, "ratio": ratio,
                                        "subset_seed": subset_seed, "train_seed": train_seed, "rows": len(rows),
                                        "steps": steps, "train_seconds": round(trained, 1),
                                        **self.scores(tuned.model, tuned.tokenizer, target),
                                        "eval_seconds": round(time.perf_counter() - t1, 1)}
            self.results.save()
            log(f"heldout: {target} {method} {ratio:.0%} seed {subset_seed}/{train_seed}: {len(rows)} rows, "
                f"{steps} steps, train {trained:.0f}s")

    def run_heldout(self, targets: Sequence[str], ratios: Sequence[float], subset_seeds: Sequence[int],
                    train_seeds: Sequence[int]) -> None:
        from gradwalk.graph.selection.registry import METHODS as REGISTRY
        from gradwalk.graph.selection.registry import SelectionInputs

        self.table = self.results.data.setdefault("heldout", {})
        self.score_base(targets)
        for ratio in ratios:
            for subset_seed in subset_seeds:
                picked = REGISTRY["random"].select(SelectionInputs(pool_size=int(self.kept.size)),
                                                   {"ratio": ratio, "seed": subset_seed})
                for train_seed in train_seeds:
                    self.train("random", ratio, self.kept[picked.indices], train_seed, targets, subset_seed)
            for target in targets:
                pool, val, table = self.variant("full")
                inputs = SelectionInputs(train_features=pool, val_features=val[target], neighbors=table)
                for display, registry, params in METHODS:
                    picked = REGISTRY[registry].select(inputs, {"ratio": ratio, **params})
                    for train_seed in train_seeds:
                        self.train(display, ratio, self.kept[picked.indices], train_seed, [target])


def report(data: dict) -> str:
    """Per target and budget: mean loss (and accuracy) of each method, and its paired difference to random."""
    rows = list(data.get("heldout", {}).values())
    lines = []
    for group, targets in (("tuning", TUNING), ("confirmation", CONFIRMATION)):
        for target in [t for t in targets if f"{t}|base" in data.get("heldout", {})]:
            base = data["heldout"][f"{target}|base"]
            for ratio in sorted({r["ratio"] for r in rows if r["target"] == target and r["method"] != "base"}):
                mine = [r for r in rows if r["target"] == target and r.get("ratio") == ratio]
                random_runs = [r for r in mine if r["method"] == "random"]
                if not random_runs:
                    continue
                metrics = [("loss", True)] + ([("correct", False)] if "correct" in base else [])
                n_test = len(base["loss"])
                lines += [(f"**{group}: {target}, {ratio:.0%} ({mine[0]['rows']} rows), {n_test} test examples; "
                           f"random: {len({r['subset_seed'] for r in random_runs})} subsets × "
                           f"{len({r['train_seed'] for r in random_runs})} training seeds**"), "",
                          "| method | runs | " + " | ".join(
                              f"{m} | {m} − random (95% CI) | verdict" for m, _ in metrics) + " |",
                          "|---|---:|" + "---:|---:|---|" * len(metrics)]
                for method in ["base", "random", *(m for m, _, _ in METHODS)]:
                    runs = [base] if method == "base" else [r for r in mine if r["method"] == method]
                    if not runs:
                        continue
                    cells = []
                    for metric, lower in metrics:
                        values = _matrix(runs, metric)
                        cell = f"{np.nanmean(values):.4f}" if metric == "loss" else f"{np.nanmean(values):.1%}"
                        if method == "random":
                            cells += [cell, "", ""]
                            continue
                        diff = paired_difference(values, _matrix(random_runs, metric), lower_is_better=lower)
                        fmt = "{:+.4f} ({:+.4f}, {:+.4f})" if metric == "loss" else "{:+.1%} ({:+.1%}, {:+.1%})"
                        cells += [cell, fmt.format(diff.mean, diff.low, diff.high), diff.verdict]
                    lines.append(f"| {method} | {len(runs)} | " + " | ".join(cells) + " |")
                lines.append("")
    return "\n".join(lines) or "no held-out results yet"


def _matrix(runs: list[dict], metric: str) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in r[metric]] for r in runs], dtype=float)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--group", choices=("tuning", "confirmation"), default="tuning")
    parser.add_argument("--targets", nargs="+", help="a part of the group's targets (default: all of them)")
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.05, 0.01])
    parser.add_argument("--subset-seeds", nargs="+", type=int, default=list(SUBSET_SEEDS), help="random subsets")
    parser.add_argument("--train-seeds", nargs="+", type=int, default=list(TRAIN_SEEDS),
                        help="fine-tunes of each subset")
    parser.add_argument("--report", action="store_true", help="only print the tables from --out")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.report:
        return print(report(json.loads(args.out.read_text())))
    group = TUNING if args.group == "tuning" else CONFIRMATION
    targets = args.targets or list(group)
    if not set(targets) <= set(group):
        raise SystemExit(f"--targets must be {args.group} targets: {', '.join(group)}")
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = PlantedSettings()
    cache_dir = default_cache_dir()
    results = Results(args.out, settings, restart=False)
    experiment = HeldoutExperiment(settings, cache_dir / "planted" / settings.key(), results, cache_dir,
                                   args.threads, args.device)
    experiment.prepare()
    experiment.run_heldout(targets, args.ratios, args.subset_seeds, args.train_seeds)
    results.save()
    print(report(results.data))


if __name__ == "__main__":
    main()
