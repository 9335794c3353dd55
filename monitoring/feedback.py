"""Ground truth coming back from the business: outcomes and ratings of scored entities.

Feedback is kept in SQLite (WAL, ``synchronous=FULL``: an acknowledged record survives a crash),
idempotent by ``feedback_id`` so clients can retry safely. It feeds the live KPIs and, through
``labels_frame``, the next training set.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import precision_score, recall_score, roc_auc_score

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Feedback:
    """One outcome (``label``) or sales rating of a scored entity, with the score it is judged
    against. What the sender states is model, entity, label and rating; the rest is context
    recorded at first receipt."""

    feedback_id: str
    model: str  # registered model name
    entity_id: str | int
    label: int | None
    rating: int | None
    score: float | None
    band: str | None
    model_version: str | None
    at: datetime

    def row(self) -> tuple:
        """The stored columns after ``feedback_id``, as SQLite keeps them."""
        return (
            self.model,
            str(self.entity_id),
            None if self.label is None else int(self.label),
            None if self.rating is None else int(self.rating),
            None if self.score is None else float(self.score),
            self.band,
            None if self.model_version is None else str(self.model_version),
            _iso(self.at),
        )


FIELDS = tuple(f.name for f in fields(Feedback))[1:]  # the columns after feedback_id
PLACEHOLDERS = ", ".join("?" * (len(FIELDS) + 2))  # feedback_id, FIELDS, recorded_at
# What the sender states; score, band, version and time are context recorded at first receipt,
# so a retry that arrives later (or after a model change) is still the same feedback.
STATED = ("model", "entity_id", "label", "rating")
SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    label INTEGER CHECK (label IN (0, 1)),
    rating INTEGER,
    score REAL,
    band TEXT,
    model_version TEXT,
    at TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_model_at ON feedback (model, at);
"""


class ConflictError(ValueError):
    """A feedback id was sent again with different content."""


class FeedbackStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA synchronous=FULL")
            with db:
                yield db
        finally:
            db.close()

    def record(self, feedback: Feedback) -> Literal["recorded", "duplicate"]:
        """Store one feedback; a retry with the same id and content is a no-op ("duplicate")."""
        feedback_id, label = feedback.feedback_id, feedback.label
        if label is None and feedback.rating is None:
            raise ValueError(f"feedback {feedback_id} has neither a label nor a rating")
        if label not in (None, 0, 1):
            raise ValueError(f"feedback {feedback_id}: label must be 0, 1 or null, not {label!r}")
        row = feedback.row()
        with self._connect() as db:
            inserted = db.execute(
                f"INSERT INTO feedback (feedback_id, {', '.join(FIELDS)}, recorded_at) "
                f"VALUES ({PLACEHOLDERS}) ON CONFLICT (feedback_id) DO NOTHING",
                (feedback_id, *row, _iso(datetime.now(UTC))),
            ).rowcount
            if inserted:
                return "recorded"
            stored = db.execute(
                f"SELECT {', '.join(FIELDS)} FROM feedback WHERE feedback_id = ?", (feedback_id,)
            ).fetchone()
        changed = [
            f for f, old, new in zip(FIELDS, stored, row, strict=True) if f in STATED and old != new
        ]
        if changed:
            raise ConflictError(
                f"feedback {feedback_id} was already recorded with different {', '.join(changed)}; "
                "send new feedback under a new id"
            )
        return "duplicate"

    def frame(self, model: str, since: datetime | None = None) -> pd.DataFrame:
        """All feedback for ``model`` (at or after ``since``), oldest first."""
        query = f"SELECT feedback_id, {', '.join(FIELDS)} FROM feedback WHERE model = ?"
        params: list[Any] = [model]
        if since is not None:
            query += " AND at >= ?"
            params.append(_iso(since))
        with self._connect() as db:
            frame = pd.read_sql_query(query + " ORDER BY at", db, params=params)
        frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
        return frame

    def labels_frame(self, model: str) -> pd.DataFrame:
        """The latest label per entity, to join into the next training set."""
        labelled = self.frame(model).dropna(subset=["label"])
        latest = labelled.drop_duplicates("entity_id", keep="last").reset_index(drop=True)
        return latest[["entity_id", "label", "at"]].astype({"label": "int64"})

    def kpis(
        self, model: str, since: datetime | None = None, threshold: float = 0.5
    ) -> dict[str, Any]:
        """Live outcome KPIs of scored feedback: rates by band, ROC-AUC, precision/recall at
        ``threshold`` (the model's decision threshold), and a calibration table."""
        frame = self.frame(model, since)
        scored = frame.dropna(subset=["label", "score"])
        y, score = scored["label"].astype(int).to_numpy(), scored["score"].to_numpy()
        predicted = (score >= threshold).astype(int)
        both_classes = len(np.unique(y)) == 2
        ratings = frame["rating"].dropna()
        return {
            "count": int(len(frame)),
            "labelled": int(frame["label"].notna().sum()),
            "positive_rate": float(y.mean()) if len(y) else None,
            "positive_rate_by_band": _rate_by_band(frame.dropna(subset=["label"])),
            "roc_auc": float(roc_auc_score(y, score)) if both_classes else None,
            "threshold": threshold,
            "precision": float(precision_score(y, predicted, zero_division=0)) if len(y) else None,
            "recall": float(recall_score(y, predicted, zero_division=0)) if len(y) else None,
            "calibration": _calibration(y, score),
            "mean_rating": float(ratings.mean()) if len(ratings) else None,
        }


def _rate_by_band(labelled: pd.DataFrame) -> dict[str, dict[str, float]]:
    grouped = labelled.dropna(subset=["band"]).groupby("band")["label"]
    return {
        str(band): {"count": int(labels.size), "rate": float(labels.mean())}
        for band, labels in grouped
    }


def _calibration(y: np.ndarray, score: np.ndarray) -> list[dict[str, float]]:
    """Mean predicted score against observed positive rate in equal-width score bins."""
    index = np.clip((score * CALIBRATION_BINS).astype(int), 0, CALIBRATION_BINS - 1)
    return [
        {
            "bin_low": b / CALIBRATION_BINS,
            "bin_high": (b + 1) / CALIBRATION_BINS,
            "count": int((index == b).sum()),
            "mean_predicted": float(score[index == b].mean()),
            "observed_rate": float(y[index == b].mean()),
        }
        for b in np.unique(index)
    ]


def _iso(at: datetime) -> str:
    """UTC ISO-8601 with microseconds, so stored times sort as text; naive means UTC."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")
