"""The HTTP transport: starlette routes that translate requests to and from the data
plane, and the mapping of satchel's error classes to HTTP statuses.

Each scoring handler is a few lines: build an :class:`Inbound` from the request, call
:meth:`DataPlane.score` with the path's protocol, turn the :class:`Reply` into a
response. Every other decision (readiness, decoding, batching, threads, metrics) is
the data plane's.

Status codes (docs/protocol.md): 400 unreadable input or a signature violation, 401 no
or a wrong bearer token, 404 unknown model or path, 405 wrong method, 408 a body that
never arrives, 413 a body over the limit, 415 unsupported content type, 422 the model
itself raised, 503 not loaded yet or too many requests waiting, 504 over the time
limit, 500 only for the server's own faults.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from satchel._version import __version__
from satchel.errors import (
    InputFormatError,
    LimitExceededError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    PredictionError,
    SatchelError,
    ServerBusyError,
    SignatureError,
    UnsupportedMediaTypeError,
)
from satchel.serving.protocols import v2
from satchel.serving.protocols.base import Inbound, Protocol, Reply
from satchel.serving.protocols.mlflow import MLFLOW, error_code, error_details
from satchel.serving.protocols.v2 import V2
from satchel.serving.protocols.v2_binary import HEADER as BINARY_HEADER
from satchel.serving.server.dataplane import DataPlane

log = logging.getLogger("satchel.serving")

DROPPED_HEADER = "X-Satchel-Dropped-Columns"
UNKNOWN_PARAMS_HEADER = "X-Satchel-Unknown-Params"

# error class -> HTTP status; the first match in this order wins
ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (ModelNotFoundError, 404),
    (ModelNotReadyError, 503),
    (ServerBusyError, 503),
    (UnsupportedMediaTypeError, 415),
    (LimitExceededError, 413),
    (InputFormatError, 400),
    (SignatureError, 400),
    (PredictionError, 422),
    (ModelLoadError, 422),
    (SatchelError, 500),
)
_HTTP_CODES = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST", 413: "REQUEST_LIMIT_EXCEEDED"}


def status_of(exc: BaseException) -> int:
    """The HTTP status for an error raised while serving."""
    for cls, status in ERROR_STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def protocol_of_path(path: str) -> Protocol:
    """The protocol whose error bodies a path answers with: V2 under ``/v2``, else MLflow's."""
    return V2 if path.startswith("/v2") else MLFLOW


# --- requests and replies --------------------------------------------------------------


def inbound(request: Request) -> Inbound:
    """A starlette request as the data plane's :class:`Inbound` (the body read lazily)."""
    content_type = None
    headers: dict[str, str] = {}
    # Straight from the ASGI scope: cheaper than building request.headers per request.
    for key, value in request.scope["headers"]:
        if key == b"content-type":
            content_type = value.decode("latin-1")
        elif key == b"inference-header-content-length":  # the V2 binary extension
            if BINARY_HEADER in headers:
                headers[BINARY_HEADER] = "given twice"  # refused as not a byte count
            else:
                headers[BINARY_HEADER] = value.decode("latin-1")
    return Inbound(receive=request.body, content_type=content_type, headers=headers)


# A reply header listing names stays well under every client's line limit (http.client
# refuses 64 KiB): the first names that fit, then how many more.
MAX_LIST_HEADER = 4096


def bounded_list(names: tuple[str, ...] | list[str], limit: int = MAX_LIST_HEADER) -> str:
    """``names`` URL-quoted and comma-joined, cut to ``limit`` characters with a count
    of the names left out (``...;more=N``)."""
    out: list[str] = []
    size = 0
    for i, name in enumerate(names):
        item = quote(name, safe="")
        if size + len(item) + 1 > limit - 16:
            return ",".join(out) + f";more={len(names) - i}"
        out.append(item)
        size += len(item) + 1
    return ",".join(out)


def response(reply: Reply) -> Response:
    """A :class:`Reply` as a starlette response (with the policy's report headers)."""
    headers = dict(reply.headers) if reply.headers else None
    if reply.dropped_columns or reply.unknown_params:
        headers = headers or {}
        if reply.dropped_columns:
            headers[DROPPED_HEADER] = bounded_list(reply.dropped_columns)
        if reply.unknown_params:
            headers[UNKNOWN_PARAMS_HEADER] = bounded_list(reply.unknown_params)
    return Response(reply.body, 200, headers, reply.content_type)


