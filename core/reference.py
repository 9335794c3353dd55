"""The training reference that live traffic is compared with, as plain data.

Training writes it beside each run: the training features with the model's out-of-fold scores and
bands (the same columns as a served row: features, ``score``, ``band``), and a JSON summary of the
score deciles and band shares that the population stability index needs exactly. Monitoring reads
it and profiles it; nothing here depends on the profiling library.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import fsspec
import numpy as np
import pandas as pd

ARTIFACT = "reference"  # the run's artifact folder
ROWS_FILE, SUMMARY_FILE = "rows.parquet", "summary.json"
SCORE, BAND = "score", "band"  # the output columns of a served or reference row
SCORE_BINS = 10


class ReferenceData(NamedTuple):
    rows: pd.DataFrame  # features, score, band
    summary: dict[str, Any]


def reference_rows(
    features: pd.DataFrame, scores: Sequence[float] | np.ndarray, bands: Sequence[str]
) -> pd.DataFrame:
    """The training features with the model's scores and bands on them."""
    return features.reset_index(drop=True).assign(
        **{SCORE: np.asarray(scores, dtype="float64"), BAND: list(bands)}
    )


def reference_summary(scores: Sequence[float] | np.ndarray, bands: Sequence[str]) -> dict[str, Any]:
    """Decile cut points of the reference scores, the share in each bin, and band shares."""
    scores = np.asarray(scores, dtype="float64")
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, SCORE_BINS + 1)[1:-1]))
    band_shares = pd.Series(list(bands)).value_counts(normalize=True).sort_index()
    return {
        "rows": int(len(scores)),
        "score_edges": edges.tolist(),
        "score_shares": bin_shares(scores, edges).tolist(),
        "band_shares": {str(band): float(share) for band, share in band_shares.items()},
    }


def bin_shares(scores: np.ndarray, edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Share of scores in each bin [edge_i, edge_i+1), with open-ended first and last bins."""
    index = np.searchsorted(np.asarray(edges), scores, side="right")
    return np.bincount(index, minlength=len(edges) + 1) / max(len(scores), 1)


def write_reference(
    features: pd.DataFrame,
    scores: Sequence[float] | np.ndarray,
    bands: Sequence[str],
    path: str | Path,
) -> tuple[str, str]:
    """Write the reference rows and their summary into the folder ``path`` (any fsspec URL)."""
    fs, root = fsspec.core.url_to_fs(str(path))
    fs.makedirs(root, exist_ok=True)
    rows_path, summary_path = f"{root}/{ROWS_FILE}", f"{root}/{SUMMARY_FILE}"
    with fs.open(rows_path, "wb") as handle:
        reference_rows(features, scores, bands).to_parquet(handle, index=False)
    fs.pipe_file(summary_path, json.dumps(reference_summary(scores, bands), indent=2).encode())
    return rows_path, summary_path


def read_reference(path: str | Path) -> ReferenceData:
    """The reference written by ``write_reference`` into the folder ``path``."""
    fs, root = fsspec.core.url_to_fs(str(path))
    if not fs.exists(f"{root}/{ROWS_FILE}"):
        raise FileNotFoundError(f"no reference at {path}: expected {ROWS_FILE} there")
    with fs.open(f"{root}/{ROWS_FILE}", "rb") as handle:
        rows = pd.read_parquet(handle)
    return ReferenceData(rows, json.loads(fs.cat_file(f"{root}/{SUMMARY_FILE}")))
