"""The release state: sticky A/B assignment, test start and stop, and its audit trail."""

from __future__ import annotations

import pytest

from monitoring.releases import CHALLENGER, CHAMPION, ReleaseError, ReleaseStore

CHAMP, CHALL = "lead_scoring:v1-aaa", "lead_scoring:v2-bbb"


@pytest.fixture
def store(tmp_path) -> ReleaseStore:
    store = ReleaseStore(f"sqlite:///{tmp_path / 'releases.db'}")
    store.set_models("lead_scoring", CHAMP, CHALL)
    return store


def test_an_ab_test_gives_a_sticky_share_of_entities_to_the_challenger(store) -> None:
    release = store.start("lead_scoring", "ab", share=0.3)
    variants = [release.variant(entity_id) for entity_id in range(2_000)]
    assert abs(variants.count(CHALLENGER) / 2_000 - 0.3) < 0.03
    assert [release.variant(entity_id) for entity_id in range(2_000)] == variants
    again = ReleaseStore(str(store.engine.url)).get("lead_scoring")
    assert [again.variant(entity_id) for entity_id in range(2_000)] == variants
    assert release.variant(None) == CHAMPION  # a raw lead has no id to stick to


def test_each_test_draws_a_new_assignment(store) -> None:
    first = store.start("lead_scoring", "ab", share=0.5)
    store.stop("lead_scoring", "done")
    second = store.start("lead_scoring", "ab", share=0.5)
    assert first.salt != second.salt
    assert [first.variant(i) for i in range(200)] != [second.variant(i) for i in range(200)]


def test_outside_an_ab_test_the_champion_answers_everyone(store) -> None:
    shadow = store.start("lead_scoring", "shadow")
    assert shadow.shadowing and {shadow.variant(i) for i in range(500)} == {CHAMPION}
    stopped = store.stop("lead_scoring", "kill switch")
    assert stopped.mode == "off" and stopped.stopped_reason == "kill switch"
    assert not stopped.shadowing


def test_every_change_raises_the_revision_and_is_in_the_audit_trail(store) -> None:
    before = store.revision()
    store.start("lead_scoring", "ab", share=0.2)
    store.stop("lead_scoring", "guardrail: error rate", event="guardrail")
    assert store.revision() == before + 2
    events = [(e["event"], e["detail"].get("reason")) for e in store.events("lead_scoring")]
    assert events[-2:] == [("started", None), ("guardrail", "guardrail: error rate")]


def test_a_new_challenger_ends_the_running_test(store) -> None:
    store.start("lead_scoring", "ab", share=0.2)
    changed = store.set_models("lead_scoring", CHAMP, "lead_scoring:v3-ccc")
    assert changed.mode == "off" and changed.stopped_reason == "the challenger changed"
    unchanged_revision = store.revision()
    assert store.set_models("lead_scoring", CHAMP, "lead_scoring:v3-ccc").revision == (
        unchanged_revision
    )


@pytest.mark.parametrize(
    ("challenger", "mode", "share", "message"),
    [
        (None, "ab", 0.3, "no challenger"),
        (CHALL, "ab", 1.5, "between 0 and 1"),
        (CHALL, "off", 0.0, "shadow or ab"),
    ],
)
def test_a_test_that_cannot_run_is_refused(tmp_path, challenger, mode, share, message) -> None:
    store = ReleaseStore(f"sqlite:///{tmp_path / 'r.db'}")
    store.set_models("lead_scoring", CHAMP, challenger)
    with pytest.raises(ReleaseError, match=message):
        store.start("lead_scoring", mode, share)


def test_a_model_not_served_yet_is_named(tmp_path) -> None:
    store = ReleaseStore(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ReleaseError, match="customer_risk is not served yet"):
        store.stop("customer_risk", "kill switch")
