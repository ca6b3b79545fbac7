"""Examples to token ids and labels: the model's chat template, loss on the responses only.

An example is ``{"messages": [{"role": ..., "content": ...}, ...]}`` (OpenAI style). The whole
conversation is rendered with the chat template; the characters that the template adds for each
assistant turn (its content and end-of-turn marker) are found by rendering the conversation up to
that turn with and without the turn, and the tokens that start inside those spans keep their ids
as labels while every other token gets -100. Sequences longer than ``max_length`` are cut from the
right and counted; one whose responses were cut away entirely has no loss and is counted as empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gradwalk.errors import InvalidInput

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def n_response(self) -> int:
        return sum(label != IGNORE for label in self.labels[1:])  # the first token is never predicted


def encode(tokenizer, example: dict, max_length: int) -> Encoded:
    messages = example.get("messages") if isinstance(example, dict) else None
    if not messages or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
        raise InvalidInput("an example needs 'messages': a list of {'role', 'content'} dicts")
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (text.startswith(through) and through.startswith(before)):
            raise InvalidInput("the chat template does not render a conversation as a prefix of its continuation")
        spans.append((len(before), len(through)))
    tokens = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = tokens["input_ids"]
    labels = [tok if any(lo <= start < hi for lo, hi in spans) else IGNORE
              for tok, (start, _) in zip(ids, tokens["offset_mapping"], strict=True)]
    truncated = len(ids) > max_length
    return Encoded(ids[:max_length], labels[:max_length], truncated)


def encode_all(tokenizer, examples: Sequence[dict], max_length: int) -> list[Encoded]:
    return [encode(tokenizer, example, max_length) for example in examples]


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: a padded position lies after every real one, so causal attention
    keeps it out of the real tokens' outputs and its gradients are exactly zero."""
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
