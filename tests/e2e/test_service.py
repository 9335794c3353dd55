"""The service over real HTTP: a real ``bentoml serve`` subprocess on a free port."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import requests

from core.kinds import LEAD, RISK
from features import store as feature_store
from features import tables
from monitoring.prediction_log import read_entries
from service import packaging, server
from training import registry

TIMEOUT = 30


@pytest.fixture(scope="module")
def service(trained_settings):
    running = server.start(trained_settings)
    yield running
    server.stop(running.process)


def _ids(settings, spec: tables.TableSpec, n: int, seed: int = 0) -> list[int]:
    ids = tables.read_table(spec, settings.tables_dir)[spec.key]
    return ids.sample(n, random_state=seed).astype(int).tolist()


def _post(url: str, path: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(f"{url}{path}", json=body, timeout=TIMEOUT, **kwargs)


def test_score_lead_by_id_and_by_payload(service, trained_settings):
    lead_id = _ids(trained_settings, tables.LEADS, 1)[0]
    stored = _post(service.url, "/score_lead", {"lead_id": lead_id})
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["lead_id"] == lead_id
    assert 0.0 <= body["probability"] <= 1.0
    assert body["band"] in {"A", "B", "C", "D"}
    assert len(body["reasons"]) == 3 and all(":" in r["text"] for r in body["reasons"])
    assert body["model"] == "lead_scoring" and body["model_version"]
    assert len(body["request_id"]) == 32

    fresh = _post(
        service.url,
        "/score_lead",
        {
            "lead": {
                "total_time_on_website": 1500,
                "total_visits": 4,
                "page_views_per_visit": 3,
                "last_activity": "SMS Sent",
                "lead_origin": "Lead Add Form",
            }
        },
    )
    assert fresh.status_code == 200, fresh.text
    cold = _post(
        service.url,
        "/score_lead",
        {
            "lead": {
                "total_time_on_website": 0,
                "total_visits": 0,
                "page_views_per_visit": 0,
                "last_activity": "Email Bounced",
                "do_not_email": 1,
            }
        },
    )
    assert fresh.json()["lead_id"] is None
    assert fresh.json()["probability"] > cold.json()["probability"]


def test_score_customer(service, trained_settings):
    customer_id = _ids(trained_settings, tables.CUSTOMERS, 1)[0]
    response = _post(service.url, "/score_customer", {"customer_id": customer_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == customer_id
    assert body["segment"] in {"Low", "Medium", "High"}
    assert isinstance(body["offboard"], bool)
    assert (body["offboard_rule"] is not None) == body["offboard"]
    assert body["model"] == "customer_risk"


def test_unknown_ids_are_404_naming_the_id(service):
    for path, body, field in (
        ("/score_lead", {"lead_id": 987654321}, "lead_id"),
        ("/score_customer", {"customer_id": 987654321}, "customer_id"),
    ):
        response = _post(service.url, path, body)
        assert response.status_code == 404
        assert response.json()["field"] == field
        assert "987654321" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/score_lead", {"lead_id": "abc"}, "lead_id"),
        ("/score_lead", {}, None),  # neither lead_id nor lead: no one field is to blame
        ("/score_lead", {"lead_id": None, "lead": {}}, "lead_id"),
        ("/score_lead", {"lead": {"total_visits": -3}}, "lead.total_visits"),
        ("/score_lead", {"lead": {"do_not_email": 7}}, "lead.do_not_email"),
        ("/score_lead", {"lead": {"colour": "red"}}, "lead.colour"),
        ("/score_customer", {"customer_id": -1}, "customer_id"),
        ("/score_customer", {"customer": 5}, "customer"),
        ("/batch_score", {"model": "cats", "ids": [1]}, "model"),
        ("/score_lead", {"lead_id": 99999999999999999999999}, "lead_id"),
        ("/score_lead", {"lead": {"total_time_on_website": 1e308}}, "lead.total_time_on_website"),
        ("/score_customer", {"customer_id": 2**63}, "customer_id"),
        ("/batch_score", {"model": "risk", "ids": [1, 2**64]}, "ids.1"),
    ],
)
def test_malformed_payload_is_422_naming_the_field(service, path, body, field):
    response = _post(service.url, path, body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["field"] == field if field is None else payload["field"].startswith(field)
    assert payload["request_id"] == response.headers["X-Request-ID"]


def test_bad_ids_and_bodies_are_4xx_not_outages(service):
    """An id beyond INT64 is the caller's error, not a feature-store outage; a multipart body
    without a boundary is a 400, not a 500."""
    errors_before = _feature_store_errors(service.url)
    assert _post(service.url, "/score_lead", {"lead_id": 10**25}).status_code == 422
    response = requests.post(
        f"{service.url}/score_customer",
        data=b'{"customer_id": 0}',
        headers={"Content-Type": "multipart/form-data"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "Content-Type"
    assert _feature_store_errors(service.url) == errors_before


def test_unknown_paths_share_one_metric_label(service):
    """1,000 random paths add one endpoint label, not 1,000 Prometheus series."""
    rng = np.random.default_rng(3)
    session = requests.Session()
    for i in range(1_000):
        path = "/probe-" + "".join(rng.choice(list("abcdefghij/_-"), rng.integers(1, 30)))
        method = session.get if i % 2 else session.post
        assert method(f"{service.url}{path}", timeout=TIMEOUT).status_code in (401, 404, 405)
    index = session.get(f"{service.url}/", timeout=TIMEOUT)
    assert index.status_code == 200 and "static_content/" in index.text  # the API docs page
    for asset in re.findall(r'"\./(static_content/[^"]+)"', index.text):
        assert session.get(f"{service.url}/{asset}", timeout=TIMEOUT).status_code == 200, asset
    text = session.get(f"{service.url}/metrics", timeout=TIMEOUT).text
    endpoints = set(re.findall(r'bentoml_service_request_total\{[^}]*endpoint="([^"]*)"', text))
    assert "/{unknown}" in endpoints
    assert len(endpoints) < 30, sorted(endpoints)


def _feature_store_errors(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("leadrisk_feature_store_errors_total")
    )


def test_missing_features_are_imputed_and_flagged(service):
    response = _post(service.url, "/score_lead", {"lead": {"total_time_on_website": 300}})
    assert response.status_code == 200
    imputed = response.json()["imputed_features"]
    assert "total_visits" in imputed and "lead_source" in imputed
    metrics = requests.get(f"{service.url}/metrics", timeout=TIMEOUT).text
    assert re.search(r'leadrisk_imputed_features_total\{[^}]*feature="total_visits"', metrics)


def test_batch_score_ids_with_per_row_errors(service, trained_settings):
    ids = _ids(trained_settings, tables.CUSTOMERS, 30)
    response = _post(service.url, "/batch_score", {"model": "risk", "ids": [*ids, 987654321]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scored"] == 30 and body["failed"] == 1
    assert body["rows"][-1]["error"] == "unknown customer_id 987654321"
    assert [row["entity_id"] for row in body["rows"][:30]] == ids


def test_batch_score_file_upload(service, trained_settings, tmp_path):
    ids = _ids(trained_settings, tables.LEADS, 20)
    frame = pd.DataFrame({"lead_id": [*map(str, ids), "not-a-number"]})
    path = tmp_path / "crm_export.csv"
    frame.to_csv(path, index=False)
    with open(path, "rb") as handle:
        response = requests.post(
            f"{service.url}/batch_score_file",
            files={"file": ("crm_export.csv", handle, "application/octet-stream")},
            data={"model": "lead"},
            timeout=TIMEOUT,
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scored"] == 20 and body["failed"] == 1
    assert body["rows"][20]["error"] == "lead_id is not an integer"
    written = pd.read_parquet(body["written_to"])
    assert len(written) == 21 and written["probability"].notna().sum() == 20


def test_models_health_metrics_and_openapi(service, trained_settings):
    customer = _ids(trained_settings, tables.CUSTOMERS, 1)[0]  # so the score metrics have a sample
    assert _post(service.url, "/score_customer", {"customer_id": customer}).status_code == 200
    models = requests.get(f"{service.url}/models", timeout=TIMEOUT).json()
    assert {m["model"] for m in models["models"]} == {"lead_scoring", "customer_risk"}
    assert models["feature_store"]["ok"] is True
    assert requests.get(f"{service.url}/livez", timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{service.url}/readyz", timeout=TIMEOUT).status_code == 200
    spec = requests.get(f"{service.url}/docs.json", timeout=TIMEOUT).json()
    assert {"/score_lead", "/score_customer", "/batch_score"} <= set(spec["paths"])
    metrics = requests.get(f"{service.url}/metrics", timeout=TIMEOUT).text
    for name in (
        "bentoml_service_request_total",
        "leadrisk_score_bucket",
        "leadrisk_feature_store_latency_seconds_bucket",
    ):
        assert name in metrics


def test_batching_merges_concurrent_requests(service, trained_settings):
    ids = _ids(trained_settings, tables.CUSTOMERS, 200, seed=3)
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(
            pool.map(
                lambda i: _post(service.url, "/score_customer", {"customer_id": i}).status_code, ids
            )
        )
    assert statuses == [200] * len(ids)
    metrics = requests.get(f"{service.url}/metrics", timeout=TIMEOUT).text
    total = sum(
        map(float, re.findall(r"leadrisk_batch_size_sum\{[^}]*customer_risk[^}]*\} (\S+)", metrics))
    )
    count = sum(
        map(
            float,
            re.findall(r"leadrisk_batch_size_count\{[^}]*customer_risk[^}]*\} (\S+)", metrics),
        )
    )
    assert count > 0 and total / count > 1.5, f"mean batch size {total / max(count, 1):.2f}"


@pytest.mark.parametrize("kind", [LEAD, RISK], ids=["lead", "risk"])
def test_service_scores_equal_offline_pipeline(service, trained_settings, kind):
    """Online score == offline pipeline on get_historical_features at the same time (1e-9)."""
    spec = tables.LEADS if kind is LEAD else tables.CUSTOMERS
    ids = _ids(trained_settings, spec, 100, seed=7)
    body = {"model": kind.key, "ids": ids}
    online = _post(service.url, "/batch_score", body).json()["rows"]
    online_scores = np.array(
        [row["result"]["probability" if kind is LEAD else "p_suspended"] for row in online]
    )
    store = feature_store.open_store(trained_settings)
    entity_df = pd.DataFrame({kind.entity_key: ids, "event_timestamp": pd.Timestamp.now(tz="UTC")})
    offline = feature_store.historical_features(store, kind.feature_service, entity_df)
    offline = offline.set_index(kind.entity_key).loc[ids].reset_index()
    client = registry.connect(trained_settings)
    champion = registry.alias_version(client, kind.registered_name, registry.CHAMPION)
    model = registry.load_version(kind.registered_name, champion.version)
    np.testing.assert_allclose(online_scores, model.predict_proba(offline), rtol=0, atol=1e-9)


def test_champion_import_is_skipped_only_while_the_registry_is_unchanged(trained_settings):
    """Server start-up skips the champion import (a subprocess importing MLflow and BentoML)
    when the embedded MLflow store was not written since the last import; any write to it, such
    as an alias move, or a missing model file, makes it import again."""
    tags = packaging.import_champions(trained_settings)
    assert packaging._unchanged_import(trained_settings) == tags
    client = registry.connect(trained_settings)
    client.set_registered_model_tag(LEAD.registered_name, "touched", str(time.time()))
    assert packaging._unchanged_import(trained_settings) is None
    assert packaging.import_champions(trained_settings) == tags
    assert packaging._unchanged_import(trained_settings) == tags
    model_file = packaging.imported_model_file(trained_settings, tags[RISK.registered_name]).parent
    moved = model_file.with_name(model_file.name + ".moved")
    model_file.rename(moved)
    try:
        assert packaging._unchanged_import(trained_settings) is None
    finally:
        moved.rename(model_file)


def test_acknowledged_predictions_survive_a_crash(trained_settings):
    """SIGKILL the whole server (two serving processes, each with its own log file) after
    answers were sent: every acknowledged entry is on disk."""
    running = server.start(trained_settings, env={"LEADRISK_SERVICE__WORKERS": "2"})
    ids = _ids(trained_settings, tables.CUSTOMERS, 40, seed=11)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(
            pool.map(lambda i: _post(running.url, "/score_customer", {"customer_id": i}), ids)
        )
    acknowledged = {r.json()["request_id"] for r in responses if r.status_code == 200}
    server.kill(running.process)
    logged = {entry["request_id"] for entry in read_entries(trained_settings.prediction_log_dir)}
    assert len(acknowledged) == 40 and acknowledged <= logged

    restarted = server.start(trained_settings)
    try:
        again = _post(restarted.url, "/score_customer", {"customer_id": ids[0]}).json()
        logged = {e["request_id"] for e in read_entries(trained_settings.prediction_log_dir)}
        assert acknowledged <= logged and again["request_id"] in logged
    finally:
        server.stop(restarted.process)


def test_serve_with_a_token_then_stop_it_with_sigterm(trained_settings, trained_env, tmp_path):
    """`leadrisk serve` as a user runs it, with bearer tokens: scoring needs a token, health and
    metrics do not, and a token scoped to scoring is refused the admin pages. A SIGTERM to that
    process alone stops the server and every process under it (nothing orphaned)."""
    port = server.free_port()
    url = f"http://{trained_settings.service.host}:{port}"
    crm = json.dumps({"crm": {"token": "crm-token-0123456789", "scopes": ["score"]}})
    env = {
        **os.environ,
        **trained_env,
        "LEADRISK_SERVICE__AUTH_TOKEN": "s3cret",
        "LEADRISK_SERVICE__AUTH_TOKENS": crm,
    }
    leadrisk = str(Path(sys.executable).with_name("leadrisk"))
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen(
            [leadrisk, "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tree: list[psutil.Process] = []
    try:
        server.wait_started(url, process)
        body = {"customer_id": _ids(trained_settings, tables.CUSTOMERS, 1)[0]}
        assert _post(url, "/score_customer", body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert _post(url, "/score_customer", body, headers=wrong).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert _post(url, "/score_customer", body, headers=good).status_code == 200
        assert _post(url, "/batch_score", {"model": "risk", "ids": [1]}).status_code == 401
        assert requests.get(f"{url}/models", timeout=TIMEOUT).status_code == 401
        for open_path in ("/livez", "/readyz", "/metrics"):
            assert requests.get(f"{url}{open_path}", timeout=TIMEOUT).status_code == 200
        scoped = {"Authorization": "Bearer crm-token-0123456789"}
        assert _post(url, "/score_customer", body, headers=scoped).status_code == 200
        for admin_path in ("/models", "/dashboard"):
            refused = requests.get(f"{url}{admin_path}", headers=scoped, timeout=TIMEOUT)
            assert refused.status_code == 403 and refused.json()["field"] == "Authorization"
        assert requests.get(f"{url}/dashboard", headers=good, timeout=TIMEOUT).status_code == 200

        tree = psutil.Process(process.pid).children(recursive=True)
        assert len(tree) >= 2  # bentoml serve and its serving process
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        _, alive = psutil.wait_procs(tree, timeout=60)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        server.stop(process)
        for member in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()


@pytest.fixture
def private_redis(tmp_path):
    """A real Redis of our own, so the test can take it down and bring it back."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = server.free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]

    def start_redis() -> subprocess.Popen:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        return process

    handle = {"process": start_redis(), "start": start_redis, "port": port}
    yield handle
    handle["process"].terminate()
    handle["process"].wait()


