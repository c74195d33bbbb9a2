"""The statistics an eval reports: mean +- standard error, and paired comparisons.

Why a paired test: two targets answer the *same* samples, so the per-sample difference
removes the samples' own difficulty from the noise; comparing two means would need many
more samples to see the same effect. No scipy: a bootstrap gives the confidence interval
of the mean difference and a sign-flip permutation test its p-value (exact in spirit, no
normality assumed), both from numpy with a fixed seed so a report reproduces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PairedComparison", "mean_se", "paired_comparison"]

RESAMPLES = 10_000


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for fewer than two values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


@dataclass(frozen=True)
class PairedComparison:
    """``b - a`` over the samples both targets answered."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def significant(self) -> bool:
        """p < 0.05 (two-sided)."""
        return self.p_value < 0.05


def paired_comparison(a: Sequence[float], b: Sequence[float], *, seed: int = 0,
                      confidence: float = 0.95) -> PairedComparison:
    """Bootstrap CI and sign-flip permutation p-value of ``mean(b - a)``."""
    import numpy as np

    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError("paired samples must have the same length")
    n = int(x.size)
    if n == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    diff = y - x
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    boot = diff[rng.integers(0, n, size=(RESAMPLES, n))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    signs = rng.choice(np.array([-1.0, 1.0]), size=(RESAMPLES, n))
    permuted = np.abs((signs * diff).mean(axis=1))
    # +1 in both counts: the observed assignment is one of the permutations
    p_value = (int((permuted >= abs(observed) - 1e-12).sum()) + 1) / (RESAMPLES + 1)
    if not diff.any():
        p_value = 1.0
    return PairedComparison(n, float(x.mean()), float(y.mean()), observed, float(low),
                            float(high), min(1.0, p_value))
