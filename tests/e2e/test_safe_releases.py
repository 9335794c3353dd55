"""Safe releases on a real server and a real registry: a shadow challenger that only the
prediction log sees, a sticky A/B split, and a promotion picked up under load without a restart."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from core.kinds import LEAD
from core.settings import load_settings
from features import store as feature_store
from features import tables
from features.prepare import prepare
from monitoring.prediction_log import read_entries
from service import server
from training import registry
from training.train import train

POLL_S = 0.5
TIMEOUT = 30


@pytest.fixture(scope="module")
def release_env(tmp_path_factory, env_for):
    """A world whose lead model has a champion (v1) and a challenger (v2, trained again on the
    same data: no better, so not promoted)."""
    env = env_for(
        tmp_path_factory.mktemp("releases"),
        LEADRISK_SYNTHETIC__CUSTOMERS="300",
        LEADRISK_SYNTHETIC__LEADS="2500",
        LEADRISK_TRAINING__SEARCH_ITERATIONS="1",
        LEADRISK_TRAINING__CV_FOLDS="2",
        LEADRISK_SERVICE__REGISTRY_POLL_S=str(POLL_S),
        LEADRISK_MONITORING__PROFILING="false",
    )
    settings = load_settings(env)
    prepare("synthetic", settings, progress=lambda _: None)
    feature_store.apply(settings)
    feature_store.materialize(settings, progress=lambda _: None)
    for model in ("lead", "risk", "lead"):
        train(model, settings, progress=lambda _: None, source="synthetic")
    client = registry.connect(settings)
    assert (
        str(registry.alias_version(client, LEAD.registered_name, registry.CHALLENGER).version)
        == "2"
    )
    return env


@pytest.fixture(scope="module")
def release_service(release_env):
    running = server.start(load_settings(release_env))
    yield running
    server.stop(running.process)


def _lead_ids(env) -> list[int]:
    leads = tables.read_table(tables.LEADS, load_settings(env).tables_dir)
    return leads["lead_id"].astype(int).tolist()


def _score(url: str, lead_id: int) -> requests.Response:
    return requests.post(f"{url}/score_lead", json={"lead_id": lead_id}, timeout=TIMEOUT)


def _release(invoke_cli, env, *args: str) -> None:
    result = invoke_cli(["release", *args], env)
    assert result.exit_code == 0, (result.output, result.exception)
    time.sleep(POLL_S * 3)  # every serving process has polled the table since


def test_a_shadow_challenger_scores_every_request_and_answers_none(
    release_env, release_service, invoke_cli
):
    _release(invoke_cli, release_env, "start", "lead", "--mode", "shadow")
    ids = _lead_ids(release_env)[:500]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: _score(release_service.url, i), ids))
    assert all(a.status_code == 200 for a in answers)
    bodies = [a.json() for a in answers]
    assert {(b["variant"], b["model_version"]) for b in bodies} == {("champion", "1")}
    time.sleep(2)  # the shadow scores after the answers
    _release(invoke_cli, release_env, "stop", "lead", "--reason", "shadow test done")
    settings = load_settings(release_env)
    shadows = {
        e["request_id"]: e
        for e in read_entries(settings.prediction_log_dir)
        if e.get("variant") == "shadow"
    }
    for body in bodies:
        shadow = shadows[body["request_id"]]  # one shadow entry per answered request
        assert shadow["model_version"] == "2" and shadow["entity_id"] == body["lead_id"]
    verdict = invoke_cli(["release", "compare", "lead"], release_env)
    assert verdict.exit_code == 0, (verdict.output, verdict.exception)
    written = json.loads(verdict.output)
    agreement = written["shadow"]
    assert all(Path(path).stat().st_size > 0 for path in written["written_to"])  # JSON, PNG
    assert agreement["requests"] >= 500
    assert agreement["rank_correlation"] > 0.9  # v2 is v1 retrained on the same rows


def test_an_ab_split_is_sticky_and_near_its_share(release_env, release_service, invoke_cli):
    _release(invoke_cli, release_env, "start", "lead", "--mode", "ab", "--share", "0.3")
    ids = _lead_ids(release_env)[:2000]
    variants: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        batch = requests.post(
            f"{release_service.url}/batch_score",
            json={"model": "lead", "ids": chunk},
            timeout=TIMEOUT,
        )
        assert batch.status_code == 200, batch.text
        for row in batch.json()["rows"]:
            variants[row["entity_id"]] = row["result"]["variant"]
            expected = "2" if row["result"]["variant"] == "challenger" else "1"
            assert row["result"]["model_version"] == expected
    share = sum(v == "challenger" for v in variants.values()) / len(variants)
    assert abs(share - 0.3) <= 0.03, share
    for lead_id in ids[:100]:  # the same lead, asked again, gets the same variant
        assert _score(release_service.url, lead_id).json()["variant"] == variants[lead_id]
    _release(invoke_cli, release_env, "stop", "lead")
    assert {_score(release_service.url, i).json()["variant"] for i in ids[:50]} == {"champion"}


def test_a_promotion_reaches_the_service_under_load_without_a_failure(
    release_env, release_service, invoke_cli
):
    """Steady traffic while the challenger is promoted through the CLI: no request fails, every
    answer begun before the promotion carries v1, every one begun a poll interval after its
    end carries v2."""
    ids = _lead_ids(release_env)
    answers: list[tuple[float, int, str]] = []  # (sent at, status, version)
    stop = threading.Event()

    def load(offset: int) -> None:
        session = requests.Session()
        i = offset
        while not stop.is_set():
            sent = time.monotonic()
            response = session.post(
                f"{release_service.url}/score_lead",
                json={"lead_id": ids[i % len(ids)]},
                timeout=TIMEOUT,
            )
            version = response.json().get("model_version") if response.ok else ""
            answers.append((sent, response.status_code, version))
            i += 8
            time.sleep(0.02)

    threads = [threading.Thread(target=load, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    began = time.monotonic()
    result = invoke_cli(["models", "promote", "lead", "2", "--reason", "release test"], release_env)
    ended = time.monotonic()
    time.sleep(3 + POLL_S * 2)
    stop.set()
    for thread in threads:
        thread.join()
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(answers) > 300
    assert {status for _, status, _ in answers} == {200}
    assert {v for sent, _, v in answers if sent < began} == {"1"}
    assert {v for sent, _, v in answers if sent > ended + POLL_S * 2} == {"2"}


def test_a_bad_challenger_is_stopped_by_the_guardrails(
    release_env, release_service, invoke_cli, webhook
):
    """A challenger trained on shuffled labels, in an A/B test with real traffic and the sales
    feedback, is stopped by `monitor check`: all traffic goes back to the champion, and the alert
    reaches a real HTTP receiver."""
    settings = load_settings(release_env)
    labels_path = settings.tables_dir / f"{tables.LEAD_LABELS.name}.parquet"
    labels = tables.read_table(tables.LEAD_LABELS, settings.tables_dir)
    shuffled = labels.assign(
        **{LEAD.label: np.random.default_rng(0).permutation(labels[LEAD.label].to_numpy())}
    )
    client = registry.connect(settings)
    champion = str(registry.alias_version(client, LEAD.registered_name, registry.CHAMPION).version)
    try:
        shuffled.to_parquet(labels_path, index=False)
        bad = train("lead", settings, progress=lambda _: None, source="synthetic")
    finally:
        labels.to_parquet(labels_path, index=False)
    # The gate judged it on shuffled held-out labels too, so it may have promoted it: the
    # release under test is the real champion against this challenger.
    name = LEAD.registered_name
    registry.set_alias(client, name, registry.CHAMPION, champion, "guardrail test")
    registry.set_alias(client, name, registry.CHALLENGER, bad.version, "trained on shuffled labels")
    env = {**release_env, "LEADRISK_MONITORING__WEBHOOK_URL": webhook.url}
    _release(invoke_cli, env, "start", "lead", "--mode", "ab", "--share", "0.5")
    truth = dict(zip(labels[LEAD.entity_key], labels[LEAD.label], strict=True))
    ids = [i for i in _lead_ids(release_env) if i in truth][:1500]
    url = release_service.url

    def scored_with_feedback(lead_id: int) -> str:
        variant = _score(url, lead_id).json()["variant"]
        body = {
            "feedback_id": f"guard-{lead_id}",
            "model": "lead",
            "entity_id": lead_id,
            "label": int(truth[lead_id]),
        }
        assert requests.post(f"{url}/feedback", json=body, timeout=TIMEOUT).status_code == 200
        return variant

    with ThreadPoolExecutor(max_workers=8) as pool:
        variants = list(pool.map(scored_with_feedback, ids))
    assert 0.4 < variants.count("challenger") / len(variants) < 0.6

    check = invoke_cli(["monitor", "check", "--url", url], env)
    assert check.exit_code == 1, (check.output, check.exception)  # alerts fired
    broken = {
        b["rule"]
        for b in json.loads(check.output)["facts"]["release_guardrails"][LEAD.registered_name]
    }
    assert broken & {"score_psi", "conversion_drop"}, broken
    assert any(a.get("rule", "").startswith("release_") for a in webhook.received)
    time.sleep(POLL_S * 3)
    assert {_score(url, i).json()["variant"] for i in ids[:100]} == {"champion"}
    status = invoke_cli(["release", "status", "lead"], release_env)
    assert "mode off" in status.output and "guardrail" in status.output


def test_release_promote_records_the_verdict(release_env, release_service, invoke_cli):
    """After a test, `release promote` logs its verdict to the challenger's MLflow run, quotes it
    in the audit trail, and the service follows the new champion."""
    settings = load_settings(release_env)
    client = registry.connect(settings)
    name = LEAD.registered_name
    challenger = str(registry.alias_version(client, name, registry.CHALLENGER).version)
    result = invoke_cli(["release", "promote", "lead", "--reason", "test verdict"], release_env)
    assert result.exit_code == 0, (result.output, result.exception)
    trail = registry.audit_trail(client, name)
    assert (
        trail[-1]["to_version"] == challenger and "verdict: A/B: conversion" in trail[-1]["reason"]
    )
    run_id = client.get_model_version(name, challenger).run_id
    assert [a.path for a in client.list_artifacts(run_id, "release")]
    time.sleep(POLL_S * 3)
    versions = {_score(release_service.url, i).json()["model_version"] for i in range(1, 30)}
    assert versions == {challenger}
