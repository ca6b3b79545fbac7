"""The sentence encoder of the embedding baseline and the w/o-gradient ablation: the real
all-MiniLM-L6-v2 from its PyPI wheel, run with plain transformers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gradwalk.errors import InvalidInput, NotFound

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def chat(question: str, answer: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {"id": question, "messages": [*messages, {"role": "user", "content": question},
                                         {"role": "assistant", "content": answer}]}


@pytest.fixture(scope="module")
def embedder(cache_dir):
    from gradwalk.workers.engine.embeddings import Embedder

    return Embedder(cache_dir, device="cpu", batch_size=4)


EXAMPLES = [
    chat("What is the capital of France?", "Paris.", system="Be brief."),
    chat("Which city is the capital of France?", "The capital of France is Paris."),
    chat("How do I bake sourdough bread?", "Mix flour, water and starter, let it rise overnight, then bake hot."),
    chat("Is 91 a prime number?", "No: 91 = 7 x 13."),
    chat("Name a primary colour.", "Red."),
    chat("Summarise: " + "the committee met and discussed the budget at length. " * 40, "They discussed the budget."),
]


def test_unit_rows_of_the_model_width_and_deterministic(embedder):
    x = embedder.encode(EXAMPLES)
    assert x.shape == (len(EXAMPLES), 384) == (len(EXAMPLES), embedder.dim) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x, embedder.encode(EXAMPLES))
    assert embedder.max_length == 256  # the model's own sentence_bert_config.json


def test_what_sentence_transformers_computes(embedder):
    """Values sentence-transformers 6.2.0 gives for this text with this model folder (checked when
    the module was written: equal to the last bit, long texts truncated alike)."""
    x = embedder.encode(EXAMPLES[:1])[0]
    expected = [0.12067, 0.04494, 0.02811, -0.02367, 0.03174, -0.04771]
    np.testing.assert_allclose(x[:6], expected, atol=1e-4)


def test_batches_give_the_rows_of_single_examples(embedder):
    """Padding and the length-sorted batching change nothing: the mean is over real word pieces."""
    batched = embedder.encode(EXAMPLES)
    single = np.concatenate([embedder.encode([e]) for e in EXAMPLES])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_similar_texts_are_closer_than_unrelated_ones(embedder):
    x = embedder.encode(EXAMPLES)
    cos = x @ x.T
    assert cos[0, 1] > 0.7 and cos[0, 1] > max(cos[0, 2], cos[0, 3], cos[0, 4]) + 0.3


def test_the_text_is_the_user_and_assistant_turns_in_order():
    from gradwalk.workers.engine.embeddings import example_text

    turns = {"messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": " Hi "},
                          {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                          {"role": "assistant", "content": "Goodbye."}]}
    assert example_text(turns) == "Hi\nHello.\nBye\nGoodbye."


def test_a_folder_with_another_pooling_is_refused_by_file_and_field(embedder, tmp_path):
    from gradwalk.workers.engine.embeddings import Embedder

    folder = tmp_path / "cls-pooled"
    shutil.copytree(embedder.model_path, folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text()) | {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    pooling.write_text(json.dumps(config))
    with pytest.raises(InvalidInput, match=r"1_Pooling/config.json: pooling modes \['pooling_mode_cls_token'\]"):
        Embedder(tmp_path, device="cpu", model=folder)
    with pytest.raises(NotFound, match="has no config.json"):
        Embedder(tmp_path, device="cpu", model=tmp_path / "nothing-here")
