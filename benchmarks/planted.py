"""Planted recall: does a method find the target's own examples when they are in the pool? (issue #28)

For every target, m of its own examples (from its held-out side, disjoint from the validation
rows selection sees) are planted in a pool that otherwise holds none of its task family. Each
method then selects 1% and 5% of the pool for that target, and we count the planted rows it
took. Random's expectation is m·floor(N·r)/N. No fine-tune is needed, so it is cheap enough for
many targets and many variants; the held-out fine-tune study is benchmarks/quality.py.

Like science: settings and variants are chosen on the *tuning* targets only (`--group tuning`
runs every variant); the *confirmation* targets (`--group confirmation`) run only the methods
listed in CONFIRMED, which were fixed before any confirmation figure was looked at.

The pool, the features and their settings are the demo's (platform/demo.py: 600 rows, LoRA r=8
on q/v, two warm-up epochs on 5% of the base pool, 1,024 dims per checkpoint, max_length 320,
24 validation rows); planted rows are featurised after the warm-up, as `features extend` would.
All targets' planted rows sit in one pool: another target's rows are distractors of a foreign family.

    python benchmarks/planted.py --group tuning          # every variant on the tuning targets
    python benchmarks/planted.py --group confirmation    # the fixed methods on the other targets
    python benchmarks/planted.py --report                # tables from benchmarks/results/planted.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from planted_report import RANDOM, plot, report
from quality import Experiment, Settings, cached_array, log
from quality_results import Results

from gradwalk.workers.engine.config import default_cache_dir

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "planted.json"
DEFAULT_PLOT = REPO / "docs" / "planted-recall.png"

# One of each kind (math, multiple choice, code, open QA) in each group; all their families leave the pool.
TUNING = ("gsm8k", "arc_challenge", "mt_mbpp_python", "jeopardy")
CONFIRMATION = ("minerva_math_algebra", "csqa", "codex_humaneval", "naturalqs_open")

# (display name, registry name, params, feature variant). Stage by stage, one change at a time.
Variant = tuple[str, str, dict, str]
BASELINES: tuple[Variant, ...] = (
    ("embedding", "embedding", {}, "full"),
    ("less", "less", {}, "full"),
    ("g2is", "g2is", {}, "full"),
)
STAGES: tuple[Variant, ...] = (
    ("g2is fallback=paper", "g2is", {"fallback": "paper"}, "full"),
    ("g2is-no-graph", "g2is-no-graph", {}, "full"),
    # components kept: the fewest that explain `variance` of the validation rows
    ("g2is variance=0.01 (1 component)", "g2is", {"variance": 0.01}, "full"),
    ("g2is variance=0.8", "g2is", {"variance": 0.8}, "full"),
    ("g2is variance=0.95", "g2is", {"variance": 0.95}, "full"),
    # budgets by explained variance vs equal
    ("g2is equal budgets", "g2is", {"budgets": "equal"}, "full"),
    # mean-centring: the components of how validation rows differ vs of what they share
    ("g2is uncentred", "g2is-target", {"step": "similarity"}, "full"),
    # the step rule: most similar qualifying neighbour vs most relevant to the target
    ("g2is relevance step", "g2is-target", {"centre": True}, "full"),
    ("g2is delta=0.5", "g2is", {"delta": 0.5}, "full"),
    ("g2is delta=0.95", "g2is", {"delta": 0.95}, "full"),
    # both: the new method, and its own settings
    ("g2is-target", "g2is-target", {}, "full"),
    ("g2is-target variance=0.8", "g2is-target", {"variance": 0.8}, "full"),
    ("g2is-target variance=0.01 (1 component)", "g2is-target", {"variance": 0.01}, "full"),
    ("g2is-target delta=0.5", "g2is-target", {"delta": 0.5}, "full"),
    ("g2is-target delta=0.95", "g2is-target", {"delta": 0.95}, "full"),
    # hypotheses tried after the method was fixed (benchmark-only variants, see _walk_variant)
    ("g2is-target budgets by relevance", "g2is-target", {"budgets": "relevance"}, "full"),
    ("g2is-target drop unserved components", "g2is-target", {"drop": "unserved"}, "full"),
    ("g2is-target on LESS's 1.5·B shortlist", "g2is-target", {"shortlist": 1.5}, "full"),
    ("g2is-target on LESS's 3·B shortlist", "g2is-target", {"shortlist": 3.0}, "full"),
    # feature settings LESS shares: one checkpoint, fewer dims (a random projection of ours)
    ("less, checkpoint 1 only", "less", {}, "checkpoint-1"),
    ("less, checkpoint 2 only", "less", {}, "checkpoint-2"),
    ("less, 256 dims", "less", {}, "dims-256"),
    ("g2is, checkpoint 2 only", "g2is", {}, "checkpoint-2"),
    ("g2is, 256 dims", "g2is", {}, "dims-256"),
    ("g2is-target, checkpoint 2 only", "g2is-target", {}, "checkpoint-2"),
    ("g2is-target, 256 dims", "g2is-target", {}, "dims-256"),
)
# Fixed from the tuning figures before the confirmation targets were run (docs/quality.md).
CONFIRMED: tuple[Variant, ...] = (*BASELINES, ("g2is-target", "g2is-target", {}, "full"))
RANDOM_SEEDS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class PlantedSettings(Settings):
    """The demo's pool and feature settings; ``planted`` of each target's own examples join the pool."""

    pool_size: int = 600
    pool_max_tokens: int = 110
    pool_max_answer_tokens: int = 60
    pool_chat_share: float = 0.25
    targets: tuple[str, ...] = (*TUNING, *CONFIRMATION)
    val_size: int = 24
    test_size: int = 200
    max_length: int = 320
    val_max_length: int = 320
    planted: int = 30
    ratios: tuple[float, ...] = (0.01, 0.05)


class PlantedExperiment(Experiment):
    """The quality experiment's data, warm-up, features and graph stages, with planted rows."""

    def load_data(self) -> None:
        from gradwalk.platform.demo import sources

        s = self.s
        t = time.perf_counter()
        self.base = sources.pool_records(s.pool_size, s.pool_seed, self.config.cache_dir, exclude=s.targets,
                                         chat_share=s.pool_chat_share, max_tokens=s.pool_max_tokens,
                                         max_answer_tokens=s.pool_max_answer_tokens)
        self.targets, self.planted_records = {}, {}
        for name in s.targets:
            split = sources.target_records(name, self.config.cache_dir, val_size=s.val_size, test_size=None,
                                           seed=s.split_seed)
            planted, test = _planted_and_test(split.test, s.planted, s.test_size, name)
            self.planted_records[name] = planted
            self.targets[name] = dataclasses.replace(split, test=test)
        self.pool = self.base  # the warm-up sees the base pool only, as before `features extend`
        self.stage("data", {"seconds": round(time.perf_counter() - t, 2)})
        log(f"data: base pool {len(self.base):,}, {s.planted} planted per target, targets {', '.join(s.targets)}")

    def plant(self) -> None:
        """Append every target's planted rows to the pool; remember where each target's rows are."""
        self.pool = list(self.base)
        self.planted_rows = {}
        for name, records in self.planted_records.items():
            self.planted_rows[name] = np.arange(len(self.pool), len(self.pool) + len(records))
            self.pool += [{**r, "source": f"planted/{name}"} for r in records]

    def prepare(self) -> None:
        self.load_data()
        self.warmup()
        self.plant()
        self.features()
        self.embeddings()
        self.graphs()
        self.variants: dict[str, tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]] = {
            "full": (self.pool_features[self.kept], {n: v for n, v in self.val_features.items()},
                     self.neighbors["gradient"])}

    def variant(self, name: str) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Pool features, validation features and kNN table under a feature variant (cached kNN)."""
        if name not in self.variants:
            from gradwalk.graph.knn.topk import knn_graph

            transform = _feature_transform(name, self.pool_features.shape[1], self.s.warmup_epochs,
                                           self.results.data["stages"]["warmup"]["lrs"])
            pool = transform(self.pool_features[self.kept])
            val = {n: transform(v) for n, v in self.val_features.items()}
            table, _ = cached_array(self.work / "graphs" / f"gradient-k{self.s.k}-{name}.npy",
                                    lambda: (knn_graph(pool, self.s.k, self.s.tau, device=self.device)[0], {}))
            self.variants[name] = (pool, val, table)
        return self.variants[name]

    def recall(self, target: str, display: str, registry: str, params: dict, features: str, ratio: float) -> dict:
        from gradwalk.graph.selection.registry import METHODS as REGISTRY
        from gradwalk.graph.selection.registry import SelectionInputs

        pool, val, table = self.variant(features)
        inputs = SelectionInputs(train_features=pool, val_features=val[target], neighbors=table,
                                 train_embeddings=self.pool_embeddings[self.kept],
                                 val_embeddings=self.val_embeddings[target], pool_size=int(self.kept.size))
        t = time.perf_counter()
        if VARIANT_KEYS & params.keys():
            selection = _walk_variant(inputs, registry, params, ratio)
        else:
            selection = REGISTRY[registry].select(inputs, {"ratio": ratio, **params})
        return self.count(target, self.kept[selection.indices], time.perf_counter() - t,
                          components=len(selection.components), shortfall=selection.shortfall)

    def count(self, target: str, rows: np.ndarray, seconds: float, **extra) -> dict:
        planted = self.planted_rows[target]
        hit = np.isin(planted, rows)
        return {"target": target, "selected": int(rows.size), "found": int(hit.sum()),
                "planted": int(np.isin(planted, self.kept).sum()), "hits": hit.astype(int).tolist(),
                "other_planted": int(np.isin(rows, np.concatenate(list(self.planted_rows.values()))).sum()
                                     - hit.sum()),
                "seconds": round(seconds, 3), **extra}

    def diagnose(self, target: str) -> dict:
        """Where the target's own rows sit: in LESS's order, and along each component (centred or not)."""
        from gradwalk.graph.selection.pca import core_components
        from gradwalk.graph.selection.walk import relevance_to

        pool, val, _ = self.variant("full")
        planted = np.flatnonzero(np.isin(self.kept, self.planted_rows[target]))

        def ranks(scores: np.ndarray) -> list[int]:
            order = np.argsort(-scores, kind="stable")
            return sorted(int(r) for r in np.flatnonzero(np.isin(order, planted)))

        out = {"less_ranks": ranks(relevance_to(pool, val[target]))}
        for centre in (True, False):
            components, weights = core_components(val[target], 0.5, centre=centre)
            out["centred" if centre else "uncentred"] = [
                {"weight": round(float(w), 3), "planted_ranks": ranks(pool @ k)[:10],
                 "mean_cos_to_target": round(float(k @ val[target].mean(axis=0)), 3)}
                for k, w in zip(components, weights, strict=True)]
        return out

    def run_group(self, group: str, variants: Sequence[Variant]) -> None:
        targets = TUNING if group == "tuning" else CONFIRMATION
        table = self.results.data.setdefault("planted", {})
        for target in targets:
            if group == "tuning":
                self.results.data.setdefault("diagnostics", {})[target] = self.diagnose(target)
            for ratio in self.s.ratios:
                budget = int(np.floor(self.kept.size * ratio))
                kept_planted = int(np.isin(self.planted_rows[target], self.kept).sum())
                table[f"{target}|expected random|{ratio}"] = {
                    "target": target, "group": group, "method": "expected random", "ratio": ratio,
                    "selected": budget, "planted": kept_planted,
                    "found": round(kept_planted * budget / self.kept.size, 3)}
                for seed in RANDOM_SEEDS:
                    row = self.recall(target, "random", "random", {"seed": seed}, "full", ratio)
                    table[f"{target}|random seed {seed}|{ratio}"] = {"group": group, "method": f"random seed {seed}",
                                                                     "ratio": ratio, **row}
                for display, registry, params, features in variants:
                    row = self.recall(target, display, registry, params, features, ratio)
                    table[f"{target}|{display}|{ratio}"] = {"group": group, "method": display, "ratio": ratio,
                                                            "registry": registry, "params": params,
                                                            "features": features, **row}
                    log(f"{group}: {target} {ratio:.0%} {display}: {row['found']}/{row['planted']}")
                self.results.save()


def _planted_and_test(rest: list[dict], planted: int, test_size: int, name: str) -> tuple[list[dict], list[dict]]:
    """The first ``planted`` rows of the held-out side, then up to ``test_size`` rows whose question is
    none of theirs (HumanEval has 164 problems in all)."""
    if len(rest) < 2 * planted:
        raise SystemExit(f"{name}: {len(rest)} held-out examples, too few to plant {planted}")
    chosen = rest[:planted]
    questions = {r["messages"][0]["content"] for r in chosen}
    return chosen, [r for r in rest[planted:] if r["messages"][0]["content"] not in questions][:test_size]


def _feature_transform(name: str, dim: int, checkpoints: int, lrs: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """Rows as if featurised with one checkpoint, or with fewer dims per checkpoint (a seeded
    Gaussian projection of each checkpoint's part, which keeps their √(η_c/Ση) weights)."""
    part = dim // checkpoints

    def unit(rows: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return (rows / np.where(norms > 0, norms, 1)).astype(np.float32)

    if name.startswith("checkpoint-"):
        c = int(name.rpartition("-")[2]) - 1
        return lambda rows: unit(rows[:, c * part:(c + 1) * part])
    if name.startswith("dims-"):
        size = int(name.rpartition("-")[2])
        projection = np.random.default_rng(0).standard_normal((part, size)) / np.sqrt(size)
        return lambda rows: unit(np.concatenate([rows[:, c * part:(c + 1) * part] @ projection
                                                 for c in range(checkpoints)], axis=1))
    raise ValueError(f"unknown feature variant {name!r} (lrs {lrs})")


VARIANT_KEYS = {"budgets", "drop", "shortlist"}


def _walk_variant(inputs, registry: str, params: dict, ratio: float):
    """The G2IS or g2is-target walk with one stage changed, for the stage study only (not product methods).

    ``budgets="equal"`` gives every component the same weight; ``budgets="relevance"`` weighs each
    by its cosine to the target's mean gradient (clipped at 0); ``drop="unserved"`` drops each
    component after the first whose best pool row lies outside LESS's own top B; ``shortlist=c``
    walks only the c·B rows most relevant to the target (their kNN lists cut to the shortlist).
    """
    from gradwalk.graph.selection.common import target_size
    from gradwalk.graph.selection.pca import core_components
    from gradwalk.graph.selection.walk import gradient_walk, relevance_to

    steered = registry == "g2is-target"
    features, neighbors, val = inputs.train_features, inputs.neighbors, inputs.val_features
    components, weights = core_components(val, params.get("variance", 0.5), centre=not steered)
    relevance = relevance_to(features, val)
    budget = target_size(features.shape[0], ratio)
    if params.get("budgets") == "equal":
        weights = np.ones_like(weights)
    if params.get("budgets") == "relevance":
        mean = val.mean(axis=0)
        weights = weights * np.clip(components @ (mean / np.linalg.norm(mean)), 0.0, None)
    if params.get("drop") == "unserved":
        cut = np.sort(relevance)[::-1][budget - 1]
        served = np.array([i == 0 or relevance[np.argmax(features @ k)] >= cut for i, k in enumerate(components)])
        weights = np.where(served, weights, 0.0)
    keep = weights > 0
    components, weights = components[keep], weights[keep] / weights[keep].sum()
    rows = np.arange(features.shape[0])
    if "shortlist" in params:
        rows = np.sort(np.argsort(-relevance, kind="stable")[:round(params["shortlist"] * budget)])
        position = np.full(features.shape[0], -1)
        position[rows] = np.arange(rows.size)
        cut_lists = position[np.where(neighbors[rows] >= 0, neighbors[rows], rows[:, None])]
        cut_lists[neighbors[rows] < 0] = -1
        neighbors = np.array([np.concatenate([n[n >= 0], n[n < 0]]) for n in cut_lists])
        features, relevance, ratio = features[rows], relevance[rows], budget / rows.size
    walked = gradient_walk(features, components, weights, neighbors, ratio, params.get("delta", 0.8),
                           relevance=relevance if steered else None)
    return dataclasses.replace(walked, indices=rows[walked.indices])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--group", choices=("tuning", "confirmation"), action="append",
                        help="targets to run: tuning runs every stage variant, confirmation only CONFIRMED")
    parser.add_argument("--report", action="store_true", help="only print the tables from --out")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--work-dir", type=Path, help="cache (default <cache>/planted/<settings key>)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.report:
        data = json.loads(args.out.read_text())
        plot(data, DEFAULT_PLOT, [RANDOM, *(display for display, *_ in CONFIRMED)])
        return print(report(data))
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = PlantedSettings()
    cache_dir = default_cache_dir()
    work = args.work_dir or cache_dir / "planted" / settings.key()
    results = Results(args.out, settings, restart=False)
    experiment = PlantedExperiment(settings, work, results, cache_dir, args.threads, args.device)
    experiment.prepare()
    for group in args.group or ("tuning",):
        experiment.run_group(group, (*BASELINES, *STAGES) if group == "tuning" else CONFIRMED)
    results.save()
    print(report(results.data))
    plot(results.data, DEFAULT_PLOT, [RANDOM, *(display for display, *_ in CONFIRMED)])
    log(f"plot: {DEFAULT_PLOT}")


if __name__ == "__main__":
    main()
