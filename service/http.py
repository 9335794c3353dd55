"""ASGI middlewares of the public service: request ids and one error body, bearer-token auth,
400 for an unreadable multipart body, the OpenAPI document, and request metrics labelled by
known paths only."""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import ServiceSettings

HEALTH_PATHS = ("/livez", "/readyz", "/healthz")  # open to every caller, a token or not
METRICS_PATH = "/metrics"
# The scope each path needs; any other path (the docs page, its spec and assets) takes any token
ROUTE_SCOPES = {
    "/score_lead": "score",
    "/score_customer": "score",
    "/batch_score": "score",
    "/batch_score_file": "score",
    "/feedback": "feedback",
    "/models": "admin",
    "/admin/reload": "admin",
    "/dashboard": "admin",
    METRICS_PATH: "metrics",
}
ALL_SCOPES = frozenset(ROUTE_SCOPES.values())


def token_grants(service: ServiceSettings) -> dict[bytes, frozenset[str]]:
    """Bearer token -> its scopes: ``auth_token`` has every scope, ``auth_tokens`` their own."""
    grants = {
        grant.token.encode(): frozenset(grant.scopes) for grant in service.auth_tokens.values()
    }
    if service.auth_token:
        grants[service.auth_token.encode()] = ALL_SCOPES
    return grants


class AuthMiddleware:
    """With tokens configured, every path but health (and ``/metrics`` while ``metrics_open``)
    needs ``Authorization: Bearer <token>`` (401), and a token whose scopes lack the path's scope
    is refused (403). Without tokens, the service is open."""

    def __init__(
        self, app: ASGIApp, grants: Mapping[bytes, frozenset[str]], metrics_open: bool
    ) -> None:
        self.app = app
        self.grants = list(grants.items())
        self.metrics_open = metrics_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            not self.grants
            or scope["type"] != "http"
            or path in HEALTH_PATHS
            or (path == METRICS_PATH and self.metrics_open)
        ):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scopes = self._scopes_of(header.removeprefix(b"Bearer ")) if header else None
        if scopes is None:
            await _error(send, 401, "missing or wrong bearer token", "Authorization", _CHALLENGE)
            return
        needed = ROUTE_SCOPES.get(path)
        if needed is not None and needed not in scopes:
            await _error(send, 403, f"this token lacks the {needed!r} scope", "Authorization")
            return
        await self.app(scope, receive, send)

    def _scopes_of(self, token: bytes) -> frozenset[str] | None:
        """The token's scopes; every configured token is compared, in constant time each, so
        the time taken does not tell which one (or whether one) matched."""
        found = None
        for known, scopes in self.grants:
            if hmac.compare_digest(token, known):
                found = scopes
        return found


_CHALLENGE = [(b"www-authenticate", b"Bearer")]


async def _error(
    send: Send, status: int, message: str, field: str | None, extra_headers: list | None = None
) -> None:
    body = json.dumps({"error": message, "field": field}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra_headers or []
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


REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
_CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


class ErrorBodyMiddleware:
    """Gives every response an ``X-Request-ID`` (the client's, when it sends a usable one) and
    every 4xx/5xx the same JSON body: ``error``, ``field`` (null when no field is to blame) and
    ``request_id``. BentoML's 400 for a body that fails validation becomes a 422 naming the first
    invalid field, with pydantic's list in ``detail``; plain-text errors (404, 405) become JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(_REQUEST_ID_KEY, b"")
        request_id = sent if _CLIENT_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex.encode()
        held: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = [*message["headers"], (_REQUEST_ID_KEY, request_id)]
                message = {**message, "headers": headers}
                if message["status"] >= 400:
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                status, body = _error_body(held, b"".join(chunks), request_id.decode())
                headers = [
                    (k, v)
                    for k, v in held["headers"]
                    if k.lower() not in (b"content-length", b"content-type")
                ]
                headers += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({**held, "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, rewrite)


def _error_body(start: Message, body: bytes, request_id: str) -> tuple[int, bytes]:
    """The status and JSON body of an error response, in the one shape every error has."""
    status = start["status"]
    content_type = dict(start["headers"]).get(b"content-type", b"")
    payload: dict = {}
    if content_type.startswith(b"application/json"):
        with contextlib.suppress(ValueError):
            loaded = json.loads(body)
            payload = loaded if isinstance(loaded, dict) else {}
    if not payload:
        payload = {"error": body.decode(errors="replace").strip() or HTTPStatus(status).phrase}
    errors = payload.get("detail")
    if status == 400 and isinstance(errors, list) and errors:
        status = 422
        first = errors[0]
        location = [str(part) for part in first.get("loc", [])]
        payload["field"] = ".".join(location) or None
        message = first.get("msg", "invalid")
        payload["error"] = f"{payload['field']}: {message}" if location else message
        payload["detail"] = [
            {**issue, "loc": [str(p) for p in issue.get("loc", [])]} for issue in errors
        ]
    payload.setdefault("error", HTTPStatus(status).phrase)
    payload.setdefault("field", None)
    payload["request_id"] = request_id
    return status, json.dumps(payload).encode()


class DocumentMiddleware:
    """Answers ``GET path`` with a fixed JSON document (the OpenAPI spec at ``/docs.json``, in
    place of the one BentoML generates)."""

    def __init__(self, app: ASGIApp, path: str, document: bytes) -> None:
        self.app = app
        self.path = path
        self.document = document

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.document)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.document})


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
    behind it, as ``UNKNOWN_PATH``: one label for all of them. Called once per serving process,
    when the service module is imported."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    known = frozenset(known_paths)
    served = RunnerTrafficMetricsMiddleware.__call__

    async def labelled(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in known:
            scope = {**scope, "path": UNKNOWN_PATH, "raw_path": UNKNOWN_PATH.encode()}
        await served(self, scope, receive, send)

    RunnerTrafficMetricsMiddleware.__call__ = labelled
