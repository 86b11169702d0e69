"""The scoring server as one ASGI app: a model repository, a data plane over it, and the
HTTP routes, middleware and error handlers around them."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from satchel.model import Model
from satchel.serving.monitoring.attach import attach as attach_monitoring
from satchel.serving.server.dataplane import DataPlane
from satchel.serving.server.execution import Executor
from satchel.serving.server.http import (
    exception_handlers,
    mlflow_routes,
    scoring_first,
    v2_routes,
)
from satchel.serving.server.middleware import ServingMiddleware
from satchel.serving.server.options import ServeOptions
from satchel.serving.server.pages import page_routes, route_template
from satchel.serving.server.repository import ModelRepository, default_name, freeze_heap


def create_app(model_or_path: Model | str | os.PathLike[str] | ModelRepository, *,
               name: str | None = None, version: str | None = None, debug: bool = False,
               lazy: bool = False, executor: Executor | None = None,
               routes: Sequence[BaseRoute] = (), middleware: Sequence[Any] = (),
               options: ServeOptions | None = None, **load_options: Any) -> Starlette:
    """The scoring server as an ASGI app any ASGI server can run.

    Args:
        model_or_path: a loaded :class:`~satchel.Model`, a model directory, or a
            :class:`ModelRepository` of several models.
        name: the name the model is served under (default: the directory's base name).
        version: the model version reported by the V2 metadata (default: none).
        debug: put stack traces in error bodies.
        lazy: load a directory in the background after the server starts (``/ping``
            answers 503 until it is loaded); by default it loads here and errors raise.
        executor: how requests run (inline or in threads); default :class:`Executor`.
        routes, middleware: extra starlette routes and middleware, added first.
        options: batching, limits, token, metrics and docs (default: ``ServeOptions()``).
        **load_options: passed to :func:`satchel.load_model`.

    The app's ``state.dataplane`` is its :class:`DataPlane` (and ``state.repository``
    the repository), for other transports to share.

    Raises:
        SatchelError: the model directory cannot be loaded (unless ``lazy``).
    """
    if isinstance(model_or_path, ModelRepository):
        repository = model_or_path
    else:
        repository = ModelRepository()
        if isinstance(model_or_path, Model):
            repository.add(name or default_name(model_or_path.path), model_or_path,
                           version=version)
        else:
            repository.add_path(name or default_name(model_or_path), model_or_path,
                                version=version, **load_options)
    if not lazy:
        repository.load_pending()
    freeze_heap()

    plane = DataPlane(repository, options, executor)
    monitoring = attach_monitoring(plane, plane.options.monitor, plane.options.payload_log)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if lazy:
            threading.Thread(target=repository.load_pending, kwargs={"raise_errors": False},
                             name="satchel-load", daemon=True).start()
        await plane.start()
        follower = None
        if plane.options.follow:
            from satchel.serving.server.follow import start_following

            follower = start_following(plane)
        grpc_server = None
        if plane.options.grpc_port is not None:
            # imported here: grpcio is only loaded when gRPC is asked for, and only in the
            # process that serves (a worker, after the fork)
            from satchel.serving.server.grpc_server import start_grpc

            grpc_server = await start_grpc(plane)
        monitoring.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
            if grpc_server is not None:
                # calls in flight get as long as a request may take to finish
                await grpc_server.stop(plane.options.limits.timeout or 30.0)
            await plane.stop()
            monitoring.stop()

    route_of: list[Any] = []  # filled once the app exists (the middleware is built first)
    app = Starlette(
        debug=False,
        routes=[*routes, *scoring_first([*page_routes(plane), *mlflow_routes(plane),
                                         *v2_routes(plane)])],
        middleware=[Middleware(ServingMiddleware, limits=plane.options.limits,
                               metrics=plane.metrics,
                               route_of=lambda scope: route_of[0](scope) if route_of
                               else "other"),
                    *middleware],
        exception_handlers=exception_handlers(debug), lifespan=lifespan)
    route_of.append(functools.partial(route_template, app))
    app.state.dataplane = plane
    app.state.repository = repository
    app.state.monitor = monitoring.monitor
    return app
