"""Seeded projections: the same map in another process, the sparse structure, inner products kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from gradwalk.workers.engine.projection import BLOCK, Projection

pytestmark = pytest.mark.usefixtures("one_torch_thread")

P = 3 * BLOCK + 123  # several blocks and a ragged last one


def _rows(seed: int = 0, n: int = 6) -> torch.Tensor:
    return torch.randn(n, P, generator=torch.Generator().manual_seed(seed))


def _basis() -> torch.Tensor:
    """One-hot rows for coordinates from every block: projecting them reads the map's entries exactly."""
    coords = torch.arange(0, P, 37)
    basis = torch.zeros(len(coords), P)
    basis[torch.arange(len(coords)), coords] = 1.0
    return basis


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_projection_is_the_same_in_another_process(kind, tmp_path):
    projection = Projection(P, 512, kind=kind, nnz=4, seed=11)
    code = textwrap.dedent(f"""
        import numpy as np, torch
        from gradwalk.workers.engine.projection import Projection
        torch.manual_seed(12345)  # the global generator must not matter
        basis = torch.zeros({len(_basis())}, {P})
        basis[torch.arange(len(basis)), torch.arange(0, {P}, 37)] = 1.0
        rows = torch.randn(6, {P}, generator=torch.Generator().manual_seed(0))
        projection = Projection({P}, 512, kind={kind!r}, nnz=4, seed=11)
        np.save({str(tmp_path / "map.npy")!r}, projection(basis).numpy())
        np.save({str(tmp_path / "rows.npy")!r}, projection(rows).numpy())
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert np.array_equal(projection(_basis()).numpy(), np.load(tmp_path / "map.npy"))  # the same map, bit for bit
    # applied to data: equal up to the summation order of the BLAS threads
    np.testing.assert_allclose(projection(_rows()).numpy(), np.load(tmp_path / "rows.npy"), rtol=1e-5, atol=1e-4)
    other_seed = Projection(P, 512, kind=kind, nnz=4, seed=12)(_basis())
    assert not torch.equal(projection(_basis()), other_seed)


def test_sparse_map_has_nnz_signed_entries_per_coordinate_one_per_slice():
    dim, nnz = 256, 4
    basis = _basis()
    matrix = Projection(P, dim, kind="sparse", nnz=nnz, seed=3)(basis)  # the map's rows for those coordinates
    assert matrix.shape == (len(basis), dim)
    nonzero = matrix != 0
    assert (nonzero.sum(1) == nnz).all()
    assert torch.allclose(matrix[nonzero].abs(), torch.tensor(nnz**-0.5))
    slices = nonzero.reshape(-1, nnz, dim // nnz).sum(2)
    assert (slices == 1).all()
    signs = matrix[nonzero]
    assert 0.45 < (signs > 0).float().mean() < 0.55


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_projection_keeps_inner_products(kind):
    rows = _rows(1, n=8)
    rows[1] = rows[0] + 0.5 * rows[1]  # a correlated pair
    y = Projection(P, 2048, kind=kind, nnz=4, seed=5)(rows)
    assert torch.allclose(y.norm(dim=1), rows.norm(dim=1), rtol=0.1)
    cos_in = torch.nn.functional.normalize(rows, dim=1) @ torch.nn.functional.normalize(rows, dim=1).T
    cos_out = torch.nn.functional.normalize(y, dim=1) @ torch.nn.functional.normalize(y, dim=1).T
    assert (cos_in - cos_out).abs().max() < 0.1  # JL at D=2048: about 0.02 per pair
    assert cos_out[0, 1] > 0.8
