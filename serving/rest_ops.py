"""The operational side of the REST server: batching per model, metrics, the OpenAPI
document and docs page, and the model repository index.

:class:`Ops` is created once per app by :func:`satchel.serving.rest.create_app` and kept
in ``app.state.ops``; the scoring endpoints ask it for a model's batcher and report each
result to it. It owns no HTTP status codes except the routes it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from satchel.errors import InputFormatError
from satchel.serving.batching import Batcher
from satchel.serving.dataplane import FAILED, READY, ModelRegistry, Result, ServedModel
from satchel.serving.limits import ServingMiddleware
from satchel.serving.metrics import CONTENT_TYPE, Metrics
from satchel.serving.options import ServeOptions

log = logging.getLogger("satchel.serving")

_STATES = {READY: "READY", FAILED: "UNAVAILABLE"}


class Ops:
    """Batchers, metrics and docs for one app (see the module docstring)."""

    def __init__(self, registry: ModelRegistry, options: ServeOptions | None = None) -> None:
        self.registry = registry
        self.options = options or ServeOptions()
        self.metrics = Metrics(self.options.metrics_dir,
                               flush_interval=self.options.metrics_interval)
        self._batchers: dict[str, Batcher | None] = {}
        self._spec: bytes | None = None
        self._flusher: asyncio.Task[None] | None = None
        # the route template of a request refused before routing (set by create_app)
        self.route_of: Callable[[Any], str] | None = None
        self.metrics.gauge_function("satchel_requests_queued", (), self.queued)
        self._note_load_times()

    # --- batching --------------------------------------------------------------------------

    def batcher(self, served: ServedModel) -> Batcher | None:
        """The model's batcher, or None when its requests run one by one."""
        try:
            return self._batchers[served.name]
        except KeyError:
            pass
        model = served.require()
        mode = self.options.batching
        batched = mode == "on" or (mode == "auto" and model.row_independent)
        batcher = None
        if batched:
            from satchel.serving import dataplane

            name = served.name
            batcher = Batcher(lambda data, params: dataplane.predict(served, data, params),
                              self.options.batch, name=name,
                              observer=lambda requests, rows, _s: self.metrics.batch(
                                  name, requests, rows))
        self._batchers[served.name] = batcher
        return batcher

    def queued(self) -> float:
        """Scoring requests waiting for a predict call: batch queues and the thread pool."""
        waiting = sum(b.queued for b in self._batchers.values() if b is not None)
        try:
            import anyio.to_thread

            stats = anyio.to_thread.current_default_thread_limiter().statistics()
            waiting += stats.tasks_waiting
        except Exception:  # noqa: BLE001 - no event loop here: nothing waits on it
            pass
        return float(waiting)

    def count(self, served: ServedModel, result: Result, batched: bool) -> None:
        """Record a scored request (a batcher records its own predict calls)."""
        self.metrics.rows(served.name, result.rows)
        if not batched:
            self.metrics.batch(served.name, 1, result.rows)

    # --- lifespan ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin writing metric snapshots (a worker among several)."""
        if self.metrics.directory is not None:
            self.metrics.flush()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.metrics.flush_interval)
            self.metrics.flush()

    async def stop(self) -> None:
        """Stop batchers and the snapshot task; write a last snapshot."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for batcher in self._batchers.values():
            if batcher is not None:
                await batcher.aclose()
        self.metrics.flush()

    # --- routes ------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """``/metrics``, ``/v2/repository/index``, and (unless disabled) the docs."""
        routes: list[BaseRoute] = [
            Route("/metrics", self.metrics_page, methods=["GET"]),
            Route("/v2/repository/index", self.repository_index, methods=["GET", "POST"]),
        ]
        if self.options.docs:
            routes += [Route("/openapi.json", self.openapi, methods=["GET"]),
                       Route("/docs", self.docs, methods=["GET"])]
        return routes

    middleware_class = ServingMiddleware

    def middleware_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`ServingMiddleware` for this app."""
        return {"limits": self.options.limits, "metrics": self.metrics,
                "route_of": self._route_of}

    def _route_of(self, scope: Any) -> str:
        return self.route_of(scope) if self.route_of is not None else "other"

    def _note_load_times(self) -> None:
        for served in self.registry:
            if served.load_seconds is not None:
                self.metrics.set_gauge("satchel_model_load_seconds",
                                       (("model", served.name),), served.load_seconds)

    async def metrics_page(self, request: Request) -> Response:
        self._note_load_times()  # models loaded in the background appear once loaded
        # On the event loop, the only thread that changes the counts; reading the other
        # workers' few small snapshot files takes well under a millisecond.
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def repository_index(self, request: Request) -> Response:
        """MLServer's model repository index: every model with its state."""
        ready: bool | None = None
        if request.method == "POST":
            body = await request.body()
            if body.strip():
                from satchel.serving.codecs import loads

                obj = loads(body)
                if not isinstance(obj, dict) or not isinstance(obj.get("ready", False), bool):
                    raise InputFormatError("the index request must be a JSON object with an "
                                           "optional boolean 'ready'")
                ready = obj.get("ready")
        out = []
        for served in self.registry:
            if ready is not None and served.ready != ready:
                continue
            entry: dict[str, Any] = {"name": served.name, "version": served.version,
                                     "state": _STATES.get(served.state, "LOADING")}
            if served.error:
                entry["reason"] = served.error
            out.append(entry)
        return JSONResponse(out)

    async def openapi(self, request: Request) -> Response:
        if self._spec is None or not self.registry.ready:
            from satchel.serving.openapi import build_spec

            default = self.registry.default.name if len(self.registry) else None
            spec = build_spec(self.registry, default,
                              auth=self.options.limits.auth_token is not None)
            body = json.dumps(spec, separators=(",", ":")).encode()
            if not self.registry.ready:
                return Response(body, media_type="application/json")
            self._spec = body
        return Response(self._spec, media_type="application/json")

    async def docs(self, request: Request) -> Response:
        from satchel.serving.openapi import docs_page

        return HTMLResponse(docs_page())


def route_template(app: Any, scope: Any) -> str:
    """The template of the route a request matches (``"other"`` for none): a metrics label
    for requests answered before routing."""
    from starlette.routing import Match

    for route in app.router.routes:
        match, _ = route.matches(scope)
        path = getattr(route, "path", None)
        if match is Match.FULL and isinstance(path, str):
            return path
    return "other"
