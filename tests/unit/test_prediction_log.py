"""The prediction log's durability modes: fsync per append (default) or every interval."""

from __future__ import annotations

import os
import threading
import time

import pytest

from monitoring import prediction_log
from monitoring.prediction_log import PredictionLog, read_entries


@pytest.fixture
def fsyncs(monkeypatch):
    """Count the log's fsync calls (the real fsync still runs)."""
    calls: list[float] = []
    real = os.fsync
    lock = threading.Lock()

    def counting(descriptor: int) -> None:
        real(descriptor)
        with lock:
            calls.append(time.monotonic())

    monkeypatch.setattr(prediction_log.os, "fsync", counting)
    return calls


def _entry(i: int) -> dict:
    return {"request_id": f"r{i}", "model": "lead_conversion", "score": 0.5}


def test_by_default_each_append_is_on_disk_before_it_returns(tmp_path, fsyncs):
    log = PredictionLog(tmp_path)
    log.append([_entry(1), _entry(2)])
    assert len(fsyncs) == 1
    log.append([_entry(3)])
    assert len(fsyncs) == 2
    log.close()
    assert [e["request_id"] for e in read_entries(tmp_path)] == ["r1", "r2", "r3"]


def test_with_an_interval_appends_return_at_once_and_a_thread_syncs_them(tmp_path, fsyncs):
    log = PredictionLog(tmp_path, sync_interval_s=0.05)
    for i in range(20):
        log.append([_entry(i)])
    assert len(fsyncs) <= 1  # appends did not wait for the disk
    assert len(list(read_entries(tmp_path))) == 20  # but every line is written already
    deadline = time.monotonic() + 2
    while not fsyncs and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fsyncs, "the background thread never synced the log"
    synced = len(fsyncs)
    time.sleep(0.2)
    assert len(fsyncs) == synced  # nothing new written: no more syncs
    log.close()


def test_closing_syncs_what_the_interval_has_not_yet(tmp_path, fsyncs):
    log = PredictionLog(tmp_path, sync_interval_s=60)
    log.append([_entry(1)])
    assert fsyncs == []
    log.close()
    assert len(fsyncs) == 1
    log.append([_entry(2)])  # after close, appends are synced one by one again
    assert len(fsyncs) == 2
    log.close()
    assert [e["request_id"] for e in read_entries(tmp_path)] == ["r1", "r2"]


def test_a_failed_background_sync_is_logged_and_retried(tmp_path, monkeypatch, caplog):
    real = os.fsync
    attempts: list[int] = []

    def failing_once(descriptor: int) -> None:
        attempts.append(descriptor)
        if len(attempts) == 1:
            raise OSError(28, "No space left on device")
        real(descriptor)

    monkeypatch.setattr(prediction_log.os, "fsync", failing_once)
    log = PredictionLog(tmp_path, sync_interval_s=0.02)
    log.append([_entry(1)])
    deadline = time.monotonic() + 2
    while len(attempts) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    log.close()
    assert len(attempts) >= 2, "the failed sync was not retried"
    assert "background fsync failed" in caplog.text
