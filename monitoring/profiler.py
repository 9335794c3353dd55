"""whylogs profiles of served predictions, per model version and fixed time window.

The request path only puts a batch of rows (:class:`ServedRows`) on a bounded queue. A daemon
thread profiles what has queued, merges it into one in-memory profile per (model, version,
window) and writes a window to the profile store once it has closed, on ``flush()`` and on
``close()``. The store is any fsspec URL, laid out as
``<root>/<model>/<version>/<window start>__<part id>.bin``: every write is a new part, so several
workers (or several flushes of one window) never overwrite each other; readers merge.

The service runs the writer in a child process (:class:`ProfileProcess`): one whylogs call holds
the GIL for 60-120 ms, which in the serving process would stall every request in flight.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any, NamedTuple

import fsspec

from core.settings import Settings
from monitoring.served_rows import ServedRows
from monitoring.whylogs_compat import DatasetProfileView, why

WINDOW_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
PART_SEPARATOR = "__"

logger = logging.getLogger(__name__)


class _Key(NamedTuple):
    model: str
    version: str
    window: datetime


class _Item(NamedTuple):
    key: _Key
    rows: ServedRows


def utc_now() -> datetime:
    return datetime.now(UTC)


def window_start(at: datetime, length: timedelta) -> datetime:
    """Start of the epoch-aligned window of ``length`` that contains ``at`` (naive = UTC)."""
    seconds = length.total_seconds()
    stamp = _utc(at).timestamp()
    return datetime.fromtimestamp(stamp - stamp % seconds, UTC)


class ProfileWriter:
    """Background profiler: ``submit`` on the request path, ``close`` on shutdown.

    ``clock`` decides which windows have closed; tests pass a fixed one together with ``at``.
    """

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        cfg = settings.monitoring
        self.url = settings.profiles_url
        self._length = timedelta(minutes=cfg.window_minutes)
        self._interval = cfg.flush_interval_s
        self._clock = clock
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=cfg.queue_max)
        self._open: dict[_Key, DatasetProfileView] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._dropped = 0
        self._drop_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="leadrisk-profiler", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Batches not profiled: the queue was full, the writer was closed, or profiling failed."""
        return self._dropped

    def submit(
        self, model: str, version: str, rows: ServedRows, at: datetime | None = None
    ) -> bool:
        """Queue ``rows`` without blocking; they must not be modified afterwards.

        Returns False when they were dropped.
        """
        key = _Key(model, str(version), window_start(at or self._clock(), self._length))
        if self._stop.is_set():
            self._drop(1)
            return False
        try:
            self._queue.put_nowait(_Item(key, rows))
        except queue.Full:
            self._drop(1)
            return False
        return True

    def flush(self) -> list[str]:
        """Profile everything queued and write every window, open ones included."""
        return self._step(write_open=True)

    def close(self) -> list[str]:
        """Stop the thread and write everything; no window is lost. Safe to call twice."""
        self._stop.set()
        self._thread.join()
        return self.flush()

    def __enter__(self) -> ProfileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._step(write_open=False)

    def _step(self, write_open: bool) -> list[str]:
        with self._lock:
            self._absorb(self._drain())
            return self._write(write_open)

    def _drain(self) -> list[_Item]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _absorb(self, items: list[_Item]) -> None:
        batches: dict[tuple[_Key, tuple[str, ...]], list[ServedRows]] = defaultdict(list)
        for item in items:
            batches[item.key, item.rows.columns].append(item.rows)
        for (key, _), same_columns in batches.items():
            try:
                view = why.log(pandas=ServedRows.frame(same_columns)).view()
            except Exception:  # a bad batch must not stop profiling for everything after it
                logger.exception("could not profile %d batches for %s", len(same_columns), key)
                self._drop(len(same_columns))
                continue
            self._open[key] = self._open[key].merge(view) if key in self._open else view

    def _write(self, write_open: bool) -> list[str]:
        now = self._clock()
        written = []
        for key in list(self._open):
            if not write_open and key.window + self._length > now:
                continue
            try:
                written.append(
                    write_profile(self.url, key.model, key.version, key.window, self._open[key])
                )
            except OSError:
                logger.exception("could not write profile %s to %s; will retry", key, self.url)
                continue
            del self._open[key]
        return written

    def _drop(self, batches: int) -> None:
        with self._drop_lock:
            self._dropped += batches


