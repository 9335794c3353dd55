"""The training-time reference that live profiles are compared with.

A reference is a whylogs profile of the training set with the model's outputs (same columns as
served profiles: features, ``score``, ``band``) plus a small JSON summary of the score deciles and
band shares, which the population stability index (PSI) needs and a sketch cannot give exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import fsspec
import numpy as np
import pandas as pd

from monitoring.served_rows import BAND, SCORE
from monitoring.whylogs_compat import DatasetProfileView, why

PROFILE_FILE, SUMMARY_FILE = "profile.bin", "summary.json"
SCORE_BINS = 10


class Reference(NamedTuple):
    view: DatasetProfileView
    summary: dict[str, Any]


def reference_profile(
    frame: pd.DataFrame, scores: Sequence[float] | np.ndarray, bands: Sequence[str]
) -> DatasetProfileView:
    """Profile of the training features with the model's scores and bands on them."""
    return why.log(pandas=frame.assign(**{SCORE: np.asarray(scores), BAND: list(bands)})).view()


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
    view: DatasetProfileView, path: str | Path, summary: dict[str, Any]
) -> tuple[str, str]:
    """Write the profile and its summary into the folder ``path`` (any fsspec URL)."""
    fs, root = fsspec.core.url_to_fs(str(path))
    fs.makedirs(root, exist_ok=True)
    profile_path, summary_path = f"{root}/{PROFILE_FILE}", f"{root}/{SUMMARY_FILE}"
    fs.pipe_file(profile_path, view.serialize())
    fs.pipe_file(summary_path, json.dumps(summary, indent=2).encode())
    return profile_path, summary_path


def read_reference(path: str | Path) -> Reference:
    """The reference written by ``write_reference`` into the folder ``path``."""
    fs, root = fsspec.core.url_to_fs(str(path))
    if not fs.exists(f"{root}/{PROFILE_FILE}"):
        raise FileNotFoundError(f"no reference profile at {path}: expected {PROFILE_FILE} there")
    return Reference(
        DatasetProfileView.deserialize(fs.cat_file(f"{root}/{PROFILE_FILE}")),
        json.loads(fs.cat_file(f"{root}/{SUMMARY_FILE}")),
    )
