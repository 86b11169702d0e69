"""The HTTP routes beside scoring: ``/metrics``, the model repository API, Triton's model
configuration and statistics, and the OpenAPI document with its docs page.

They read the data plane (its metrics and repository) and own no scoring logic.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from satchel.errors import InputFormatError, ModelNotFoundError
from satchel.serving.server import model_info
from satchel.serving.server.dataplane import DataPlane
from satchel.serving.server.metrics import CONTENT_TYPE
from satchel.serving.server.repository import FAILED, READY

_STATES = {READY: "READY", FAILED: "UNAVAILABLE"}


def page_routes(plane: DataPlane) -> list[BaseRoute]:
    """``/metrics``, ``/v2/repository/index``, and (unless disabled) the docs."""
    spec: dict[int, bytes] = {}  # the OpenAPI document per repository generation

    async def metrics_page(request: Request) -> Response:
        plane.note_load_times()  # models loaded in the background appear once loaded
        # On the event loop, the only thread that changes the counts; reading the other
        # workers' few small snapshot files takes well under a millisecond.
        return Response(plane.metrics.render(), media_type=CONTENT_TYPE)

    async def repository_index(request: Request) -> Response:
        """MLServer's model repository index: every model with its state."""
        ready: bool | None = None
        if request.method == "POST":
            body = await request.body()
            if body.strip():
                from satchel.serving.protocols.strict_json import loads

                obj = loads(body)
                if not isinstance(obj, dict) or not isinstance(obj.get("ready", False), bool):
                    raise InputFormatError("the index request must be a JSON object with an "
                                           "optional boolean 'ready'")
                ready = obj.get("ready")
        out = []
        for served in plane.repository:
            if ready is not None and served.ready != ready:
                continue
            entry: dict[str, Any] = {"name": served.name, "version": served.version,
                                     "state": _STATES.get(served.state, "LOADING")}
            if served.error:
                entry["reason"] = served.error
            out.append(entry)
        if ready is not True:  # folders of --model-repository not loaded (or unloaded)
            for name in plane.repository.folder_names():
                if plane.repository.find(name) is None:
                    out.append({"name": name, "version": None, "state": "UNAVAILABLE",
                                "reason": "not loaded"})
        return JSONResponse(out)

    async def _options(request: Request) -> None:
        # Triton's and KServe's load take an optional JSON object (parameters this
        # server does not use); anything else is a client mistake, said so
        body = await request.body()
        if body.strip():
            from satchel.serving.protocols.strict_json import loads

            if not isinstance(loads(body), dict):
                raise InputFormatError("the load/unload request body must be a JSON object "
                                       "(or empty)")

    async def load(request: Request) -> Response:
        """Load (or reload, picking up a directory replaced in place) one model."""
        await _options(request)
        await plane.load_request(request.path_params["name"])
        return Response(status_code=200)

    async def unload(request: Request) -> Response:
        await _options(request)
        await plane.unload_request(request.path_params["name"])
        return Response(status_code=200)

    async def config(request: Request) -> Response:
        """Triton's model configuration (``tritonclient.http``'s ``get_model_config``)."""
        params = request.path_params
        return JSONResponse(model_info.config(plane, plane.model(params["name"],
                                                                 params.get("version"))))

    async def stats(request: Request) -> Response:
        """Per-model request counts and durations (``get_inference_statistics``); every
        model's under ``/v2/models/stats``."""
        params = request.path_params
        return JSONResponse(model_info.statistics(plane, params.get("name"),
                                                  params.get("version")))

    async def openapi(request: Request) -> Response:
        repository = plane.repository
        generation = repository.generation
        body = spec.get(generation)
        if body is None:
            from satchel.serving.server.openapi import build_spec

            default = repository.default.name if len(repository) else None
            body = json.dumps(build_spec(repository, default,
                                         auth=plane.options.limits.auth_token is not None),
                              separators=(",", ":")).encode()
            if repository.ready:  # built again after any load, unload or swap
                spec.clear()
                spec[generation] = body
        return Response(body, media_type="application/json")

    async def drift(request: Request) -> Response:
        """The model's drift figures over the monitoring window (every worker merged)."""
        served = plane.model(request.path_params["name"])
        served.require()
        monitor = getattr(request.app.state, "monitor", None)
        if monitor is None:
            raise ModelNotFoundError(f"drift monitoring is off in this server (model "
                                     f"'{served.name}')", name=served.name)
        return JSONResponse(monitor.report(served.name))

    async def docs(request: Request) -> Response:
        from satchel.serving.server.openapi import docs_page

        return HTMLResponse(docs_page())

    routes: list[BaseRoute] = [
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/v2/repository/index", repository_index, methods=["GET", "POST"]),
        Route("/v2/repository/models/{name}/load", load, methods=["POST"]),
        Route("/v2/repository/models/{name}/unload", unload, methods=["POST"]),
        Route("/v2/models/{name}/drift", drift, methods=["GET"]),
        # before /v2/models/{name} (the V2 routes), which would take "stats" for a name
        Route("/v2/models/stats", stats, methods=["GET"]),
    ]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [Route(base + "/config", config, methods=["GET"]),
                   Route(base + "/stats", stats, methods=["GET"])]
    if plane.options.docs:
        routes += [Route("/openapi.json", openapi, methods=["GET"]),
                   Route("/docs", docs, methods=["GET"])]
    return routes


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
