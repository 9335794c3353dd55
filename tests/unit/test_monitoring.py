"""Monitoring: windowed profiles, drift against the reference, alerts, webhook, feedback KPIs."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import reference as reference_data
from core.columns import Columns
from core.settings import PROJECT_ROOT, MonitoringSettings, Settings
from monitoring import alerts, drift, reference
from monitoring.feedback import ConflictError, Feedback, FeedbackStore
from monitoring.profiler import ProfileProcess, ProfileWriter, read_profiles
from monitoring.served_rows import ServedRows

T0 = datetime(2025, 3, 1, 10, 5, 30, tzinfo=UTC)
MODEL = "lead_scoring"


def make_settings(tmp_path: Path, **monitoring) -> Settings:
    defaults = {"window_minutes": 1, "flush_interval_s": 0.05}
    return Settings(data_dir=tmp_path, monitoring=MonitoringSettings(**{**defaults, **monitoring}))


def served(rng: np.random.Generator, n: int, shifted: bool = False) -> pd.DataFrame:
    """Features plus score and band; ``shifted`` moves ``visits`` and ``channel`` only."""
    frame = pd.DataFrame(
        {
            "visits": rng.normal(1.0 if shifted else 0.0, 1.0, n),
            "age": rng.normal(40.0, 10.0, n),
            "channel": rng.choice(
                ["web", "email", "phone"], n, p=[0.2, 0.3, 0.5] if shifted else [0.5, 0.3, 0.2]
            ),
            "region": rng.choice(["north", "south"], n, p=[0.6, 0.4]),
        }
    )
    frame["channel"] = frame["channel"].astype(object)
    frame["region"] = frame["region"].astype(object)
    score = 1.0 / (1.0 + np.exp(-(frame["visits"] + rng.normal(0.0, 0.5, n))))
    frame["score"] = score
    frame["band"] = np.where(score >= 0.7, "A", np.where(score >= 0.4, "B", "C")).astype(object)
    return frame


def served_rows(rng: np.random.Generator, n: int, shifted: bool = False) -> ServedRows:
    frame = served(rng, n, shifted)
    return ServedRows(tuple(map(str, frame.columns)), frame.to_numpy(dtype=object))


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    return frame.drop(columns=["score", "band"]), frame["score"].to_numpy(), list(frame["band"])


def stored(root: Path) -> list[Path]:
    return sorted(root.rglob("*.bin"))


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def rows(view) -> int:
    return view.get_column("score").to_summary_dict()["counts/n"]


# ---------------------------------------------------------------- profiles


def test_closed_windows_are_written_by_the_thread_and_open_ones_on_close(tmp_path):
    settings = make_settings(tmp_path)
    rng = np.random.default_rng(1)
    root = Path(settings.profiles_url)
    writer = ProfileWriter(settings, clock=lambda: T0)
    assert writer.submit(MODEL, "3", served_rows(rng, 5), at=T0 - timedelta(minutes=2, seconds=20))
    assert writer.submit(MODEL, "3", served_rows(rng, 7), at=T0 - timedelta(minutes=2, seconds=5))
    assert writer.submit(MODEL, "3", served_rows(rng, 11), at=T0)

    wait_for(lambda: len(stored(root)) == 1)
    (closed,) = stored(root)
    assert closed.parent == root / MODEL / "3"
    assert closed.name.startswith("2025-03-01T10-03-00Z__")
    time.sleep(0.2)
    assert len(stored(root)) == 1, "the open window must wait for its end"

    written = writer.close()
    assert [Path(p).name[:20] for p in written] == ["2025-03-01T10-05-00Z"]
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert rows(read_profiles(settings, MODEL)) == 23
    assert rows(read_profiles(settings, MODEL, until=T0 - timedelta(minutes=1))) == 12
    assert writer.submit(MODEL, "3", served_rows(rng, 1)) is False


def test_served_rows_profile_like_the_frame_they_came_from():
    """A scored batch crosses to the profiler as one object array; the profile built from many
    of them has the columns, dtypes and summaries of the original frame, missing values kept."""
    rng = np.random.default_rng(7)
    features = served(rng, 40).drop(columns=["score", "band"])
    features.loc[::5, "age"] = np.nan
    features.loc[::7, "channel"] = None
    scores, bands = rng.random(40), list(rng.choice(["A", "B"], 40))
    batches = [
        ServedRows.of(Columns.of(features.iloc[i : i + 8]), scores[i : i + 8], bands[i : i + 8])
        for i in range(0, 40, 8)
    ]
    rebuilt = ServedRows.frame(batches)
    expected = features.assign(score=scores, band=bands)
    pd.testing.assert_frame_equal(rebuilt, expected.reset_index(drop=True))
    assert batches[0].values.dtype == object

    from monitoring.whylogs_compat import why

    summary = why.log(pandas=rebuilt).view().to_pandas().astype(str)
    assert summary.equals(why.log(pandas=expected).view().to_pandas().astype(str))


def test_profile_process_outlives_sigterm_and_writes_every_window_on_close(tmp_path):
    """The service's writer runs in a child process: SIGTERM (sent to the whole process group at
    shutdown) must not kill it before the shutdown hook has had it write the open windows."""
    settings = make_settings(tmp_path, window_minutes=60, flush_interval_s=60)
    rng = np.random.default_rng(4)
    writer = ProfileProcess(settings)
    try:
        assert writer.ready  # the constructor waits for the child's start-up
        assert writer.submit(MODEL, "5", served_rows(rng, 8), at=T0)
        assert writer.submit(MODEL, "5", served_rows(rng, 9), at=T0 - timedelta(hours=1))
        os.kill(writer._process.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert writer._process.is_alive()
    finally:
        writer.close()
    assert writer.exitcode == 0
    assert rows(read_profiles(settings, MODEL)) == 17
    assert len(stored(Path(settings.profiles_url))) == 2  # one part per window
    assert writer.submit(MODEL, "5", served_rows(rng, 1)) is False and writer.dropped == 1


def test_closed_writer_leaves_no_semaphores_behind(tmp_path: Path) -> None:
    """uvicorn ends a serving process with SIGTERM's default action after the shutdown hook, so
    no exit handler runs: closing the writer must release its queue's and event's semaphores
    itself, or multiprocessing's resource tracker reports them as leaked."""
    script = (
        "import os, signal\n"
        "from core.settings import MonitoringSettings, Settings\n"
        "from monitoring.profiler import ProfileProcess\n"
        f"settings = Settings(data_dir={str(tmp_path)!r}, monitoring=MonitoringSettings())\n"
        "writer = ProfileProcess(settings)\n"
        "assert writer.ready\n"
        "writer.close()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "leaked semaphore" not in done.stderr, done.stderr


def test_full_queue_drops_instead_of_blocking(tmp_path):
    settings = make_settings(tmp_path, queue_max=2, flush_interval_s=60)
    rng = np.random.default_rng(2)
    with ProfileWriter(settings, clock=lambda: T0) as writer:
        started = time.perf_counter()
        accepted = [writer.submit(MODEL, "1", served_rows(rng, 3), at=T0) for _ in range(5)]
        assert time.perf_counter() - started < 0.5
        assert accepted == [True, True, False, False, False]
        assert writer.dropped == 3
    assert rows(read_profiles(settings, MODEL)) == 6


def test_read_profiles_merges_parts_and_filters_by_window_and_version(tmp_path):
    settings = make_settings(tmp_path)
    rng = np.random.default_rng(3)
    with ProfileWriter(settings, clock=lambda: T0) as writer:
        writer.submit(MODEL, "1", served_rows(rng, 4), at=T0)
        writer.flush()
        writer.submit(MODEL, "1", served_rows(rng, 6), at=T0)
        writer.flush()
        writer.submit(MODEL, "2", served_rows(rng, 10), at=T0)
        writer.submit(MODEL, "1", served_rows(rng, 100), at=T0 - timedelta(hours=1))

    window = [p for p in stored(Path(settings.profiles_url)) if "T10-05-00Z" in p.name]
    assert len(window) == 3
    assert rows(read_profiles(settings, MODEL, since=T0, version="1")) == 10
    assert rows(read_profiles(settings, MODEL, since=T0)) == 20
    assert rows(read_profiles(settings, MODEL)) == 120
    assert read_profiles(settings, MODEL, since=T0 + timedelta(minutes=5)) is None
    assert read_profiles(settings, "customer_risk") is None


# ---------------------------------------------------------------- drift


@pytest.fixture(scope="module")
def baseline():
    frame = served(np.random.default_rng(10), 4_000)
    features, scores, bands = split(frame)
    rows = reference_data.reference_rows(features, scores, bands)
    return reference.profile_rows(rows), reference_data.reference_summary(scores, bands)


def current(seed: int, shifted: bool, n: int = 1_000) -> tuple[pd.DataFrame, object]:
    frame = served(np.random.default_rng(seed), n, shifted)
    features, scores, bands = split(frame)
    return frame, reference.profile_rows(reference_data.reference_rows(features, scores, bands))


def test_reference_round_trips_through_a_folder(tmp_path, baseline):
    features, scores, bands = split(served(np.random.default_rng(10), 4_000))
    reference_data.write_reference(features, scores, bands, tmp_path / "reference")
    loaded = reference.load_reference(tmp_path / "reference")
    view, summary = baseline
    assert loaded.summary == summary
    assert rows(loaded.view) == 4_000
    assert loaded.view.get_columns().keys() == view.get_columns().keys()
    assert len(summary["score_edges"]) == 9
    assert np.allclose(summary["score_shares"], 0.1, atol=0.01)
    with pytest.raises(FileNotFoundError, match="no reference at"):
        reference.load_reference(tmp_path / "missing")
    assert reference.load_cached(tmp_path / "kept") is None
    reference.keep(loaded, tmp_path / "kept")
    kept = reference.load_cached(tmp_path / "kept")
    assert kept.summary == summary and rows(kept.view) == 4_000


def test_drift_flags_shifted_features_only(tmp_path, baseline):
    settings = make_settings(tmp_path)
    _, shifted = current(16, shifted=True)
    _, same = current(19, shifted=False)

    moved = drift.drift_report(settings, MODEL, *baseline, shifted)
    steady = drift.drift_report(settings, MODEL, *baseline, same)

    assert sorted(drift.drifted_features(moved)) == ["channel", "visits"]
    assert drift.drifted_share(moved) == 0.5
    assert {f.feature: f.test for f in moved.features} == {
        "visits": "ks",
        "age": "ks",
        "channel": "chi-square",
        "region": "chi-square",
    }
    assert drift.drifted_features(steady) == []
    assert moved.prediction.score_drifted and not steady.prediction.score_drifted
    assert moved.prediction.max_band_share_change > 0.2
    assert steady.prediction.max_band_share_change < 0.05


def test_psi_is_large_for_shifted_scores_and_small_for_the_same_distribution(tmp_path, baseline):
    settings = make_settings(tmp_path)
    shifted_frame, shifted = current(22, shifted=True)
    same_frame, same = current(29, shifted=False)

    from_sketch = drift.drift_report(settings, MODEL, *baseline, shifted).prediction.psi
    exact = drift.drift_report(
        settings, MODEL, *baseline, shifted, current_scores=shifted_frame["score"].to_numpy()
    ).prediction.psi
    steady = drift.drift_report(settings, MODEL, *baseline, same).prediction.psi
    steady_exact = drift.drift_report(
        settings, MODEL, *baseline, same, current_scores=same_frame["score"].to_numpy()
    ).prediction.psi

    assert from_sketch > settings.monitoring.psi_alert
    assert exact == pytest.approx(from_sketch, rel=0.1)
    assert steady < 0.05 and steady_exact < 0.05


def test_missing_values_and_type_changes_are_reported(tmp_path, baseline):
    frame, _ = current(19, shifted=False)
    features, scores, bands = split(frame)
    features["age"] = features["age"].astype(object)
    features.loc[:199, "age"] = None
    features.loc[200:209, "age"] = "unknown"
    report = drift.drift_report(
        make_settings(tmp_path),
        MODEL,
        *baseline,
        reference.profile_rows(reference_data.reference_rows(features, scores, bands)),
    )

    age = next(f for f in report.features if f.feature == "age")
    assert age.missing_rate == pytest.approx(0.2)
    assert age.reference_missing_rate == 0.0
    assert age.new_types == ["string"]
    assert drift.alert_facts(report)["missing_feature_rate"] == pytest.approx(0.2)


def test_an_extreme_accepted_value_is_reported_not_a_crash(tmp_path, baseline):
    """A served 1e308 beside ordinary values: the window's parts merge, the drift report and the
    alert facts complete, and the report's JSON is standard JSON."""
    parts = []
    for seed, extreme in ((30, 1e308), (31, None)):
        frame = served(np.random.default_rng(seed), 200)
        if extreme is not None:
            frame.loc[0, "age"] = extreme
        view = reference.profile_rows(frame)
        parts.append(type(view).deserialize(view.serialize()))  # as read back from the store
    current = parts[0].merge(parts[1])

    report = drift.drift_report(make_settings(tmp_path), MODEL, *baseline, current)

    age = next(f for f in report.features if f.feature == "age")
    assert age.drifted is not None
    assert "missing_feature_rate" in drift.alert_facts(report)
    _, json_path = report.write(tmp_path / "reports")
    json.loads(json_path.read_text(), parse_constant=lambda name: pytest.fail(f"JSON has {name}"))


def test_report_writes_self_contained_html_and_json(tmp_path, baseline):
    _, shifted = current(14, shifted=True)
    report = drift.drift_report(make_settings(tmp_path), MODEL, *baseline, shifted)

    html_path, json_path = report.write(tmp_path / "reports")

    page = html_path.read_text()
    assert html_path.suffix == ".html" and "<svg" in page and "visits" in page
    assert "<script" not in page and "<link" not in page and "src=" not in page
    data = json.loads(json_path.read_text())
    assert sorted(data["drifted_features"]) == ["channel", "visits"]
    assert data["prediction"]["psi"] == report.prediction.psi
    assert json.loads(report.to_json()) == data


# ---------------------------------------------------------------- alerts


class Receiver(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Receiver.bodies = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", Receiver.bodies
    server.shutdown()
    server.server_close()


def test_alerts_fire_above_thresholds_only(tmp_path):
    settings = make_settings(tmp_path)
    cfg = settings.monitoring
    quiet = {
        "drifted_share": cfg.drifted_share_alert,
        "psi": 0.01,
        "missing_feature_rate": 0.0,
        "p99_latency_ms": cfg.p99_latency_ms_alert,
        "error_rate": 0.0,
        "freshness_hours": {"lead_activity": 1.0},
        "kpi_drop": None,
    }
    assert alerts.evaluate(settings, quiet, notify=False) == []

    loud = {
        **quiet,
        "model": MODEL,
        "psi": cfg.psi_alert + 0.01,
        "error_rate": 0.5,
        "freshness_hours": {"lead_activity": 1.0, "customer_profile": 48.0},
    }
    fired = alerts.evaluate(settings, loud, notify=False)
    assert [(a.rule, a.subject) for a in fired] == [
        ("psi", None),
        ("error_rate", None),
        ("freshness_hours", "customer_profile"),
    ]
    assert fired[0].model == MODEL and "above" in fired[0].message


def test_firing_alert_is_one_json_log_line_and_one_webhook_post(tmp_path, webhook, caplog):
    url, bodies = webhook
    settings = make_settings(tmp_path, webhook_url=url)
    with caplog.at_level(logging.WARNING, logger="leadrisk.alerts"):
        (alert,) = alerts.evaluate(settings, {"model": MODEL, "p99_latency_ms": 900.0})

    (line,) = [r.getMessage() for r in caplog.records if r.name == "leadrisk.alerts"]
    assert json.loads(line) == alert.payload()
    assert bodies == [alert.payload()]
    assert bodies[0]["rule"] == "p99_latency_ms" and bodies[0]["value"] == 900.0


def test_webhook_failure_is_logged_not_raised(tmp_path, caplog):
    settings = make_settings(tmp_path, webhook_url="http://127.0.0.1:9/unreachable")
    with caplog.at_level(logging.WARNING, logger="leadrisk.alerts"):
        fired = alerts.evaluate(settings, {"kpi_drop": 0.5})
    assert len(fired) == 1
    assert any("webhook_failed" in r.getMessage() for r in caplog.records)


EXPOSITION = """\
# HELP bentoml_service_request_total Total number of HTTP requests
# TYPE bentoml_service_request_total counter
bentoml_service_request_total{endpoint="/score_leads",http_response_code="200",service_name="leadrisk",service_version="1"} 100.0
bentoml_service_request_total{endpoint="/score_leads",http_response_code="500",service_name="leadrisk",service_version="1"} 2.0
bentoml_service_request_total{endpoint="/healthz",http_response_code="200",service_name="leadrisk",service_version="1"} 1000.0
# HELP bentoml_service_request_duration_seconds API HTTP request duration in seconds
# TYPE bentoml_service_request_duration_seconds histogram
{buckets}
"""  # noqa: E501


def _buckets(endpoint: str, code: str, counts: list[int]) -> str:
    bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "+Inf"]
    labels = f'endpoint="{endpoint}",http_response_code="{code}"'
    lines = [
        f'bentoml_service_request_duration_seconds_bucket{{{labels},le="{le}"}} {n}.0'
        for le, n in zip(bounds, counts, strict=True)
    ]
    lines.append(f"bentoml_service_request_duration_seconds_count{{{labels}}} {counts[-1]}.0")
    lines.append(f"bentoml_service_request_duration_seconds_sum{{{labels}}} 1.0")
    return "\n".join(lines)


def test_p99_latency_and_error_rate_from_prometheus_text():
    text = EXPOSITION.replace(
        "{buckets}",
        "\n".join(
            [
                _buckets("/score_leads", "200", [10, 50, 90, 98, 100, 100, 100]),
                _buckets("/score_leads", "500", [0, 0, 0, 0, 0, 2, 2]),
                _buckets("/healthz", "200", [1000] * 7),
            ]
        ),
    )
    metrics = alerts.metrics_from_prometheus(text)

    assert metrics["requests"] == 102 and metrics["errors"] == 2
    assert metrics["error_rate"] == pytest.approx(2 / 102)
    # rank 0.99 * 102 = 100.98 falls in (0.1, 0.25] holding requests 101-102
    assert metrics["p99_latency_ms"] == pytest.approx((0.1 + 0.15 * 0.98 / 2) * 1000)
    probes = alerts.metrics_from_prometheus(text, endpoints={"/healthz"})
    assert probes["p99_latency_ms"] == pytest.approx(5 * 0.99)
    assert alerts.metrics_from_prometheus("")["p99_latency_ms"] is None


# ---------------------------------------------------------------- feedback


def test_feedback_is_idempotent_by_id_and_rejects_conflicts(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.db")
    event = dict(
        feedback_id="f-1",
        model=MODEL,
        entity_id=7,
        label=1,
        rating=None,
        score=0.83,
        band="A",
        model_version="3",
        at=T0,
    )
    assert store.record(Feedback(**event)) == "recorded"
    assert FeedbackStore(tmp_path / "feedback.db").record(Feedback(**event)) == "duplicate"
    with pytest.raises(ConflictError, match="different label"):
        store.record(Feedback(**{**event, "label": 0}))
    with pytest.raises(ValueError, match="neither a label nor a rating"):
        store.record(Feedback(**{**event, "feedback_id": "f-2", "label": None}))
    assert len(store.frame(MODEL)) == 1


def test_kpis_and_labels_frame_have_known_answers(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.db")
    cases = [(1, 0.9, "A", 1), (2, 0.8, "A", 0), (3, 0.3, "C", 1), (4, 0.2, "C", 0)]
    for entity, score, band, label in cases:
        store.record(Feedback(f"f{entity}", MODEL, entity, label, None, score, band, "3", T0))
    store.record(Feedback("f5", MODEL, 4, 1, None, 0.2, "C", "3", T0 + timedelta(days=1)))
    store.record(Feedback("f6", MODEL, 9, None, 4, None, None, "3", T0))
    store.record(Feedback("f7", "customer_risk", 1, 1, None, 0.5, "High", "1", T0))

    kpis = store.kpis(MODEL)
    assert kpis["count"] == 6 and kpis["labelled"] == 5 and kpis["mean_rating"] == 4.0
    assert kpis["positive_rate_by_band"] == {
        "A": {"count": 2, "rate": 0.5},
        "C": {"count": 3, "rate": 2 / 3},
    }
    assert store.kpis(MODEL, since=T0 + timedelta(hours=1))["count"] == 1

    labels = store.labels_frame(MODEL)
    assert labels["entity_id"].tolist() == ["1", "2", "3", "4"]
    assert labels["label"].tolist() == [1, 0, 1, 1]
    assert str(labels["at"].dt.tz) == "UTC"


def test_live_auc_precision_recall_and_calibration(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.db")
    for entity, score, label in [(1, 0.9, 1), (2, 0.8, 0), (3, 0.3, 1), (4, 0.2, 0)]:
        store.record(Feedback(f"f{entity}", MODEL, entity, label, None, score, None, "3", T0))

    kpis = store.kpis(MODEL, threshold=0.5)

    assert kpis["roc_auc"] == pytest.approx(0.75)
    assert kpis["precision"] == 0.5 and kpis["recall"] == 0.5
    assert [(c["bin_low"], c["count"], c["observed_rate"]) for c in kpis["calibration"]] == [
        (0.2, 1, 0.0),
        (0.3, 1, 1.0),
        (0.8, 1, 0.0),
        (0.9, 1, 1.0),
    ]


def test_feedback_store_uses_a_write_ahead_log(tmp_path):
    FeedbackStore(tmp_path / "feedback.db")
    with sqlite3.connect(tmp_path / "feedback.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
