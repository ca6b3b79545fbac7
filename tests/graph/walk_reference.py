"""docs/architecture.md §4.4 transcribed line by line, one candidate at a time, with no state carried between checks.

It is the oracle the tests hold ``gradient_walk`` to, and the baseline ``benchmarks/walk.py``
times it against, so "identical output" in the benchmark means identical to what the tests trust.
It lives with the tests, not in the package: nothing in production should call it. X·K_i and the
constraints are computed in float64, as in the walk, so the two agree on borderline cases.
"""

from __future__ import annotations

import numpy as np


def _cos(vector: np.ndarray, direction: np.ndarray) -> float:
    norm = np.linalg.norm(vector) * np.linalg.norm(direction)
    return float(vector @ direction / norm) if norm > 0 else 0.0


def _qualifies(features, members, taken, z, direction, delta) -> bool:
    if z in taken:
        return False
    rows = features[members].astype(np.float64)
    x = features[z].astype(np.float64)
    if np.any(rows @ x < 0):  # (5)
        return False
    total = rows.sum(axis=0)
    return abs(_cos(total + x, direction)) >= delta * abs(_cos(total, direction))  # (6)


def reference_walk(features, components, budgets, neighbors, delta, fallback, anchor_pool=1000):
    """Rows picked, as (row, component, step) in selection order."""
    taken: set[int] = set()
    picks: list[tuple[int, int, int]] = []
    for i, budget in enumerate(budgets):
        if budget == 0:
            continue
        direction = np.asarray(components[i], dtype=np.float64)
        order = [int(z) for z in np.argsort(-(features.astype(np.float64) @ direction), kind="stable")]
        window = [z for z in order[:anchor_pool] if z not in taken]
        members = [window[0] if window else next(z for z in order if z not in taken)]
        taken.add(members[0])
        while len(members) < budget:
            listed = [int(z) for z in neighbors[members[-1]] if z >= 0]
            z = next((z for z in listed if _qualifies(features, members, taken, z, direction, delta)), None)
            if z is None and fallback == "paper":
                z = next(z for z in order if z not in taken)
            elif z is None:
                z = next((z for z in order if _qualifies(features, members, taken, z, direction, delta)), None)
            if z is None:
                break
            members.append(z)
            taken.add(z)
        picks += [(z, i, step) for step, z in enumerate(members)]
    return picks
