"""The service's own ASGI middlewares, driven directly with ASGI messages."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.settings import ServiceSettings
from service.http import (
    AuthMiddleware,
    ConnectionRecycleMiddleware,
    ErrorBodyMiddleware,
    MultipartGuardMiddleware,
    token_grants,
)


async def _ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
    await send({"type": "http.response.body", "body": b"{}"})


def _call(app, client: tuple[str, int]) -> dict:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": "/score_customer", "client": client, "headers": []}
    asyncio.run(app(scope, receive, send))
    return dict(sent[0]["headers"])


def test_a_connection_is_asked_to_close_after_max_requests_and_others_are_not():
    app = ConnectionRecycleMiddleware(_ok, max_requests=3)
    first, other = ("127.0.0.1", 50001), ("127.0.0.1", 50002)
    headers = [_call(app, first) for _ in range(3)]
    assert [h.get(b"connection") for h in headers] == [None, None, b"close"]
    assert all(h[b"x"] == b"1" for h in headers)  # the response is otherwise untouched
    assert _call(app, other).get(b"connection") is None
    # the same address again is a new connection: counting starts over
    assert [_call(app, first).get(b"connection") for _ in range(3)] == [None, None, b"close"]


def test_zero_disables_recycling():
    app = ConnectionRecycleMiddleware(_ok, max_requests=0)
    assert all(_call(app, ("127.0.0.1", 50003)).get(b"connection") is None for _ in range(5))


def _post_multipart(content_type: bytes, body: bytes) -> tuple[int, dict, bytes | None]:
    """Drive the multipart guard; returns the status, the JSON body and what the app received."""
    received: list[bytes] = []

    async def app(scope, receive, send) -> None:
        received.append((await receive())["body"])
        await _ok(scope, receive, send)

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    chunks = [body[: len(body) // 2], body[len(body) // 2 :]]

    async def receive() -> dict:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/batch_score_file",
        "headers": [(b"content-type", content_type)],
    }
    asyncio.run(MultipartGuardMiddleware(app)(scope, receive, send))
    payload = json.loads(sent[1]["body"])
    return sent[0]["status"], payload, received[0] if received else None


def test_multipart_without_boundary_is_400_naming_the_content_type() -> None:
    status, payload, received = _post_multipart(b"multipart/form-data", b'{"customer_id": 0}')
    assert status == 400
    assert payload["field"] == "Content-Type" and "boundary" in payload["error"]
    assert received is None  # the service never saw it


def test_a_readable_multipart_body_reaches_the_app_unchanged() -> None:
    body = (
        b"--xyz\r\n"
        b'Content-Disposition: form-data; name="file"; filename="ids.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\ncustomer_id\r\n1\r\n\r\n--xyz--\r\n"
    )
    status, _, received = _post_multipart(b"multipart/form-data; boundary=xyz", body)
    assert status == 200 and received == body


CLIENTS = {
    "crm": {"token": "crm-token-0123456789", "scopes": ["score", "feedback"]},
    "ops": {"token": "ops-token-0123456789", "scopes": ["admin", "metrics"]},
}


def _status(
    path: str, token: str | None, metrics_open: bool = False, service: ServiceSettings | None = None
) -> int:
    service = service or ServiceSettings(auth_tokens=CLIENTS, auth_token="root-token")
    grants = token_grants(service)
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope = {"type": "http", "path": path, "headers": headers, "method": "POST"}
    asyncio.run(AuthMiddleware(_ok, grants, metrics_open)(scope, receive, send))
    return sent[0]["status"]


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        ("/livez", None, 200),
        ("/readyz", None, 200),
        ("/score_customer", None, 401),
        ("/score_customer", "wrong-token-0123456789", 401),
        ("/score_customer", "crm-token-0123456789", 200),
        ("/feedback", "crm-token-0123456789", 200),
        ("/dashboard", "crm-token-0123456789", 403),
        ("/models", "crm-token-0123456789", 403),
        ("/metrics", "crm-token-0123456789", 403),
        ("/dashboard", "ops-token-0123456789", 200),
        ("/metrics", "ops-token-0123456789", 200),
        ("/score_lead", "ops-token-0123456789", 403),
        ("/docs.json", None, 401),
        ("/docs.json", "crm-token-0123456789", 200),  # the spec: any valid token
        ("/", "ops-token-0123456789", 200),
        ("/batch_score", "root-token", 200),  # auth_token holds every scope
        ("/dashboard", "root-token", 200),
    ],
)
def test_each_path_needs_its_scope(path: str, token: str | None, status: int) -> None:
    assert _status(path, token) == status


def test_metrics_may_stay_open_for_a_scraper() -> None:
    assert _status("/metrics", None, metrics_open=True) == 200
    assert _status("/metrics", None, metrics_open=False) == 401


def test_no_tokens_means_an_open_service() -> None:
    assert _status("/dashboard", None, service=ServiceSettings()) == 200


def test_a_short_client_token_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="token"):
        ServiceSettings(auth_tokens={"crm": {"token": "short", "scopes": ["score"]}})


def _answered(status: int, content_type: bytes, body: bytes, request_id: bytes | None = None):
    """Drive the error-body middleware around an app answering ``status`` with ``body`` in two
    chunks; returns the final status, headers and JSON body (or raw bytes on a 2xx)."""

    async def app(scope, receive, send) -> None:
        headers = [(b"content-type", content_type), (b"content-length", b"999")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body[:3], "more_body": True})
        await send({"type": "http.response.body", "body": body[3:]})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    headers = [(b"x-request-id", request_id)] if request_id is not None else []
    scope = {"type": "http", "method": "POST", "path": "/score_lead", "headers": headers}
    asyncio.run(ErrorBodyMiddleware(app)(scope, receive, send))
    start, body_out = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    headers_out = dict(start["headers"])
    return (
        start["status"],
        headers_out,
        json.loads(body_out) if start["status"] >= 400 else body_out,
    )


def test_a_validation_error_is_a_422_naming_the_first_field_with_every_issue_listed() -> None:
    issues = [
        {"type": "int_type", "loc": ["lead", "total_visits"], "msg": "Input should be a number"},
        {"type": "missing", "loc": ["model"], "msg": "Field required"},
    ]
    body = json.dumps({"error": "2 validation errors", "detail": issues}).encode()
    status, headers, payload = _answered(400, b"application/json", body)
    assert status == 422
    assert payload["field"] == "lead.total_visits"
    assert payload["error"] == "lead.total_visits: Input should be a number"
    assert [issue["loc"] for issue in payload["detail"]] == [["lead", "total_visits"], ["model"]]
    assert payload["request_id"] == headers[b"x-request-id"].decode()
    assert int(headers[b"content-length"]) == len(json.dumps(payload).encode())


def test_a_plain_text_error_becomes_the_json_error_body() -> None:
    status, headers, payload = _answered(405, b"text/plain; charset=utf-8", b"Method Not Allowed")
    assert status == 405 and headers[b"content-type"] == b"application/json"
    assert payload == {
        "error": "Method Not Allowed",
        "field": None,
        "request_id": headers[b"x-request-id"].decode(),
    }


def test_a_model_level_error_names_no_field() -> None:
    issues = [{"type": "value_error", "loc": [], "msg": "give exactly one of lead_id or lead"}]
    body = json.dumps({"error": "1 validation error", "detail": issues}).encode()
    status, _, payload = _answered(400, b"application/json", body)
    assert status == 422 and payload["field"] is None
    assert payload["error"] == "give exactly one of lead_id or lead"


def test_a_clients_request_id_is_echoed_and_an_unusable_one_replaced() -> None:
    _, headers, payload = _answered(404, b"application/json", b'{"error": "x"}', b"crm-42.a")
    assert headers[b"x-request-id"] == b"crm-42.a" and payload["request_id"] == "crm-42.a"
    _, headers, _ = _answered(200, b"application/json", b"{}", b"bad id\nwith newline")
    assert len(headers[b"x-request-id"]) == 32


def test_a_success_passes_through_untouched_but_for_the_request_id() -> None:
    status, headers, body = _answered(200, b"application/json", b'{"score": 1}')
    assert status == 200 and body == b'{"score": 1}' and headers[b"content-length"] == b"999"
