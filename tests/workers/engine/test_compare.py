"""The paired bootstrap behind "better than random": a verdict only where the interval excludes 0."""

from __future__ import annotations

import numpy as np
import pytest

from gradwalk.errors import InvalidInput
from gradwalk.workers.engine.compare import BETTER, NOISE, WORSE, paired_difference


def test_a_clearly_lower_loss_is_better_and_the_interval_holds_the_mean():
    rng = np.random.default_rng(1)
    random_runs = 2.0 + rng.normal(0, 0.3, size=(5, 200))
    subset = random_runs.mean(axis=0) - 0.2 + rng.normal(0, 0.05, size=200)

    diff = paired_difference(subset, random_runs, lower_is_better=True)

    assert diff.verdict == BETTER and diff.n == 200
    assert diff.low < diff.mean < diff.high < 0
    assert diff.mean == pytest.approx(float((subset - random_runs.mean(axis=0)).mean()))
    assert paired_difference(subset, random_runs, lower_is_better=False).verdict == WORSE


def test_a_difference_inside_the_noise_gets_no_verdict_and_pairing_matters():
    rng = np.random.default_rng(2)
    hard = rng.normal(0, 1.0, size=300)  # how hard each example is: shared by both sides
    random_runs = hard + rng.normal(0, 0.3, size=(5, 300))
    same = hard + rng.normal(0, 0.3, size=(3, 300))
    assert paired_difference(same, random_runs, lower_is_better=True).verdict == NOISE

    slightly = same - 0.1
    paired = paired_difference(slightly, random_runs, lower_is_better=True)
    assert paired.verdict == BETTER  # unpaired, the per-example spread (sd 1) would hide a 0.1 gain


def test_unscored_examples_leave_both_sides_and_bad_shapes_are_refused():
    subset = np.array([1.0, np.nan, 0.0, 1.0])
    random_runs = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, np.nan, 1.0]])
    assert paired_difference(subset, random_runs, lower_is_better=False).n == 2
    with pytest.raises(InvalidInput, match="test examples"):
        paired_difference(np.ones(3), np.ones((2, 4)), lower_is_better=True)
    with pytest.raises(InvalidInput, match="at least 2"):
        paired_difference(np.array([1.0, np.nan]), np.ones((2, 2)), lower_is_better=True)
