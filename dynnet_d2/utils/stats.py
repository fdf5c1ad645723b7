"""The 95 % confidence interval of a mean over seeds, shared by the sweeps' statistics
(:mod:`dynnet_d2.experiments.seed_stats`) and the methods' benchmarks.

Student-t's by default, ``t(0.975, n - 1) * std / sqrt(n)``, right for every n; ``"fsdet"`` is
fsdet's ``aggregate_seeds.py``, ``1.96 * population std / sqrt(n)``, to compare with published
tables."""
import math
from typing import Sequence, Tuple

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


def mean_and_ci(values: Sequence[float], method: str = "t") -> Tuple[float, float]:
    """``(mean, 95 % CI half-width)`` of ``values`` (NaN entries left out; the half-width is nan
    for fewer than two values)."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    return float(v.mean()), ci95(std, len(v), method)
