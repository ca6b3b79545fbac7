"""Exact top-k cosine neighbours, one block of rows at a time (docs/architecture.md §4.2).

Each block is X_b·Xᵀ followed by a top-k, so memory is bounded by the block and blocks can run as
separate tasks (:func:`block_ranges` + :func:`knn_block`), on a GPU where there is one. Equal
cosines are broken towards the lower row id, so ties never depend on how the pool is cut into
blocks (the product itself may round one float unit differently for another block shape).
Torch is imported only when a graph is built: serving selections never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gradwalk.checks import check_int, check_real
from gradwalk.device import resolve_device
from gradwalk.errors import InvalidInput

if TYPE_CHECKING:
    import torch

_CPU_SCRATCH_BYTES = 256 << 20  # similarity scratch per block on CPU (cache-friendly; docs/measurements.md)
_MIN_GPU_SCRATCH_BYTES = 2 << 30
_BYTES_PER_SCORE = 16  # the float32 score, its masks and the top-k scratch, with room to spare


def _scratch_bytes(device: str) -> int:
    """Similarity scratch per block: on a GPU a quarter of its free memory (at least 2 GiB), since
    fewer, larger blocks spend less of their time outside the product (docs/measurements.md, "kNN blocks")."""
    if not device.startswith("cuda"):
        return _CPU_SCRATCH_BYTES
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return max(_MIN_GPU_SCRATCH_BYTES, free // 4)


def default_block_rows(n: int, device: str = "auto") -> int:
    """Rows per block so one block's n-wide similarity rows fit the device's scratch budget."""
    budget = _scratch_bytes(resolve_device(device))
    return max(1, min(n, budget // (_BYTES_PER_SCORE * max(n, 1))))


def block_ranges(n: int, block_rows: int) -> list[tuple[int, int]]:
    """The (start, stop) row blocks that cover a pool of ``n`` rows."""
    block_rows = check_int(block_rows, "block_rows", low=1)
    return [(start, min(start + block_rows, n)) for start in range(0, n, block_rows)]


def _as_tensor(features: np.ndarray | torch.Tensor, device: str) -> torch.Tensor:
    """The rows as a floating tensor on ``device``, without a copy when they already are one."""
    import torch

    x = torch.as_tensor(features)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise InvalidInput(f"features must be a non-empty 2-D array [N, D], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return x.to(device)


def _check_finite(x: torch.Tensor) -> None:
    """Refuse NaN and inf once per matrix: a whole pass over it would cost as much as a block's product."""
    import torch

    if not torch.isfinite(x).all():
        raise InvalidInput("features hold a NaN or inf; cosines would be undefined")


def _check_params(k: int, tau: float) -> None:
    check_int(k, "k", low=1)
    check_real(tau, "tau", low=-1.0, high=1.0)


def _lowest_ids_at_cut(scores: torch.Tensor, kth: torch.Tensor, kk: int) -> torch.Tensor:
    """Columns of the kk best scores per row, the lowest ids among those tied with the kk-th (``kth``)."""
    above = scores > kth
    at_cut = scores == kth
    room = kk - above.sum(dim=1, keepdim=True)
    chosen = above | (at_cut & (at_cut.cumsum(dim=1) <= room))
    return chosen.nonzero()[:, 1].reshape(-1, kk)


def _in_id_order(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``cols`` of ``rows`` and their scores by descending score, equal scores by ascending id."""
    import torch

    cols = torch.sort(cols, dim=1).values
    vals = scores[rows[:, None], cols]
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return cols.gather(1, order), vals.gather(1, order)


def _top_k(x: torch.Tensor, start: int, stop: int, k: int, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """One block: a product and a top-k; the rest touches [rows, k] only, or the rare rows with ties."""
    import torch

    rows = stop - start
    ids = np.full((rows, k), -1, dtype=np.int32)
    weights = np.zeros((rows, k), dtype=np.float32)
    kk = min(k, x.shape[0] - 1)
    if kk == 0:
        return ids, weights
    scores = x[start:stop] @ x.T
    scores.diagonal(start).fill_(-torch.inf)  # no self-loops
    top = torch.topk(scores, kk + 1, dim=1)
    cols, vals = top.indices[:, :kk], top.values[:, :kk]
    # torch.topk orders equal scores arbitrarily. Where the cut falls inside a run of equal scores
    # (the extra place shows it), the lowest ids among the tied are taken instead; rows with equal
    # scores anywhere in their top-k get them in id order. One check (one device sync) decides
    # whether any row needs those repairs.
    cut = top.values[:, kk] == top.values[:, kk - 1]
    tied = cut | (vals[:, 1:] == vals[:, :-1]).any(dim=1)
    if tied.any():
        at_cut = cut.nonzero()[:, 0]
        if at_cut.numel():
            cols[at_cut] = _lowest_ids_at_cut(scores[at_cut], top.values[at_cut, kk - 1 : kk], kk)
        tied = tied.nonzero()[:, 0]
        cols[tied], vals[tied] = _in_id_order(scores, tied, cols[tied])
    keep = vals >= tau
    ids[:, :kk] = _to_host(torch.where(keep, cols, -1).to(torch.int32))
    weights[:, :kk] = _to_host(torch.where(keep, vals, 0.0))
    return ids, weights


def _to_host(t: torch.Tensor) -> np.ndarray:
    """A device tensor as a numpy array; from a GPU through page-locked memory, which copies faster
    (docs/measurements.md, "kNN blocks")."""
    if t.device.type == "cpu":
        return t.numpy()
    host = t.new_empty(t.shape, device="cpu", pin_memory=True)
    return host.copy_(t).numpy()


def knn_block(
    features: np.ndarray | torch.Tensor,
    start: int,
    stop: int,
    k: int = 64,
    tau: float = 0.0,
    device: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Out-neighbours of rows ``start:stop`` among all N rows of ``features`` (unit rows).

    Returns ids int32 [stop-start, k] and cosines float32 [stop-start, k], most similar first,
    keeping cos >= tau; missing neighbours are id -1 with weight 0. ``features`` must be finite:
    callers check that once for all blocks (:func:`knn_graph`, ``build.load_features``),
    since a check here would re-read the whole matrix for every block.
    """
    _check_params(k, tau)
    x = _as_tensor(features, resolve_device(device))
    if not 0 <= start < stop <= x.shape[0]:
        raise InvalidInput(f"block {start}:{stop} is not a non-empty row range of the {x.shape[0]} rows")
    return _top_k(x, start, stop, int(k), float(tau))


def knn_graph(
    features: np.ndarray | torch.Tensor,
    k: int = 64,
    tau: float = 0.0,
    block_rows: int | None = None,
    device: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The whole instruction graph: ids int32 [N, k] (-1 = none) and cosines float32 [N, k]."""
    _check_params(k, tau)
    resolved = resolve_device(device)
    x = _as_tensor(features, resolved)
    _check_finite(x)
    n = x.shape[0]
    blocks = block_ranges(n, default_block_rows(n, resolved) if block_rows is None else block_rows)
    ids = np.empty((n, k), dtype=np.int32)
    weights = np.empty((n, k), dtype=np.float32)
    for start, stop in blocks:
        ids[start:stop], weights[start:stop] = _top_k(x, start, stop, int(k), float(tau))
    return ids, weights
