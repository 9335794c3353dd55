"""Durable, append-only prediction log: one JSON line per prediction, fsynced before the answer.

Each worker process appends to its own daily file (``<dir>/<YYYY-MM-DD>/<pid>.jsonl``) so lines of
concurrent writers never interleave. A batch of predictions costs one write and one fsync, so
adaptive batching also amortises durability. Entries carry a hash of the feature values
(``features_hash``), not the values, which keeps the log small while still proving which inputs a
score was made from.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadrisk.columns import Columns


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
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._handle: Any = None
        self._day: str | None = None

    def _file_for(self, day: str) -> Any:
        if self._day != day:
            if self._handle is not None:
                self._handle.close()
            folder = self.directory / day
            folder.mkdir(parents=True, exist_ok=True)
            self._handle = open(folder / f"{os.getpid()}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            self._day = day
        return self._handle

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Write entries and fsync; returns only once they are on disk."""
        if not entries:
            return
        now = datetime.now(UTC)
        lines = "".join(
            json.dumps({"logged_at": now.isoformat(), **entry}, default=str) + "\n"
            for entry in entries
        )
        with self._lock:
            handle = self._file_for(now.strftime("%Y-%m-%d"))
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
                self._day = None


def read_entries(directory: Path) -> Iterator[dict[str, Any]]:
    """Every logged prediction, oldest day first (a torn last line is skipped)."""
    for path in sorted(directory.glob("*/*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n"):
                    yield json.loads(line)
