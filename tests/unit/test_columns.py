"""The serving path's columns: selection, concatenation and the prediction log's feature hash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.columns import Columns, as_float
from monitoring.prediction_log import feature_hashes


def sample() -> Columns:
    return Columns(
        {
            "b_num": np.array([1.5, np.nan, 3.0]),
            "a_cat": np.array(["x", np.nan, "y"], dtype=object),
            "c": np.array([0.1, 2e9, -7.25]),
        }
    )


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        Columns({"a": np.zeros(2), "b": np.zeros(3)})


def test_take_select_concat_and_frame() -> None:
    rows = sample()
    picked = rows.take(np.array([True, False, True]))
    assert len(picked) == 2 and picked["a_cat"].tolist() == ["x", "y"]
    assert rows.select(["c"]).names == ["c"]
    joined = Columns.concat([picked, rows.take(np.array([1]))])
    assert joined["c"].tolist() == [0.1, -7.25, 2e9]
    pd.testing.assert_frame_equal(Columns.of(rows.to_frame()).to_frame(), rows.to_frame())


def test_objects_are_plain_python_values() -> None:
    values = sample().objects(["c", "a_cat"])
    assert values.shape == (3, 2)
    assert {type(v) for v in values[:, 0]} == {float}
    assert values[0].tolist() == [0.1, "x"]


def test_as_float_turns_missing_markers_into_nan() -> None:
    np.testing.assert_array_equal(as_float([1, None, 2.5]), [1.0, np.nan, 2.5])
    np.testing.assert_array_equal(as_float(pd.array([1, None], dtype="Int64")), [1.0, np.nan])


def test_feature_hashes_are_stable() -> None:
    """The prediction log's hashes stay comparable across versions and spellings of missing:
    these values were computed by the DataFrame implementation this replaced."""
    expected = ["1cf9660fa7e4acb2", "4e142e927f444e72", "870df9906a1e2319"]
    assert feature_hashes(sample()) == expected
    reordered = sample().select(["c", "a_cat", "b_num"])
    reordered.arrays["a_cat"] = np.array(["x", None, "y"], dtype=object)
    assert feature_hashes(reordered) == expected
