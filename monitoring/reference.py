"""The training reference as monitoring compares it: a whylogs profile of the reference rows
(``core/reference.py``) and their score summary."""

from __future__ import annotations

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
