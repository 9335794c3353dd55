"""ASGI middlewares of the public service: bearer-token auth, 422 for invalid fields, 400 for an
unreadable multipart body, and request metrics labelled by known paths only."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = ("/livez", "/readyz", "/healthz", "/metrics", "/docs", "/schema.json", "/dashboard")
OPEN_PREFIXES = ("/docs", "/static_content", "/assets", "/dashboard")


class AuthMiddleware:
    """With a token configured, everything but health, metrics, docs and the dashboard needs
    ``Authorization: Bearer <token>``; without one, the service is open."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong bearer token", "field": "Authorization"})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


async def _error(send: Send, status: int, message: str, field: str | None) -> None:
    body = json.dumps({"error": message, "field": field}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MultipartGuardMiddleware:
    """A multipart body the form parser cannot read (no boundary, a malformed part) is a 400
    naming the body, not the 500 that BentoML makes of the parser's error. The body is read once
    here, parsed, and handed on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        if scope["type"] != "http" or not content_type.lower().startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = await _unreadable_form(scope, body)
        if problem is not None:
            await _error(send, 400, f"unreadable multipart body: {problem}", "Content-Type")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _unreadable_form(scope: Scope, body: bytes) -> str | None:
    """Why the form parser rejects ``body``, or None when it reads."""

    async def once() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request(scope, once)
    try:
        form = await request.form()
    except HTTPException as err:  # inside an app
        return str(err.detail)
    except MultiPartException as err:  # outside one
        return err.message
    await form.close()
    return None


class ValidationStatusMiddleware:
    """BentoML answers 400 for pydantic validation errors; a well-formed request with invalid
    fields is a 422, and the body names the first invalid field."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def rewrite(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 400:
                held = message
                return
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                body = message.get("body", b"")
                status, body = _as_422(body) if b"validation error" in body else (400, body)
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "status": status, "headers": headers})
                await send({**message, "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, rewrite)


def _as_422(body: bytes) -> tuple[int, bytes]:
    payload = json.loads(body)
    errors = payload.get("detail") or []
    if errors:
        first = errors[0]
        payload["field"] = ".".join(str(part) for part in first.get("loc", []))
        payload["error"] = f"{payload['field']}: {first.get('msg', 'invalid')}"
    return 422, json.dumps(payload).encode()


class ConnectionRecycleMiddleware:
    """Ask the client to reconnect after ``max_requests`` on one keep-alive connection.

    The serving processes share one listening socket, and an asyncio server accepts every
    pending connection when it wakes: clients that open their connections together (a load
    balancer's pool, locust's users) all land in one process and stay there, leaving the others
    idle. Closing each connection after a while lets the kernel hand the reconnection to
    whichever process accepts first, so the load spreads over time.
    """

    MAX_TRACKED = 10_000  # connections that closed on their own leave an entry; forget them all

    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self._served: dict[tuple, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client or self.max_requests <= 0:
            await self.app(scope, receive, send)
            return
        key = tuple(client)
        if len(self._served) > self.MAX_TRACKED:
            self._served.clear()
        count = self._served.get(key, 0) + 1
        if count < self.max_requests:
            self._served[key] = count
            await self.app(scope, receive, send)
            return
        self._served.pop(key, None)

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


UNKNOWN_PATH = "/{unknown}"  # the one endpoint label of every path the service does not serve


def static_paths(prefix: str, directory: Path) -> set[str]:
    """The URL path of every file a static mount serves from ``directory``."""
    return {f"{prefix}/{file.relative_to(directory).as_posix()}" for file in directory.rglob("*")}


def bound_request_metric_labels(known_paths: Iterable[str]) -> None:
    """BentoML labels its request metrics with the raw request path, so every distinct unknown
    path a client sends adds Prometheus series without bound. Requests to any path outside
    ``known_paths`` (all answered 404 alike) reach BentoML's metrics middleware, and the router
    behind it, as ``UNKNOWN_PATH``: one label for all of them."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    known = frozenset(known_paths)
    served = RunnerTrafficMetricsMiddleware.__call__
    if getattr(served, "bounded_paths", None) is not None:
        served = served.unbounded

    async def labelled(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in known:
            scope = {**scope, "path": UNKNOWN_PATH, "raw_path": UNKNOWN_PATH.encode()}
        await served(self, scope, receive, send)

    labelled.bounded_paths = known  # type: ignore[attr-defined]
    labelled.unbounded = served  # type: ignore[attr-defined]
    RunnerTrafficMetricsMiddleware.__call__ = labelled
