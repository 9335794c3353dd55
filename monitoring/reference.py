"""The training reference as monitoring compares it: a whylogs profile of the reference rows
(``core/reference.py``) and their score summary. A champion's reference is profiled once and
kept in the reports folder, since every drift check, alert check and diagnosis compares with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from core import reference as reference_data
from monitoring.whylogs_compat import DatasetProfileView, why


class Reference(NamedTuple):
    view: DatasetProfileView
    summary: dict[str, Any]


def profile_rows(rows: pd.DataFrame) -> DatasetProfileView:
    """whylogs profile of reference rows (features, score, band)."""
    return why.log(pandas=rows).view()


def load_reference(path: str | Path) -> Reference:
    """The reference written by training into the folder ``path``, profiled."""
    data = reference_data.read_reference(path)
    return Reference(profile_rows(data.rows), data.summary)


PROFILE_FILE = "profile.bin"


def load_cached(folder: Path) -> Reference | None:
    """A reference kept by ``keep``, or None when there is none."""
    profile = folder / PROFILE_FILE
    if not profile.exists():
        return None
    summary = json.loads((folder / reference_data.SUMMARY_FILE).read_text())
    return Reference(DatasetProfileView.deserialize(profile.read_bytes()), summary)


def keep(reference: Reference, folder: Path) -> None:
    """Write ``reference`` into ``folder`` for ``load_cached``; the profile is written last, so a
    partly written folder reads as absent."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / reference_data.SUMMARY_FILE).write_text(json.dumps(reference.summary))
    partial = folder / f"{PROFILE_FILE}.partial"
    partial.write_bytes(reference.view.serialize())
    partial.replace(folder / PROFILE_FILE)
