"""Strict CSV reading for dataset adapters: every failure names the file, the column and the row."""

from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd


class InputFileError(ValueError):
    """A raw input file cannot be turned into a canonical table; the message says where and why."""


def read_csv_checked(
    path: Path, *, numeric: list[str], text: list[str], integer: list[str] = ()
) -> pd.DataFrame:
    """Read a CSV as strings, check required columns, then parse numeric columns row by row."""
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: file is empty")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as err:
        raise InputFileError(f"{path}: file is empty") from err
    except pd.errors.ParserError as err:
        raise InputFileError(f"{path}: not a valid CSV: {err}") from err
    if frame.empty:
        raise InputFileError(f"{path}: file has a header but no rows")
    required = [*numeric, *integer, *text]
    for column in required:
        if column not in frame.columns:
            close = difflib.get_close_matches(column, list(frame.columns), n=1)
            hint = f" (found {close[0]!r}: misspelled?)" if close else ""
            raise InputFileError(f"{path}: missing column {column!r}{hint}")
    for column in [*numeric, *integer]:
        frame[column] = _parse_numeric(path, frame[column], column, integer=column in integer)
    return frame


def _parse_numeric(path: Path, values: pd.Series, column: str, *, integer: bool) -> pd.Series:
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna() & values.notna()
    if integer:
        bad |= parsed.notna() & (parsed != parsed.round())
        bad |= values.isna()
    check_rows(path, bad, values, column, "an integer" if integer else "a number")
    return parsed.astype("int64") if integer else parsed.astype("float64")


def check_rows(path: Path, bad: pd.Series, values: pd.Series, column: str, expected: str) -> None:
    """Raise on the first row flagged ``bad``, quoting its file row number and value."""
    if bad.any():
        position = int(bad.to_numpy().argmax())
        row = position + 2  # 1-based, after the header line
        raise InputFileError(
            f"{path}: row {row}, column {column!r}: expected {expected}, "
            f"got {values.iloc[position]!r}"
        )
