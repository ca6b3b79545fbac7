"""Exact blockwise kNN (docs/architecture.md §4.2) against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradwalk.errors import InvalidInput
from gradwalk.graph.knn.topk import block_ranges, knn_block, knn_graph


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x, k, tau):
    """Top-k by (cosine descending, id ascending), self excluded, cos >= tau, padded with -1 / 0."""
    n = x.shape[0]
    sims = x.astype(np.float64) @ x.astype(np.float64).T
    ids = np.full((n, k), -1)
    weights = np.zeros((n, k))
    for i in range(n):
        order = [j for j in np.lexsort((np.arange(n), -sims[i])) if j != i and sims[i, j] >= tau][:k]
        ids[i, : len(order)] = order
        weights[i, : len(order)] = sims[i, order]
    return ids, weights


@pytest.mark.parametrize(("k", "tau"), [(10, 0.0), (7, 0.35), (300, -1.0)])
def test_knn_equals_brute_force_top_k_with_threshold(k, tau):
    x = unit_rows(np.random.default_rng(0).normal(size=(300, 16)) + 0.3).astype(np.float32)

    ids, weights = knn_graph(x, k=k, tau=tau, block_rows=64, device="cpu")

    want_ids, want_weights = brute_force(x, k, tau)
    assert ids.dtype == np.int32 and weights.dtype == np.float32 and ids.shape == (300, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(weights, want_weights, atol=1e-6)


def test_ties_go_to_the_lower_id_however_the_rows_are_blocked():
    # Entries in {0, ±1} over 4 dims, unit-scaled by 1/2 or 1: dot products are exact, ties are real.
    rng = np.random.default_rng(1)
    x = rng.integers(-1, 2, size=(120, 4)).astype(np.float64)
    x[np.abs(x).sum(axis=1) == 0, 0] = 1.0
    x = unit_rows(x)
    want_ids, want_weights = brute_force(x, 9, 0.0)

    for block_rows in (1, 17, 120):
        ids, weights = knn_graph(x, k=9, tau=0.0, block_rows=block_rows, device="cpu")
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(weights, want_weights, atol=1e-6)


def test_duplicate_rows_tie_inside_the_top_k_and_keep_id_order():
    # Copies of a row get bit-equal scores from every row: runs of ties inside each top-k, not only at its cut.
    x = unit_rows(np.random.default_rng(4).normal(size=(60, 8))).astype(np.float32)
    x = np.concatenate([x, x[::3], x[::5]])

    ids, weights = knn_graph(x, k=12, tau=0.0, block_rows=25, device="cpu")

    want_ids, want_weights = brute_force(x, 12, 0.0)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(weights, want_weights, atol=1e-6)


def test_blocks_run_separately_assemble_the_same_graph():
    x = torch.nn.functional.normalize(torch.randn(101, 8, generator=torch.Generator().manual_seed(2)), dim=1)
    ids, weights = knn_graph(x, k=5, device="cpu")

    parts = [knn_block(x, start, stop, k=5, device="cpu") for start, stop in block_ranges(101, 30)]

    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), ids)
    # The product's rounding may move with the block shape (one float32 unit), nothing more.
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), weights, atol=1e-6)
    assert block_ranges(101, 30) == [(0, 30), (30, 60), (60, 90), (90, 101)]


def test_a_pool_smaller_than_k_pads_with_minus_one_and_zero():
    x = unit_rows(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))

    ids, weights = knn_graph(x, k=4, device="cpu")

    assert ids.tolist() == [[1, 2, -1, -1], [2, 0, -1, -1], [1, 0, -1, -1]]
    assert weights[:, 2:].tolist() == [[0.0, 0.0]] * 3
    assert knn_graph(x[:1], k=3, device="cpu")[0].tolist() == [[-1, -1, -1]]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda x: knn_graph(x, k=0), "k"),
        (lambda x: knn_graph(x, tau=1.5), "tau"),
        (lambda x: knn_graph(x, block_rows=0), "block_rows"),
        (lambda x: knn_graph(x[0]), "features"),
        (lambda x: knn_graph(np.where(x > 0, np.nan, x)), "NaN"),
        (lambda x: knn_block(x, 3, 2), "block"),
        (lambda x: knn_block(x, 0, 99), "block"),
        (lambda x: knn_graph(x, device="tpu-or-so"), "device"),
    ],
)
def test_knn_refuses_bad_input(call, named):
    with pytest.raises(InvalidInput, match=named):
        call(unit_rows(np.random.default_rng(3).normal(size=(10, 4))))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is there")
def test_asking_for_cuda_without_a_gpu_says_so():
    with pytest.raises(InvalidInput, match="CUDA"):
        knn_graph(np.eye(3), device="cuda")
