"""What every selection method shares: budgets per component and the top fraction of scores."""

from __future__ import annotations

import numpy as np

from gradwalk.graph.selection.common import allocate_budgets, top_fraction


def test_budgets_split_by_largest_remainder_of_n_r_w():
    # N·r = 10.9 → quotas 4.905 and 5.995 → floors 4 + 5, the leftover unit to the larger remainder.
    assert allocate_budgets(100, 0.109, np.array([0.45, 0.55])).tolist() == [4, 6]
    # Equal remainders: the lower component first.
    assert allocate_budgets(10, 0.59, np.array([0.5, 0.5])).tolist() == [3, 2]
    assert allocate_budgets(10, 0.5, np.array([0.0, 3.0])).tolist() == [0, 5]


def test_top_fraction_takes_the_best_and_breaks_ties_to_the_lower_index():
    assert top_fraction(np.array([0.1, 0.9, 0.5, 0.9, 0.2]), 0.6).tolist() == [1, 3, 2]
