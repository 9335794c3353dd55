"""The service's own ASGI middlewares, driven directly with ASGI messages."""

from __future__ import annotations

import asyncio
import json

from service.http import ConnectionRecycleMiddleware, MultipartGuardMiddleware


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
