"""The registry server's starlette app: MLflow's registry API, its artifact routes and
satchel's native API over one store, with token roles and JSON errors."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from satchel._version import __version__
from satchel.errors import SatchelError
from satchel.serving.registry import app_artifacts, app_mlflow, app_native
from satchel.serving.registry.app_context import Context
from satchel.serving.registry.app_errors import handle
from satchel.serving.registry.auth import TokenTable

_HTTP_CODES = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST"}


async def _http_error(_request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    return JSONResponse({"error_code": _HTTP_CODES.get(status, "BAD_REQUEST"),
                         "message": str(getattr(exc, "detail", "")) or "error"},
                        status_code=status)


async def _unexpected(_request: Request, exc: Exception) -> Response:
    return await handle(_request, exc)


def create_app(store: Any, tokens: TokenTable | None = None,
               extra_routes: list[Any] | None = None) -> Starlette:
    """The registry app over ``store`` (a SqlStore). ``extra_routes`` lets other parts
    (e.g. a web UI) mount their own routes on the same server and token table."""
    ctx = Context(store, tokens or TokenTable())

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    routes = [Route("/health", health, methods=["GET"]),
              *app_mlflow.routes(ctx), *app_artifacts.routes(ctx), *app_native.routes(ctx),
              *(extra_routes or [])]
    app = Starlette(routes=routes, exception_handlers={
        SatchelError: handle,
        HTTPException: _http_error,
        Exception: _unexpected,
    })
    app.state.registry = ctx
    return app