# --- routes ------------------------------------------------------------------------------


async def version(request: Request) -> Response:
    return PlainTextResponse(__version__)


def mlflow_routes(plane: DataPlane) -> list[BaseRoute]:
    """MLflow's scoring protocol: ``/ping``, ``/health``, ``/version``, ``/invocations``
    (on the repository's default model)."""

    async def ping(request: Request) -> Response:
        """200 once the default model is loaded; 503 (ModelNotReadyError) before."""
        plane.model(None).require()
        return Response("\n", 200, media_type="application/json")

    async def invocations(request: Request) -> Response:
        return response(await plane.score(None, MLFLOW, inbound(request)))

    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
    ]


# The routes that score: nearly every request a busy server gets.
SCORING_PATHS = ("/invocations", "/v2/models/{name}/infer",
                 "/v2/models/{name}/versions/{version}/infer")


def scoring_first(routes: list[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with the scoring routes moved to the front, the rest in their order.

    starlette tries routes in order, a regular expression each, until one matches: the
    V2 infer route came 22nd (about 10 us of a 1-row request's CPU spent failing to match
    the others). No other route's path matches a scoring path, so the order changes
    nothing else.
    """
    first = [r for r in routes if getattr(r, "path", None) in SCORING_PATHS]
    return first + [r for r in routes if r not in first]


async def v2_server(request: Request) -> Response:
    return JSONResponse(v2.server_metadata())


async def v2_live(request: Request) -> Response:
    return Response(status_code=200)


def v2_routes(plane: DataPlane) -> list[BaseRoute]:
    """The Open Inference Protocol's health, metadata and infer endpoints."""

    def target(request: Request) -> tuple[str, str | None]:
        params = request.path_params
        return params["name"], params.get("version")

    async def ready(request: Request) -> Response:
        return Response(status_code=200 if plane.repository.ready else 503)

    async def model(request: Request) -> Response:
        served = plane.model(*target(request))
        meta = served.cache.get("v2_metadata")
        if meta is None:
            m = served.require()
            meta = served.cache["v2_metadata"] = v2.model_metadata(
                served.name, served.version, m.signature, m.flavor.name)
        return JSONResponse(meta)

    async def model_ready(request: Request) -> Response:
        return Response(status_code=200 if plane.model(*target(request)).ready else 503)

    async def infer(request: Request) -> Response:
        name, version_ = target(request)
        return response(await plane.score(name, V2, inbound(request), version=version_))

    routes: list[BaseRoute] = [
        Route("/v2", v2_server, methods=["GET"]),
        Route("/v2/health/live", v2_live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
    ]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            Route(base, model, methods=["GET"]),
            Route(base + "/ready", model_ready, methods=["GET"]),
            Route(base + "/infer", infer, methods=["POST"]),
        ]
    return routes


# --- errors ------------------------------------------------------------------------------


def error_response(request: Request, status: int, code: str, message: str,
                   extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                   ) -> Response:
    """An error in the body shape of the path's protocol."""
    body = protocol_of_path(request.url.path).error_body(message, code, extra)
    return Response(body, status, headers, "application/json")


def exception_handlers(debug: bool = False) -> dict[Any, Callable[..., Any]]:
    """starlette exception handlers mapping satchel's errors to statuses (no 500s for
    client mistakes; a stack trace in the body only with ``debug``)."""

    async def satchel_error(request: Request, exc: Exception) -> Response:
        status = status_of(exc)
        if status >= 500 and status != 503:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        extra = error_details(exc)
        if debug:
            extra["stack_trace"] = "".join(traceback.format_exception(exc))
        return error_response(request, status, error_code(exc), str(exc)[:2000], extra)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
        message = {404: f"no endpoint {request.method} {request.url.path[:200]}",
                   405: f"method {request.method} is not allowed on {request.url.path[:200]}",
                   }.get(exc.status_code, str(exc.detail))
        return error_response(request, exc.status_code, code, message, None,
                              dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        # starlette re-raises after this handler, so the server logs the traceback.
        message = (f"internal server error ({type(exc).__name__}: {str(exc)[:300]})" if debug
                   else f"internal server error ({type(exc).__name__})")
        return error_response(request, 500, "INTERNAL_ERROR", message,
                              {"stack_trace": traceback.format_exc()} if debug else None)

    return {SatchelError: satchel_error, HTTPException: http_error, Exception: server_error}
