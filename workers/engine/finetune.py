"""A fixed-budget LoRA fine-tune: how a selected subset is judged by what it teaches.

Every subset gets the same number of optimizer steps of the same batch size, whatever its size,
from the same seeded fresh adapter, so subsets differ only in what they contain, never in how much
compute they get (docs/quality.md). Batches are drawn by cycling through seeded permutations of
the examples: the same examples in the same order always train the same weights. The schedule is
the warm-up's (:func:`.warmup.lr_factor`), and so is the start (:func:`.warmup.start_training`); the loss is the engine's mean response-token loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gradwalk.errors import InvalidInput
from gradwalk.workers.engine.config import EngineConfig
from gradwalk.workers.engine.pergrad import batch_losses
from gradwalk.workers.engine.tokenize import collate
from gradwalk.workers.engine.warmup import start_training


@dataclass(frozen=True)
class FinetuneConfig:
    """The budget: ``steps`` AdamW steps of ``batch_size`` examples, peak ``lr`` reached after
    ``warmup_ratio`` of the steps, then linear decay; ``seed`` fixes the adapter and the batches."""

    steps: int = 32
    batch_size: int = 8
    lr: float = 2e-4
    warmup_ratio: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 <= self.warmup_ratio <= 1:
            raise InvalidInput("fine-tune: steps >= 1, batch_size >= 1, lr > 0 and 0 <= warmup_ratio <= 1")


@dataclass
class Finetuned:
    """The fine-tuned model (eval mode), its tokenizer, how many examples had a response token
    within ``max_length`` (the others cannot train), and the loss of every step."""

    model: torch.nn.Module
    tokenizer: object
    n_train: int
    losses: list[float]


def finetune(examples: Sequence[dict], config: EngineConfig, ft: FinetuneConfig | None = None,
             progress: Callable[[int, int], None] | None = None) -> Finetuned:
    """Fine-tune a fresh LoRA adapter (``config``'s model, rank, targets and ``max_length``; no
    dropout) on ``examples`` for exactly ``ft.steps`` steps. ``progress(done, steps)`` is called
    after each step; it may raise to stop the fine-tune there (a cancelled evaluation)."""
    ft = ft or FinetuneConfig()
    training = start_training(examples, config, seed=ft.seed, dropout=0.0, lr=ft.lr, what="fine-tune")
    model, tokenizer, encoded, optimizer, device = (
        training.model, training.tokenizer, training.encoded, training.optimizer, training.device)
    scheduler = training.schedule(ft.steps, max(1, math.ceil(ft.steps * ft.warmup_ratio)))
    generator = torch.Generator().manual_seed(ft.seed)
    queue: list[int] = []
    losses = []
    for step in range(ft.steps):
        chunk: list[int] = []
        while len(chunk) < ft.batch_size:
            if not queue:
                queue = torch.randperm(len(encoded), generator=generator).tolist()
            chunk.append(queue.pop())
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in chunk], tokenizer.pad_token_id).items()}
        loss = batch_losses(model, batch, response_logits_only=True).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if progress:
            progress(step + 1, ft.steps)
    return Finetuned(model.eval(), tokenizer, len(encoded), losses)
