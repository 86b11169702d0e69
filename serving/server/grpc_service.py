"""What each method of the gRPC inference service does, in terms of the data plane.

No grpcio here: a method takes a protobuf request and returns a protobuf reply, or raises
a :mod:`satchel.errors` class that :mod:`satchel.serving.server.grpc` maps to a status.
``ModelInfer`` is one call to :meth:`DataPlane.score` with the gRPC codec, so lookup,
decoding, batching, predict, encoding and the row counts are the HTTP endpoints' own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from satchel.errors import InputFormatError
from satchel.serving.protocols import grpc as codec
from satchel.serving.protocols import v2
from satchel.serving.protocols.base import Inbound
from satchel.serving.protocols.grpc import GRPC, pb
from satchel.serving.server import model_info
from satchel.serving.server.dataplane import DataPlane
from satchel.serving.server.repository import FAILED, READY, ServedModel

_STATES = {READY: "READY", FAILED: "UNAVAILABLE"}
_RECENT = 0.05  # seconds within which another client's call counts as concurrent load


class InferenceService:
    """The service's methods over one server's data plane (shared with HTTP).

    Args:
        plane: the data plane.
        gather_seconds: how long a ModelInfer call for a batched model waits, while other
            calls are in flight, for calls behind it to join its batch (capped by the
            batch delay; benchmarks/grpc_paired_bench.py: 1 ms against 0.5 ms was
            0.87-1.18x on 1-row batched cells at load 4.5, 0.98-1.02x at load 1.4).
    """

    def __init__(self, plane: DataPlane, *, gather_seconds: float = 0.001) -> None:
        self.plane = plane
        # never longer than the batch delay the operator allows
        self.gather_seconds = min(gather_seconds, plane.options.batch.max_batch_delay_ms / 1000)
        self._calls = 0  # ModelInfer calls in flight
        self._peers: dict[str, float] = {}  # client address -> time of its last ModelInfer

    def _expect_more(self, context: Any) -> bool:
        """True when other calls are likely right behind this one: calls are in flight, or
        other clients called within the last 50 ms (a burst of replies is followed by a
        burst of calls, which grpcio hands over one by one). A lone sequential client
        never waits."""
        now = time.monotonic()
        peer = context.peer() if context is not None else ""
        peers = self._peers
        peers[peer] = now
        if self._calls:
            return True
        if len(peers) > 1024:  # forget clients gone quiet
            for key in [k for k, t in peers.items() if now - t > _RECENT]:
                del peers[key]
        return any(now - t < _RECENT for k, t in peers.items() if k != peer)

    # --- health and metadata -----------------------------------------------------------

    async def server_live(self, request: pb.ServerLiveRequest, context: Any
                          ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: pb.ServerReadyRequest, context: Any
                           ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.repository.ready)

    def _served(self, name: str, version: str) -> ServedModel:
        if not name:  # an empty name would mean the default model to the data plane
            raise InputFormatError("the request needs a model name")
        return self.plane.model(name, version or None)

    async def model_ready(self, request: pb.ModelReadyRequest, context: Any
                          ) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._served(request.name, request.version).ready)

    async def server_metadata(self, request: pb.ServerMetadataRequest, context: Any
                              ) -> pb.ServerMetadataResponse:
        return codec.server_metadata(v2.server_metadata())

    async def model_metadata(self, request: pb.ModelMetadataRequest, context: Any
                             ) -> pb.ModelMetadataResponse:
        # the document GET /v2/models/{name} answers
        return codec.model_metadata(model_info.metadata(self._served(request.name,
                                                                     request.version)))

    async def model_config(self, request: pb.ModelConfigRequest, context: Any
                           ) -> pb.ModelConfigResponse:
        served = self._served(request.name, request.version)
        return codec.model_config(model_info.config(self.plane, served))

    async def model_statistics(self, request: pb.ModelStatisticsRequest, context: Any
                               ) -> pb.ModelStatisticsResponse:
        if request.version and not request.name:
            raise InputFormatError("statistics of a version need the model's name")
        return codec.model_statistics(model_info.statistics(
            self.plane, request.name or None, request.version or None))

    # --- scoring -----------------------------------------------------------------------

    async def model_infer(self, request: pb.ModelInferRequest, context: Any
                          ) -> pb.ModelInferResponse:
        if not request.model_name:
            raise InputFormatError("the request needs a model_name")
        version = request.model_version or None
        gather = self.gather_seconds

        async def receive() -> pb.ModelInferRequest:
            # The message is here already, but calls behind it are still being delivered
            # (grpcio hands the loop one call at a time). While other calls are in flight,
            # waiting a moment here, counted by the batcher as incoming, lets them join
            # this call's batch, as HTTP requests do while their bodies are read. A model
            # that is not batched has nothing to wait for, and a call that does not wait
            # does not yield to the loop either (a loop turn costs each call CPU).
            if (gather and self.plane.batcher(self.plane.model(request.model_name, version))
                    is not None and self._expect_more(context)):
                await asyncio.sleep(gather)
            return request

        self._calls += 1
        try:
            reply = await self.plane.score(request.model_name, GRPC, Inbound(receive=receive),
                                           version=version)
        finally:
            self._calls -= 1
        body: pb.ModelInferResponse = reply.body
        return body

    # --- the model repository ----------------------------------------------------------

    async def repository_index(self, request: pb.RepositoryIndexRequest, context: Any
                               ) -> pb.RepositoryIndexResponse:
        entries = []
        for served in self.plane.repository:
            if request.ready and not served.ready:
                continue
            entries.append({"name": served.name, "version": served.version,
                            "state": _STATES.get(served.state, "LOADING"),
                            "reason": served.error})
        return codec.repository_index(entries)

    async def repository_load(self, request: pb.RepositoryModelLoadRequest, context: Any
                              ) -> pb.RepositoryModelLoadResponse:
        codec.refuse_load_parameters(request.parameters, request.model_name)
        if not request.model_name:
            raise InputFormatError("the request needs a model_name")
        await self.plane.load_request(request.model_name)  # in every worker, as HTTP's
        return pb.RepositoryModelLoadResponse()

    async def repository_unload(self, request: pb.RepositoryModelUnloadRequest, context: Any
                                ) -> pb.RepositoryModelUnloadResponse:
        codec.refuse_load_parameters(request.parameters, request.model_name,
                                     codec.UNLOAD_PARAMETERS)
        if not request.model_name:
            raise InputFormatError("the request needs a model_name")
        await self.plane.unload_request(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    # --- metrics ------------------------------------------------------------------------

    def begin(self) -> None:
        """A call starts (counted in ``satchel_requests_in_flight``, as HTTP requests are)."""
        self.plane.metrics.in_flight += 1

    def end(self, route: str, status: str, seconds: float) -> None:
        """A call answered, in the HTTP requests' families (status: the gRPC code name)."""
        metrics = self.plane.metrics
        metrics.in_flight -= 1
        metrics.inc("satchel_requests_total", (("route", route), ("status", status)))
        metrics.observe("satchel_request_duration_seconds", (("route", route),), seconds)
