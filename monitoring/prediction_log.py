"""Durable, append-only prediction log: one JSON line per prediction, fsynced before the answer
(or, when configured, at most every sync interval).

Each worker process appends to its own daily file (``<dir>/<YYYY-MM-DD>/<pid>.jsonl``) so lines of
concurrent writers never interleave. A batch of predictions costs one write and one fsync, so
adaptive batching also amortises durability. Entries carry a hash of the feature values
(``features_hash``), not the values, which keeps the log small while still proving which inputs a
score was made from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.columns import Columns

log = logging.getLogger("leadrisk.prediction_log")
UTC_TIME = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class PredictionEntry:
    """One answered prediction, as one line of the log (the writer adds ``logged_at``)."""

    request_id: str
    model: str  # registered model name
    model_version: str
    entity_id: int | None  # None for a lead scored from its raw fields
    features_hash: str
    imputed_features: list[str]
    score: float
    band: str
    scored_at: str  # ISO 8601, UTC
    variant: str = "champion"  # or "challenger" (an A/B test), "shadow" (never answered)
    reasons: list[str] = field(default_factory=list)  # the top reasons' features


# The same record for readers that parse the log as a table (the dashboard)
ENTRY_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.string()),
        ("entity_id", pa.int64()),
        ("features_hash", pa.string()),
        ("imputed_features", pa.list_(pa.string())),
        ("score", pa.float64()),
        ("band", pa.string()),
        ("scored_at", UTC_TIME),
        ("variant", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("logged_at", UTC_TIME),
    ]
)


def feature_hashes(features: Columns) -> list[str]:
    """Per row, a stable 64-bit BLAKE2b hash of the feature values, in sorted column order.

    The same values give the same hash in any process; missing values hash as NaN whatever their
    spelling (None or NaN), as the model sees them alike.
    """
    ordered = features.objects(sorted(features.names))
    return [
        hashlib.blake2b(
            repr([_missing_as_nan(value) for value in row]).encode(), digest_size=8
        ).hexdigest()
        for row in ordered
    ]


def _missing_as_nan(value: Any) -> Any:
    return math.nan if value is None or (isinstance(value, float) and math.isnan(value)) else value


class PredictionLog:
    """Appends prediction entries to this process's file of the day.

    With ``sync_interval_s`` = 0 (the default) each append is fsynced before it returns, so an
    answered prediction survives a machine crash. With an interval, an append returns once its
    lines are written to the OS (a crash of the process loses nothing) and a background thread
    fsyncs at most that often: a machine crash may lose that much of the log's tail, and the
    scoring threads no longer wait for the disk (docs/service.md).
    """

    def __init__(self, directory: Path, sync_interval_s: float = 0.0) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._handle: Any = None
        self._day: str | None = None
        self._sync_interval = sync_interval_s
        self._unsynced = False
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if sync_interval_s > 0:
            self._syncer = threading.Thread(
                target=self._sync_every_interval, name="prediction-log-sync", daemon=True
            )
            self._syncer.start()

    def _file_for(self, day: str) -> Any:
        if self._day != day:
            self._close_handle()
            folder = self.directory / day
            folder.mkdir(parents=True, exist_ok=True)
            self._handle = open(folder / f"{os.getpid()}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            self._day = day
        return self._handle

    def append(self, entries: Sequence[PredictionEntry | dict[str, Any]]) -> None:
        """Write entries; returns once they are on disk (or, with a sync interval, written)."""
        if not entries:
            return
        now = datetime.now(UTC)
        lines = "".join(
            json.dumps({"logged_at": now.isoformat(), **_fields(entry)}, default=str) + "\n"
            for entry in entries
        )
        with self._lock:
            handle = self._file_for(now.strftime("%Y-%m-%d"))
            handle.write(lines)
            handle.flush()
            if self._syncer is None:
                os.fsync(handle.fileno())
            else:
                self._unsynced = True

    def _sync_every_interval(self) -> None:
        while not self._stop.wait(self._sync_interval):
            with self._lock:
                if not self._unsynced or self._handle is None:
                    continue
                descriptor = os.dup(self._handle.fileno())
                self._unsynced = False
            try:  # outside the lock: appends go on while the disk syncs
                os.fsync(descriptor)
            except OSError:  # e.g. a full or failing disk: say so, and retry next interval
                log.exception("prediction log: background fsync failed")
                with self._lock:
                    self._unsynced = True
            finally:
                os.close(descriptor)

    def _close_handle(self) -> None:
        if self._handle is not None:
            if self._unsynced:
                os.fsync(self._handle.fileno())
                self._unsynced = False
            self._handle.close()
            self._handle = None
            self._day = None

    def close(self) -> None:
        """Sync what is pending and close the file (the log can still be appended to)."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
        with self._lock:
            self._syncer = None  # appends after this are fsynced one by one
            self._close_handle()


def read_entries(directory: Path) -> Iterator[dict[str, Any]]:
    """Every logged prediction, oldest day first (a torn last line is skipped)."""
    for path in sorted(directory.glob("*/*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n"):
                    yield json.loads(line)


def _fields(entry: PredictionEntry | dict[str, Any]) -> dict[str, Any]:
    return asdict(entry) if isinstance(entry, PredictionEntry) else entry
