"""Warm-up training (LESS): a LoRA adapter trained briefly on a seeded random fraction of the pool,
with a checkpoint after every epoch that keeps what the features need: the adapter, Adam's moments
and the epoch's mean learning rate.

Folder layout (``warmup.json`` is written last, so its presence marks a finished warm-up and a
re-run returns it instead of training again)::

    checkpoint-1/adapter_config.json, adapter_model.safetensors   (peft's own format)
    checkpoint-1/adam_state.safetensors   exp_avg.<param>, exp_avg_sq.<param> by canonical name
    checkpoint-1/checkpoint.json          {"epoch", "lr", "steps"}
    ...
    warmup.json                           the checkpoints in order, the settings, the counts
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradwalk.atomic import write_text
from gradwalk.device import resolve_device
from gradwalk.errors import InvalidInput, NotFound
from gradwalk.workers.engine.adam import BETA1, BETA2, EPS
from gradwalk.workers.engine.config import EngineConfig, WarmupConfig
from gradwalk.workers.engine.lora import attach_lora, lora_layers, lora_params
from gradwalk.workers.engine.models import load_model, resolve_model
from gradwalk.workers.engine.pergrad import amp_dtype, autocast, batch_losses
from gradwalk.workers.engine.tokenize import collate, encode_all

MANIFEST = "warmup.json"
ADAM_STATE = "adam_state.safetensors"


@dataclass(frozen=True)
class Checkpoint:
    path: Path  # a peft adapter folder that also holds adam_state.safetensors
    lr: float  # mean learning rate of the epoch that ended here (the weight eta_c of §4.1)

    def adam_state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(exp_avg, exp_avg_sq) by canonical parameter name."""
        from safetensors.torch import load_file

        state = load_file(self.path / ADAM_STATE)
        first = {k.removeprefix("exp_avg."): v for k, v in state.items() if k.startswith("exp_avg.")}
        second = {k.removeprefix("exp_avg_sq."): v for k, v in state.items() if k.startswith("exp_avg_sq.")}
        return first, second


def load_checkpoints(folder: Path) -> list[Checkpoint]:
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        raise NotFound(f"{folder} holds no finished warm-up ({MANIFEST} is missing)")
    entries = json.loads(manifest.read_text())["checkpoints"]
    return [Checkpoint(Path(folder) / e["path"], float(e["lr"])) for e in entries]


def warmup_indices(n_pool: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted pool rows that the warm-up trains on: a seeded sample of round(n*fraction)."""
    if n_pool < 1:
        raise InvalidInput("the pool is empty")
    count = min(n_pool, max(1, round(n_pool * fraction)))
    return np.sort(np.random.default_rng(seed).choice(n_pool, size=count, replace=False))


def lr_factor(step: int, total: int, ramp: int) -> float:
    """The linear warm-up/decay schedule at 0-based ``step`` of ``total``, as a fraction of the peak.

    Up over ``ramp`` steps, then down, one step later than transformers' linear schedule so that
    no step has lr 0: every step trains, and an epoch of a single step still has a weight η_c."""
    return (step + 1) / ramp if step < ramp else (total - step) / max(1, total - ramp)


@dataclass
class Training:
    """A fresh LoRA adapter ready to train on the examples that have a response token: the model
    (train mode), its tokenizer, the encoded examples, the adapter's named weights and AdamW."""

    model: torch.nn.Module
    tokenizer: Any
    encoded: list
    named: list
    optimizer: torch.optim.Optimizer
    device: torch.device

    def schedule(self, total: int, ramp: int) -> torch.optim.lr_scheduler.LambdaLR:
        """The linear warm-up/decay of :func:`lr_factor` over ``total`` steps."""
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, total, ramp))


def start_training(examples: Sequence[dict], config: EngineConfig, *, seed: int, dropout: float, lr: float,
                   what: str) -> Training:
    """Load ``config``'s model, encode ``examples`` (those cut to no response token cannot train),
    attach a fresh adapter seeded by ``seed`` and give it AdamW with the engine's Adam constants.
    The warm-up and the fine-tune both start here."""
    device = torch.device(resolve_device(config.device))
    base, tokenizer = load_model(resolve_model(config.model, config.cache_dir), device)
    encoded = [e for e in encode_all(tokenizer, examples, config.max_length) if e.n_response]
    if not encoded:
        raise InvalidInput(f"no {what} example has a response token left after truncation")
    torch.manual_seed(seed)  # the adapter's initial A matrices
    model = attach_lora(base, config.lora_r, config.lora_alpha, config.lora_targets, dropout)
    model.train()
    named = lora_params(lora_layers(model))
    optimizer = torch.optim.AdamW([p for _, p in named], lr=lr, betas=(BETA1, BETA2), eps=EPS, weight_decay=0.0)
    return Training(model, tokenizer, encoded, named, optimizer, device)


