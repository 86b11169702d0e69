"""The REST scoring server: MLflow's scoring protocol and the Open Inference Protocol.

starlette only routes requests to :mod:`satchel.serving.dataplane` and maps its error
classes to status codes. The app is composed from parts (a model registry, an executor,
route lists, exception handlers) so other servers can reuse or extend them. The
operational parts (batching, limits, metrics, docs) come from
:mod:`satchel.serving.rest_ops`, configured by :class:`~satchel.serving.options.ServeOptions`.

Status codes (docs/protocol.md): 400 unreadable input or a signature violation, 401 no
or a wrong bearer token, 404 unknown model or path, 405 wrong method, 408 a body that
never arrives, 413 a body over the limit, 415 unsupported content type, 422 the model
itself raised, 503 not loaded yet or too many requests waiting, 504 over the time
limit, 500 only for the server's own faults.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import quote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from satchel._version import __version__
from satchel.errors import (
    InputFormatError,
    ModelNotFoundError,
    ModelNotReadyError,
    PredictionError,
    SatchelError,
    SignatureError,
    UnsupportedMediaTypeError,
)
from satchel.model import Model
from satchel.serving import dataplane, v2
from satchel.serving.dataplane import ModelRegistry, Result, ServedModel
from satchel.serving.options import ServeOptions
from satchel.serving.rest_ops import Ops, route_template

log = logging.getLogger("satchel.serving")
T = TypeVar("T")

DROPPED_HEADER = "X-Satchel-Dropped-Columns"
UNKNOWN_PARAMS_HEADER = "X-Satchel-Unknown-Params"
_JSON = "application/json"
_INLINE_ROWS = 1024  # replies to batched requests up to this many rows are written inline

# error class -> (status, MLflow error code); the first match in this order wins
ERROR_STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (ModelNotFoundError, 404, "RESOURCE_DOES_NOT_EXIST"),
    (ModelNotReadyError, 503, "TEMPORARILY_UNAVAILABLE"),
    (UnsupportedMediaTypeError, 415, "BAD_REQUEST"),
    (InputFormatError, 400, "BAD_REQUEST"),
    (SignatureError, 400, "INVALID_PARAMETER_VALUE"),
    (PredictionError, 422, "BAD_REQUEST"),
    (SatchelError, 500, "INTERNAL_ERROR"),
)
_HTTP_CODES = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST", 413: "REQUEST_LIMIT_EXCEEDED"}


class Executor:
    """Runs a request's decode + predict + encode, inline or in a worker thread.

    Inline (on the event loop) is cheaper for a model whose ``predict`` costs about a
    few milliseconds of CPU: the thread hand-off costs ~0.1-0.2 ms of CPU per request, and a
    model that holds the GIL gains no parallelism from threads anyway (measured in
    benchmarks/serve_bench.py). Large bodies, slow models and models that wait go to
    the thread pool, so the loop keeps answering health checks.

    Args:
        inline_seconds: largest average predict CPU time run inline.
        inline_bytes: largest request body run inline.
    """

    def __init__(self, *, inline_seconds: float = 0.005, inline_bytes: int = 64 * 1024) -> None:
        self.inline_seconds = inline_seconds
        self.inline_bytes = inline_bytes

    def inline(self, served: ServedModel, size: int) -> bool:
        """True when this request should run on the event loop."""
        cpu, wall = served.predict_cpu_seconds, served.predict_seconds
        return (cpu is not None and wall is not None and size <= self.inline_bytes
                and cpu < self.inline_seconds and wall < 4 * self.inline_seconds)

    async def run(self, served: ServedModel, size: int, fn: Callable[..., T], *args: Any) -> T:
        if self.inline(served, size):
            return fn(*args)
        return await self.thread(fn, *args)

    async def run_small(self, small: bool, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` inline when ``small`` (decode or encode of a small body), else in a
        thread."""
        return fn(*args) if small else await self.thread(fn, *args)

    @staticmethod
    async def thread(fn: Callable[..., T], *args: Any) -> T:
        # abandon_on_cancel: a request that times out answers 504 at once; its thread
        # finishes in the background (Python cannot stop it).
        return await anyio.to_thread.run_sync(functools.partial(fn, *args),
                                              abandon_on_cancel=True)


