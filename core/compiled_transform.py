"""The fitted preprocessing as plain NumPy: the same numbers as scikit-learn, without its overhead.

scikit-learn's ``ColumnTransformer`` costs ~4 ms per call whatever the batch size (input
validation, pandas indexing, per-step dispatch): a third of the cost of scoring one request. The
fitted steps used here (``training.candidates.preprocessor``: an optional signed log, median
imputation with missing indicators then standard scaling for numbers; constant imputation then
one-hot encoding with infrequent categories for categories) are a few array operations once
fitted, so :func:`compile_preprocessor` reads their fitted attributes into lookup tables.

It only compiles what it recognises, and it checks itself: the compiled transform must reproduce
the scikit-learn output on a probe covering every known category, an unknown one and a missing
value in every column; otherwise it returns None and the caller keeps using scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core.columns import Columns, as_float
from core.transforms import SignedLog, signed_log

TOLERANCE = 1e-12
UNKNOWN_PROBE = "\x00never-seen-category"


@dataclass(frozen=True)
class _NumericBlock:
    log: bool  # signed log before imputation (core.transforms.SignedLog)
    fill: np.ndarray  # per numeric column, the imputed value
    indicator_columns: np.ndarray  # columns that get a missing indicator
    mean: np.ndarray  # scaler offset, imputed values then indicators
    scale: np.ndarray

    @property
    def width(self) -> int:
        return len(self.fill) + len(self.indicator_columns)

    def transform(self, values: np.ndarray, out: np.ndarray) -> None:
        if self.log:
            values = signed_log(values)
        missing = np.isnan(values)
        imputed = np.where(missing, self.fill, values)
        indicators = missing[:, self.indicator_columns].astype("float64")
        out[:, : self.width] = (np.hstack([imputed, indicators]) - self.mean) / self.scale


@dataclass(frozen=True)
class _CategoryBlock:
    fill: str  # what a missing value becomes before encoding
    positions: dict[Any, int]  # category -> output column within the block (-1: all zeros)
    unknown: int  # output column of a category never seen in training (-1: all zeros)
    width: int

    def column_of(self, value: Any) -> int:
        if not isinstance(value, str):
            value = self.fill
        return self.positions.get(value, self.unknown)


@dataclass(frozen=True)
class CompiledTransform:
    """``transform(prepared) -> float64 array``, equal to the fitted ColumnTransformer's."""

    numeric: list[str]
    categorical: list[str]
    numbers: _NumericBlock
    categories: list[_CategoryBlock]

    @property
    def width(self) -> int:
        return self.numbers.width + sum(block.width for block in self.categories)

    def transform(self, prepared: Columns | pd.DataFrame) -> np.ndarray:
        if isinstance(prepared, pd.DataFrame):
            prepared = Columns.of(prepared)
        rows = len(prepared)
        out = np.zeros((rows, self.width))
        values = np.empty((rows, len(self.numeric)))
        for j, name in enumerate(self.numeric):
            values[:, j] = as_float(prepared[name])
        self.numbers.transform(values, out)
        offset = self.numbers.width
        row_index = np.arange(rows)
        for name, block in zip(self.categorical, self.categories, strict=True):
            columns = np.fromiter((block.column_of(v) for v in prepared[name]), int, rows)
            hit = columns >= 0
            out[row_index[hit], offset + columns[hit]] = 1.0
            offset += block.width
        return out


def compile_preprocessor(
    prep: Any, numeric: list[str], categorical: list[str]
) -> CompiledTransform | None:
    """A NumPy equivalent of the fitted ``prep``, or None when it has another shape or the
    equivalence check on the probe fails."""
    try:
        compiled = _compile(prep, numeric, categorical)
    except _Unsupported:
        return None
    probe = _probe(compiled, numeric, categorical)
    expected = np.asarray(prep.transform(probe), dtype="float64")
    actual = compiled.transform(probe)
    if expected.shape != actual.shape or not np.allclose(actual, expected, rtol=0, atol=TOLERANCE):
        return None
    return compiled


class _Unsupported(Exception):
    pass


