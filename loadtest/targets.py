"""What a load test runs against: leadrisk with batching on or off, or the Flask baseline."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.settings import ENV_PREFIX, PROJECT_ROOT, Settings
from loadtest import TARGETS
from service import server
from service.packaging import child_env, import_champions

LEADRISK_ENV = {
    "leadrisk": {"LEADRISK_SERVICE__BATCHING": "true"},
    "leadrisk_unbatched": {"LEADRISK_SERVICE__BATCHING": "false"},
}
BASELINE_APP = "loadtest.baseline_flask:create_app()"
BASELINE_KEEP_ALIVE_S = 5


@dataclass(frozen=True)
class Target:
    url: str
    pid: int | None


def baseline_command(settings: Settings, port: int) -> list[str]:
    """gunicorn with as many workers as leadrisk's scoring worker, threaded, preloaded, quiet."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        BASELINE_APP,
        "--bind",
        f"{settings.service.host}:{port}",
        "--workers",
        str(settings.service.workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(settings.loadtest.baseline_threads),
        "--preload",
        "--timeout",
        str(settings.service.timeout_s),
        "--keep-alive",
        str(BASELINE_KEEP_ALIVE_S),
        "--log-level",
        "warning",
    ]


def start_baseline(
    settings: Settings,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    port: int | None = None,
    settle: bool = False,
) -> server.RunningService:
    """Import the champions and launch the baseline under gunicorn in its own process group
    (``settle``: as ``server.start``).

    Like ``server.start``, the child reads its settings from the environment: ``env`` adds the
    variables that ``settings`` came from when they are not in ``os.environ``."""
    import_champions(settings)
    port = port or server.free_port()
    log_path = log_path or settings.data_dir / f"baseline-{port}.log"
    handle = open(log_path, "w")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        baseline_command(settings, port),
        cwd=PROJECT_ROOT,
        env={**child_env(settings), **(env or {})},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    server.wait_started(url, process, settle)
    return server.RunningService(url, process, log_path)


def scratch_stores(out_dir: Path) -> dict[str, str]:
    """Settings that send what a started target accepts (feedback, the prediction log, the
    monitoring profiles) to the run's folder: load traffic never lands in the user's stores."""
    return {
        f"{ENV_PREFIX}SERVICE__FEEDBACK_DB": str(out_dir / "feedback.db"),
        f"{ENV_PREFIX}SERVICE__PREDICTION_LOG_DIR": str(out_dir / "predictions"),
        f"{ENV_PREFIX}MONITORING__PROFILE_STORE": str(out_dir / "profiles"),
    }


@contextmanager
def launched(
    settings: Settings,
    target: str,
    out_dir: Path,
    url: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Target]:
    """The target running for the duration of the block; an external ``url`` is used as is."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if url is not None:
        yield Target(url.rstrip("/"), None)
        return
    env = {**(env or {}), **scratch_stores(out_dir)}
    if target == "baseline":
        running = start_baseline(settings, env, log_path=out_dir / "baseline.log", settle=True)
    else:
        running = server.start(
            settings,
            {**env, **LEADRISK_ENV[target]},
            log_path=out_dir / "service.log",
            settle=True,
        )
    try:
        yield Target(running.url, running.process.pid)
    finally:
        server.stop(running.process)
