"""Summary statistics over seeds and the 95 % confidence interval of their mean, shared by the
sweeps' statistics (:mod:`dynnet_d2.experiments.seed_stats`) and the methods' benchmarks.

Student-t's by default, ``t(0.975, n - 1) * std / sqrt(n)``, right for every n; ``"fsdet"`` is
fsdet's ``aggregate_seeds.py``, ``1.96 * population std / sqrt(n)``, to compare with published
tables."""
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

Z_95 = 1.96
# How the 95 % confidence interval of a mean is computed: name -> what tables say about it.
CI_METHODS = {
    "t": "Student-t: t(0.975, n-1) · s / √n, s the sample standard deviation",
    "fsdet": "fsdet's: 1.96 · σ / √n, σ the population standard deviation (narrower than "
             "Student-t's, for comparing with published tables)",
}


def ci95(std: float, n: int, method: str = "t") -> float:
    """Half-width of the 95 % confidence interval of the mean of ``n`` values whose sample
    standard deviation (ddof = 1) is ``std``, by ``method`` (:data:`CI_METHODS`); nan for
    n < 2."""
    if method not in CI_METHODS:
        raise ValueError(f"confidence interval {method!r}: expected one of {sorted(CI_METHODS)}")
    if n < 2:
        return math.nan
    if method == "fsdet":
        return Z_95 * std * math.sqrt((n - 1) / n) / math.sqrt(n)
    return float(scipy_stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)


@dataclass
class Stats:
    """Summary of one metric over seeds."""

    n: int
    mean: float
    std: float  # sample standard deviation (nan for n = 1)
    ci95: float  # half-width of the 95 % CI of the mean (ci95())
    q1: float
    median: float
    q3: float


def describe(values: Sequence[float], ci: str = "t") -> Stats:
    """:class:`Stats` of ``values`` (nan entries, i.e. undefined APs, are left out), the interval
    by ``ci`` (:data:`CI_METHODS`)."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return Stats(0, *([math.nan] * 6))
    std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    q1, median, q3 = (float(q) for q in np.percentile(v, [25, 50, 75]))
    return Stats(len(v), float(v.mean()), std, ci95(std, len(v), ci), q1, median, q3)


def welch_difference(values: Sequence[float], baseline: Sequence[float]) -> dict:
    """The difference of the means of two independent samples (e.g. two arms trained with
    different seeds): ``{"difference", "ci95", "df"}``, the half-width of its 95 % confidence
    interval by Welch's t (unequal variances, Welch-Satterthwaite degrees of freedom); nan for
    fewer than two values on either side."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    difference = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return {"difference": difference, "ci95": math.nan, "df": math.nan}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return {"difference": difference, "ci95": 0.0, "df": math.nan}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(scipy_stats.t.ppf(0.975, df)) * math.sqrt(va + vb)
    return {"difference": difference, "ci95": half, "df": float(df)}


def per_class_mean(values, labels, num_classes: int) -> np.ndarray:
    """``(num_classes, L)``: the mean of the rows of ``values`` ``(N, L)`` over each class's
    images (``labels`` ``(N,)``), NaN for a class without images."""
    values, labels = np.asarray(values, dtype=float), np.asarray(labels)
    return np.stack([values[labels == c].mean(0) if (labels == c).any()
                     else np.full(values.shape[1], np.nan) for c in range(num_classes)])