STOP = None  # sentinel on the process queue
SHUTDOWN_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class ProfileProcess:
    """A :class:`ProfileWriter` in its own process; serving only collects rows for it.

    ``submit`` appends to a list; every ``monitoring.handoff_interval_s`` a thread hands what
    was collected to the child as one item per (model, version, window). One pickle and one queue
    put per hand-over instead of per scored batch: at light load, when batches hold one row,
    handing over each batch cost the serving process's CPU (the queue's feeder thread) and as
    much again in the child, per request (docs/decisions/0011-profile-writer-child-process.md).

    ``close`` (the service's shutdown hook) makes the child write every window, open ones
    included, and waits for it. The child ignores SIGINT/SIGTERM, which reach the whole process
    group at shutdown, so that it outlives its parent's shutdown hook; if the parent dies without
    closing, the child notices, writes what it has and exits.

    The constructor returns once the child is ready (or after ``ready_timeout_s``): its start-up
    (importing whylogs and pandas) takes seconds of CPU, which would otherwise compete with the
    first requests of a service that already says it is ready.
    """

    def __init__(self, settings: Settings, ready_timeout_s: float = 60.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue(maxsize=settings.monitoring.queue_max)
        self._ready = context.Event()
        self._dropped = 0
        self._closed = False
        self.exitcode: int | None = None  # the child's, once closed
        self._window = timedelta(minutes=settings.monitoring.window_minutes)
        self._collected: dict[tuple, list[ServedRows]] = defaultdict(list)
        self._collected_lock = threading.Lock()
        self._stop_handoff = threading.Event()
        self._handoff = threading.Thread(
            target=self._hand_over_every,
            args=(settings.monitoring.handoff_interval_s,),
            name="leadrisk-profile-handoff",
            daemon=True,
        )
        self._process = context.Process(
            target=_profile_in_child,
            args=(settings, self._queue, os.getpid(), self._ready),
            name="leadrisk-profiler",
            daemon=False,
        )
        # The child ignores SIGINT/SIGTERM once it runs, but importing whylogs takes seconds:
        # start it with both blocked (the mask survives fork and exec) so none is lost meanwhile.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SHUTDOWN_SIGNALS)
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        deadline = time.monotonic() + ready_timeout_s
        while not self._ready.wait(0.1):
            if not self._process.is_alive() or time.monotonic() > deadline:
                logger.warning(
                    "profile writer did not start (exit code %s); serving anyway",
                    self._process.exitcode,
                )
                break
        self._handoff.start()

    @property
    def ready(self) -> bool:
        """The child has started and takes rows."""
        return self._ready is not None and self._ready.is_set()

    @property
    def dropped(self) -> int:
        """Batches not handed to the child: the queue was full or the writer was closed."""
        return self._dropped

    def submit(
        self, model: str, version: str, rows: ServedRows, at: datetime | None = None
    ) -> bool:
        """Collect ``rows`` for the next hand-over without blocking; False when the writer is
        closed (they are dropped). Rows that find the child's queue full at the hand-over are
        dropped then and counted in ``dropped``."""
        window = window_start(at or utc_now(), self._window)
        with self._collected_lock:
            if not self._closed:
                self._collected[(model, str(version), window, rows.columns)].append(rows)
                return True
            self._dropped += 1
        return False

    def _hand_over_every(self, interval_s: float) -> None:
        while not self._stop_handoff.wait(interval_s):
            self._hand_over()

    def _hand_over(self) -> None:
        """Put what was collected on the child's queue, one item per model, version, window."""
        with self._collected_lock:
            collected, self._collected = self._collected, defaultdict(list)
        for (model, version, window, _), batches in collected.items():
            try:
                self._queue.put_nowait((model, version, ServedRows.join(batches), window))
            except queue.Full:
                with self._collected_lock:  # submit counts its drops under the same lock
                    self._dropped += len(batches)

    def close(self, timeout_s: float = 60.0) -> None:
        """Hand over what was collected, have the child write every window and exit. Safe to
        call twice."""
        with self._collected_lock:
            if self._closed:
                return
            self._closed = True
        self._stop_handoff.set()
        if self._handoff.is_alive():
            self._handoff.join()
        self._hand_over()
        self._queue.put(STOP)
        self._process.join(timeout_s)
        if self._process.is_alive():
            logger.error("profile writer did not exit within %.0f s; terminating it", timeout_s)
            self._process.terminate()
            self._process.join(5)
        self.exitcode = self._process.exitcode
        if self.exitcode == 0:  # it took everything up to STOP: the feeder thread is done
            self._queue.close()
            self._queue.join_thread()
        else:
            logger.error("profile writer exited with code %s", self.exitcode)
            # whatever the child did not take can no longer be delivered: do not wait for it
            self._queue.cancel_join_thread()
            self._queue.close()
        self._release()

    def _release(self) -> None:
        """Drop the last references to the queue's and event's semaphores, so that their
        finalizers unlink them now. A serving process may not get to its exit handlers: uvicorn
        ends it with SIGTERM's default action, and multiprocessing's resource tracker then reports
        them as leaked."""
        if not self._process.is_alive():
            self._process.close()  # it holds the queue and event as its arguments
        self._queue = self._ready = None


def _profile_in_child(
    settings: Settings, inbox: multiprocessing.Queue, parent: int, ready: Any
) -> None:
    for shutdown_signal in SHUTDOWN_SIGNALS:
        signal.signal(shutdown_signal, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SHUTDOWN_SIGNALS)
    os.nice(settings.monitoring.profiler_niceness)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(levelname)s] profiler: %(message)s"
    )
    poll_s = min(settings.monitoring.flush_interval_s, 1.0)
    with ProfileWriter(settings) as writer:
        ready.set()
        while True:
            try:
                item = inbox.get(timeout=poll_s)
            except queue.Empty:
                if os.getppid() != parent:  # the service died without closing us
                    return
                continue
            if item is STOP:
                logger.info("writing profiles before exit (%d batches dropped)", writer.dropped)
                return
            model, version, rows, at = item
            writer.submit(model, version, rows, at=at)


