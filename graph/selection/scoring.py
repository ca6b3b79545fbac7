"""The baselines that score rows independently, then take the top floor(N·r) (docs/architecture.md §4.5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradwalk.checks import check_int
from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.common import (
    Selection,
    check_choice,
    check_finite,
    check_fraction,
    check_matrix,
    target_size,
    top_fraction,
)

REDUCTIONS = ("max", "mean")
_BLOCK_ROWS = 4096  # rows of the pool scored at a time, so a memory-mapped pool is never loaded whole


def _per_checkpoint(
    train: np.ndarray, val: np.ndarray, lrs: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both feature sets as [C, rows, D] with the checkpoint learning rates η_c."""
    if train.ndim == 2:
        if lrs is not None:
            raise InvalidInput("lrs applies to per-checkpoint features [C, N, D]; combined features already carry them")
        train = check_matrix(train, "train_features")
        val = check_matrix(val, "val_features", dim=train.shape[1])
        return train[None], val[None], np.ones(1)
    if train.ndim != 3 or val.ndim != 3 or train.shape[0] != val.shape[0] or train.shape[2] != val.shape[2]:
        raise InvalidInput(
            f"features must be [N, D] and [M, D], or per checkpoint [C, N, D] and [C, M, D]; "
            f"got train_features {train.shape} and val_features {val.shape}"
        )
    if min(train.shape[1], val.shape[1], train.shape[2]) < 1 or not (
        np.issubdtype(train.dtype, np.floating) and np.issubdtype(val.dtype, np.floating)
    ):
        raise InvalidInput(f"per-checkpoint features must be non-empty float arrays, got {train.dtype} {train.shape}")
    if lrs is None:
        raise InvalidInput("lrs (one learning rate per checkpoint) is required with per-checkpoint features")
    rates = np.asarray(lrs, dtype=np.float64)
    if rates.shape != (train.shape[0],) or not np.isfinite(rates).all() or (rates <= 0).any():
        raise InvalidInput(f"lrs must be {train.shape[0]} positive numbers, one per checkpoint, got {lrs!r}")
    return train, val, rates


def less_scores(
    train_features: np.ndarray,
    val_features: np.ndarray,
    *,
    subtasks: Sequence[object] | np.ndarray | None = None,
    lrs: Sequence[float] | None = None,
) -> np.ndarray:
    """LESS: score(z) = max over subtasks t of mean over v in t of Σ_c η_c cos(train_c(z), val_c(v)).

    Give per-checkpoint features ([C, N, D] and [C, M, D], unit rows) with ``lrs``, or the combined
    features of docs/architecture.md §4.1 ([N, D]), whose dot products are that sum divided by Σ_c η_c (same
    ranking). ``subtasks`` labels each validation row; without it the target is one subtask.
    Mean over v of a dot product is the dot with the mean, so each subtask costs one matvec.
    """
    train, val, rates = _per_checkpoint(np.asarray(train_features), np.asarray(val_features), lrs)
    if subtasks is None:
        groups, count = np.zeros(val.shape[1], dtype=np.int64), 1
    else:
        labels = np.asarray(subtasks)
        if labels.shape != (val.shape[1],):
            raise InvalidInput(
                f"subtasks must label each of the {val.shape[1]} validation rows, got shape {labels.shape}"
            )
        _, groups = np.unique(labels, return_inverse=True)
        count = int(groups.max()) + 1
    targets = np.zeros((val.shape[0], count, val.shape[2]))  # η_c · mean of val_c over each subtask
    for c in range(val.shape[0]):
        np.add.at(targets[c], groups, val[c].astype(np.float64))
    targets *= rates[:, None, None] / np.bincount(groups, minlength=count)[None, :, None]
    check_finite(targets, "val_features")
    n = train.shape[1]
    scores = np.empty(n)
    for start in range(0, n, _BLOCK_ROWS):
        block = np.zeros((min(_BLOCK_ROWS, n - start), count))
        for c in range(train.shape[0]):
            block += train[c, start : start + _BLOCK_ROWS] @ targets[c].T.astype(train.dtype)
        scores[start : start + block.shape[0]] = block.max(axis=1)
    check_finite(scores, "train_features")
    return scores


def _unit_rows(rows: np.ndarray, name: str) -> np.ndarray:
    rows = rows.astype(np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if not np.isfinite(norms).all() or (norms == 0).any():
        raise InvalidInput(f"{name} has a zero or non-finite row; its cosine is undefined")
    return rows / norms


def embedding_scores(train_embeddings: np.ndarray, val_embeddings: np.ndarray, reduce: str = "max") -> np.ndarray:
    """The Sentence-BERT baseline: max (or mean) cosine of each pool row to the validation rows.

    Rows are normalised here: sentence encoders do not always return unit vectors.
    """
    reduce = check_choice(reduce, "reduce", REDUCTIONS)
    train = check_matrix(train_embeddings, "train_embeddings")
    val = _unit_rows(check_matrix(val_embeddings, "val_embeddings", dim=train.shape[1]), "val_embeddings")
    if reduce == "mean":
        val = val.mean(axis=0, keepdims=True)
    scores = np.empty(train.shape[0])
    for start in range(0, train.shape[0], _BLOCK_ROWS):
        block = _unit_rows(train[start : start + _BLOCK_ROWS], "train_embeddings")
        scores[start : start + block.shape[0]] = (block @ val.T).max(axis=1)
    return scores


def scored_selection(method: str, scores: np.ndarray, ratio: float, **params: object) -> Selection:
    """The top floor(N·r) rows by score, best first, as a :class:`Selection`."""
    rows = top_fraction(scores, ratio)
    return Selection(
        method=method,
        pool_size=int(np.asarray(scores).size),
        indices=rows.astype(np.int64),
        params={"ratio": float(ratio), **params},
        score=np.asarray(scores, dtype=np.float64)[rows],
    )


def random_selection(n: int, ratio: float, seed: int = 0) -> Selection:
    """A seeded uniform sample of floor(N·r) rows, in sampled order."""
    n = check_int(n, "n (the pool size)", low=1)
    seed = check_int(seed, "seed", low=0)
    ratio = check_fraction(ratio, "ratio")
    rows = np.random.default_rng(seed).permutation(n)[: target_size(n, ratio)]
    return Selection(
        method="random", pool_size=int(n), indices=rows.astype(np.int64), params={"ratio": ratio, "seed": int(seed)}
    )