def test_feature_store_outage_gives_503_and_recovers(trained_settings, private_redis, postgres):
    settings = trained_settings.model_copy(deep=True)
    settings.profile = "production"
    settings.training.mlflow_tracking_uri = trained_settings.mlflow_uri  # same trained models
    settings.feature_store.project = f"lr_outage_{os.getpid()}"
    settings.feature_store.redis_url = f"127.0.0.1:{private_redis['port']}"
    feature_store.apply(settings)
    feature_store.materialize(settings, progress=lambda _: None)
    running = server.start(settings)
    url, body = running.url, {"customer_id": _ids(settings, tables.CUSTOMERS, 1)[0]}
    try:
        assert _post(url, "/score_customer", body).status_code == 200
        private_redis["process"].terminate()
        private_redis["process"].wait()
        down = _post(url, "/score_customer", body)
        assert down.status_code == 503
        assert "feature store" in down.json()["error"]
        time.sleep(2.5)  # readiness is cached for 2 s
        assert requests.get(f"{url}/readyz", timeout=TIMEOUT).status_code == 503

        private_redis["process"] = private_redis["start"]()
        feature_store.materialize(settings, progress=lambda _: None)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _post(url, "/score_customer", body).status_code == 200:
                break
            time.sleep(1)
        assert _post(url, "/score_customer", body).status_code == 200
        time.sleep(2.5)
        assert requests.get(f"{url}/readyz", timeout=TIMEOUT).status_code == 200
    finally:
        server.stop(running.process)