def write_profile(
    url: str, model: str, version: str, window: datetime, view: DatasetProfileView
) -> str:
    """Write one part of a window's profile; readers never see a partial file."""
    fs, root = fsspec.core.url_to_fs(url)
    directory = f"{root}/{model}/{version}"
    fs.makedirs(directory, exist_ok=True)
    name = f"{window.strftime(WINDOW_FORMAT)}{PART_SEPARATOR}{uuid.uuid4().hex}.bin"
    temporary = f"{directory}/.{name}.tmp"
    fs.pipe_file(temporary, view.serialize())
    fs.mv(temporary, f"{directory}/{name}")
    return f"{directory}/{name}"


def read_profiles(
    settings: Settings,
    model: str,
    since: datetime | None = None,
    until: datetime | None = None,
    version: str | None = None,
) -> DatasetProfileView | None:
    """All stored parts of windows overlapping [since, until), merged; None if there are none."""
    fs, root = fsspec.core.url_to_fs(settings.profiles_url)
    length = timedelta(minutes=settings.monitoring.window_minutes)
    views = [
        DatasetProfileView.deserialize(fs.cat_file(path))
        for path in sorted(fs.glob(f"{root}/{model}/{version or '*'}/*.bin"))
        if _overlaps(_window_of(path), length, since, until)
    ]
    return reduce(DatasetProfileView.merge, views) if views else None


def _window_of(path: str) -> datetime:
    stem = path.rsplit("/", 1)[-1].removesuffix(".bin").split(PART_SEPARATOR)[0]
    return datetime.strptime(stem, WINDOW_FORMAT).replace(tzinfo=UTC)


def _overlaps(
    start: datetime, length: timedelta, since: datetime | None, until: datetime | None
) -> bool:
    return (since is None or start + length > _utc(since)) and (
        until is None or start < _utc(until)
    )


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
