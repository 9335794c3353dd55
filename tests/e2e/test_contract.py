"""The HTTP contract: the served OpenAPI document is the published one, schemathesis finds no
request that breaks it (auth off and on), and a client generated from it works."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from core.settings import PROJECT_ROOT
from features import tables
from service import server

PUBLISHED = PROJECT_ROOT / "docs" / "openapi.json"
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
REPORTS = PROJECT_ROOT / "test-reports" / "schemathesis"
TOKEN = "contract-test-token-0123456789"
TIMEOUT = 30


@pytest.fixture(scope="module")
def open_service(trained_settings):
    running = server.start(trained_settings)
    yield running
    server.stop(running.process)


@pytest.fixture(scope="module")
def secured_service(trained_settings):
    running = server.start(trained_settings, env={"LEADRISK_SERVICE__AUTH_TOKEN": TOKEN})
    yield running
    server.stop(running.process)


def test_the_served_document_is_the_published_one(open_service):
    served = requests.get(f"{open_service.url}/docs.json", timeout=TIMEOUT)
    assert served.status_code == 200
    assert served.json() == json.loads(PUBLISHED.read_text()), (
        "docs/openapi.json is stale: run `leadrisk openapi --output docs/openapi.json`"
    )


def _schemathesis(url: str, report: str, *headers: str) -> subprocess.CompletedProcess:
    report_dir = REPORTS / report
    shutil.rmtree(report_dir, ignore_errors=True)  # only this run's reports
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "run",
        f"{url}/docs.json",
        "--checks",
        "all",
        "--report",
        "junit,ndjson",
        "--report-dir",
        str(report_dir),
        "--no-color",
    ]
    for header in headers:
        command += ["--header", header]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "output.txt").write_text(done.stdout + done.stderr)
    return done


def _assert_no_failures(done: subprocess.CompletedProcess, report: str) -> None:
    tail = "\n".join(done.stdout.splitlines()[-40:])
    assert done.returncode == 0, f"schemathesis failed (see {REPORTS / report}):\n{tail}"
    assert "No issues found" in done.stdout, tail


def test_schemathesis_finds_no_failure_with_auth_off(open_service):
    done = _schemathesis(open_service.url, "auth-off")
    _assert_no_failures(done, "auth-off")


def test_schemathesis_finds_no_failure_with_auth_on(secured_service):
    anonymous = requests.get(f"{secured_service.url}/docs.json", timeout=TIMEOUT)
    assert anonymous.status_code == 401
    done = _schemathesis(secured_service.url, "auth-on", f"Authorization: Bearer {TOKEN}")
    _assert_no_failures(done, "auth-on")


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory):
    """The package ``openapi-python-client`` generates from the published document."""
    out = tmp_path_factory.mktemp("client")
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("openapi-python-client")),
            "generate",
            "--path",
            str(PUBLISHED),
            "--output-path",
            str(out / "leadrisk_client_pkg"),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("leadrisk_client_pkg")
    finally:
        sys.path.remove(str(out))


def test_a_generated_client_scores_and_posts_feedback(
    open_service, trained_settings, generated_client
):
    api = SimpleNamespace(
        **{
            name: importlib.import_module(f"leadrisk_client_pkg.api.default.{name}")
            for name in ("score_lead", "score_customer", "batch_score", "feedback")
        }
    )
    models = importlib.import_module("leadrisk_client_pkg.models")
    client = generated_client.Client(base_url=open_service.url, raise_on_unexpected_status=True)
    lead_id = int(tables.read_table(tables.LEADS, trained_settings.tables_dir)["lead_id"].iloc[0])
    customer_ids = tables.read_table(tables.CUSTOMERS, trained_settings.tables_dir)["customer_id"]

    by_id = api.score_lead.sync(client=client, body=models.LeadById(lead_id=lead_id))
    assert isinstance(by_id, models.LeadScore) and by_id.lead_id == lead_id
    raw = models.RawLead(total_visits=4, total_time_on_website=1500, last_activity="SMS Sent")
    fresh = api.score_lead.sync(client=client, body=models.NewLead(lead=raw))
    assert isinstance(fresh, models.LeadScore) and 0 <= fresh.probability <= 1

    customer = api.score_customer.sync(
        client=client, body=models.CustomerRequest(customer_id=int(customer_ids.iloc[0]))
    )
    assert isinstance(customer, models.CustomerScore) and customer.segment

    batch = api.batch_score.sync(
        client=client,
        body=models.BatchRequest(
            model=models.BatchRequestModel.RISK, ids=[int(i) for i in customer_ids.iloc[:5]]
        ),
    )
    assert isinstance(batch, models.BatchResponse) and batch.scored == 5

    ack = api.feedback.sync(
        client=client,
        body=models.FeedbackOutcome(
            feedback_id="generated-client-1",
            model=models.FeedbackOutcomeModel.LEAD,
            entity_id=lead_id,
            label=1,
        ),
    )
    assert isinstance(ack, models.FeedbackAck) and ack.status in {"recorded", "duplicate"}

    unknown = api.score_customer.sync_detailed(
        client=generated_client.Client(base_url=open_service.url),
        body=models.CustomerRequest(customer_id=2**62),
    )
    assert unknown.status_code == 404
    assert isinstance(unknown.parsed, models.ErrorBody) and unknown.parsed.field == "customer_id"
