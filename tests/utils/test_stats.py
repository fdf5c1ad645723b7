"""Welch's interval of the difference of two independent means (dynnet_d2/utils/stats.py),
against a hand computation and scipy's own Welch test."""
import math

import pytest
from scipy import stats as scipy_stats

from dynnet_d2.utils.stats import welch_difference


def test_welch_difference_by_hand_and_against_scipy():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]
    result = welch_difference(a, b)
    # means 2 and 4; variances 1 and 4: se^2 = 1/3 + 4/3; df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2)
    assert result["difference"] == pytest.approx(-2.0)
    assert result["df"] == pytest.approx(50 / 17)
    assert result["ci95"] == pytest.approx(scipy_stats.t.ppf(0.975, 50 / 17) * math.sqrt(5 / 3))
    test = scipy_stats.ttest_ind(a, b, equal_var=False)
    if hasattr(test, "confidence_interval"):  # scipy >= 1.11
        low, high = test.confidence_interval(0.95)
        assert (low, high) == pytest.approx((-2.0 - result["ci95"], -2.0 + result["ci95"]))


def test_welch_difference_of_too_few_or_constant_values():
    one = welch_difference([1.0], [2.0, 3.0])
    assert one["difference"] == pytest.approx(-1.5) and math.isnan(one["ci95"])
    assert math.isnan(welch_difference([], [1.0, 2.0])["difference"])
    assert welch_difference([1.0, 1.0], [2.0, 2.0]) == {"difference": -1.0, "ci95": 0.0,
                                                        "df": pytest.approx(math.nan,
                                                                            nan_ok=True)}
