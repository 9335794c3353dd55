"""A batch of rows as named NumPy columns: what the serving hot path passes around instead of a
DataFrame.

A request scores one to a few rows, and at that size pandas' per-call overhead (building a frame
column by column, selecting, reindexing) costs more than the model
(docs/decisions/0003-compiled-transform-on-typed-columns.md). Training
keeps its DataFrames; both go through the same input typing (``core.scoring.prepare_inputs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd


class Columns:
    """Equal-length 1-D arrays by column name, in order."""

    __slots__ = ("arrays", "rows")

    def __init__(self, arrays: dict[str, np.ndarray], rows: int | None = None) -> None:
        lengths = {len(values) for values in arrays.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        self.arrays = arrays
        self.rows = lengths.pop() if lengths else (rows or 0)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Columns:
        return cls({str(name): frame[name].to_numpy() for name in frame.columns}, len(frame))

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        """Rows of ``parts`` one after the other; each part has the same columns."""
        if len(parts) == 1:
            return parts[0]
        names = parts[0].names
        return cls({name: np.concatenate([part[name] for part in parts]) for name in names})

    @property
    def names(self) -> list[str]:
        return list(self.arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __contains__(self, name: object) -> bool:
        return name in self.arrays

    def __len__(self) -> int:
        return self.rows

    def take(self, rows: np.ndarray) -> Columns:
        """The rows selected by a boolean mask or by positions."""
        return Columns({name: values[rows] for name, values in self.arrays.items()})

    def select(self, names: Iterable[str]) -> Columns:
        return Columns({name: self.arrays[name] for name in names}, self.rows)

    def objects(self, names: Sequence[str] | None = None) -> np.ndarray:
        """A (rows, columns) object array of plain Python values, e.g. for hashing or profiling."""
        names = self.names if names is None else names
        out = np.empty((self.rows, len(names)), dtype=object)
        for j, name in enumerate(names):
            out[:, j] = self.arrays[name]
        return out

    def to_frame(self, index: Any = None) -> pd.DataFrame:
        return pd.DataFrame(self.arrays, index=index)


def as_float(values: Any) -> np.ndarray:
    """float64 values, None (or any missing marker) as NaN."""
    array = np.asarray(values)
    if array.dtype == object:
        return np.array([np.nan if pd.isna(v) else v for v in array], dtype="float64")
    return array.astype("float64", copy=False)
