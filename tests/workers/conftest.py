"""Fixtures of the gradient-engine tests: the real SmolLM2-135M-Instruct, prepared once into the
platform's cache folder (the engine's default, GRADWALK_CACHE_DIR), and short chat examples."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two OpenMP threads on two shared cores collapse (5-10x slower) whenever another process,
    such as the test session's own Neo4j, competes for a core; one thread stays predictable."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    from gradwalk.workers.engine.config import default_cache_dir

    return default_cache_dir()


@pytest.fixture(scope="session")
def model_dir(cache_dir) -> Path:
    from gradwalk.workers.engine.models import prepare_default_model

    return prepare_default_model(cache_dir)


def chat(question: str, answer: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": [*messages, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture(scope="session")
def examples() -> list[dict]:
    """Six short conversations of different lengths (so batches are padded)."""
    return [
        chat("What is 7 times 8?", "7 times 8 is 56."),
        chat("Name a primary colour.", "Red."),
        chat("Translate 'good morning' into French.", "Bonjour.", system="Answer in one word."),
        chat("Why is the sky blue? Answer briefly.",
             "Air molecules scatter short blue wavelengths of sunlight more than red ones."),
        chat("Is 91 a prime number?", "No: 91 = 7 x 13."),
        chat("Write a haiku about rain.", "Soft rain on the roof, / the garden drinks quietly, / puddles hold the sky."),
    ]