def warmup(examples: Sequence[dict], out_dir: Path, config: EngineConfig, warm: WarmupConfig | None = None,
           progress: Callable[[int, int], None] | None = None) -> list[Checkpoint]:
    """Train a fresh LoRA adapter on `examples` (already the sampled fraction) for `warm.epochs`
    epochs and save one checkpoint per epoch under `out_dir`; returns the checkpoints."""
    out_dir = Path(out_dir)
    warm = warm or WarmupConfig()
    inputs = _fingerprint(examples, config, warm)
    if (out_dir / MANIFEST).is_file():
        done = json.loads((out_dir / MANIFEST).read_text()).get("inputs", inputs)  # older folders lack it
        if done != inputs:
            raise InvalidInput(f"{out_dir} holds a warm-up of other examples or settings; "
                               "give this one its own folder (or delete that one to train again)")
        return load_checkpoints(out_dir)
    training = start_training(examples, config, seed=warm.seed, dropout=warm.lora_dropout, lr=warm.lr,
                              what="warm-up")
    model, tokenizer, encoded, named, optimizer, device = (
        training.model, training.tokenizer, training.encoded, training.named, training.optimizer, training.device)
    steps_per_epoch = math.ceil(len(encoded) / warm.examples_per_step)
    total = steps_per_epoch * warm.epochs
    scheduler = training.schedule(total, math.ceil(total * warm.warmup_ratio))
    amp = amp_dtype(device) if amp_dtype(device) == torch.bfloat16 else None
    order = torch.Generator().manual_seed(warm.seed)
    pad = tokenizer.pad_token_id
    checkpoints = []
    for epoch in range(1, warm.epochs + 1):
        lrs = []
        perm = torch.randperm(len(encoded), generator=order).tolist()
        for step in range(steps_per_epoch):
            chunk = sorted(perm[step * warm.examples_per_step:(step + 1) * warm.examples_per_step],
                           key=lambda i: len(encoded[i].input_ids))
            optimizer.zero_grad(set_to_none=True)
            for start in range(0, len(chunk), config.batch_size):
                micro = [encoded[i] for i in chunk[start:start + config.batch_size]]
                batch = {k: v.to(device) for k, v in collate(micro, pad).items()}
                with autocast(device, amp):
                    loss = batch_losses(model, batch, response_logits_only=True).sum() / len(chunk)
                loss.backward()
            lrs.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            if progress:
                progress((epoch - 1) * steps_per_epoch + step + 1, total)
        checkpoints.append(_save_checkpoint(out_dir / f"checkpoint-{epoch}", model, optimizer, named,
                                            epoch, float(np.mean(lrs)), len(lrs)))
    _write_json(out_dir / MANIFEST, {
        "checkpoints": [{"path": c.path.name, "lr": c.lr} for c in checkpoints],
        "n_examples": len(examples), "n_trained": len(encoded), "steps_per_epoch": steps_per_epoch,
        "warmup": asdict(warm),
        "lora": {"r": config.lora_r, "alpha": config.lora_alpha, "targets": list(config.lora_targets)},
        "max_length": config.max_length, "device": str(device), "inputs": inputs,
    })
    return checkpoints


def _fingerprint(examples: Sequence[dict], config: EngineConfig, warm: WarmupConfig) -> str:
    """A digest of what a warm-up trains on and how, so a finished folder is only reused for the same."""
    what = {"examples": list(examples), "warmup": asdict(warm), "model": str(config.model),
            "lora": [config.lora_r, config.lora_alpha, list(config.lora_targets)], "max_length": config.max_length}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _save_checkpoint(folder: Path, model, optimizer, named, epoch: int, lr: float, steps: int) -> Checkpoint:
    from safetensors.torch import save_file

    model.save_pretrained(folder)
    state = {}
    for name, param in named:
        moments = optimizer.state[param]
        state[f"exp_avg.{name}"] = moments["exp_avg"].detach().float().cpu().contiguous()
        state[f"exp_avg_sq.{name}"] = moments["exp_avg_sq"].detach().float().cpu().contiguous()
    save_file(state, folder / ADAM_STATE)
    _write_json(folder / "checkpoint.json", {"epoch": epoch, "lr": lr, "steps": steps})
    return Checkpoint(folder, lr)


def _write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2) + "\n")
