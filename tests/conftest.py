"""Shared fixtures: a small synthetic world in a real embedded Feast store, trained models on it,
the service check of the production profile, and an in-process CLI runner.

Every fixture's settings are exactly ``load_settings(env)`` of the matching ``*_env`` fixture, so a
subprocess (the service, the CLI) given that environment sees the same data, Feast project and
MLflow store as the test.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from core.settings import Settings, get_settings, load_settings

SYNTHETIC_SIZE = {
    "LEADRISK_SYNTHETIC__CUSTOMERS": "2000",
    "LEADRISK_SYNTHETIC__LEADS": "2000",
    "LEADRISK_SYNTHETIC__TRANSACTIONS_PER_CUSTOMER": "20",
}
FAST_TRAINING = {
    "LEADRISK_TRAINING__SEARCH_ITERATIONS": "2",
    "LEADRISK_TRAINING__CV_FOLDS": "3",
}


def quiet(_: str) -> None:
    """A progress callback that prints nothing."""


def unique_project(prefix: str = "lrtest") -> str:
    """A Feast project name no other test run shares (Redis keys and SQL registry rows)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# Where the real datasets are is a property of the machine, so the process may say it.
INHERITED = ("LEADRISK_DATA__SHARED_DIR",)


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """LEADRISK_* variables for a test: its own data folder, no project-level YAML file."""
    return {
        "LEADRISK_CONFIG": str(data_dir / "no-leadrisk.yaml"),
        "LEADRISK_DATA_DIR": str(data_dir),
        # never the user's own BentoML store
        "LEADRISK_SERVICE__BENTOML_HOME": str(data_dir / "bentoml"),
        # One serving process per test server keeps start-up short; the crash test runs two.
        "LEADRISK_SERVICE__WORKERS": "1",
        **{name: os.environ[name] for name in INHERITED if name in os.environ},
        **extra,
    }


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(condition: bool, message: str) -> None:
    """A missing prerequisite fails under CI (where it is part of the contract), skips elsewhere."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{message}: CI must provide it", pytrace=False)
    pytest.skip(message)


def service_address(name: str) -> tuple[str, int]:
    """Host and port of PostgreSQL or Redis, from the default production settings."""
    defaults = Settings().feature_store
    if name == "postgres":
        url = make_url(defaults.postgres_url)
        return url.host or "127.0.0.1", url.port or 5432
    if name == "redis":
        host, _, rest = defaults.redis_url.partition(":")
        return host, int(rest.split(",")[0] or 6379)
    raise ValueError(f"unknown service {name!r}: expected 'postgres' or 'redis'")


def check_service(host: str, port: int, name: str | None = None) -> None:
    """Fail when a service of the production profile is unreachable under CI; skip elsewhere."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as err:
        require(False, f"{name or 'service'} at {host}:{port} is unreachable ({err})")


TIERS = {
    "unit": "no server, no training beyond tiny in-memory fits; seconds",
    "integration": "real Feast, MLflow and one trained pair of models",
    "e2e": "real servers, locust, Chromium, bento build, the drift demo",
}


def pytest_configure(config: pytest.Config) -> None:
    for tier, meaning in TIERS.items():
        config.addinivalue_line("markers", f"{tier}: {meaning} (tests/{tier}/)")
    config.addinivalue_line(
        "markers",
        "services(*names): needs real 'postgres' and/or 'redis'; fails under CI=true when "
        "unreachable, skips elsewhere",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked with the tier of its folder unless it names its tier itself."""
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            tier = item.path.parent.name
            if tier not in TIERS:
                raise pytest.UsageError(
                    f"{item.nodeid}: tests live in tests/{{{','.join(TIERS)}}}/"
                )
            item.add_marker(tier)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("services"):
        for name in marker.args:
            check_service(*service_address(name), name=name)


@pytest.fixture(scope="session")
def real_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``real_dataset("x_education" | "amlsim")``: the path of a real dataset, or fail/skip."""
    from features.prepare import default_path

    settings = load_settings(base_env(tmp_path_factory.mktemp("real")))

    def path(source: str) -> Path:
        found = default_path(source, settings)
        require(found.exists(), f"real dataset {source} not found at {found}")
        return found

    return path


@pytest.fixture(scope="session")
def require_service() -> Callable[..., None]:
    """``require_service(host, port, name=None)``: return if reachable; else fail under CI=true
    and skip elsewhere. The ``services`` marker does this for PostgreSQL and Redis."""
    return check_service


@pytest.fixture
def postgres() -> tuple[str, int]:
    """The local PostgreSQL (production registry and MLflow store), or fail/skip."""
    address = service_address("postgres")
    check_service(*address, name="postgres")
    return address


@pytest.fixture
def redis_server() -> tuple[str, int]:
    """The local Redis (production online store), or fail/skip."""
    address = service_address("redis")
    check_service(*address, name="redis")
    return address


@pytest.fixture(scope="session")
def env_for() -> Callable[..., dict[str, str]]:
    """``env_for(data_dir, **extra)``: the variables of an isolated test world, with its own
    Feast project; ``load_settings(env)`` gives its settings."""

    def make(data_dir: Path, **extra: str) -> dict[str, str]:
        return base_env(data_dir, LEADRISK_FEATURE_STORE__PROJECT=unique_project(), **extra)

    return make


@pytest.fixture(scope="session")
def synthetic_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("synthetic")
    return base_env(
        data_dir, LEADRISK_FEATURE_STORE__PROJECT=unique_project("lrsyn"), **SYNTHETIC_SIZE
    )


@pytest.fixture(scope="session")
def synthetic_settings(synthetic_env: dict[str, str]) -> Settings:
    """Small synthetic tables, applied and materialized in an embedded Feast store."""
    from features import store
    from features.prepare import prepare

    settings = load_settings(synthetic_env)
    prepare("synthetic", settings, progress=quiet)
    store.apply(settings)
    store.materialize(settings, progress=quiet)
    return settings


@pytest.fixture(scope="session")
def trained_env(synthetic_env: dict[str, str]) -> dict[str, str]:
    return {**synthetic_env, **FAST_TRAINING}


@pytest.fixture(scope="session")
def trained_settings(synthetic_settings: Settings, trained_env: dict[str, str]) -> Settings:
    """``synthetic_settings`` plus both models trained and registered as champions (v1)."""
    from training.train import train

    settings = load_settings(trained_env)
    for model in ("lead", "risk"):
        train(model, settings, progress=quiet, source="synthetic")
    return settings


@pytest.fixture
def invoke_cli() -> Callable[..., Result]:
    """Run ``leadrisk ARGS`` in-process with exactly ``env``; settings are re-read each time."""
    from leadrisk.cli import main

    def invoke(args: list[str], env: dict[str, str]) -> Result:
        cleared = {name: None for name in os.environ if name.startswith("LEADRISK_")}
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, args, env={**cleared, **env})
        finally:
            get_settings.cache_clear()

    return invoke


@pytest.fixture
def keep_mlflow_uris() -> Iterator[None]:
    """Restore MLflow's process-wide tracking and registry URIs after the test."""
    import mlflow

    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


class WebhookReceiver:
    """A real HTTP server on a free port that keeps the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    """An alert receiver for the tests of one module."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
