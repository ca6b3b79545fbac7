"""Core knowledge of a target: principal components of its validation features (docs/architecture.md §4.3)."""

from __future__ import annotations

import numpy as np

from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.common import check_finite, check_fraction, check_matrix


def core_components(val_features: np.ndarray, variance: float = 0.5, *,
                    centre: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Components K [c, D] (unit rows) and their budget weights w [c] (summing to 1).

    Keeps the fewest components whose cumulative explained-variance ratio exceeds ``variance``
    (sklearn's rule), and turns each towards the mean validation feature, since SVD's sign is
    arbitrary and the walk ranks rows by X·K_i.

    ``centre=True`` is the paper's PCA: the components span how validation examples *differ*.
    ``centre=False`` takes the SVD of the rows as they are, so the first component is the
    direction they *share* (the target's mean gradient, which LESS ranks by) and the weights
    are shares of the second moment rather than of the variance (docs/quality.md).
    """
    variance = check_fraction(variance, "variance")
    values = check_matrix(val_features, "val_features", min_rows=2).astype(np.float64)
    check_finite(values, "val_features")
    mean = values.mean(axis=0)
    _, singular, vt = np.linalg.svd(values - mean if centre else values, full_matrices=False)
    power = singular**2
    if power.sum() <= 0.0:
        raise InvalidInput("val_features has no variance: all validation rows are equal, PCA finds no direction"
                           if centre else "val_features are all zero: SVD finds no direction")
    ratio = power / power.sum()
    keep = min(int(np.searchsorted(np.cumsum(ratio), variance, side="right")) + 1, ratio.size)
    components = vt[:keep].copy()
    components[components @ mean < 0] *= -1.0
    components /= np.linalg.norm(components, axis=1, keepdims=True)
    return components, ratio[:keep] / ratio[:keep].sum()
