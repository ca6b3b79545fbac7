"""Gradient features of examples at the warm-up checkpoints (docs/architecture.md §4.1).

For every batch and checkpoint c: per-example LoRA gradients (one backward pass for the batch),
for training examples turned into Adam's update direction with c's moments, projected to D dims
and L2-normalised into x_c. An example's feature is the concatenation over c of
sqrt(eta_c / sum eta) * x_c, renormalised, so a dot product of two features is the
learning-rate-weighted cosine that LESS sums. Examples whose responses were truncated away have no
loss and get an all-zero row (counted in ``stats["n_empty"]``).

Memory is bounded by one batch (its activations and its [batch, P] gradients), never by the
number of examples: examples are featurised in length-sorted batches and written out as they come.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from gradwalk.device import resolve_device
from gradwalk.errors import InvalidInput
from gradwalk.workers.engine.adam import adam_direction
from gradwalk.workers.engine.config import EngineConfig
from gradwalk.workers.engine.lora import (
    flatten,
    load_lora,
    lora_layers,
    n_params,
    read_adapter,
    set_weights,
)
from gradwalk.workers.engine.models import load_model, resolve_model
from gradwalk.workers.engine.pergrad import amp_dtype, per_example_grads
from gradwalk.workers.engine.projection import Projection
from gradwalk.workers.engine.timing import StageTimes
from gradwalk.workers.engine.tokenize import collate, encode_all
from gradwalk.workers.engine.warmup import Checkpoint

Mode = Literal["train", "validation"]
Progress = Callable[[int, int], None]


@dataclass
class FeatureResult:
    rows: np.ndarray  # [N, len(checkpoints) * proj_dim] float32, unit rows (zero for empty examples)
    stats: dict


class Featurizer:
    """The model, adapters, Adam moments and projection, loaded once and used for many example
    lists (a worker process keeps one and featurises shard after shard)."""

    def __init__(self, config: EngineConfig, checkpoints: Sequence[Checkpoint]) -> None:
        if not checkpoints:
            raise InvalidInput("at least one warm-up checkpoint is needed")
        if any(c.lr <= 0 for c in checkpoints):
            raise InvalidInput("every checkpoint needs a positive mean learning rate")
        self.config = config
        self.checkpoints = list(checkpoints)
        self.device = torch.device(resolve_device(config.device))
        self.model_path = resolve_model(config.model, config.cache_dir)
        base, self.tokenizer = load_model(self.model_path, self.device)
        self.model = load_lora(base, self.checkpoints[0].path)
        self.layers = lora_layers(self.model)
        self.n_params = n_params(self.layers)
        self.weights = [{k: v.to(self.device) for k, v in read_adapter(c.path).items()} for c in self.checkpoints]
        self._moments: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        total = sum(c.lr for c in self.checkpoints)
        self.coefs = [(c.lr / total) ** 0.5 for c in self.checkpoints]
        self.projection = Projection(self.n_params, config.proj_dim, kind=config.proj_kind, nnz=config.proj_nnz,
                                     seed=config.proj_seed, device=self.device)
        self.amp = amp_dtype(self.device)

    @property
    def dim(self) -> int:
        return len(self.checkpoints) * self.config.proj_dim

    def describe(self) -> dict:
        """What a feature run records: model, LoRA, projection, checkpoints and their weights."""
        lora = self.model.peft_config[self.model.active_adapter]
        return {
            "model": str(self.model_path),
            "lora": {"r": lora.r, "alpha": lora.lora_alpha, "targets": sorted(lora.target_modules),
                     "n_params": self.n_params},
            "max_length": self.config.max_length,
            "projection": self.projection.describe(),
            "checkpoints": [{"path": str(c.path), "lr": c.lr} for c in self.checkpoints],
            "dim": self.dim,
        }

    def moments(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each checkpoint's Adam moments as flat vectors in gradient order (read on first use)."""
        if self._moments is None:
            self._moments = []
            for c in self.checkpoints:
                first, second = c.adam_state()
                self._moments.append((flatten(self.layers, first, self.device), flatten(self.layers, second, self.device)))
        return self._moments

    def run(self, examples: Sequence[dict], mode: Mode = "train", progress: Progress | None = None) -> FeatureResult:
        rows = np.zeros((len(examples), self.dim), dtype=np.float32)
        stats: dict = {}
        for index, block in self.stream(examples, mode, progress, stats):
            rows[index] = block
        return FeatureResult(rows, stats)

    def stream(self, examples: Sequence[dict], mode: Mode = "train", progress: Progress | None = None,
               stats: dict | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row indices into `examples`, their float32 feature rows) batch by batch; `stats`
        is filled in when the stream is exhausted."""
        if mode not in ("train", "validation"):
            raise InvalidInput(f"mode must be 'train' or 'validation', not {mode!r}")
        started = time.perf_counter()
        times = StageTimes(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        with times.stage("tokenize"):
            encoded = encode_all(self.tokenizer, examples, self.config.max_length)
        moments = self.moments() if mode == "train" else None
        lengths = np.array([len(e.input_ids) for e in encoded])
        order = np.argsort(-lengths, kind="stable")  # longest first: a batch too big fails at once
        self.model.eval()
        done = 0
        for start in range(0, len(order), self.config.batch_size):
            index = order[start:start + self.config.batch_size]
            batch = {k: v.to(self.device) for k, v in collate([encoded[i] for i in index],
                                                               self.tokenizer.pad_token_id).items()}
            parts = []
            for c, weights in enumerate(self.weights):
                set_weights(self.layers, weights)
                grads = per_example_grads(self.model, self.layers, batch, amp=self.amp, times=times)
                if moments is not None:
                    with times.stage("adam"):
                        grads = adam_direction(grads, *moments[c])
                with times.stage("projection"):
                    parts.append(F.normalize(self.projection(grads), dim=1) * self.coefs[c])
            block = F.normalize(torch.cat(parts, 1), dim=1)
            empty = torch.tensor([encoded[i].n_response == 0 for i in index], device=self.device)
            block[empty] = 0.0
            done += len(index)
            if progress:
                progress(done, len(encoded))
            yield index, block.cpu().numpy()
        if stats is not None:
            stats.update(self._stats(mode, encoded, lengths, times, time.perf_counter() - started))

    def _stats(self, mode, encoded, lengths, times, seconds) -> dict:
        n = len(encoded)
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:  # the process's peak resident memory, model included (ru_maxrss is in KiB on Linux)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {
            "mode": mode, "n_examples": n,
            "n_truncated": sum(e.truncated for e in encoded),
            "n_empty": sum(e.n_response == 0 for e in encoded),
            "tokens_mean": float(lengths.mean()) if n else 0.0, "tokens_max": int(lengths.max()) if n else 0,
            "device": str(self.device), "autocast": str(self.amp).removeprefix("torch.") if self.amp else "off",
            "seconds": round(seconds, 3), "examples_per_s": round(n / seconds, 3) if seconds else 0.0,
            "stage_seconds": times.as_dict(), "peak_memory_bytes": int(peak),
            **self.describe(),
        }


def featurize(examples: Sequence[dict], checkpoints: Sequence[Checkpoint], config: EngineConfig,
              mode: Mode = "train", progress: Progress | None = None) -> FeatureResult:
    """Unit gradient features of `examples` (train: Adam-adjusted; validation: plain gradients)."""
    return Featurizer(config, checkpoints).run(examples, mode, progress)
