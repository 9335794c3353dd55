"""Drift demonstration: inject drift into named features from a date, send the drifted leads'
traffic through the real service, and check that the drift report flags exactly those features
(and the ratios derived from them), that the alert fires to a real webhook, and the detection
precision and recall over several injected shifts."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pandas as pd
import pytest
import requests

from core.settings import load_settings
from features import store as feature_store
from features import tables
from features.prepare import prepare
from features.sources.synthetic import DriftSpec
from monitoring import alerts, drift
from monitoring.live import drift_for
from service import server
from training.train import train

DRIFT_START = datetime(2025, 10, 1, tzinfo=UTC)
WINDOW_MINUTES = 0.1  # 6-second profile windows keep the bursts apart
# Each injected shift, and what a correct detector must flag: the shifted features and the
# on-demand ratios computed from them.
SHIFTS = [
    ({"total_time_on_website": 1.5}, {"total_time_on_website", "time_per_visit"}),
    ({"lead_source": 0.6}, {"lead_source"}),
    (
        {"page_views_per_visit": 1.0, "occupation": 0.6},
        {"page_views_per_visit", "total_page_views", "occupation"},
    ),
]


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory, webhook, env_for):
    return env_for(
        tmp_path_factory.mktemp("drift_demo"),
        LEADRISK_SYNTHETIC__CUSTOMERS="1500",
        LEADRISK_SYNTHETIC__LEADS="6000",
        LEADRISK_TRAINING__SEARCH_ITERATIONS="2",
        LEADRISK_TRAINING__CV_FOLDS="3",
        LEADRISK_MONITORING__WINDOW_MINUTES=str(WINDOW_MINUTES),
        LEADRISK_MONITORING__FLUSH_INTERVAL_S="0.5",
        LEADRISK_MONITORING__WEBHOOK_URL=webhook.url,
    )


@pytest.fixture(scope="module")
def demo_settings(demo_env):
    settings = load_settings(demo_env)
    prepare("synthetic", settings, progress=lambda _: None)
    feature_store.apply(settings)
    feature_store.materialize(settings, progress=lambda _: None)
    train("lead", settings, progress=lambda _: None, source="synthetic")
    train("risk", settings, progress=lambda _: None, source="synthetic")
    return settings


@pytest.fixture(scope="module")
def demo_service(demo_settings):
    """One server for both tests: it reads each re-materialization from the online store."""
    running = server.start(demo_settings)
    yield running
    server.stop(running.process)


def _drifted_lead_ids(settings) -> list[int]:
    leads = tables.read_table(tables.LEADS, settings.tables_dir)
    return leads.loc[leads["created_at"] >= pd.Timestamp(DRIFT_START), "lead_id"].tolist()


def _next_window(length_s: float) -> datetime:
    now = time.time()
    start = (int(now / length_s) + 1) * length_s
    time.sleep(start - now)
    return datetime.fromtimestamp(start, UTC)


def _send(url: str, ids: list[int]) -> None:
    """Single-lead requests from 8 concurrent clients, as a CRM would send them."""

    def post(lead_id: int) -> requests.Response:
        return requests.post(f"{url}/score_lead", json={"lead_id": lead_id}, timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for response in pool.map(post, ids):
            assert response.status_code == 200, response.text


def test_injected_drift_is_detected_and_alerted(demo_settings, demo_service, webhook):
    settings = demo_settings
    window_s = WINDOW_MINUTES * 60
    found = []
    for shifts, expected in SHIFTS:
        spec = DriftSpec(start=DRIFT_START, shifts=shifts)
        prepare("synthetic", settings, drift=spec, progress=lambda _: None)
        feature_store.materialize(settings, progress=lambda _: None)
        since = _next_window(window_s)
        _send(demo_service.url, _drifted_lead_ids(settings)[:600])
        until = _next_window(window_s)
        time.sleep(window_s + 1.5)  # the window closes, then the writer flushes it
        report, html, _ = drift_for(settings, "lead", since=since, until=until)
        flagged = set(drift.drifted_features(report))
        found.append((shifts, expected, flagged))
        assert html.exists()
        facts = drift.alert_facts(report)
        fired = alerts.evaluate(settings, facts)
        assert any(a.rule == "drifted_share" for a in fired), facts

    true_positive = sum(len(flagged & expected) for _, expected, flagged in found)
    flagged_total = sum(len(flagged) for _, _, flagged in found)
    expected_total = sum(len(expected) for _, expected, _ in found)
    precision, recall = true_positive / max(flagged_total, 1), true_positive / expected_total
    for shifts, expected, flagged in found:
        print(f"shift {shifts}: expected {sorted(expected)}, flagged {sorted(flagged)}")
    print(
        f"drift detection over {len(found)} shifts: precision {precision:.2f}, recall {recall:.2f}"
    )
    assert recall == 1.0
    assert precision >= 0.8
    assert len(webhook.received) >= len(SHIFTS)
    assert all("rule" in body for body in webhook.received)


def test_undrifted_traffic_raises_no_feature_drift(demo_settings, demo_service):
    """The same detector on traffic without drift stays quiet (the false-alarm side)."""
    settings = demo_settings
    prepare("synthetic", settings, progress=lambda _: None)
    feature_store.materialize(settings, progress=lambda _: None)
    window_s = WINDOW_MINUTES * 60
    since = _next_window(window_s)
    _send(demo_service.url, _drifted_lead_ids(settings)[:600])
    until = _next_window(window_s)
    time.sleep(window_s + 1.5)
    report, _, _ = drift_for(settings, "lead", since=since, until=until)
    assert drift.drifted_features(report) == []


def test_the_largest_accepted_lead_leaves_monitoring_working(
    demo_env, demo_settings, demo_service, invoke_cli
):
    """A raw lead with every number at its cap is scored and profiled beside ordinary traffic;
    the drift report, the alert check and the diagnosis still complete on that window. A number
    beyond its cap (1e308) is refused, naming the field, and never reaches a profile."""
    url = demo_service.url
    refused = requests.post(
        f"{url}/score_lead", json={"lead": {"total_time_on_website": 1e308}}, timeout=30
    )
    assert refused.status_code == 422
    assert refused.json()["field"] == "lead.total_time_on_website"
    window_s = WINDOW_MINUTES * 60
    since = _next_window(window_s)
    at_caps = {"lead": dict(demo_settings.service.raw_lead_max)}
    extreme = requests.post(f"{url}/score_lead", json=at_caps, timeout=30)
    assert extreme.status_code == 200, extreme.text
    _send(url, _drifted_lead_ids(demo_settings)[:200])
    until = _next_window(window_s)
    time.sleep(window_s + 1.5)
    window = ["--since", since.isoformat(), "--until", until.isoformat()]
    for command, codes in (
        (["monitor", "drift", "--model", "lead", *window], {0}),
        (["monitor", "check", "--url", url], {0, 1}),  # 1: an alert fired, which is an answer
        (["diagnose", "lead", "--url", url], {0}),
    ):
        result = invoke_cli(command, demo_env)
        assert result.exit_code in codes, (command, result.output, result.exception)
        assert "Traceback" not in result.output and "OverflowError" not in result.output, command
