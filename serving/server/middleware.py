"""Protection and bookkeeping around every request, as one pure ASGI middleware.

One class rather than a stack of them, and no ``BaseHTTPMiddleware`` (which runs the
app in another task and copies every message): each request costs one wrapper call.
In order, it:

- gives the request an id: ``X-Request-ID`` echoed when the client sent a sane one,
  else 128 random bits in hex; it goes back in the reply and into the access log;
- checks the bearer token (when one is configured) on every path but liveness:
  401 with ``WWW-Authenticate``, compared in constant time;
- bounds the scoring requests held at once: 503 with ``Retry-After`` when full;
- refuses a body whose ``Content-Length`` is over the limit with 413 before reading
  any of it, and counts streamed bytes so a chunked body is cut off at the limit;
- bounds the time to the reply: 504 (408 when the client had not finished sending);
- counts the request for ``/metrics`` and writes the JSON access log line.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from satchel.serving.server import deadline
from satchel.serving.server.metrics import Metrics
from satchel.serving.server.options import Limits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("satchel.access")

REQUEST_ID = b"x-request-id"
CLIENT_CLOSED = 499  # the status logged and counted for a client that hung up (nginx's)
_SANE_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


def is_scoring(scope: Scope) -> bool:
    """True for the requests that score: ``POST /invocations`` and ``POST .../infer``."""
    if scope["method"] != "POST":
        return False
    path: str = scope["path"]
    return path == "/invocations" or path.endswith("/infer")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


class _BodyTimeout(Exception):
    pass


class ServingMiddleware:
    """The middleware (see the module docstring).

    Args:
        app: the ASGI app it wraps.
        limits: what to enforce.
        metrics: where requests are counted (None: not counted).
        route_of: the route template of a scope the app did not route (for metrics
            labels of requests refused here); default ``"other"``.
    """

    def __init__(self, app: ASGIApp, limits: Limits | None = None,
                 metrics: Metrics | None = None,
                 route_of: Callable[[Scope], str] | None = None) -> None:
        self.app = app
        self.limits = limits or Limits()
        self.metrics = metrics
        self.route_of = route_of
        token = self.limits.auth_token
        self._token = token.encode() if token else None
        self._scoring = 0  # scoring requests held now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        limits = self.limits
        request_id = auth = length = None
        auths = 0
        for name, value in scope["headers"]:
            if name == REQUEST_ID:
                request_id = value
            elif name == b"authorization":
                auth = value
                auths += 1
            elif name == b"content-length":
                length = value
        if request_id is None or not _SANE_ID.fullmatch(request_id):
            # 128 random bits as 32 hex digits, like uuid4().hex at a quarter of its cost
            request_id = os.urandom(16).hex().encode()
        state = _State()
        id_header = (REQUEST_ID, request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
                state.started = True
            elif message["type"] == "http.response.body":
                state.bytes_out += len(message.get("body", b""))
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight += 1
        scoring = is_scoring(scope)
        if scoring:
            self._scoring += 1
        try:
            refusal = (self._refuse(scope, auth, length, scoring) if auths < 2 else
                       (400, "BAD_REQUEST", "the request has more than one Authorization "
                        "header; send one", {"connection": "close"}))
            if refusal is not None:
                await _reply(scope, send_with_id, *refusal)
            else:
                if limits.max_body_size is not None and scope["method"] in (
                        "POST", "PUT", "PATCH"):
                    receive = self._counting(receive, state, limits.max_body_size)
                try:
                    if limits.timeout:
                        await self._with_timeout(scope, receive, send_with_id, state)
                    else:
                        await self.app(scope, receive, send_with_id)
                except ClientDisconnect:
                    # the client left before sending its whole body: no one to answer
                    if not state.started:
                        state.status = CLIENT_CLOSED
        finally:
            if scoring:
                self._scoring -= 1
            if metrics is not None:
                metrics.in_flight -= 1
                metrics.request(self._route(scope), state.status, time.perf_counter() - start)
            if limits.json_access_log:
                _log_access(scope, state, request_id, time.perf_counter() - start)

    # --- checks done before the app runs ------------------------------------------------

    def _refuse(self, scope: Scope, auth: bytes | None, length: bytes | None,
                scoring: bool) -> tuple[int, str, str, dict[str, str]] | None:
        limits = self.limits
        if self._token is not None and scope["path"] not in limits.open_paths:
            refusal = self._check_token(auth)
            if refusal is not None:
                return refusal
        if scoring and limits.max_queue is not None and self._scoring > limits.max_queue:
            return (503, "TEMPORARILY_UNAVAILABLE",
                    f"the server is full: {limits.max_queue} scoring requests are already "
                    "waiting or being scored; retry later",
                    {"retry-after": str(limits.retry_after)})
        if length is not None and limits.max_body_size is not None:
            try:
                declared = int(length)
            except ValueError:
                return (400, "BAD_REQUEST", "the Content-Length header is not a number",
                        {"connection": "close"})
            if declared > limits.max_body_size:
                return (413, "REQUEST_LIMIT_EXCEEDED",
                        f"the request body ({declared} bytes) is over the limit of "
                        f"{_size(limits.max_body_size)} ({limits.max_body_size} bytes)",
                        {"connection": "close"})
        return None

    def _check_token(self, auth: bytes | None) -> tuple[int, str, str, dict[str, str]] | None:
        assert self._token is not None
        challenge = 'Bearer realm="satchel"'
        if auth is None:
            return (401, "UNAUTHENTICATED", "this server needs a bearer token: send "
                    "'Authorization: Bearer <token>'", {"www-authenticate": challenge})
        scheme, _, given = auth.partition(b" ")
        # compare_digest takes the same time wherever the first difference is
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            return (401, "UNAUTHENTICATED", "the bearer token is not valid",
                    {"www-authenticate": challenge + ', error="invalid_token"'})
        return None

    # --- while the app runs -----------------------------------------------------------

    def _counting(self, receive: Receive, state: _State, limit: int) -> Receive:
        async def counted() -> Message:
            state.reading = True
            message = await receive()
            state.reading = False
            if message["type"] == "http.request":
                state.bytes_in += len(message.get("body", b""))
                if state.bytes_in > limit:
                    # Raised inside the app's body read; the app's handler turns it into
                    # the 413 reply, and "Connection: close" makes the server drop the
                    # connection instead of reading the rest of the body.
                    raise HTTPException(413, f"the request body is over the limit of "
                                             f"{_size(limit)} ({limit} bytes); stopped reading "
                                             f"after {state.bytes_in} bytes",
                                        headers={"Connection": "close"})
                if not message.get("more_body"):
                    state.body_done = True
            return message

        return counted

    async def _with_timeout(self, scope: Scope, receive: Receive, send: Send,
                            state: _State) -> None:
        timeout = self.limits.timeout
        assert timeout
        try:
            async with deadline.time_limit(timeout):
                await self.app(scope, receive, send)
        except TimeoutError:
            if state.started:
                raise
            if state.reading or not state.body_done and state.bytes_in:
                await _reply(scope, send, 408, "BAD_REQUEST",
                             f"the request body did not arrive within {timeout:g} s "
                             f"({state.bytes_in} bytes received)", {"connection": "close"})
            else:
                await _reply(scope, send, 504, "DEADLINE_EXCEEDED",
                             f"the request took longer than the limit of {timeout:g} s", {})

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        if self.route_of is not None:
            return self.route_of(scope)
        return "other"

    @property
    def scoring(self) -> int:
        """Scoring requests held now."""
        return self._scoring


@dataclass(slots=True)
class _State:
    status: int = 500
    started: bool = False
    reading: bool = False
    body_done: bool = False
    bytes_in: int = 0
    bytes_out: int = 0


async def _reply(scope: Scope, send: Send, status: int, code: str, message: str,
                 headers: dict[str, str]) -> None:
    """An error reply in the shape of the path's protocol (V2 or MLflow's)."""
    from satchel.serving.server.http import protocol_of_path

    body = protocol_of_path(scope["path"]).error_body(message, code)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _log_access(scope: Scope, state: _State, request_id: bytes, seconds: float) -> None:
    client = scope.get("client")
    access_log.info("%s %s %d", scope["method"], scope["path"], state.status, extra={
        "event": "access",
        "request_id": request_id.decode("ascii", "replace"),
        "method": scope["method"],
        "path": scope["path"][:1000],
        "status": state.status,
        "duration_ms": round(seconds * 1000, 3),
        "bytes_in": state.bytes_in,
        "bytes_out": state.bytes_out,
        "client": f"{client[0]}:{client[1]}" if client else None,
    })
