"""The baselines' scores (docs/architecture.md §4.5) against their formulas: LESS, embedding cosine, random."""

from __future__ import annotations

import numpy as np
import pytest

from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.scoring import embedding_scores, less_scores, random_selection


def test_less_equals_its_formula_per_checkpoint_and_combined(clustered, cos):
    rng = np.random.default_rng(5)
    lrs = np.array([2e-5, 1e-5, 5e-6])
    train = np.stack([clustered(rng, 30, 5) for _ in lrs])
    val = np.stack([clustered(rng, 9, 5) for _ in lrs])
    subtasks = ["a", "b", "c", "a", "b", "c", "a", "a", "b"]
    groups = {t: [i for i, s in enumerate(subtasks) if s == t] for t in set(subtasks)}
    direct = np.array([
        max(
            np.mean([sum(lr * cos(train[c, z], val[c, v]) for c, lr in enumerate(lrs)) for v in members])
            for members in groups.values()
        )
        for z in range(30)
    ])

    np.testing.assert_allclose(less_scores(train, val, subtasks=subtasks, lrs=lrs), direct, rtol=1e-10)

    # docs/architecture.md §4.1's combined features: concat of sqrt(η_c/Ση)·x_c; their dot is the sum over Ση.
    scale = np.sqrt(lrs / lrs.sum())[:, None, None]
    combined_train = np.concatenate(list(scale * train), axis=1)
    combined_val = np.concatenate(list(scale * val), axis=1)
    np.testing.assert_allclose(
        less_scores(combined_train, combined_val, subtasks=subtasks), direct / lrs.sum(), rtol=1e-10
    )


def test_less_refuses_per_checkpoint_features_without_learning_rates():
    with pytest.raises(InvalidInput, match="lrs"):
        less_scores(np.ones((2, 3, 4)), np.ones((2, 2, 4)))
    with pytest.raises(InvalidInput, match="subtasks"):
        less_scores(np.ones((3, 4)), np.ones((2, 4)), subtasks=["a"])


def test_embedding_scores_are_max_or_mean_cosine(cos):
    rng = np.random.default_rng(9)
    train, val = 3 * rng.normal(size=(25, 7)), rng.normal(size=(6, 7))  # not unit: normalised inside
    cosines = np.array([[cos(t, v) for v in val] for t in train])

    np.testing.assert_allclose(embedding_scores(train, val), cosines.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(embedding_scores(train, val, reduce="mean"), cosines.mean(axis=1), rtol=1e-12)
    with pytest.raises(InvalidInput, match="reduce"):
        embedding_scores(train, val, reduce="min")


def test_random_selection_is_a_seeded_sample_without_repeats():
    first = random_selection(1000, 0.05, seed=11)
    assert len(first) == 50 and len(set(first)) == 50 and all(0 <= i < 1000 for i in first)
    assert list(first) == list(random_selection(1000, 0.05, seed=11))
    assert list(first) != list(random_selection(1000, 0.05, seed=12))
