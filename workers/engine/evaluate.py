"""Scoring a model on held-out examples: how a fine-tune on a selected subset is judged.

- :func:`response_losses`: each example's mean response-token loss, the quantity the features
  differentiate (docs/architecture.md §4.1), so "lower after fine-tuning on S" is what selection
  promises;
- :func:`option_accuracy`: multiple choice by option likelihood, each option scored as the
  assistant's answer, the lowest loss chosen (no generation, no answer parsing);
- :func:`greedy_answers`: greedy completions, for targets judged by their text (GSM8K's number).

An example is a chat record ending in the assistant's answer; its prompt is every message before
that answer. The model is used as given (eval mode, its own device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from gradwalk.workers.engine.pergrad import batch_losses
from gradwalk.workers.engine.tokenize import collate, encode_all

# Called after each batch (or greedy answer) with (done, total); it may raise to stop the scoring.
Progress = Callable[[int, int], None]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def response_losses(model, tokenizer, examples: Sequence[dict], max_length: int, batch_size: int = 16,
                    progress: Progress | None = None) -> np.ndarray:
    """Each example's mean response-token loss, in input order; NaN where the response lies wholly
    beyond ``max_length``. Batches group similar lengths, so little compute goes to padding."""
    encoded = encode_all(tokenizer, examples, max_length)
    order = sorted((i for i, e in enumerate(encoded) if e.n_response), key=lambda i: len(encoded[i].input_ids))
    losses = np.full(len(encoded), np.nan)
    batches = range(0, len(order), batch_size)
    for n, start in enumerate(batches, 1):
        index = order[start:start + batch_size]
        batch = {k: v.to(_device(model)) for k, v in
                 collate([encoded[i] for i in index], tokenizer.pad_token_id).items()}
        losses[index] = batch_losses(model, batch, response_logits_only=True).cpu().numpy()
        if progress:
            progress(n, len(batches))
    return losses


def option_correct(model, tokenizer, records: Sequence[dict], max_length: int, batch_size: int = 16,
                   progress: Progress | None = None) -> np.ndarray:
    """Per record (each with ``options`` and the right one as ``gold``), 1.0 where its lowest-loss
    option, the end-of-turn marker included, is ``gold``, else 0.0. A record with an option that
    cannot be scored within ``max_length`` counts as wrong."""
    candidates, owner = [], []
    for n, record in enumerate(records):
        for option in record["options"]:
            candidates.append({"messages": [*record["messages"][:-1],
                                            {"role": "assistant", "content": option.strip()}]})
            owner.append(n)
    losses = response_losses(model, tokenizer, candidates, max_length, batch_size, progress)
    owners = np.asarray(owner)
    correct = np.zeros(len(records))
    for n, record in enumerate(records):
        mine = losses[owners == n]
        if not np.isnan(mine).any():
            correct[n] = record["options"][int(np.argmin(mine))] == record["gold"]
    return correct


def option_accuracy(model, tokenizer, records: Sequence[dict], max_length: int, batch_size: int = 16) -> float:
    """The share of ``records`` answered right by option likelihood (:func:`option_correct`)."""
    return float(option_correct(model, tokenizer, records, max_length, batch_size).mean())


@torch.no_grad()
def greedy_answers(model, tokenizer, records: Sequence[dict], max_new_tokens: int,
                   progress: Progress | None = None) -> list[str]:
    """The model's greedy answer to each record's prompt, decoded without special tokens."""
    answers = []
    for record in records:
        text = tokenizer.apply_chat_template(record["messages"][:-1], tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(_device(model))
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                             pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:].cpu(), skip_special_tokens=True))
        if progress:
            progress(len(answers), len(records))
    return answers
