"""The service's own ASGI middlewares, driven directly with ASGI messages."""

from __future__ import annotations

import asyncio

from service.http import ConnectionRecycleMiddleware


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
