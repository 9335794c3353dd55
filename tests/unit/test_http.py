"""The service's own ASGI middlewares, driven directly with ASGI messages."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.settings import ServiceSettings
from service.http import (
    AuthMiddleware,
    ConnectionRecycleMiddleware,
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
