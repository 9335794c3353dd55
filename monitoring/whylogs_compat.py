"""The one door to whylogs: import whylogs names from here, never from ``whylogs`` directly.

whylogs 1.6.4 still refers to ``np.unicode_``, which NumPy 2 removed, so profiling any string
column whose dtype is not ``object`` (pandas ``string``, NumPy ``<U``, single rows of ``str``)
raises ``AttributeError``. The alias is restored before whylogs is imported. whylogs' anonymous
usage statistics, sent on import, are switched off: a scoring service makes no such calls.

whylogs also splits every pandas column by calling Python functions on each value (``np.isinf``
on each float, six type checks on each string), which made 85% of the profiler's CPU.
:func:`_pandas_split` does the same split with vectorised calls for the two kinds of column the
service profiles (float64, and object columns holding only strings and missing values), with
the same result, and leaves every other column to whylogs.

Merging two profiles of a column whose means are far apart (a served value near 1e308 beside
ordinary ones) makes whylogs' variance update ``delta**2`` overflow a Python float and raise, so
one accepted request would stop every later drift check of that model. The merge is redone in
float64 arithmetic there: the variance becomes infinite, the sketches (which the drift tests
use) merge as usual.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

if not hasattr(np, "unicode_"):
    np.unicode_ = np.str_
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")

import whylogs as why  # noqa: E402
from scipy import stats  # noqa: E402
from whylogs.core import DatasetProfileView  # noqa: E402
from whylogs.core.metrics.metric_components import FractionalComponent  # noqa: E402
from whylogs.core.metrics.metrics import DistributionMetric  # noqa: E402
from whylogs.core.preprocessing import PreprocessedColumn  # noqa: E402
from whylogs.core.view.column_profile_view import ColumnProfileView  # noqa: E402
from whylogs.viz.drift.column_drift_algorithms import (  # noqa: E402
    KS,
    ChiSquare,
    ColumnDriftAlgorithm,
    DriftAlgorithmScore,  # noqa: E402
    calculate_drift_scores,
)
from whylogs.viz.drift.configs import ChiSquareConfig, DriftThresholds, KSTestConfig  # noqa: E402

MIN_EXPECTED = 5.0

_whylogs_distribution_merge = DistributionMetric.merge


def _distribution_merge(self: DistributionMetric, other: DistributionMetric) -> DistributionMetric:
    """whylogs' merge, or the same formulas in float64 when a Python float overflows."""
    try:
        return _whylogs_distribution_merge(self, other)
    except OverflowError:
        a_n, b_n = self.kll.value.get_n(), other.kll.value.get_n()
        n = a_n + b_n
        with np.errstate(over="ignore", invalid="ignore"):
            delta = np.float64(other.avg) - np.float64(self.avg)
            m2 = np.float64(self.m2.value) + np.float64(other.m2.value) + delta**2 * a_n * b_n / n
            mean = (a_n / n) * np.float64(self.avg) + (b_n / n) * np.float64(other.avg)
        return DistributionMetric(
            kll=self.kll + other.kll,
            mean=FractionalComponent(float(mean)),
            m2=FractionalComponent(float(m2)),
        )


DistributionMetric.merge = _distribution_merge

_whylogs_pandas_split = PreprocessedColumn._pandas_split


def _pandas_split(
    column: PreprocessedColumn, series: pd.Series | None, parse_numeric_string: bool = False
) -> None:
    """whylogs' ``PreprocessedColumn._pandas_split`` without per-value Python calls for float64
    columns and string columns; any other column goes to whylogs' own code."""
    if series is None or not isinstance(series.dtype, np.dtype):
        return _whylogs_pandas_split(column, series, parse_numeric_string)
    if series.dtype.kind == "f":
        missing = series.isna().to_numpy()
        values = series.to_numpy(dtype="float64")[~missing]
        column.null_count = column.nan_count = int(missing.sum())  # a NaN is a float's only null
        column.inf_count = int(np.isinf(values).sum())
        column.numpy.floats = values
        return None
    if (
        series.dtype == object
        and not parse_numeric_string
        and pd.api.types.infer_dtype(series, skipna=True) == "string"
    ):
        missing = series.isna().to_numpy()
        nulls = series[missing]
        column.null_count = len(nulls)
        # whylogs counts a missing value as NaN when it is a number (np.nan, not None)
        column.nan_count = int(sum(isinstance(v, float) for v in nulls))
        strings = series[~missing]
        column.numpy.floats = strings.iloc[:0].to_numpy()
        column.numpy.ints = np.array([], dtype=int)
        column.pandas.strings = strings
        column.pandas.tensors = pd.Series([], dtype="object")
        column.pandas.objs = strings.iloc[:0]
        return None
    return _whylogs_pandas_split(column, series, parse_numeric_string)


PreprocessedColumn._pandas_split = _pandas_split


class PooledChiSquare(ChiSquare):
    """whylogs 1.6.4's chi-square truncates expected counts with ``int()`` and makes the statistic
    infinite whenever one is 0, so a rare reference category (expected 0.4 in a small window)
    reports drift with p = 0 even when it is absent from both. This is the textbook test on the
    same frequent-item sketches: expected counts as floats, cells with fewer than 5 expected
    pooled into one (which also holds categories never seen in the reference)."""

    def _compute_chi_squared_score(
        self, target_distribution, reference_distribution, with_thresholds=False
    ):
        ref_total = reference_distribution["total_count"]
        target_total = target_distribution["total_count"]
        if ref_total <= 0 or target_total <= 0:
            return None
        reference = {i["value"]: i["estimate"] for i in reference_distribution["frequent_items"]}
        target = {i["value"]: i["estimate"] for i in target_distribution["frequent_items"]}
        expected = {value: n / ref_total * target_total for value, n in reference.items()}
        kept = [value for value, e in expected.items() if e >= MIN_EXPECTED]
        observed_cells = [target.get(value, 0.0) for value in kept]
        expected_cells = [expected[value] for value in kept]
        rest_expected = target_total - sum(expected_cells)
        rest_observed = target_total - sum(observed_cells)
        if rest_expected > 1e-9:
            observed_cells.append(rest_observed)
            expected_cells.append(rest_expected)
        observed, expected_arr = np.asarray(observed_cells), np.asarray(expected_cells)
        if len(observed) < 2:
            statistic, p_value = 0.0, 1.0
        else:
            statistic = float(((observed - expected_arr) ** 2 / expected_arr).sum())
            p_value = float(stats.chi2.sf(statistic, len(observed) - 1))
        if with_thresholds and self._parameter_config:
            return DriftAlgorithmScore(
                algorithm=self.name,
                pvalue=p_value,
                statistic=statistic,
                thresholds=self._parameter_config.thresholds,
                drift_category=self._get_drift_category(measure=p_value),
            )
        return DriftAlgorithmScore(algorithm=self.name, pvalue=p_value, statistic=statistic)


__all__ = [
    "KS",
    "ChiSquare",
    "ChiSquareConfig",
    "ColumnDriftAlgorithm",
    "ColumnProfileView",
    "DatasetProfileView",
    "DriftThresholds",
    "KSTestConfig",
    "PooledChiSquare",
    "calculate_drift_scores",
    "why",
]
