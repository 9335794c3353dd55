"""``leadrisk serve`` and ``leadrisk build``: package the champions, then run BentoML's CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from core.settings import PROJECT_ROOT, Settings
from service.packaging import child_env, import_champions

SERVICE_REF = "service.service:LeadRisk"


def _bentoml() -> str:
    return str(Path(sys.executable).with_name("bentoml"))


def serve_command(settings: Settings, port: int | None = None) -> list[str]:
    return [
        _bentoml(),
        "serve",
        SERVICE_REF,
        "--host",
        settings.service.host,
        "--port",
        str(port or settings.service.port),
    ]


def serve(settings: Settings, port: int | None = None) -> int:
    """Import champions and run ``bentoml serve`` in the foreground until interrupted."""
    tags = import_champions(settings)
    print(f"serving {', '.join(tags.values())}")
    port = port or settings.service.port
    auth = (
        ' -H "Authorization: Bearer $LEADRISK_SERVICE__AUTH_TOKEN"'
        if settings.service.auth_token
        else ""
    )
    print(
        "try:\n"
        f"  curl -s -X POST http://{settings.service.host}:{port}/score_customer{auth} "
        "-H 'Content-Type: application/json' -d '{\"customer_id\": 42}'\n"
        f"  curl -s -X POST http://{settings.service.host}:{port}/score_lead{auth} "
        "-H 'Content-Type: application/json' "
        '-d \'{"lead": {"total_time_on_website": 900, "total_visits": 3, '
        '"last_activity": "SMS Sent"}}\'\n'
        f"  open http://{settings.service.host}:{port}/ (API docs) and /dashboard"
    )
    return run_foreground(serve_command(settings, port), child_env(settings))


def run_foreground(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` until it exits; SIGINT and SIGTERM sent to this process are passed on.

    The child runs in its own session, so a terminal's Ctrl-C reaches it once, through us, and
    a signal sent to this process alone (a supervisor, ``kill``) stops the server cleanly with
    its workers instead of orphaning them."""
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        returncode = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - returncode if returncode < 0 else returncode  # killed by signal N: 128 + N


def build(settings: Settings) -> Path:
    """Import champions and build the bento; returns the bento folder (with its Dockerfile)."""
    import_champions(settings)
    env = child_env(settings)
    built = subprocess.run(
        [_bentoml(), "build", "-f", "bentofile.yaml", "--output", "tag"],
        cwd=PROJECT_ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        errors = [line for line in built.stderr.splitlines() if "Error" in line]
        raise RuntimeError(
            f"bentoml build failed: {' | '.join(errors[-3:]) or built.stderr[-500:]}"
        )
    listing = subprocess.run(
        [_bentoml(), "get", "leadrisk:latest", "-o", "path"],
        cwd=PROJECT_ROOT,
        env={**env, "COLUMNS": "100000"},  # BentoML's console would wrap a long path
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(listing.stdout.strip())