# --- routes ------------------------------------------------------------------------------


def _content_type(request: Request) -> str | None:
    # Straight from the ASGI scope: cheaper than building request.headers per request.
    for key, value in request.scope["headers"]:
        if key == b"content-type":
            return str(value.decode("latin-1"))
    return None


def _result_response(result: Result) -> Response:
    headers = None
    if result.dropped_columns or result.unknown_params:
        headers = {}
        if result.dropped_columns:
            headers[DROPPED_HEADER] = ",".join(quote(c, safe="") for c in
                                               result.dropped_columns)
        if result.unknown_params:
            headers[UNKNOWN_PARAMS_HEADER] = ",".join(quote(p, safe="") for p in
                                                      result.unknown_params)
    return Response(result.body, 200, headers, _JSON)


def _score_parsed(served: ServedModel, parsed: Any) -> Result:
    return dataplane.encode_invocation(dataplane.predict(served, parsed.data, parsed.params))


def _infer_decoded(served: ServedModel, decoded: v2.InferRequest) -> Result:
    return dataplane.encode_infer(served, decoded,
                                  dataplane.predict(served, decoded.data, decoded.params))


async def version(request: Request) -> Response:
    return PlainTextResponse(__version__)


def mlflow_routes(registry: ModelRegistry, executor: Executor,
                  ops: Ops | None = None) -> list[BaseRoute]:
    """MLflow's scoring protocol: ``/ping``, ``/health``, ``/version``, ``/invocations``
    (on the registry's default model); ``ops`` batches and counts when given."""

    async def ping(request: Request) -> Response:
        """200 once the default model is loaded; 503 (ModelNotReadyError) before."""
        registry.default.require()
        return Response("\n", 200, media_type=_JSON)

    async def invocations(request: Request) -> Response:
        served = registry.default
        served.require()
        batcher = ops.batcher(served) if ops is not None else None
        if batcher is None:
            body = await request.body()
            result = await executor.run(served, len(body), dataplane.invocations, served, body,
                                        _content_type(request))
        else:
            with batcher.incoming():  # the batch being formed may wait for this one
                body = await request.body()
                parsed = await executor.run_small(len(body) <= executor.inline_bytes,
                                                  dataplane.decode_invocation, served, body,
                                                  _content_type(request))
            plan = batcher.plan(parsed.data, parsed.params)
            if plan is None:  # it would run alone: run it as unbatched requests run
                result = await executor.run(served, len(body), _score_parsed, served, parsed)
                batcher = None
            else:
                prediction = await batcher.predict(parsed.data, parsed.params, plan)
                result = await executor.run_small(prediction.rows <= _INLINE_ROWS,
                                                  dataplane.encode_invocation, prediction)
        if ops is not None:
            ops.count(served, result, batcher is not None)
        return _result_response(result)

    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
    ]


async def v2_server(request: Request) -> Response:
    return JSONResponse(v2.server_metadata())


async def v2_live(request: Request) -> Response:
    return Response(status_code=200)


def v2_routes(registry: ModelRegistry, executor: Executor,
              ops: Ops | None = None) -> list[BaseRoute]:
    """The Open Inference Protocol's health, metadata and infer endpoints."""

    def served(request: Request) -> ServedModel:
        params = request.path_params
        return registry.get(params["name"], params.get("version"))

    async def ready(request: Request) -> Response:
        return Response(status_code=200 if registry.ready else 503)

    async def model(request: Request) -> Response:
        return JSONResponse(served(request).metadata())

    async def model_ready(request: Request) -> Response:
        return Response(status_code=200 if served(request).ready else 503)

    async def infer(request: Request) -> Response:
        target = served(request)
        target.require()
        batcher = ops.batcher(target) if ops is not None else None
        if batcher is None:
            body = await request.body()
            result = await executor.run(target, len(body), dataplane.infer, target, body)
        else:
            with batcher.incoming():
                body = await request.body()
                decoded = await executor.run_small(len(body) <= executor.inline_bytes,
                                                   dataplane.decode_infer, target, body)
            plan = batcher.plan(decoded.data, decoded.params)
            if plan is None:
                result = await executor.run(target, len(body), _infer_decoded, target, decoded)
                batcher = None
            else:
                prediction = await batcher.predict(decoded.data, decoded.params, plan)
                result = await executor.run_small(prediction.rows <= _INLINE_ROWS,
                                                  dataplane.encode_infer, target, decoded,
                                                  prediction)
        if ops is not None:
            ops.count(target, result, batcher is not None)
        return _result_response(result)

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


