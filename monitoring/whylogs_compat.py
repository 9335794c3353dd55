"""The one door to whylogs: import whylogs names from here, never from ``whylogs`` directly.

whylogs 1.6.4 still refers to ``np.unicode_``, which NumPy 2 removed, so profiling any string
column whose dtype is not ``object`` (pandas ``string``, NumPy ``<U``, single rows of ``str``)
raises ``AttributeError``. The alias is restored before whylogs is imported. whylogs' anonymous
usage statistics, sent on import, are switched off: a scoring service makes no such calls.
"""

from __future__ import annotations

import os

import numpy as np

if not hasattr(np, "unicode_"):
    np.unicode_ = np.str_
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")

import whylogs as why  # noqa: E402
from whylogs.core import DatasetProfileView  # noqa: E402
from whylogs.core.view.column_profile_view import ColumnProfileView  # noqa: E402
from whylogs.viz.drift.column_drift_algorithms import (  # noqa: E402
    KS,
    ChiSquare,
    ColumnDriftAlgorithm,
    calculate_drift_scores,
)
from whylogs.viz.drift.configs import ChiSquareConfig, DriftThresholds, KSTestConfig  # noqa: E402

__all__ = [
    "KS",
    "ChiSquare",
    "ChiSquareConfig",
    "ColumnDriftAlgorithm",
    "ColumnProfileView",
    "DatasetProfileView",
    "DriftThresholds",
    "KSTestConfig",
    "calculate_drift_scores",
    "why",
]