def _step(pipeline: Any, name: str, kind: type) -> Any:
    if not isinstance(pipeline, Pipeline) or name not in pipeline.named_steps:
        raise _Unsupported(name)
    step = pipeline.named_steps[name]
    if type(step) is not kind:
        raise _Unsupported(name)
    return step


def _compile(prep: Any, numeric: list[str], categorical: list[str]) -> CompiledTransform:
    if not isinstance(prep, ColumnTransformer):
        raise _Unsupported("not a ColumnTransformer")
    fitted = [(name, step, list(cols)) for name, step, cols in prep.transformers_]
    if [(name, cols) for name, _, cols in fitted if name != "remainder"] != [
        ("num", numeric),
        ("cat", categorical),
    ]:
        raise _Unsupported("unexpected column layout")
    if any(name == "remainder" and step != "drop" and cols for name, step, cols in fitted):
        raise _Unsupported("remainder columns are kept")
    numeric_steps, categorical_steps = fitted[0][1], fitted[1][1]
    # models trained before the log step have two numeric steps
    log = isinstance(numeric_steps, Pipeline) and "log" in numeric_steps.named_steps
    if len(numeric_steps.steps) != 2 + log or len(categorical_steps.steps) != 2:
        raise _Unsupported("unexpected steps")
    return CompiledTransform(
        numeric,
        categorical,
        _numeric_block(
            log and _step(numeric_steps, "log", SignedLog).enabled,
            _step(numeric_steps, "impute", SimpleImputer),
            _step(numeric_steps, "scale", StandardScaler),
        ),
        _category_blocks(
            _step(categorical_steps, "impute", SimpleImputer),
            _step(categorical_steps, "onehot", OneHotEncoder),
        ),
    )


def _numeric_block(log: bool, imputer: SimpleImputer, scaler: StandardScaler) -> _NumericBlock:
    if imputer.strategy not in ("median", "mean", "most_frequent", "constant"):
        raise _Unsupported("imputer strategy")
    if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
        raise _Unsupported("missing values are not NaN")
    indicator = getattr(imputer, "indicator_", None)
    columns = np.asarray(indicator.features_ if indicator is not None else [], dtype=int)
    width = len(imputer.statistics_) + len(columns)
    mean = scaler.mean_ if scaler.with_mean else np.zeros(width)
    scale = scaler.scale_ if scaler.with_std else np.ones(width)
    if len(mean) != width:
        raise _Unsupported("scaler width")
    return _NumericBlock(
        log, np.asarray(imputer.statistics_, dtype="float64"), columns, np.asarray(mean), scale
    )


def _category_blocks(imputer: SimpleImputer, encoder: OneHotEncoder) -> list[_CategoryBlock]:
    if imputer.strategy != "constant" or encoder.drop is not None:
        raise _Unsupported("categorical steps")
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(
        encoder.categories_
    )
    blocks = []
    for categories, rare in zip(encoder.categories_, infrequent, strict=True):
        rare_set = set(rare) if rare is not None and len(rare) else set()
        frequent = [c for c in categories if c not in rare_set]
        positions = {c: i for i, c in enumerate(frequent)}
        rare_column = len(frequent) if rare_set else -1
        positions.update({c: rare_column for c in rare_set})
        if encoder.handle_unknown == "infrequent_if_exist":
            unknown = rare_column
        elif encoder.handle_unknown == "ignore":
            unknown = -1
        else:
            raise _Unsupported("handle_unknown=error")
        blocks.append(
            _CategoryBlock(
                str(imputer.fill_value), positions, unknown, len(frequent) + bool(rare_set)
            )
        )
    return blocks


def _probe(compiled: CompiledTransform, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Rows covering every known category, an unknown one and a missing value per column."""
    lengths = [len(block.positions) + 2 for block in compiled.categories] or [2]
    rows = max(lengths)
    rng = np.random.default_rng(0)
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(numeric):
        values = rng.normal(compiled.numbers.fill[i], 1.0 + abs(compiled.numbers.fill[i]), rows)
        values[i % rows] = np.nan
        columns[name] = values
    for name, block in zip(categorical, compiled.categories, strict=True):
        known = [*block.positions, UNKNOWN_PROBE, np.nan]
        columns[name] = np.array([known[j % len(known)] for j in range(rows)], dtype=object)
    return pd.DataFrame(columns)
