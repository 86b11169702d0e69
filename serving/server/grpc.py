"""The gRPC transport's rules: KServe's ``inference.GRPCInferenceService`` methods wrapped
with auth, limits, error mapping and metrics.

Thin by design: each method reads its message, calls the data plane (the same lookup,
decode, batching, predict, encode and metrics as HTTP, through the gRPC codec of
:mod:`satchel.serving.protocols.grpc`) and returns the reply. The server that carries the
calls is in :mod:`.grpc_server`. This module and that one are the only places that know
gRPC status codes; the rest of satchel raises :mod:`satchel.errors` classes, mapped here:

======================================  =====================
error                                   status
======================================  =====================
ModelNotFoundError                      NOT_FOUND
ModelNotReadyError, ServerBusyError     UNAVAILABLE
LimitExceededError (decoded too large)  RESOURCE_EXHAUSTED
InputFormatError, SignatureError,       INVALID_ARGUMENT
PredictionError (the model refused it)
ModelLoadError, ModelFormatError,       FAILED_PRECONDITION (a load that fails; the old
FlavorNotFoundError                     model keeps serving)
no or a wrong bearer token              UNAUTHENTICATED
a message over the size limit           RESOURCE_EXHAUSTED (on a stream: that message's
                                        answer; see :mod:`.grpc_messages`)
a message that does not parse           INVALID_ARGUMENT (the same)
too many requests held                  UNAVAILABLE
over the time limit                     DEADLINE_EXCEEDED
anything else (the server's fault)      INTERNAL
======================================  =====================
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from satchel.errors import (
    FlavorNotFoundError,
    InputFormatError,
    LimitExceededError,
    ModelFormatError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    PredictionError,
    SatchelError,
    ServerBusyError,
    SignatureError,
)
from satchel.serving.protocols import grpc as codec
from satchel.serving.protocols.grpc import pb
from satchel.serving.server import deadline
from satchel.serving.server.grpc_messages import Unreadable

log = logging.getLogger("satchel.serving")
access_log = logging.getLogger("satchel.access")

# error class -> status; the first match in this order wins
ERROR_STATUS: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ModelNotReadyError, grpc.StatusCode.UNAVAILABLE),
    (ServerBusyError, grpc.StatusCode.UNAVAILABLE),
    (LimitExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),  # decodes past --max-rows etc.
    (InputFormatError, grpc.StatusCode.INVALID_ARGUMENT),
    (SignatureError, grpc.StatusCode.INVALID_ARGUMENT),
    (PredictionError, grpc.StatusCode.INVALID_ARGUMENT),
    # a load of a directory that is broken, tampered with, or needs a missing flavor
    (ModelLoadError, grpc.StatusCode.FAILED_PRECONDITION),
    (ModelFormatError, grpc.StatusCode.FAILED_PRECONDITION),
    (FlavorNotFoundError, grpc.StatusCode.FAILED_PRECONDITION),
    (SatchelError, grpc.StatusCode.INTERNAL),
)
OPEN_METHODS = frozenset({"ServerLive"})  # liveness needs no token, as on HTTP


def status_of(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status for an error raised while serving."""
    for cls, status in ERROR_STATUS:
        if isinstance(exc, cls):
            return status
    return grpc.StatusCode.INTERNAL


class Refused(Exception):
    """A call refused by the transport itself (token, queue bound, time limit)."""

    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class GrpcLimits:
    """What the transport enforces, taken from the HTTP server's limits.

    Attributes:
        max_message_size: largest request message in bytes, checked by satchel (None: no
            limit but protobuf's own 2 GiB); grpcio's own limit is set above it
            (:func:`~satchel.serving.server.grpc_messages.grpcio_receive_limit`).
        timeout: seconds a call may take (None: no limit; a client deadline still holds).
        max_queue: most ModelInfer calls held at once (None: no limit).
        auth_token: the bearer token every call but ServerLive must carry (None: open).
        json_access_log: write one line per call to the ``satchel.access`` logger, as the
            HTTP middleware does per request (``--log-format json``).
    """

    max_message_size: int | None = 100 * 1024 * 1024
    timeout: float | None = 60.0
    max_queue: int | None = 1024
    auth_token: str | None = None
    json_access_log: bool = False


