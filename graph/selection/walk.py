"""G2IS gradient walk (docs/architecture.md §4.4) and its "w/o graph" ablation (§4.5).

The walk is exact: it picks the same rows as a direct per-candidate transcription of §4.4 in
float64 (the tests hold it to one). It is fast because it never recomputes what it already knows:

- ΣS' is kept as a running vector, so constraint (6) for a batch of candidates is one product;
- min over s' in S' of X_s'·X_z is cached per row, with the number of members it covers, so a row
  seen again (neighbour lists of consecutive nodes overlap) only meets the members added since;
  a row whose minimum went negative fails (5) for the rest of the component and is never
  looked at again;
- the rows of S' sit in one contiguous buffer, so those checks are dense products;
- candidates are checked in chunks that grow geometrically: the first neighbour usually
  qualifies, while a strict fallback may have to scan far down the X·K_i order;
- that order is sorted only as deep as the walk reads it, with pointers past the rows that can
  never qualify again (taken, or failed (5)).

The bulk products (X·K_i over the pool, X_s'·X_z for (5)) run in the features' own float32 when
that is what they are, and a rounding bound says when that is enough: a value within the bound
of a decision's threshold is recomputed in float64. So decisions match float64 arithmetic and do
not hinge on how a BLAS happened to block a product, at float32 speed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from threadpoolctl import ThreadpoolController

from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.common import (
    FALLBACKS,
    ComponentReport,
    Selection,
    allocate_budgets,
    check_choice,
    check_finite,
    check_fraction,
    check_matrix,
    check_positive_int,
)

_FIRST_CHUNK = 1  # candidates checked at once at first; the first neighbour usually qualifies
_MAX_CHUNK = 4096
_SKIP_CHUNK = 256  # ranked rows looked at per step when skipping taken ones
_THIN = 4  # up to this many rows, matrix-vector products beat a thin matrix product by far
_FIRST_RANKED = 1024  # rows of the X·K_i ranking sorted up front
_BLOCK_ROWS = 8192  # pool rows read at a time by whole-pool passes
_PROJECTION_COMPONENTS = 64  # components projected per pass over the pool
_TINY = 1e-300


@runtime_checkable
class NeighborSource(Protocol):
    """Out-neighbour lists of the instruction graph, most similar first; negative ids mean "no edge"."""

    def __getitem__(self, node: int) -> Sequence[int] | np.ndarray: ...


@runtime_checkable
class PrefetchingNeighborSource(NeighborSource, Protocol):
    """A source that can load many lists in one go (a Neo4j adapter, say).

    The walk calls ``prefetch(nodes)`` with the untaken neighbours of the current node before it
    checks them: the next node is usually one of them, so their lists are asked for soon. The call
    is a hint; a source may load more (two hops), load in the background, or ignore it.
    """

    def prefetch(self, nodes: np.ndarray) -> None: ...


class ArrayNeighbors:
    """An in-memory [N, k] table of neighbour ids (padding -1), as graph.knn builds it."""

    def __init__(self, table: np.ndarray, pool_size: int) -> None:
        table = np.asarray(table)
        if table.ndim != 2 or not np.issubdtype(table.dtype, np.integer):
            raise InvalidInput(f"neighbors must be an integer array [N, k], got {table.dtype} {table.shape}")
        if table.shape[0] != pool_size:
            raise InvalidInput(f"neighbors has {table.shape[0]} rows but train_features has {pool_size}")
        if table.size and (table.min() < -1 or table.max() >= pool_size):
            raise InvalidInput(f"neighbors must hold ids in [0, {pool_size}) or -1 for no edge")
        self.table = table

    def __getitem__(self, node: int) -> np.ndarray:
        return self.table[node]


def as_neighbor_source(neighbors: object, pool_size: int) -> NeighborSource:
    if isinstance(neighbors, np.ndarray):
        return ArrayNeighbors(neighbors, pool_size)
    if isinstance(neighbors, NeighborSource):
        return neighbors
    raise InvalidInput(
        f"neighbors must be an [N, k] id array or support neighbors[node], got {type(neighbors).__name__}"
    )


def check_directions(components: object, dim: int) -> np.ndarray:
    """Component rows as float64 unit vectors (only their direction matters to the walk)."""
    directions = check_matrix(components, "components", dim=dim).astype(np.float64)
    check_finite(directions, "components")
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidInput(f"components row {int(np.argmin(norms))} is all zeros and has no direction")
    return directions / norms


def check_weights(weights: object, count: int) -> np.ndarray:
    values = np.asarray(weights, dtype=np.float64)
    if values.shape != (count,):
        raise InvalidInput(f"weights must have one entry per component ({count}), got shape {values.shape}")
    check_finite(values, "weights")
    if (values < 0).any() or values.sum() <= 0:
        raise InvalidInput("weights must be non-negative with a positive sum")
    return values


def _working(features: np.ndarray) -> np.ndarray:
    """The features in a dtype BLAS is fast at: float32 and float64 as they are, narrower floats widened losslessly."""
    if features.dtype in (np.float32, np.float64):
        return features
    return features.astype(np.float32 if features.dtype.itemsize < 4 else np.float64)


def _rounding_bound(features: np.ndarray) -> float:
    """How far a dot product of pool rows (or of a row and a unit K_i) may be off in the features' dtype.

    Higham's γ_D = D·u/(1 − D·u) times Σ|x_j·y_j| <= |x|·|y| <= max(largest squared row norm, 1),
    whatever order a BLAS sums in; doubled, and widened for the rounding of that norm itself.
    """
    unit = float(np.finfo(features.dtype).eps) / 2
    gamma = features.shape[1] * unit / (1.0 - features.shape[1] * unit)
    largest = 1.0
    for start in range(0, features.shape[0], _BLOCK_ROWS):
        block = features[start : start + _BLOCK_ROWS]
        largest = max(largest, float(np.einsum("ij,ij->i", block, block).max()))
    return 2.0 * gamma * largest * (1.0 + 2.0 * gamma)


def _projected(features: np.ndarray, directions: np.ndarray) -> Iterator[np.ndarray]:
    """X·K_i in the features' dtype for each component in turn, a group of components per pass over the pool."""
    for group in range(0, directions.shape[0], _PROJECTION_COMPONENTS):
        along = features @ directions[group : group + _PROJECTION_COMPONENTS].T.astype(features.dtype)
        check_finite(along, "train_features @ components")  # catches NaN/inf rows without another pass
        yield from along.T


