"""What the service hands to the profiler for each scored batch, as plain NumPy (no whylogs).

Batches cross a process boundary (the profile writer runs in a child process), so each is one
object array rather than a DataFrame: building one costs the serving process ~0.01 ms instead of
~1 ms, batches collected over a hand-over interval are concatenated and pickled together, and the
child turns thousands of them into one frame per flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from core.columns import Columns
from core.reference import BAND, SCORE


class ServedRows(NamedTuple):
    """Scored rows: the model's input features, then ``score`` and ``band``, as named columns."""

    columns: tuple[str, ...]
    values: np.ndarray  # dtype object, one row per scored entity

    @classmethod
    def of(cls, features: Columns, scores: np.ndarray, bands: Sequence[str]) -> ServedRows:
        """Rows of one scored batch: ``features`` with their scores and bands appended."""
        values = np.empty((len(features), len(features.names) + 2), dtype=object)
        values[:, :-2] = features.objects()
        values[:, -2] = scores
        values[:, -1] = bands
        return cls((*features.names, SCORE, BAND), values)

    @classmethod
    def join(cls, batches: Sequence[ServedRows]) -> ServedRows:
        """Batches with the same columns as one."""
        return cls(batches[0].columns, np.concatenate([batch.values for batch in batches]))

    @staticmethod
    def frame(batches: Sequence[ServedRows]) -> pd.DataFrame:
        """One frame of batches with the same columns, each column with its inferred dtype."""
        joined = ServedRows.join(batches)
        return pd.DataFrame(joined.values, columns=list(joined.columns)).infer_objects()