Handler = Callable[[Any, Any], Awaitable[Any]]
# Requests of one stream scored at once (so they can share a batch); the stream stops
# reading while this many are waiting for their answers.
STREAM_WINDOW = 64


class Transport:
    """The service's methods wrapped with auth, limits, error mapping and metrics, as
    coroutines on the event loop (the server in :mod:`.grpc_server` calls them and sends
    what they return).

    Args:
        backend: what the methods do (a :class:`~satchel.serving.server.grpc_service.
            InferenceService` over the data plane); it also counts each call.
        limits: see :class:`GrpcLimits`.
    """

    def __init__(self, backend: Any, limits: GrpcLimits) -> None:
        self.backend = backend
        self.limits = limits
        self._token = limits.auth_token.encode() if limits.auth_token else None
        self._held = 0  # scoring calls held (the queue bound)

    def methods(self) -> dict[str, tuple[Handler, Any, bool]]:
        """The unary methods by name: (the backend's coroutine, its request message class,
        whether it scores, i.e. counts against the queue bound)."""
        b = self.backend
        return {
            "ServerLive": (b.server_live, pb.ServerLiveRequest, False),
            "ServerReady": (b.server_ready, pb.ServerReadyRequest, False),
            "ModelReady": (b.model_ready, pb.ModelReadyRequest, False),
            "ServerMetadata": (b.server_metadata, pb.ServerMetadataRequest, False),
            "ModelMetadata": (b.model_metadata, pb.ModelMetadataRequest, False),
            "ModelInfer": (b.model_infer, pb.ModelInferRequest, True),
            "ModelConfig": (b.model_config, pb.ModelConfigRequest, False),
            "ModelStatistics": (b.model_statistics, pb.ModelStatisticsRequest, False),
            "RepositoryIndex": (b.repository_index, pb.RepositoryIndexRequest, False),
            "RepositoryModelLoad": (b.repository_load, pb.RepositoryModelLoadRequest, False),
            "RepositoryModelUnload": (b.repository_unload, pb.RepositoryModelUnloadRequest,
                                      False),
        }

    async def unary(self, name: str, fn: Handler, scoring: bool, request: Any,
                    context: Any) -> tuple[Any, grpc.StatusCode, str]:
        """One unary call: (reply, OK, "") or (None, the status, the message to send)."""
        route = f"/{codec.SERVICE}/{name}"
        if self._token is not None and name not in OPEN_METHODS:
            refused = self.refusal(route, context)
            if refused is not None:
                return None, refused.status, str(refused)
        return await self._invoke(route, fn, request, context, scoring)

    async def stream(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        """``ModelStreamInfer``: a bidirectional stream of scoring requests. Each request is
        scored as a call of its own (same limits, errors and metrics as ``ModelInfer``),
        up to ``STREAM_WINDOW`` of them at once so that they can share batches, and
        answered in the order it came. A request that fails answers with its error
        message; the stream goes on, also after a message over the size limit or one
        that does not parse. Only a bad token ends the stream before it starts (raised as
        :class:`Refused`; grpcio itself ends it for a message over its own, higher limit).
        """
        route = f"/{codec.SERVICE}/ModelStreamInfer"
        if self._token is not None:
            refused = self.refusal(route, context)
            if refused is not None:
                raise refused
        fn = self.backend.model_infer
        window = asyncio.Semaphore(STREAM_WINDOW)
        answers: asyncio.Queue[asyncio.Task[Any] | None] = asyncio.Queue()

        async def one(request: Any) -> Any:
            reply, status, message = await self._invoke(route, fn, request, context, True)
            if status is grpc.StatusCode.OK:
                return pb.ModelStreamInferResponse(infer_response=reply)
            return codec.stream_error(request, message)

        async def read() -> None:
            try:
                async for request in requests:
                    await window.acquire()  # the client waits while the window is full
                    answers.put_nowait(asyncio.ensure_future(one(request)))
            finally:
                answers.put_nowait(None)  # no more requests (or reading failed)

        reader = asyncio.ensure_future(read())
        try:
            while (task := await answers.get()) is not None:
                answer = await task
                window.release()
                yield answer
            await reader  # a failure to read the stream ends it with that error
        finally:
            reader.cancel()
            while not answers.empty():
                if (task := answers.get_nowait()) is not None:
                    task.cancel()

    async def _invoke(self, route: str, fn: Handler, request: Any, context: Any,
                      scoring: bool) -> tuple[Any, grpc.StatusCode, str]:
        """One call of ``fn`` under the limits, counted in the metrics: (reply, OK, "") or
        (None, the status, the message to send)."""
        start = time.perf_counter()
        self.backend.begin()
        status = grpc.StatusCode.OK
        limits = self.limits
        held = False
        try:
            if isinstance(request, Unreadable):  # over the size limit, or not a message
                raise request.error
            if scoring:
                if limits.max_queue is not None and self._held >= limits.max_queue:
                    raise Refused(grpc.StatusCode.UNAVAILABLE,
                                  f"the server is full: {limits.max_queue} scoring "
                                  "requests are already waiting or being scored; retry "
                                  "later")
                self._held += 1
                held = True
            if limits.timeout:
                try:
                    async with deadline.time_limit(limits.timeout):
                        return await fn(request, context), status, ""
                except TimeoutError:
                    raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED,
                                  f"the request took longer than the limit of "
                                  f"{limits.timeout:g} s") from None
            return await fn(request, context), status, ""
        except Refused as exc:
            status = exc.status
            return None, status, str(exc)
        except SatchelError as exc:
            status = status_of(exc)
            if status is grpc.StatusCode.INTERNAL:
                log.error("%s failed: %s", route, exc)
            return None, status, str(exc)[:2000]
        except asyncio.CancelledError:
            status = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            status = grpc.StatusCode.INTERNAL
            log.exception("%s failed", route)
            return None, status, f"internal server error ({type(exc).__name__})"
        finally:
            if held:
                self._held -= 1
            self.backend.end(route, status.name, time.perf_counter() - start)
            if limits.json_access_log:
                _log_access(route, status, time.perf_counter() - start, context)

    def refusal(self, route: str, context: Any) -> Refused | None:
        """None when the call's token is right; else the refusal, counted (on the loop)."""
        try:
            self._check_token(context)
        except Refused as exc:
            self.backend.begin()
            self.backend.end(route, exc.status.name, 0.0)
            if self.limits.json_access_log:
                _log_access(route, exc.status, 0.0, context)
            return exc
        return None

    def _check_token(self, context: Any) -> None:
        assert self._token is not None
        auth = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                auth = value.encode() if isinstance(value, str) else value
                break
        if auth is None:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "this server needs a bearer token: "
                          "send metadata 'authorization: Bearer <token>'")
        scheme, _, given = auth.partition(b" ")
        # compare_digest takes the same time wherever the first difference is
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid")


def _log_access(route: str, status: grpc.StatusCode, seconds: float,
                context: Any) -> None:
    request_id = next((str(v)[:128] for k, v in context.invocation_metadata() or ()
                       if k == "x-request-id"), None) or os.urandom(16).hex()
    access_log.info("gRPC %s %s", route, status.name, extra={
        "event": "access", "request_id": request_id, "method": "gRPC", "path": route,
        "status": status.name, "duration_ms": round(seconds * 1000, 3),
        "client": context.peer(),
    })
