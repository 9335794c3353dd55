"""Start a real ``bentoml serve`` of leadrisk on a free port and stop it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from core.settings import PROJECT_ROOT, Settings
from service.packaging import child_env, import_champions
from service.run import serve_command

READY_TIMEOUT_S = 120
SETTLED_CORES = 0.2  # a server whose processes use less than this is done starting up
SETTLE_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(url: str, process: subprocess.Popen, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"service at {url} not ready after {timeout}s")


def wait_settled(process: subprocess.Popen, timeout: float = SETTLE_TIMEOUT_S) -> float:
    """Wait until the server's processes are idle; returns the seconds waited.

    ``/readyz`` answers as soon as one serving process is up, while the others may still be
    importing and warming up: a measurement started then gives them part of its CPU."""
    import psutil

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        tree = [psutil.Process(process.pid), *_descendants(process)]
        before = {member.pid: _cpu_seconds(member) for member in tree}
        time.sleep(1.0)
        used = sum(_cpu_seconds(member) - before[member.pid] for member in tree)
        if used < SETTLED_CORES:
            break
    return time.monotonic() - started


def _cpu_seconds(member) -> float:
    import psutil

    try:
        times = member.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def start(
    settings: Settings,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    port: int | None = None,
    settle: bool = False,
) -> RunningService:
    """Import champions and launch ``bentoml serve`` in its own process group; with ``settle``,
    return only once all its processes are idle (for measurements)."""
    import_champions(settings)
    port = port or free_port()
    log_path = log_path or settings.data_dir / f"serve-{port}.log"
    full_env = {**child_env(settings), **(env or {})}
    handle = open(log_path, "w")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        serve_command(settings, port),
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_started(url, process, settle)
    return RunningService(url, process, log_path)


def wait_started(url: str, process: subprocess.Popen, settle: bool = False) -> None:
    """Wait until ``/readyz`` answers (with ``settle``, until the processes are idle too); a
    server that never gets there is stopped."""
    try:
        wait_ready(url, process)
        if settle:
            wait_settled(process)
    except Exception:
        stop(process)
        raise


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the whole process group (so workers flush) and wait for every process under it,
    then SIGKILL whatever lingers."""
    import psutil

    if process.poll() is not None:
        return
    tree = _descendants(process)
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(process, tree)
        return
    _, alive = psutil.wait_procs(tree, timeout=timeout)
    if alive:
        kill(process, alive)


def kill(process: subprocess.Popen, tree: list | None = None) -> None:
    """SIGKILL the server and every process under it. BentoML's serving processes run in
    sessions of their own, so killing the server's process group alone would orphan them."""
    tree = _descendants(process) if tree is None else tree
    for member in [*tree, process]:
        with suppress(ProcessLookupError):
            os.kill(member.pid, signal.SIGKILL)
    process.wait()


def _descendants(process: subprocess.Popen) -> list:
    import psutil

    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@contextmanager
def running(
    settings: Settings, env: dict[str, str] | None = None, settle: bool = False
) -> Iterator[RunningService]:
    service = start(settings, env, settle=settle)
    try:
        yield service
    finally:
        stop(service.process)
