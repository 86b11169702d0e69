"""The gRPC server: grpcio's asyncio server carrying :class:`~satchel.serving.server.grpc.
Transport`'s methods, on the event loop of the HTTP server it sits beside.

Both transports share one process's models, batchers, thread pool and metrics (started
and stopped by the app's lifespan). With several worker processes every worker runs one,
all bound to the gRPC port with ``SO_REUSEPORT`` (grpcio's default on Linux, set
explicitly): the kernel spreads connections over workers as it does for HTTP. grpcio is
started only in the worker, after the fork (its threads and polling engine do not survive
a fork).

grpcio's thread-pool server costs less per call with constant replies (188 against 272
us of CPU, ``benchmarks/grpcio_floor.py``), but not with satchel's work in the call: a
thread-pool server handing each call to this loop (``run_coroutine_threadsafe``) cost
about 1,000 us of CPU per 1-row LogisticRegression call against this server's 860, and
scoring unbatched models right in grpcio's threads (metrics applied on the loop later)
about 910 (``benchmarks/grpc_paired_bench.py``, 8 connections, 2026-11-30).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from satchel.serving.protocols import grpc as codec
from satchel.serving.protocols.grpc import pb
from satchel.serving.server.grpc import GrpcLimits, Handler, Refused, Transport
from satchel.serving.server.grpc_messages import grpcio_receive_limit, reader

log = logging.getLogger("satchel.serving")


def server_options(limits: GrpcLimits) -> list[tuple[str, Any]]:
    """grpcio channel arguments for the server (message size limit, port sharing)."""
    return [("grpc.max_receive_message_length",
             grpcio_receive_limit(limits.max_message_size)),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1)]


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


class GrpcServer:
    """A running gRPC server (on the current event loop).

    Args:
        backend: see :class:`~satchel.serving.server.grpc.Transport`.
        limits: see :class:`~satchel.serving.server.grpc.GrpcLimits`.
        host, port: where to listen (port 0: any free port, see :attr:`port`).
    """

    def __init__(self, backend: Any, limits: GrpcLimits, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.transport = Transport(backend, limits)
        self.host, self.requested_port = host, port
        self.port = 0
        self._server: grpc.aio.Server | None = None

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """Every method's handler by its name (under KServe's service name)."""
        limit = self.transport.limits.max_message_size
        handlers: dict[str, grpc.RpcMethodHandler] = {
            name: grpc.unary_unary_rpc_method_handler(
                self._unary(name, fn, scoring), request_deserializer=reader(message, limit),
                response_serializer=_serialize)
            for name, (fn, message, scoring) in self.transport.methods().items()
        }
        handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
            self._stream, request_deserializer=reader(pb.ModelInferRequest, limit, peek=True),
            response_serializer=_serialize)
        return handlers

    def _unary(self, name: str, fn: Handler, scoring: bool
               ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        unary = self.transport.unary
        ok = grpc.StatusCode.OK

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            reply, status, message = await unary(name, fn, scoring, request, context)
            if status is not ok:
                await context.abort(status, message)
            return reply

        return call

    async def _stream(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                      ) -> AsyncIterator[Any]:
        try:
            async for answer in self.transport.stream(requests, context):
                yield answer
        except Refused as exc:  # a bad token: the stream ends before it starts
            await context.abort(exc.status, str(exc))

    async def start(self) -> int:
        """Bind and start serving; the bound port.

        Raises:
            OSError: the address cannot be bound.
        """
        server = grpc.aio.server(options=server_options(self.transport.limits))
        # registered with grpcio's core, which matches a call's method itself instead of
        # asking a Python handler for each call (benchmarks/grpcio_floor.py)
        server.add_registered_method_handlers(codec.SERVICE, self.method_handlers())
        address = f"[{self.host}]" if ":" in self.host else self.host
        try:
            self.port = server.add_insecure_port(f"{address}:{self.requested_port}")
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {self.host}:{self.requested_port}: "
                          f"{exc}") from None
        await server.start()
        self._server = server
        log.info("serving gRPC on %s:%d", self.host, self.port)
        return self.port

    async def stop(self, grace: float | None = 5.0) -> None:
        """Stop accepting calls; calls in flight get ``grace`` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None


async def start_grpc(plane: Any) -> GrpcServer:
    """Start the gRPC server beside an HTTP app, on its event loop, over its data plane
    (models, batchers, thread pool, metrics) and with its limits (called from the app's
    lifespan; ``plane.options.grpc_port`` says where).

    Raises:
        OSError: the port cannot be bound.
    """
    from satchel.serving.server.grpc_service import InferenceService

    options = plane.options
    limits = options.limits
    server = GrpcServer(InferenceService(plane),
                        GrpcLimits(max_message_size=limits.max_body_size,
                                   timeout=limits.timeout, max_queue=limits.max_queue,
                                   auth_token=limits.auth_token,
                                   json_access_log=limits.json_access_log),
                        host=options.grpc_host, port=options.grpc_port)
    await server.start()
    return server
