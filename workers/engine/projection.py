"""Seeded random projections R^P -> R^D, the same in every process and shard.

The projection is defined block by block: input coordinates [b*BLOCK, (b+1)*BLOCK) get their
part of the matrix from a generator seeded with (seed, kind, b), so any worker that knows
(kind, P, D, nnz, seed) rebuilds the same map without coordinating with the others.

- ``sparse`` (the default): a sparse Johnson-Lindenstrauss transform (Kane & Nelson's block
  construction): input coordinate i has ``nnz`` nonzeros +-1/sqrt(nnz), one in each of ``nnz``
  equal slices of the output, so they never collide. Applying it costs O(P*nnz) per row instead of
  O(P*D). Its nnz*P entries (a few gradients' worth, not the P x D matrix) come from CPU generators,
  hence are identical on every device, and are kept on the device as a CSR matrix.
- ``dense``: entries +-1/sqrt(D) (Rademacher, as LESS/TRAK use). The P x D matrix is never held:
  each block is generated on the rows' device, applied, dropped, and generated again for the next
  call, so it pays to project many rows per call. Device generators differ between CPU and CUDA:
  a dense projection is the same across processes and shards of one device type.
Both preserve inner products in expectation; rows are L2-normalised by the caller.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

BLOCK = 4096  # input coordinates per generated block; part of the projection's definition
_KIND_TAG = {"dense": 1, "sparse": 2}


def _generator(seed: int, kind: str, block: int, device: torch.device | str = "cpu") -> torch.Generator:
    state = np.random.SeedSequence([seed, _KIND_TAG[kind], block]).generate_state(1, np.uint64)[0]
    return torch.Generator(device).manual_seed(int(state) & (2**63 - 1))


class Projection:
    def __init__(self, in_dim: int, dim: int, *, kind: str = "sparse", nnz: int = 4, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        if kind not in _KIND_TAG:
            raise ValueError(f"unknown projection kind {kind!r}")
        if kind == "sparse" and dim % nnz:
            raise ValueError("the sparse projection needs dim to be a multiple of nnz")
        self.in_dim, self.dim, self.kind, self.nnz, self.seed = in_dim, dim, kind, nnz, seed
        self.device = torch.device(device)
        self._sparse_t = self._build_sparse().to(self.device) if kind == "sparse" else None

    def describe(self) -> dict:
        return {"kind": self.kind, "in_dim": self.in_dim, "dim": self.dim, "seed": self.seed,
                **({"nnz": self.nnz} if self.kind == "sparse" else {}), "block": BLOCK}

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """[N, P] -> [N, D] in fp32."""
        if rows.shape[1] != self.in_dim:
            raise ValueError(f"expected {self.in_dim} input coordinates, got {rows.shape[1]}")
        rows = rows.to(self.device, torch.float32)
        return self._sparse(rows) if self.kind == "sparse" else self._dense(rows)

    def _blocks(self):
        for b, start in enumerate(range(0, self.in_dim, BLOCK)):
            yield b, start, min(start + BLOCK, self.in_dim)

    def _dense(self, rows: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(rows.shape[0], self.dim, device=self.device)
        for b, start, stop in self._blocks():
            bits = torch.randint(0, 2, (stop - start, self.dim), dtype=torch.float32, device=self.device,
                                 generator=_generator(self.seed, "dense", b, self.device))
            part = rows[:, start:stop]
            # x @ (2*bits - 1) without a second pass over the block
            out.addmm_(part, bits, alpha=2.0).sub_(part.sum(1, keepdim=True))
        return out.mul_(self.dim**-0.5)

    def _sparse(self, rows: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse.mm(self._sparse_t, rows.t().contiguous()).t()

    def _build_sparse(self) -> torch.Tensor:
        """The transposed map as a [D, P] CSR matrix (CSR @ dense is the fast kernel on CPU and GPU)."""
        width = self.dim // self.nnz
        cols, outs, signs = [], [], []
        for b, start, stop in self._blocks():
            g = _generator(self.seed, "sparse", b)
            n = stop - start
            slot = torch.randint(0, width, (n, self.nnz), generator=g)
            outs.append(slot + torch.arange(self.nnz) * width)
            signs.append(torch.randint(0, 2, (n, self.nnz), generator=g, dtype=torch.float32).mul_(2).sub_(1))
            cols.append(torch.arange(start, stop).unsqueeze(1).expand(n, self.nnz))
        index = torch.stack([torch.cat(outs).reshape(-1), torch.cat(cols).reshape(-1)])
        values = torch.cat(signs).reshape(-1).mul_(self.nnz**-0.5)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            coo = torch.sparse_coo_tensor(index, values, (self.dim, self.in_dim), check_invariants=False)
            return coo.coalesce().to_sparse_csr()
