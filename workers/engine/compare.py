"""Is a subset better than random ones? A paired bootstrap over held-out examples.

Every subset is scored on the same test examples, so the comparison is paired: per example, the
subset's score minus the mean over the random subsets (and over training seeds, where there are
several). Resampling the examples with replacement gives the 95% interval of the mean difference;
the verdict says "better" or "worse" only when the interval excludes 0. Pure numpy: the quality
benchmarks and the evaluation of a version share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradwalk.errors import InvalidInput

BETTER, WORSE, NOISE = "better", "worse", "inside the noise"


@dataclass(frozen=True)
class Difference:
    """Mean per-example difference (subset − random) with its bootstrap 95% interval."""

    mean: float
    low: float
    high: float
    n: int
    verdict: str

    def to_dict(self) -> dict:
        return {"mean": round(self.mean, 5), "low": round(self.low, 5), "high": round(self.high, 5), "n": self.n,
                "verdict": self.verdict}


def paired_difference(subset: np.ndarray, baselines: np.ndarray, *, lower_is_better: bool,
                      draws: int = 4000, seed: int = 0) -> Difference:
    """``subset`` [runs, n] or [n] and ``baselines`` [runs, n]: per-example scores of the same n test
    examples (NaN where an example could not be scored: it is left out of both sides).

    ``lower_is_better`` is True for a loss, False for accuracy; the verdict reads accordingly.
    """
    mine = np.atleast_2d(np.asarray(subset, dtype=np.float64))
    theirs = np.atleast_2d(np.asarray(baselines, dtype=np.float64))
    if mine.shape[1] != theirs.shape[1]:
        raise InvalidInput(f"subset scores {mine.shape[1]} test examples but the baselines {theirs.shape[1]}")
    per_example = mine.mean(axis=0) - theirs.mean(axis=0)
    per_example = per_example[np.isfinite(per_example)]
    if per_example.size < 2:
        raise InvalidInput("a paired comparison needs at least 2 test examples scored on both sides")
    rng = np.random.default_rng(seed)
    means = per_example[rng.integers(0, per_example.size, size=(draws, per_example.size))].mean(axis=1)
    low, high = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    if low > 0 or high < 0:
        verdict = BETTER if (high < 0) == lower_is_better else WORSE
    else:
        verdict = NOISE
    return Difference(float(per_example.mean()), low, high, int(per_example.size), verdict)