def test_dashboard_served_with_the_service(service, trained_settings):
    customer_id = _ids(trained_settings, tables.CUSTOMERS, 1)[0]
    assert _post(service.url, "/score_customer", {"customer_id": customer_id}).status_code == 200
    page = requests.get(f"{service.url}/dashboard", timeout=TIMEOUT)
    assert page.status_code == 200
    for chart in ("requests", "latency", "scores", "drift", "kpis"):
        assert f'id="{chart}"' in page.text
    assert page.text.count("<svg") >= 3  # requests, latency and scores have data by now


def test_feedback_is_idempotent_and_feeds_kpis(service, trained_settings):
    lead_id = _ids(trained_settings, tables.LEADS, 1, seed=5)[0]
    body = {"feedback_id": f"crm-{lead_id}", "model": "lead", "entity_id": lead_id, "label": 1}
    first = _post(service.url, "/feedback", body)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "recorded" and first.json()["band"] in "ABCD"
    assert _post(service.url, "/feedback", body).json()["status"] == "duplicate"
    conflict = _post(service.url, "/feedback", {**body, "label": 0})
    assert conflict.status_code == 409 and conflict.json()["field"] == "feedback_id"
    assert (
        _post(service.url, "/feedback", {**body, "feedback_id": "x", "label": None}).status_code
        == 422
    )
    unknown = _post(service.url, "/feedback", {**body, "feedback_id": "y", "entity_id": 987654321})
    assert unknown.status_code == 404
