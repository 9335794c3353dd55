"""Durable, append-only prediction log: one JSON line per prediction, fsynced before the answer
(or, when configured, at most every sync interval).

Each worker process appends to its own daily file (``<dir>/<YYYY-MM-DD>/<pid>.jsonl``) so lines of
concurrent writers never interleave. Fsyncs are group commits: a background thread syncs whatever
was written since its last fsync, so batches written while the disk is busy (both models' scoring
threads, a batch scored during the previous one's fsync) share one, and the thread that wrote a
batch can go on scoring the next while its lines reach the disk. Entries carry a hash of the
feature values (``features_hash``), not the values, which keeps the log small while still proving
which inputs a score was made from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadrisk.columns import Columns

log = logging.getLogger("leadrisk.prediction_log")


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


def on_disk() -> Future[None]:
    """A completed durability future: for results with nothing (more) to write."""
    done: Future[None] = Future()
    done.set_result(None)
    return done


class PredictionLog:
    """Appends prediction entries to this process's file of the day.

    ``write`` returns as soon as the lines are written to the OS (a crash of the process loses
    nothing) with a future that completes once they are on disk: answer after it, and an answered
    prediction survives a machine crash. With ``sync_interval_s`` = 0 (the default) a background
    thread fsyncs as soon as there are lines waiting (group commit); with an interval, at most that
    often, and the future completes at once: a machine crash may lose that much of the log's tail
    (docs/service.md). ``append`` writes and waits.
    """

    def __init__(self, directory: Path, sync_interval_s: float = 0.0) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._handle: Any = None
        self._day: str | None = None
        self._sync_interval = sync_interval_s
        self._unsynced = False
        self._waiting: list[Future[None]] = []  # written, not yet on disk (group commit)
        self._stop = threading.Event()
        run = self._sync_every_interval if sync_interval_s > 0 else self._commit_groups
        self._syncer: threading.Thread | None = threading.Thread(
            target=run, name="prediction-log-sync", daemon=True
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

    def write(self, entries: list[dict[str, Any]]) -> Future[None]:
        """Write entries to the OS; the returned future completes once they are on disk (at
        once with a sync interval) or fails with the fsync's error."""
        if not entries:
            return on_disk()
        now = datetime.now(UTC)
        lines = "".join(
            json.dumps({"logged_at": now.isoformat(), **entry}, default=str) + "\n"
            for entry in entries
        )
        with self._lock:
            handle = self._file_for(now.strftime("%Y-%m-%d"))
            handle.write(lines)
            handle.flush()
            if self._syncer is None:  # closed: no thread left to sync, do it here
                os.fsync(handle.fileno())
                return on_disk()
            if self._sync_interval > 0:
                self._unsynced = True
                return on_disk()
            durable: Future[None] = Future()
            self._waiting.append(durable)
            self._written.notify()
            return durable

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Write entries and return once they are on disk (with a sync interval, written)."""
        self.write(entries).result()

    def _commit_groups(self) -> None:
        """Fsync whatever was written since the last fsync, then release its writers."""
        while True:
            with self._written:
                while not self._waiting and not self._stop.is_set():
                    self._written.wait()
                if not self._waiting:
                    return
                group, self._waiting = self._waiting, []
                descriptor = os.dup(self._handle.fileno())
            try:  # outside the lock: writes go on while the disk syncs, and join the next group
                os.fsync(descriptor)
            except OSError as err:  # e.g. a full or failing disk: those answers fail, not lie
                log.exception("prediction log: fsync failed")
                for durable in group:
                    durable.set_exception(err)
            else:
                for durable in group:
                    durable.set_result(None)
            finally:
                os.close(descriptor)

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
        """Sync and close the current file (a new day, or close); its waiting writers are
        released by this fsync."""
        if self._handle is not None:
            if self._unsynced or self._waiting:
                os.fsync(self._handle.fileno())
                self._unsynced = False
                for durable in self._waiting:
                    durable.set_result(None)
                self._waiting = []
            self._handle.close()
            self._handle = None
            self._day = None

    def close(self) -> None:
        """Sync what is pending and close the file (the log can still be appended to)."""
        with self._lock:
            self._stop.set()
            self._written.notify_all()
        if self._syncer is not None:
            self._syncer.join()
        with self._lock:
            self._syncer = None  # writes after this are fsynced one by one
            self._close_handle()


def read_entries(directory: Path) -> Iterator[dict[str, Any]]:
    """Every logged prediction, oldest day first (a torn last line is skipped)."""
    for path in sorted(directory.glob("*/*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n"):
                    yield json.loads(line)
