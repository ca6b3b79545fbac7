"""The target's core knowledge (docs/architecture.md §4.3): principal components against sklearn's PCA."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.pca import core_components


@pytest.mark.parametrize("variance", [0.3, 0.5, 0.8, 0.95])
def test_core_components_match_sklearn_pca(variance, clustered):
    rng = np.random.default_rng(3)
    val = clustered(rng, 40, 12, clusters=5)

    components, weights = core_components(val, variance)

    pca = PCA(n_components=variance, svd_solver="full").fit(val)
    assert components.shape == (pca.n_components_, 12)
    evr = pca.explained_variance_ratio_
    np.testing.assert_allclose(weights, evr / evr.sum(), rtol=1e-9)
    np.testing.assert_allclose(np.abs(components @ pca.components_.T), np.eye(pca.n_components_), atol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(components, axis=1), 1.0)
    assert (components @ val.mean(axis=0) >= 0).all()


def test_core_components_refuse_a_target_without_variance():
    with pytest.raises(InvalidInput, match="val_features"):
        core_components(np.ones((1, 4)))
    with pytest.raises(InvalidInput, match="no variance"):
        core_components(np.ones((5, 4)))
    with pytest.raises(InvalidInput, match="variance"):
        core_components(np.eye(4), variance=0.0)


def test_uncentred_components_lead_with_the_direction_the_rows_share(clustered):
    rng = np.random.default_rng(5)
    val = clustered(rng, 40, 12, clusters=5)
    mean = val.mean(axis=0) / np.linalg.norm(val.mean(axis=0))

    shared, shared_weights = core_components(val, 0.5, centre=False)
    differing, _ = core_components(val, 0.5, centre=True)

    _, singular, vt = np.linalg.svd(val, full_matrices=False)
    power = singular**2 / (singular**2).sum()
    keep = int(np.searchsorted(np.cumsum(power), 0.5, side="right")) + 1
    np.testing.assert_allclose(np.abs(shared @ vt[:keep].T), np.eye(keep), atol=1e-8)
    np.testing.assert_allclose(shared_weights, power[:keep] / power[:keep].sum(), rtol=1e-9)
    assert shared[0] @ mean > 0.95  # the rows share an offset: the first uncentred component is it
    assert abs(differing[0] @ mean) < shared[0] @ mean
    with pytest.raises(InvalidInput, match="all zero"):
        core_components(np.zeros((5, 4)), centre=False)
