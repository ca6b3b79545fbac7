"""Exact top-k cosine neighbours, one block of rows at a time (DESIGN §4.2).

Each block is X_b·Xᵀ followed by a top-k, so memory is bounded by the block and blocks can run as
separate tasks (:func:`block_ranges` + :func:`knn_block`), on a GPU where there is one. Equal
cosines are broken towards the lower row id, so ties never depend on how the pool is cut into
blocks (the product itself may round one float unit differently for another block shape).
Torch is imported only when a graph is built: serving selections never needs it.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from gradwalk.errors import InvalidInput

if TYPE_CHECKING:
    import torch

_BLOCK_BYTES = {"cpu": 256 << 20, "cuda": 2 << 30}  # similarity scratch per block
_BYTES_PER_SCORE = 16  # the float32 score, its masks and the top-k scratch, with room to spare


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` means CUDA when torch sees a GPU, else the CPU; any torch device name is taken as is."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InvalidInput(f"device must be 'auto' or a torch device name, got {device!r}") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device {device!r} was asked for but torch sees no CUDA GPU")
    return resolved


def default_block_rows(n: int, device: str = "auto") -> int:
    """Rows per block so one block's n-wide similarity rows fit the device's scratch budget."""
    budget = _BLOCK_BYTES["cuda" if resolve_device(device).type == "cuda" else "cpu"]
    return max(1, min(n, budget // (_BYTES_PER_SCORE * max(n, 1))))


def block_ranges(n: int, block_rows: int) -> list[tuple[int, int]]:
    """The (start, stop) row blocks that cover a pool of ``n`` rows."""
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise InvalidInput(f"block_rows must be a positive integer, got {block_rows!r}")
    return [(start, min(start + block_rows, n)) for start in range(0, n, block_rows)]


def _as_tensor(features: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    import torch

    x = torch.as_tensor(features)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise InvalidInput(f"features must be a non-empty 2-D array [N, D], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    x = x.to(device)
    if not torch.isfinite(x).all():
        raise InvalidInput("features hold a NaN or inf; cosines would be undefined")
    return x


def _check_params(k: int, tau: float) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInput(f"k must be a positive integer, got {k!r}")
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not -1.0 <= tau <= 1.0:
        raise InvalidInput(f"tau must be a cosine in [-1, 1], got {tau!r}")


def _top_k(x: torch.Tensor, start: int, stop: int, k: int, tau: float) -> tuple[np.ndarray, np.ndarray]:
    import torch

    n = x.shape[0]
    rows = stop - start
    ids = np.full((rows, k), -1, dtype=np.int32)
    weights = np.zeros((rows, k), dtype=np.float32)
    kk = min(k, n - 1)
    if kk == 0:
        return ids, weights
    scores = x[start:stop] @ x.T
    local = torch.arange(rows, device=x.device)
    scores[local, start + local] = -torch.inf  # no self-loops
    # One extra place shows whether the cut falls inside a run of equal scores; there torch.topk
    # picks arbitrarily, so those rows (rare) take the lowest ids among the tied instead.
    top = torch.topk(scores, kk + 1, dim=1)
    cols = top.indices[:, :kk].clone()
    tied = (top.values[:, kk] == top.values[:, kk - 1]).nonzero()[:, 0]
    if tied.numel():
        part = scores[tied]
        kth = top.values[tied, kk - 1 : kk]
        above = part > kth
        at_cut = part == kth
        room = kk - above.sum(dim=1, keepdim=True)
        chosen = above | (at_cut & (at_cut.cumsum(dim=1) <= room))
        cols[tied] = chosen.nonzero()[:, 1].reshape(-1, kk)
    cols = torch.sort(cols, dim=1).values
    vals = scores.gather(1, cols)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices  # equal scores stay id-ascending
    cols, vals = cols.gather(1, order), vals.gather(1, order)
    keep = vals >= tau
    ids[:, :kk] = torch.where(keep, cols, -1).cpu().numpy()
    weights[:, :kk] = torch.where(keep, vals, 0.0).to(torch.float32).cpu().numpy()
    return ids, weights


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
    keeping cos >= tau; missing neighbours are id -1 with weight 0.
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
    n = x.shape[0]
    blocks = block_ranges(n, default_block_rows(n, str(resolved)) if block_rows is None else block_rows)
    ids = np.empty((n, k), dtype=np.int32)
    weights = np.empty((n, k), dtype=np.float32)
    for start, stop in blocks:
        ids[start:stop], weights[start:stop] = _top_k(x, start, stop, int(k), float(tau))
    return ids, weights
