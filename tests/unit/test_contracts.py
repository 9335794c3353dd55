"""Records defined once stay in agreement with the contracts they are derived from."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from core.kinds import LEAD, MODEL_KINDS
from core.settings import PROJECT_ROOT, load_settings
from features import tables
from monitoring.prediction_log import ENTRY_SCHEMA, PredictionEntry
from service.openapi import document_bytes
from service.schemas import (
    CustomerRequest,
    FeedbackRequest,
    LeadRequest,
    RawLead,
    bounded_lead_request,
    bounded_raw_lead,
)

SERVE_REQUIREMENTS = PROJECT_ROOT / "requirements-serve.txt"


def _annotation_types(annotation: object) -> set[object]:
    if typing.get_origin(annotation) is typing.Annotated:
        return _annotation_types(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return {type(a) for a in args}
    return set().union(*(_annotation_types(a) for a in args if a is not type(None))) or {annotation}


def test_raw_lead_payload_is_the_online_lead_columns_with_their_types() -> None:
    """A raw lead carries exactly the stored lead columns its FeatureService reads."""
    online = {
        **dict.fromkeys(tables.LEAD_CATEGORICAL + tables.LEAD_ENGAGEMENT_CATEGORICAL, str),
        **dict.fromkeys(tables.LEAD_FLAGS, int),
        **dict.fromkeys(tables.LEAD_ENGAGEMENT_NUMERIC, float),
    }
    fields = RawLead.model_fields
    assert set(fields) == set(online)
    for name, expected in online.items():
        assert _annotation_types(fields[name].annotation) == {expected}, name
    assert LEAD.entity_table == tables.LEADS.name


def test_prediction_entry_and_its_table_schema_name_the_same_fields() -> None:
    assert ENTRY_SCHEMA.names == [*PredictionEntry.__dataclass_fields__, "logged_at"]


def test_every_kind_names_real_tables() -> None:
    for kind in MODEL_KINDS.values():
        labels = tables.TABLES[kind.labels_table]
        assert {kind.entity_key, kind.label, kind.label_time} <= set(labels.columns)
        assert kind.entity_key in tables.TABLES[kind.entity_table].columns


def test_settings_precedence_defaults_file_environment(tmp_path) -> None:
    config = tmp_path / "leadrisk.yaml"
    config.write_text("service:\n  port: 4000\n  workers: 1\ntraining:\n  lead_min_recall: 0.7\n")
    settings = load_settings(
        {
            "LEADRISK_CONFIG": str(config),
            "LEADRISK_SERVICE__WORKERS": "3",
            "LEADRISK_FEATURE_STORE__WINDOWS_DAYS": "[7, 14]",
            "LEADRISK_TRAINING__MLFLOW_TRACKING_URI": "",
        }
    )
    assert settings.service.port == 4000  # file over default
    assert settings.service.workers == 3  # environment over file
    assert settings.service.max_batch_size == 64  # default kept beside both
    assert settings.training.lead_min_recall == 0.7
    assert settings.feature_store.windows_days == [7, 14]
    assert settings.training.mlflow_tracking_uri is None  # an empty variable unsets


def test_a_bad_setting_names_its_field(tmp_path) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        load_settings(
            {
                "LEADRISK_CONFIG": str(tmp_path / "none.yaml"),
                "LEADRISK_SERVICE__MAX_BATCH_SIZE": "many",
            }
        )


def test_serving_requirements_are_the_serving_group_of_the_lock() -> None:
    """requirements-serve.txt (the bento's) is `uv export` of the serving dependencies only."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is a dev dependency: uv sync installs it"
    exported = subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-default-groups",
            "--no-hashes",
            "--no-emit-project",
            "--no-header",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pinned = {line.split("==")[0] for line in exported.splitlines() if "==" in line}
    committed = {
        line.split("==")[0] for line in SERVE_REQUIREMENTS.read_text().splitlines() if "==" in line
    }
    assert committed == pinned, "regenerate with the command in requirements-serve.txt's header"
    assert not pinned & {"mlflow", "locust", "flask", "pytest", "ruff", "uv", "playwright"}


def test_raw_lead_numbers_are_capped_by_the_setting() -> None:
    caps = load_settings({"LEADRISK_CONFIG": "/nonexistent.yaml"}).service.raw_lead_max
    request = bounded_lead_request(caps)
    at_cap = {name: maximum for name, maximum in caps.items()}
    accepted = request.model_validate_json(json.dumps({"lead": at_cap}))
    assert accepted.lead.model_dump(include=set(caps)) == at_cap
    with pytest.raises(ValueError, match="lead.total_time_on_website") as err:
        request.model_validate_json('{"lead": {"total_time_on_website": 1e308}}')
    assert "less than or equal" in str(err.value)
    schema = request.model_json_schema()["$defs"]["RawLead"]["properties"]["total_visits"]
    count = {"maximum": caps["total_visits"], "minimum": 0, "multipleOf": 1, "type": "number"}
    assert count in schema["anyOf"]  # visits are counted: 0.5 or 1e-300 visits are refused
    assert bounded_raw_lead(caps)(total_visits=3).total_visits == 3


def test_a_cap_on_an_unknown_lead_field_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"service.raw_lead_max names \['colour'\]"):
        bounded_lead_request({"colour": 1.0})


def test_the_published_openapi_document_is_current() -> None:
    published = (PROJECT_ROOT / "docs" / "openapi.json").read_bytes()
    defaults = load_settings({"LEADRISK_CONFIG": "/nonexistent.yaml"})
    assert published == document_bytes(defaults), (
        "regenerate it: leadrisk openapi --output docs/openapi.json"
    )


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (CustomerRequest, '{"customer_id": "7"}', "customer_id"),  # a string is not a number
        (CustomerRequest, '{"customer_id": true}', "customer_id"),
        (CustomerRequest, '{"customer_id": 7.5}', "customer_id"),
        (CustomerRequest, '{"customer_id": 9223372036854775808}', "customer_id"),
        (LeadRequest, '{"lead_id": null, "lead": {}}', "lead_id"),  # null is not "left out"
        (LeadRequest, '{"lead": {"do_not_call": true}}', "lead.do_not_call"),
        # a count of visits is whole: 1e-309 visits made time per visit infinite, scores NaN
        (LeadRequest, '{"lead": {"total_visits": 2.225073858507203e-309}}', "lead.total_visits"),
        (
            FeedbackRequest,
            '{"feedback_id": "f", "model": "lead", "entity_id": 1, "label": 2}',
            "label",
        ),
    ],
)
def test_requests_are_validated_as_their_json_schema_says(model, body, field) -> None:
    with pytest.raises(ValueError) as err:
        model.model_validate_json(body)
    assert err.value.errors()[0]["loc"] == tuple(field.split("."))


def test_an_integral_number_is_an_integer_as_in_json_schema() -> None:
    assert CustomerRequest.model_validate_json('{"customer_id": 3401.0}').customer_id == 3401
