"""The fixed-budget fine-tune and held-out scoring (workers/engine/finetune.py, evaluate.py) on the
real SmolLM2-135M, with budgets of a few steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradwalk.errors import InvalidInput
from gradwalk.workers.engine.config import EngineConfig
from gradwalk.workers.engine.evaluate import greedy_answers, option_accuracy, option_correct, response_losses
from gradwalk.workers.engine.finetune import FinetuneConfig, finetune
from gradwalk.workers.engine.lora import lora_layers, lora_params
from gradwalk.workers.engine.models import load_model

from ..conftest import chat

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A large learning rate so that four tiny steps move the loss visibly.
FT = FinetuneConfig(steps=4, batch_size=2, lr=1e-2, warmup_ratio=0.25, seed=3)


@pytest.fixture(scope="module")
def config(model_dir) -> EngineConfig:
    return EngineConfig.for_device("cpu", model=str(model_dir), max_length=64)


@pytest.fixture(scope="module")
def base(model_dir):
    return load_model(model_dir, torch.device("cpu"))


@pytest.fixture(scope="module")
def tuned(config, examples):
    return finetune(examples[:3], config, FT)


def weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for _, p in lora_params(lora_layers(model))]


def test_finetuning_lowers_the_loss_of_its_examples(base, tuned, examples):
    before = response_losses(*base, examples[:3], max_length=64)
    after = response_losses(tuned.model, tuned.tokenizer, examples[:3], max_length=64)
    assert tuned.n_train == 3 and len(tuned.losses) == FT.steps
    assert (after < before).all(), (before, after)
    assert not tuned.model.training


def test_a_seed_fixes_the_weights(config, examples, tuned):
    again = finetune(examples[:3], config, FT)
    assert all(torch.equal(a, b) for a, b in zip(weights(tuned.model), weights(again.model), strict=True))
    other = finetune(examples[:3], config, FinetuneConfig(steps=1, batch_size=2, lr=1e-2, seed=4))
    assert not all(torch.equal(a, b) for a, b in zip(weights(tuned.model), weights(other.model), strict=True))


class Stop(Exception):
    pass


def test_progress_follows_each_step_and_may_stop_the_fine_tune(config, examples):
    """How a cancelled evaluation stops inside its fine-tune: the callback raises."""
    seen = []

    def stop_at_second(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        finetune(examples[:3], config, FT, progress=stop_at_second)
    assert seen == [(1, FT.steps), (2, FT.steps)]


def test_examples_without_a_response_token_cannot_train(config):
    long_prompt = chat("Tell me a story. " * 40, "Once upon a time.")
    with pytest.raises(InvalidInput, match="no fine-tune example"):
        finetune([long_prompt], config, FT)
    with pytest.raises(InvalidInput):
        FinetuneConfig(steps=0)


def test_losses_keep_input_order_whatever_the_batch(base, examples):
    long_prompt = chat("Tell me a story. " * 40, "Once upon a time.")
    records = [examples[3], long_prompt, *examples[:3]]
    together = response_losses(*base, records, max_length=64, batch_size=4)
    alone = [response_losses(*base, [r], max_length=64, batch_size=1)[0] for r in records]
    assert np.isnan(together[1]) and np.isnan(alone[1])
    np.testing.assert_allclose(np.delete(together, 1), np.delete(alone, 1), rtol=1e-4)


def test_option_accuracy_picks_the_lowest_loss_option(base):
    options = ["Paris.", "A banana sandwich with mustard.", "42"]
    record = {"messages": [{"role": "user", "content": "What is the capital of France?"},
                           {"role": "assistant", "content": "Paris."}], "options": options}
    losses = response_losses(*base, [chat("What is the capital of France?", o) for o in options], max_length=64)
    best, worst = options[int(np.argmin(losses))], options[int(np.argmax(losses))]
    assert best == "Paris."
    assert option_accuracy(*base, [{**record, "gold": best}, {**record, "gold": worst}], max_length=64) == 0.5
    assert option_correct(*base, [{**record, "gold": worst}, {**record, "gold": best}], max_length=64).tolist() == [0, 1]
    # an option cut away by max_length cannot be scored: the record counts as wrong
    assert option_accuracy(*base, [{**record, "gold": best}], max_length=12) == 0.0


def test_greedy_answer_starts_with_the_most_likely_token(base):
    model, tokenizer = base
    record = chat("What is 2 + 2?", "4")
    text = tokenizer.apply_chat_template(record["messages"][:-1], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        first = int(model(input_ids=ids).logits[0, -1].argmax())
    assert greedy_answers(model, tokenizer, [record], max_new_tokens=1) == [tokenizer.decode([first])]
