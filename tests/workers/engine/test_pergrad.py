"""Tokenisation and batched per-example gradients against the batch-1 autograd reference."""

from __future__ import annotations

import pytest
import torch

from gradwalk.workers.engine.lora import attach_lora, lora_layers, n_params
from gradwalk.workers.engine.models import load_model
from gradwalk.workers.engine.pergrad import per_example_grads, per_example_grads_loop
from gradwalk.workers.engine.tokenize import IGNORE, collate, encode, encode_all

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def test_loss_covers_the_assistant_turns_only(tokenizer):
    example = {"messages": [
        {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "Four."},
        {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "Six, clearly."},
    ]}
    encoded = encode(tokenizer, example, max_length=512)
    kept = tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE])
    assert kept == "Four.<|im_end|>\nSix, clearly.<|im_end|>\n"
    assert all(label in (IGNORE, token) for token, label in zip(encoded.input_ids, encoded.labels, strict=True))
    assert not encoded.truncated and encoded.n_response == len(tokenizer("Four.<|im_end|>\nSix, clearly.<|im_end|>\n",
                                                                         add_special_tokens=False)["input_ids"])
    # the chat template's default system prompt is part of the (masked) prompt
    assert "SmolLM" in tokenizer.decode(encoded.input_ids)


def test_truncation_is_counted_and_can_leave_no_response(tokenizer, examples):
    full = encode(tokenizer, examples[3], max_length=512)
    cut = encode(tokenizer, examples[3], max_length=len(full.input_ids) - 5)
    assert cut.truncated and 0 < cut.n_response < full.n_response
    prompt_only = encode(tokenizer, examples[3], max_length=10)
    assert prompt_only.truncated and prompt_only.n_response == 0


def test_bad_examples_are_refused(tokenizer):
    from gradwalk.errors import InvalidInput

    for bad in ({}, {"messages": []}, {"messages": [{"content": "no role"}]}):
        with pytest.raises(InvalidInput):
            encode(tokenizer, bad, max_length=64)


def test_batched_per_example_grads_equal_batch1_autograd(model_dir, examples):
    torch.manual_seed(0)
    model, tokenizer = load_model(model_dir, torch.device("cpu"))
    model = attach_lora(model, r=8, alpha=32, targets=("q_proj", "v_proj"))
    with torch.no_grad():  # B starts at zero, which would make every A gradient zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    model.eval()
    layers = lora_layers(model)
    encoded = encode_all(tokenizer, examples[:4], max_length=64)
    lengths = [len(e.input_ids) for e in encoded]
    assert len(set(lengths)) == len(lengths), "the batch must mix lengths so that padding is exercised"

    batched = per_example_grads(model, layers, collate(encoded, tokenizer.pad_token_id))
    reference = per_example_grads_loop(model, layers, encoded, tokenizer.pad_token_id)

    assert batched.shape == (4, n_params(layers)) == (4, 460_800)
    assert not batched.requires_grad
    cosine = torch.nn.functional.cosine_similarity(batched, reference, dim=1)
    assert cosine.min() >= 0.9999, cosine
    assert torch.allclose(batched.norm(dim=1), reference.norm(dim=1), rtol=1e-4)
    # the examples really differ, so a mix-up between rows would show
    assert torch.nn.functional.cosine_similarity(batched[0], reference[1], dim=0) < 0.99
    assert all(p.grad is None for p in model.parameters())  # the batch-summed gradient is never formed