def _products(rows: np.ndarray, block: np.ndarray) -> np.ndarray:
    """rows @ block.T, one matrix-vector product per row when there are only a few rows."""
    if rows.shape[0] == 1:
        return (block @ rows[0])[None, :]
    if rows.shape[0] <= _THIN:
        return np.stack([block @ row for row in rows])
    return rows @ block.T


class _Ranking:
    """Rows by descending X·K_i in float64, ties to the lower id, sorted only as deep as the walk reads.

    The anchor and most fallbacks come from the top, so a full sort per component would mostly be
    wasted. A prefix is picked from the fast projection by a partition, widened by the rounding
    bound so that no row of the exact prefix is missed, recomputed in float64 and sorted; it grows
    fourfold whenever a scan runs past it.
    """

    def __init__(self, features: np.ndarray, direction: np.ndarray, along: np.ndarray, slack: float) -> None:
        self.features = features
        self.direction = direction
        self.key = -along
        self.slack = slack
        self.order = np.empty(0, dtype=np.int64)
        self.exact = np.empty(0)  # X·K_i in float64, for the rows of `order`

    def upto(self, depth: int) -> np.ndarray:
        n = self.key.size
        if depth > self.order.size < n:
            size = min(n, max(depth, 4 * self.order.size, _FIRST_RANKED))
            if size == n:
                rows = np.arange(n)
            else:
                cut = float(np.partition(self.key, size - 1)[size - 1])
                rows = np.flatnonzero(self.key <= cut + 2 * self.slack)
            exact = np.concatenate([
                self.features[part].astype(np.float64) @ self.direction
                for part in np.array_split(rows, max(1, rows.size // _BLOCK_ROWS))
            ])
            keep = np.lexsort((rows, -exact))[:size]
            self.order, self.exact = rows[keep], exact[keep]
        return self.order[:depth]


class _ComponentWalk:
    """State of one component's walk: S', ΣS', and the per-row cache of min X_s'·X_z."""

    def __init__(self, features: np.ndarray, ranking: _Ranking, budget: int, taken: np.ndarray, delta: float):
        self.features = features
        self.ranking = ranking
        self.taken = taken
        self.delta = delta
        self.slack = ranking.slack
        self.members = np.empty((budget, features.shape[1]), dtype=features.dtype)
        self.size = 0
        self.last = -1
        self.basis = np.zeros((features.shape[1], 2))  # columns K_i and ΣS' in float64: one product serves (6)
        self.basis[:, 0] = ranking.direction
        self.total = self.basis[:, 1]
        self.total_along = 0.0
        self.total_sq = 0.0
        self.alignment = 0.0
        n = features.shape[0]
        # Within `slack` of min X_s'·X_z over the first seen[z] members; -inf once known negative.
        self.floor = np.full(n, np.inf)
        self.seen = np.zeros(n, dtype=np.int64)
        self.best = 0  # the first `best` ranked rows are all taken
        self.clear = 0  # the first `clear` ranked rows are all taken or failed (5)

    def add(self, row: int) -> None:
        self.members[self.size] = self.features[row]
        self.size += 1
        self.last = row
        self.taken[row] = True
        self.total += self.features[row]
        self.total_along = float(self.total @ self.basis[:, 0])
        self.total_sq = float(self.total @ self.total)
        self.alignment = abs(self.total_along) / np.sqrt(self.total_sq) if self.total_sq > 0 else 0.0

    def run(
        self, neighbors: Callable[[int], np.ndarray], prefetch: Callable[[np.ndarray], None] | None, paper: bool,
        relevance: np.ndarray | None = None,
    ) -> tuple[list[int], list[bool]]:
        """Walk from the anchor until the budget is met or, in strict mode, nothing qualifies.

        The neighbours of the last node are tried most similar first (the paper), or, given
        ``relevance`` (a score per row), most relevant first, the graph's order breaking ties.
        Returns the rows in order and, for each, whether the fallback (not an edge) brought it in.
        """
        self.add(self.best_untaken())
        rows, jumped = [self.last], [False]
        while self.size < self.members.shape[0]:
            listed = neighbors(self.last)
            free = listed[~self.taken[listed]]
            if prefetch is not None and free.size:
                prefetch(free)
            if relevance is not None:
                free = free[np.argsort(-relevance[free], kind="stable")]
            row = self.first_qualifying(free)
            jumped.append(row is None)
            if row is None:
                row = self.best_untaken() if paper else self.first_in_order()
                if row is None:
                    jumped.pop()
                    break
            self.add(row)
            rows.append(row)
        return rows, jumped

    def best_untaken(self) -> int:
        """The untaken row with the largest X·K_i (one always exists: budgets sum to at most N)."""
        self.best = self._skip(self.best, failed_too=False)
        return int(self.ranking.upto(self.best + 1)[self.best])

    def first_in_order(self) -> int | None:
        """Strict fallback: the first untaken row in descending X·K_i order that qualifies."""
        start = self.clear = self._skip(self.clear, failed_too=True)
        while start < self.taken.size:
            stop = start + max(start, _FIRST_RANKED)
            found = self.first_qualifying(self.ranking.upto(stop)[start:])
            if found is not None:
                return found
            start = stop
        return None

    def first_qualifying(self, candidates: np.ndarray) -> int | None:
        """The first candidate, in the given order, that is untaken and satisfies (5) and (6)."""
        start, size = 0, _FIRST_CHUNK
        while start < candidates.size:
            chunk = candidates[start : start + size]
            chunk = chunk[~self.taken[chunk] & (self.floor[chunk] >= -self.slack)]
            if chunk.size:
                rows = self.features[chunk]
                aligned = self._keeps_alignment(rows.astype(np.float64))
                if aligned.any():
                    chunk, rows = chunk[aligned], rows[aligned]
                    fits = self._no_conflict(chunk, rows)
                    if fits.any():
                        return int(chunk[fits.argmax()])
            start += size
            size = min(4 * size, _MAX_CHUNK)
        return None

    def _keeps_alignment(self, rows: np.ndarray) -> np.ndarray:
        """Constraint (6): |cos(ΣS' + X_z, K_i)| >= δ·|cos(ΣS', K_i)|, for each (float64) row."""
        products = rows @ self.basis
        along = np.abs(products[:, 0] + self.total_along)
        sq = np.einsum("ij,ij->i", rows, rows) + 2.0 * products[:, 1] + self.total_sq
        # A zero sum has zero cosine: the clamp turns 0/0 into 0/tiny.
        return along / np.sqrt(np.maximum(sq, _TINY)) >= self.delta * self.alignment

    def _no_conflict(self, chunk: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Constraint (5): X_s'·X_z >= 0 for every s' in S', for each row; near-zero minima settled in float64."""
        floor = self._floor(chunk, rows)
        fits = floor >= self.slack
        if fits.all():
            return fits
        unsure = np.flatnonzero(~fits & (floor >= -self.slack))
        if unsure.size:
            exact = (rows[unsure].astype(np.float64) @ self.members[: self.size].T.astype(np.float64)).min(axis=1)
            fits[unsure] = exact >= 0
            self.floor[chunk[unsure]] = np.where(exact >= 0, exact, -np.inf)
        return fits

    def _floor(self, chunk: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """min over S' of X_s'·X_z per row, meeting only the members a row has not met yet."""
        seen = self.seen[chunk]
        low = seen.min()
        if low == self.size:
            return self.floor[chunk]
        dots = _products(rows, self.members[low : self.size])
        if seen.max() > low:  # mask the members a row already met rather than count them again
            dots[np.arange(low, self.size) < seen[:, None]] = np.inf
        floor = np.minimum(self.floor[chunk], dots.min(axis=1))
        self.floor[chunk] = floor
        self.seen[chunk] = self.size
        return floor

    def _skip(self, position: int, failed_too: bool) -> int:
        """Advance ``position`` in the order past taken rows (and rows that failed (5), if asked)."""
        while position < self.taken.size:
            chunk = self.ranking.upto(position + _SKIP_CHUNK)[position:]
            free = ~self.taken[chunk]
            if failed_too:
                free &= self.floor[chunk] >= -self.slack
            if free.any():
                return position + int(np.argmax(free))
            position += chunk.size
        return position


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, looked up once (a lookup per component would cost a millisecond)."""
    return ThreadpoolController()


def _listed(source: NeighborSource, node: int, pool_size: int, checked: bool) -> np.ndarray:
    """The neighbour ids of ``node`` as an integer array, edges only."""
    ids = np.asarray(source[node]).reshape(-1)
    if ids.dtype.kind not in "iu":
        ids = ids.astype(np.int64)
    ids = ids[ids >= 0]
    if not checked and ids.size and ids.max() >= pool_size:
        raise InvalidInput(f"neighbors[{node}] names node {int(ids.max())}, outside the pool of {pool_size}")
    return ids


def gradient_walk(
    train_features: np.ndarray,
    components: np.ndarray,
    weights: np.ndarray,
    neighbors: np.ndarray | NeighborSource,
    ratio: float,
    delta: float = 0.8,
    anchor_pool: int = 1000,
    fallback: str = "strict",
    relevance: np.ndarray | None = None,
) -> Selection:
    """Select floor(N·ratio) rows by walking the instruction graph from each component's anchor.

    ``train_features`` [N, D] has unit rows and is used as given; ``components`` [c, D] and
    ``weights`` [c] usually come from :func:`core_components`; ``neighbors`` is an [N, k] id table
    (-1 = no edge) or any :class:`NeighborSource`. ``fallback`` is "strict" (the authors' code: a
    component that finds no qualifying row stops short) or "paper" (Algorithm 1 as printed: take the
    best untaken row unconstrained). A shortfall is reported in the result, never filled silently.

    ``anchor_pool`` is the released code's top-rows window for the anchor; because the anchor falls
    back to the best untaken row when the window is all taken, the pick is the best untaken row by
    X·K_i for every window size. It is validated and recorded for provenance.

    ``relevance`` [N] (optional, not the paper's) changes the step rule only: a node's qualifying
    neighbours are taken most relevant first instead of most similar first (see :func:`relevance_to`).
    """
    features = _working(check_matrix(train_features, "train_features"))
    n, dim = features.shape
    directions = check_directions(components, dim)
    weights = check_weights(weights, directions.shape[0])
    if relevance is not None:
        relevance = check_matrix(np.reshape(relevance, (-1, 1)), "relevance").astype(np.float64).ravel()
        if relevance.size != n:
            raise InvalidInput(f"relevance has {relevance.size} entries but train_features has {n} rows")
        check_finite(relevance, "relevance")
    ratio = check_fraction(ratio, "ratio")
    delta = check_fraction(delta, "delta", allow_zero=True)
    anchor_pool = check_positive_int(anchor_pool, "anchor_pool")
    fallback = check_choice(fallback, "fallback", FALLBACKS)
    source = as_neighbor_source(neighbors, n)
    checked = isinstance(source, ArrayNeighbors)
    prefetch = source.prefetch if isinstance(source, PrefetchingNeighborSource) else None

    budgets = allocate_budgets(n, ratio, weights)
    slack = _rounding_bound(features)
    taken = np.zeros(n, dtype=bool)
    picked: list[int] = []
    component: list[int] = []
    step: list[int] = []
    predecessor: list[int] = []
    reached_by: list[str] = []
    reports = []
    for index, (budget, along) in enumerate(zip(budgets.tolist(), _projected(features, directions), strict=True)):
        weight = float(weights[index] / weights.sum())
        if budget == 0:
            reports.append(ComponentReport(index, weight, 0, 0))
            continue
        walk = _ComponentWalk(features, _Ranking(features, directions[index], along, slack), budget, taken, delta)
        # A walk is a long chain of small products: BLAS threads only add wake-up latency to each
        # (twice the time on a busy machine), so they are held to one while it runs.
        with _blas().limit(limits=1, user_api="blas"):
            rows, jumped = walk.run(lambda node: _listed(source, node, n, checked), prefetch, fallback == "paper",
                                    relevance)
        picked += rows
        component += [index] * len(rows)
        step += range(len(rows))
        predecessor += [-1, *rows[:-1]]  # the row the walk stood on when it took this one
        reached_by += ["fallback" if jump else "edge" for jump in jumped]
        reached_by[len(picked) - len(rows)] = "anchor"
        reports.append(ComponentReport(index, weight, budget, len(rows), rows[0], sum(jumped)))
    return Selection(
        method="g2is",
        pool_size=n,
        indices=np.asarray(picked, dtype=np.int64),
        params={"ratio": ratio, "delta": delta, "anchor_pool": anchor_pool, "fallback": fallback},
        component=np.asarray(component, dtype=np.int32),
        step=np.asarray(step, dtype=np.int32),
        predecessor=np.asarray(predecessor, dtype=np.int64),
        reached_by=tuple(reached_by),
        components=tuple(reports),
    )


def relevance_to(train_features: np.ndarray, val_features: np.ndarray) -> np.ndarray:
    """Each pool row's relevance to a target: X·mean(V) in float64, the mean cosine to the target's
    validation rows (unit rows), which is LESS's score for one subtask and one checkpoint."""
    features = _working(check_matrix(train_features, "train_features"))
    target = check_matrix(val_features, "val_features", dim=features.shape[1]).astype(np.float64).mean(axis=0)
    return np.concatenate([features[start : start + _BLOCK_ROWS].astype(np.float64) @ target
                           for start in range(0, max(features.shape[0], 1), _BLOCK_ROWS)])


def no_graph_selection(
    train_features: np.ndarray, components: np.ndarray, weights: np.ndarray, ratio: float
) -> Selection:
    """Ablation "w/o graph": per-component budgets filled with rows in descending X·K_i order, no walk."""
    features = _working(check_matrix(train_features, "train_features"))
    n, dim = features.shape
    directions = check_directions(components, dim)
    weights = check_weights(weights, directions.shape[0])
    ratio = check_fraction(ratio, "ratio")
    slack = _rounding_bound(features)
    taken = np.zeros(n, dtype=bool)
    picked, component, step, score, reports = [], [], [], [], []
    budgets = allocate_budgets(n, ratio, weights).tolist()
    for index, (budget, along) in enumerate(zip(budgets, _projected(features, directions), strict=True)):
        ranking = _Ranking(features, directions[index], along, slack)
        ranked = ranking.upto(budget + int(taken.sum()))  # the first `budget` untaken rows lie in here
        free = np.flatnonzero(~taken[ranked])[:budget]
        rows = ranked[free]
        taken[rows] = True
        picked.append(rows)
        component.append(np.full(rows.size, index, dtype=np.int32))
        step.append(np.arange(rows.size, dtype=np.int32))
        score.append(ranking.exact[free])
        anchor = int(rows[0]) if rows.size else None
        reports.append(ComponentReport(index, float(weights[index] / weights.sum()), budget, rows.size, anchor))
    return Selection(
        method="no_graph",
        pool_size=n,
        indices=np.concatenate(picked).astype(np.int64),
        params={"ratio": ratio},
        component=np.concatenate(component),
        step=np.concatenate(step),
        score=np.concatenate(score),
        components=tuple(reports),
    )
