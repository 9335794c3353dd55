"""The monitoring dashboard: every chart from real sources, the empty states, and the page as a
headless Chromium renders it (DOM and a screenshot)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from core.settings import Settings
from monitoring.dashboard import (
    LOG_LIMIT,
    endpoint_stats,
    recent_predictions,
    render_dashboard,
)
from monitoring.drift import DriftReport, FeatureDrift, PredictionDrift
from monitoring.feedback import Feedback, FeedbackStore
from monitoring.prediction_log import PredictionLog
from monitoring.releases import ReleaseStore

NOW = datetime.now(UTC).replace(microsecond=0)
CHARTS = ("requests", "latency", "scores", "drift", "kpis")
CHROMIUM = "/usr/bin/chromium"
LEAD_BANDS = (("D", 0.0), ("C", 0.3), ("B", 0.6), ("A", 0.8))
RISK_BANDS = (("Low", 0.0), ("Medium", 0.2), ("High", 0.6))
METRICS_TEXT = """\
# HELP bentoml_service_request_duration_seconds API HTTP request duration in seconds
# TYPE bentoml_service_request_duration_seconds histogram
{histograms}
# HELP bentoml_service_request_total Total number of HTTP requests
# TYPE bentoml_service_request_total counter
bentoml_service_request_total{{endpoint="/score_lead",http_response_code="200"}} 900.0
bentoml_service_request_total{{endpoint="/score_lead",http_response_code="500"}} 9.0
bentoml_service_request_total{{endpoint="/score_customer",http_response_code="200"}} 400.0
bentoml_service_request_total{{endpoint="/metrics",http_response_code="200"}} 50.0
"""
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, float("inf"))


def histogram(endpoint: str, cumulative: tuple[int, ...]) -> str:
    name = "bentoml_service_request_duration_seconds"
    labels = f'endpoint="{endpoint}",http_response_code="200"'
    lines = [
        f'{name}_bucket{{{labels},le="{"+Inf" if np.isinf(b) else b}"}} {float(c)}'
        for b, c in zip(BUCKETS, cumulative, strict=True)
    ]
    return "\n".join([*lines, f"{name}_count{{{labels}}} {float(cumulative[-1])}"])


def metrics_text() -> str:
    histograms = "\n".join(
        [
            histogram("/score_lead", (100, 500, 800, 880, 900, 905, 909, 909)),
            histogram("/score_customer", (50, 200, 350, 390, 398, 400, 400, 400)),
            histogram("/metrics", (50, 50, 50, 50, 50, 50, 50, 50)),
        ]
    )
    return METRICS_TEXT.format(histograms=histograms)


def band(score: float, bands: tuple[tuple[str, float], ...]) -> str:
    return [name for name, low in bands if score >= low][-1]


def log_predictions(settings: Settings, n: int, rng: np.random.Generator) -> None:
    """``n`` predictions per model spread over the last six hours, two lead versions."""
    entries = []
    for model, bands, shape in (
        ("lead_scoring", LEAD_BANDS, 2.0),
        ("customer_risk", RISK_BANDS, 5.0),
    ):
        scores = rng.beta(2.0, shape, n).tolist()
        ages = rng.uniform(0, 6 * 3600, n).tolist()
        entries += [
            {
                "request_id": f"{model}-{i}",
                "model": model,
                "model_version": "2" if model == "lead_scoring" and i % 4 == 0 else "1",
                "entity_id": i,
                "features_hash": "0" * 16,
                "imputed_features": [],
                "score": score,
                "band": band(score, bands),
                "scored_at": (NOW - timedelta(seconds=age)).isoformat(),
            }
            for i, (score, age) in enumerate(zip(scores, ages, strict=True))
        ]
    log = PredictionLog(settings.prediction_log_dir)
    log.append(entries)
    log.close()


def record_feedback(settings: Settings, n: int, rng: np.random.Generator) -> None:
    store = FeedbackStore(settings.feedback_db)
    for model, bands in (("lead_scoring", LEAD_BANDS), ("customer_risk", RISK_BANDS)):
        for i in range(n):
            score = float(rng.uniform())
            store.record(
                Feedback(
                    feedback_id=f"{model}-{i}",
                    model=model,
                    entity_id=i,
                    label=int(rng.uniform() < score),
                    rating=None,
                    score=score,
                    band=band(score, bands),
                    model_version="1",
                    at=NOW - timedelta(minutes=i),
                )
            )


def write_drift_report(settings: Settings, model: str, features: int = 12) -> Path:
    """A drift report in the layout ``leadrisk monitor drift`` writes; the first three drift."""
    report = DriftReport(
        model=model,
        created_at=NOW.isoformat(timespec="seconds"),
        p_value_threshold=0.05 / features,
        reference_rows=5000,
        current_rows=800,
        features=[
            FeatureDrift(
                feature=f"feature_{i:02d}",
                test="ks" if i % 2 else "chi-square",
                p_value=0.0 if i == 0 else (1e-6 if i < 3 else 0.1 + 0.07 * i),
                statistic=0.3 if i < 3 else 0.02,
                drifted=i < 3,
                missing_rate=0.0,
                reference_missing_rate=0.0,
                types={"number": 800},
                new_types=[],
            )
            for i in range(features)
        ]
        + [
            FeatureDrift("untested", None, None, None, False, 1.0, 0.0, {}, []),
        ],
        prediction=PredictionDrift(
            score_p_value=0.3,
            score_statistic=0.04,
            score_drifted=False,
            psi=0.031,
            score_edges=[i / 10 for i in range(11)],
            score_shares=[0.1] * 10,
            reference_score_shares=[0.1] * 10,
            band_p_value=0.5,
            band_shares={"A": 0.5, "B": 0.5},
            reference_band_shares={"A": 0.5, "B": 0.5},
            max_band_share_change=0.0,
        ),
    )
    _, json_path = report.write(settings.reports_dir / "drift" / model)
    return json_path


def figures(page: str) -> dict[str, str]:
    """Chart id -> the HTML of its ``<figure>``."""
    found = re.findall(r'<figure class="chart[^"]*" id="([a-z]+)">(.*?)</figure>', page, re.S)
    return dict(found)


@pytest.fixture(scope="module")
def full_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A data folder with every source the dashboard reads."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("dashboard"))
    rng = np.random.default_rng(7)
    log_predictions(settings, 300, rng)
    record_feedback(settings, 60, rng)
    for model in ("lead_scoring", "customer_risk"):
        write_drift_report(settings, model)
    return settings


@pytest.fixture(scope="module")
def full_page(full_settings: Settings) -> str:
    return render_dashboard(full_settings, metrics_text(), now=NOW)


def test_every_chart_draws_its_data(full_page: str) -> None:
    charts = figures(full_page)
    assert set(charts) == set(CHARTS)
    for chart_id, body in charts.items():
        assert 'class="empty"' not in body, chart_id
        assert body.count("<svg") == 1, chart_id
        assert body.count("<path") >= 5, chart_id
        assert "<figcaption>" in body, chart_id
    assert "<title>leadrisk monitoring</title>" in full_page
    assert "lead_scoring v1 (225), v2 (75)" in full_page
    assert "customer_risk v1 (300)" in full_page
    assert NOW.isoformat(timespec="seconds") in full_page


def test_page_is_self_contained(full_page: str) -> None:
    assert "<script" not in full_page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", full_page)
    assert "@import" not in full_page
    assert not re.search(r"url\((?!#)", full_page), "only in-page references (SVG clip paths)"


def test_latency_table_counts_requests_and_errors(full_page: str) -> None:
    latency = figures(full_page)["latency"]
    assert "<td>/score_lead</td><td>909</td><td>9</td><td>0.99%</td>" in latency
    assert "/metrics" not in latency


def test_drift_and_kpis_show_their_sources(full_page: str) -> None:
    charts = figures(full_page)
    assert "feature_00" in charts["drift"] and "3/12 drifted" in charts["drift"]
    assert "untested" not in charts["drift"]
    for model in ("lead_scoring", "customer_risk"):
        assert f"<td>{model}</td><td>60 / 60</td>" in charts["kpis"]


def test_empty_sources_show_no_data_yet(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    page = render_dashboard(settings, None, now=NOW)
    charts = figures(page)
    assert set(charts) == set(CHARTS)
    for chart_id, body in charts.items():
        assert '<p class="empty">no ' in body, chart_id
        assert "<svg" not in body, chart_id
    assert not settings.feedback_db.exists(), "rendering must not create the feedback store"


def test_one_missing_model_still_draws_the_other(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    write_drift_report(settings, "customer_risk")
    drift = figures(render_dashboard(settings, now=NOW))["drift"]
    assert "<svg" in drift and "lead_scoring: no drift report yet" in drift


def test_window_and_limit_keep_the_newest_predictions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    log = PredictionLog(settings.prediction_log_dir)
    old = NOW - timedelta(days=2)
    log.append([{"model": "lead_scoring", "score": 0.1, "band": "D", "scored_at": old.isoformat()}])
    log.append(
        [
            {
                "model": "lead_scoring",
                "model_version": 3,
                "score": i / 10,
                "band": "C",
                "scored_at": (NOW - timedelta(minutes=9 - i)).isoformat(),
            }
            for i in range(10)
        ]
    )
    log.close()
    with open(next(settings.prediction_log_dir.glob("*/*.jsonl")), "a") as handle:
        handle.write('{"model": "lead_scoring", "sco')  # a torn last line
    frame, truncated = recent_predictions(
        settings.prediction_log_dir, NOW - timedelta(hours=1), NOW, limit=4
    )
    assert truncated
    assert frame["score"].tolist() == pytest.approx([0.6, 0.7, 0.8, 0.9])
    assert set(frame["model_version"]) == {"3"}


def test_render_is_fast_for_a_full_log(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    rng = np.random.default_rng(1)
    log_predictions(settings, LOG_LIMIT // 2, rng)
    render_dashboard(settings, metrics_text(), now=NOW)  # warm caches (fonts, Arrow threads)
    started = time.perf_counter()
    page = render_dashboard(settings, metrics_text(), now=NOW)
    elapsed = time.perf_counter() - started
    print(f"dashboard render of {LOG_LIMIT:,} log entries: {elapsed:.2f} s")
    assert f"{LOG_LIMIT:,} predictions" in page
    assert elapsed < 3.0, f"render took {elapsed:.2f} s"  # the goal is < 1 s; CI runners vary


def test_endpoint_stats_quantiles() -> None:
    stats = {s.endpoint: s for s in endpoint_stats(metrics_text())}
    assert set(stats) == {"/score_lead", "/score_customer"}
    p50, p95, p99 = stats["/score_lead"].quantiles_ms
    assert 5.0 < p50 < 10.0 < p95 < p99 <= 250.0


@pytest.fixture
def served_page(full_page: str, tmp_path: Path) -> Iterator[str]:
    """The page served over HTTP on a free local port; yields its URL."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(full_page)
    handler = functools.partial(QuietHandler, directory=str(tmp_path / "site"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Keep test output clean."""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=3000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.e2e  # a real browser, not a unit: `pytest -m "not e2e"` leaves it out
def test_headless_chromium_renders_every_chart(
    served_page: str, full_settings: Settings, tmp_path: Path
) -> None:
    require(Path(CHROMIUM).exists(), f"Chromium not installed at {CHROMIUM}")
    dom = chromium(tmp_path, "--dump-dom", served_page).stdout
    charts = figures(dom)
    assert set(charts) == set(CHARTS)
    for chart_id, body in charts.items():
        assert "<svg" in body and "<path" in body, chart_id
    screenshot = tmp_path / "dashboard.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1400,2400", served_page)
    assert screenshot.exists() and screenshot.stat().st_size > 20_000
    kept = full_settings.reports_dir / "dashboard.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, kept)
    print(f"dashboard screenshot: {kept}")


def test_the_releases_table_shows_each_model_and_its_test(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    page = render_dashboard(settings, None, now=NOW)
    assert "nothing served yet" in page
    assert not (tmp_path / "releases.db").exists(), "rendering must not create the table"
    store = ReleaseStore(settings.release_store_url)
    store.set_models("lead_scoring", "lead_scoring:v1-aaa", "lead_scoring:v2-bbb")
    store.start("lead_scoring", "ab", share=0.25)
    releases = re.search(r'id="releases">(.*?)</figure>', render_dashboard(settings, now=NOW))
    assert "<td>lead_scoring</td><td>v1</td><td>v2</td><td>ab 25%</td>" in releases.group(1)
