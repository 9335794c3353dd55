"""Load tests: the per-step summariser, the Flask baseline, and a short locust smoke run.

Locust runs only as its own process (it patches ssl through gevent); nothing here imports it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import requests

from core.kinds import LEAD, RISK
from core.settings import LoadTestSettings, Settings, TokenGrant
from features import tables
from loadtest import runner, summary, targets
from loadtest.cpu import cores_between
from monitoring.feedback import FeedbackStore
from service import server

TIMEOUT = 30

HISTORY_CSV = """\
Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%,\
Total Request Count,Total Failure Count
100,5,,Aggregated,0,0,N/A,N/A,N/A,0,0
102,5,POST,/score_customer,5,0,4,8,9,10,0
102,5,,Aggregated,10,0,4,9,12,20,0
104,5,,Aggregated,10,0,5,10,14,40,0
106,5,,Aggregated,10,0,5,12,20,60,0
108,5,POST,/score_customer,5,0,5,9,11,40,0
108,5,,Aggregated,10,0,6,11,18,80,0
110,10,,Aggregated,12,0,6,11,18,100,0
112,10,,Aggregated,20,0,8,30,90,140,1
114,10,,Aggregated,20,0,9,60,200,180,1
116,10,,Aggregated,20,0,9,70,210,220,2
118,10,,Aggregated,20,0,9,65,190,260,2
120,10,,Aggregated,20,0,9,65,190,300,2
"""
STEP_LOG = """\
{"event": "warmup", "step": -1, "offered_rps": 10, "users": 5, "at": 90.0}
{"event": "step", "step": 0, "offered_rps": 10, "users": 5, "at": 100.0}
{"event": "step", "step": 1, "offered_rps": 20, "users": 10, "at": 110.0}
{"event": "end", "at": 120.0}
"""


def test_steps_are_summarised_from_the_history_csv(tmp_path):
    history = pd.read_csv(io.StringIO(HISTORY_CSV), na_values=["N/A"])
    (tmp_path / "steps.jsonl").write_text(STEP_LOG)
    steps = summary.read_steps(tmp_path / "steps.jsonl", last_time=999)
    assert [(s.offered_rps, s.start, s.end) for s in steps] == [(10, 100, 110), (20, 110, 120)]

    result = summary.summarise(history, steps, ramp_s=2, slo=LoadTestSettings())
    first, second = result["steps"]
    assert first["achieved_rps"] == 10.0  # (100 - 20) requests over 102..110
    assert (first["p50_ms"], first["p95_ms"], first["p99_ms"]) == (6, 12, 20)  # worst window
    assert (first["requests"], first["failures"]) == (100, 0)
    assert first["holds_slo"] and first["delivered"]
    assert first["endpoints"]["/score_customer"]["achieved_rps"] == 5.0

    assert second["achieved_rps"] == 19.88  # successes only: (300 - 2) - (140 - 1) over 8 s
    assert (second["p95_ms"], second["p99_ms"], second["failures"]) == (70, 210, 2)
    assert not second["holds_slo"]
    assert result["max_sustainable_rps"] == 10
    assert result["slo_met"] is False
    assert "SLO missed" in summary.format_steps(result)


def test_a_step_missing_its_end_ends_at_the_last_history_row(tmp_path):
    log = tmp_path / "steps.jsonl"
    log.write_text("\n".join(STEP_LOG.splitlines()[:2]) + "\n")
    (step,) = summary.read_steps(log, last_time=107)
    assert (step.start, step.end) == (100, 107)


def test_an_undelivered_step_is_not_sustained(tmp_path):
    history = pd.read_csv(io.StringIO(HISTORY_CSV), na_values=["N/A"])
    steps = [summary.StepWindow(0, 40, 20, 100, 110)]  # offered 40, only 10 achieved
    result = summary.summarise(history, steps, ramp_s=2, slo=LoadTestSettings())
    assert result["steps"][0]["holds_slo"] and not result["steps"][0]["delivered"]
    assert result["max_sustainable_rps"] is None


def test_cores_per_process_and_the_rest_of_the_machine():
    samples = [
        (0.0, {"machine": 10.0, "target/service": 1.0, "locust/locust": 0.5}),
        (2.0, {"machine": 13.0, "target/service": 2.0, "locust/locust": 1.0}),
    ]
    assert cores_between(samples, 0, 2) == {
        "machine": 1.5,
        "target/service": 0.5,
        "locust/locust": 0.25,
        "other": 0.75,
    }


def _first_id(settings, spec: tables.TableSpec) -> int:
    return int(tables.read_table(spec, settings.tables_dir)[spec.key].iloc[0])


def test_the_baseline_scores_one_customer_and_one_lead(trained_settings, trained_env):
    customer_id = _first_id(trained_settings, tables.CUSTOMERS)
    lead_id = _first_id(trained_settings, tables.LEADS)
    running = targets.start_baseline(trained_settings, trained_env, port=server.free_port())
    try:
        customer = requests.post(
            f"{running.url}/score_customer", json={"customer_id": customer_id}, timeout=TIMEOUT
        )
        lead = requests.post(
            f"{running.url}/score_lead", json={"lead_id": lead_id}, timeout=TIMEOUT
        )
        unknown = requests.post(
            f"{running.url}/score_customer", json={"customer_id": 987654321}, timeout=TIMEOUT
        )
        bad_label = requests.post(
            f"{running.url}/feedback",
            json={"feedback_id": "x", "model": "lead", "entity_id": lead_id, "label": 7},
            timeout=TIMEOUT,
        )
    finally:
        server.stop(running.process)
    assert customer.status_code == 200, customer.text
    body = customer.json()
    assert body["customer_id"] == customer_id
    assert 0.0 <= body["p_suspended"] <= 1.0
    assert body["segment"] in {"Low", "Medium", "High"}
    assert len(body["reasons"]) == 3 and body["model"] == "customer_risk"
    assert lead.status_code == 200, lead.text
    assert lead.json()["band"] in {"A", "B", "C", "D"} and 0 <= lead.json()["probability"] <= 1
    assert unknown.status_code == 404 and unknown.json()["field"] == "customer_id"
    assert bad_label.status_code == 422 and bad_label.json()["field"] == "label"


def _feedback_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return set(FeedbackStore(path).frame(LEAD.registered_name)["feedback_id"]) | set(
        FeedbackStore(path).frame(RISK.registered_name)["feedback_id"]
    )


def _prediction_files(directory: Path) -> set[Path]:
    return set(directory.rglob("*")) if directory.exists() else set()


def test_smoke_run_against_leadrisk(trained_settings, trained_env):
    """The staircase runs and is summarised; the feedback, predictions and profiles of its
    traffic stay in the run's folder, not in the data folder under test."""
    settings = trained_settings.model_copy(deep=True)
    settings.loadtest.feedback_share = 0.3  # plenty of POST /feedback with random labels
    feedback_before = _feedback_ids(settings.feedback_db)
    predictions_before = _prediction_files(settings.prediction_log_dir)
    result = runner.run(settings, "smoke", "leadrisk", env=trained_env)
    assert _feedback_ids(settings.feedback_db) == feedback_before
    assert _prediction_files(settings.prediction_log_dir) == predictions_before
    kept = _feedback_ids(result.out_dir / "feedback.db")
    assert kept and all(feedback_id.startswith("loadtest-") for feedback_id in kept)
    assert any((result.out_dir / "predictions").rglob("*"))
    saved = json.loads(result.summary_path.read_text())
    profile = settings.loadtest.smoke
    assert [s["offered_rps"] for s in saved["steps"]] == [
        profile.nominal_rps * m for m in profile.multiples
    ]
    for step in saved["steps"]:
        assert step["achieved_rps"] > 0
        assert step["failures"] == 0
        assert step["p95_ms"] is not None
    assert Path(saved["files"]["chart"]).stat().st_size > 0
    assert Path(saved["files"]["history"]).exists()
    assert saved["target"] == "leadrisk" and saved["hardware"]["cpus"] >= 1
    assert saved["service_settings"] == runner.service_settings(settings)


def test_a_summary_records_the_service_settings_but_not_the_token():
    settings = Settings()
    settings.service.auth_token = "s3cret"
    settings.service.auth_tokens = {
        "crm": TokenGrant(token="crm-token-0123456789", scopes=["score"])
    }
    settings.service.bentoml_home = Path("/tmp/bentoml")
    settings.service.prediction_log_sync_interval_ms = 100
    recorded = runner.service_settings(settings)
    text = json.dumps(recorded)
    assert recorded["auth_token"] == "set" and "s3cret" not in text
    assert recorded["auth_tokens"] == {"crm": ["score"]} and "crm-token" not in text
    assert recorded["prediction_log_sync_interval_ms"] == 100 and recorded["batching"] is True