def status_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and MLflow error code for an error raised while serving."""
    for cls, status, code in ERROR_STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "INTERNAL_ERROR"


def _is_v2(request: Request) -> bool:
    return request.url.path.startswith("/v2")


def error_response(request: Request, status: int, code: str, message: str,
                   extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                   ) -> Response:
    """``{"error": ...}`` on /v2 paths, ``{"error_code", "message", ...}`` elsewhere."""
    if _is_v2(request):
        return JSONResponse({"error": message}, status, headers)
    return JSONResponse({"error_code": code, "message": message, **(extra or {})}, status,
                        headers)


def exception_handlers(debug: bool = False) -> dict[Any, Callable[..., Any]]:
    """starlette exception handlers mapping satchel's errors to statuses (no 500s for
    client mistakes; a stack trace in the body only with ``debug``)."""

    def extra_of(exc: BaseException) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if isinstance(exc, PredictionError):
            extra["error_class"] = exc.error_class
        if isinstance(exc, SignatureError):
            extra.update({k: v for k, v in (("column", exc.column), ("expected", exc.expected),
                                            ("given", exc.given)) if v is not None})
        if debug:
            extra["stack_trace"] = "".join(traceback.format_exception(exc))
        return extra

    async def satchel_error(request: Request, exc: Exception) -> Response:
        status, code = status_of(exc)
        if status >= 500 and status != 503:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(request, status, code, str(exc)[:2000], extra_of(exc))

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


# --- the app -----------------------------------------------------------------------------


def create_app(model_or_path: Model | str | os.PathLike[str] | ModelRegistry, *,
               name: str | None = None, version: str | None = None, debug: bool = False,
               lazy: bool = False, executor: Executor | None = None,
               routes: Sequence[BaseRoute] = (), middleware: Sequence[Any] = (),
               options: ServeOptions | None = None, **load_options: Any) -> Starlette:
    """The scoring server as an ASGI app any ASGI server can run.

    Args:
        model_or_path: a loaded :class:`~satchel.Model`, a model directory, or a
            :class:`ModelRegistry` of several models.
        name: the name the model is served under (default: the directory's base name).
        version: the model version reported by the V2 metadata (default: none).
        debug: put stack traces in error bodies.
        lazy: load a directory in the background after the server starts (``/ping``
            answers 503 until it is loaded); by default it loads here and errors raise.
        executor: how requests run (inline or in threads); default :class:`Executor`.
        routes, middleware: extra starlette routes and middleware, added first.
        options: batching, limits, token, metrics and docs (default: ``ServeOptions()``).
        **load_options: passed to :func:`satchel.load_model`.

    Raises:
        SatchelError: the model directory cannot be loaded (unless ``lazy``).
    """
    if isinstance(model_or_path, ModelRegistry):
        registry = model_or_path
    else:
        registry = ModelRegistry()
        if isinstance(model_or_path, Model):
            registry.add(name or dataplane.default_name(model_or_path.path), model_or_path,
                         version=version)
        else:
            registry.add_path(name or dataplane.default_name(model_or_path), model_or_path,
                              version=version, **load_options)
    if not lazy:
        registry.load_pending()
    dataplane.freeze_heap()

    ops = Ops(registry, options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if lazy:
            threading.Thread(target=registry.load_pending, kwargs={"raise_errors": False},
                             name="satchel-load", daemon=True).start()
        await ops.start()
        try:
            yield
        finally:
            await ops.stop()

    executor = executor or Executor()
    app = Starlette(debug=False, routes=[*routes, *ops.routes(),
                                         *mlflow_routes(registry, executor, ops),
                                         *v2_routes(registry, executor, ops)],
                    middleware=[Middleware(ops.middleware_class, **ops.middleware_options()),
                                *middleware],
                    exception_handlers=exception_handlers(debug), lifespan=lifespan)
    ops.route_of = functools.partial(route_template, app)
    app.state.registry = registry
    app.state.executor = executor
    app.state.ops = ops
    return app

