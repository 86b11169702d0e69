"""Governance over HTTP: ``POST /api/satchel/v1/governance/{method}`` with a JSON body,
so ``satchel registry policy|request|approve|reject|requests --registry-uri http://...``
and ``evaluate --register-results`` work against a server. The identity and role come
from the token; the role counts for approvals (``admin`` may override failed gates)."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from satchel.errors import RegistryNotFoundError
from satchel.serving.registry.app_context import Context
from satchel.serving.registry.app_errors import BadRequest

PREFIX = "/api/satchel/v1/governance"

# method -> (role needed, keyword arguments it accepts)
METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "get_policy": ("reader", ("name",)),
    "set_policy": ("editor", ("name", "text")),
    "delete_policy": ("admin", ("name",)),
    "attach_results": ("editor", ("name", "version", "result")),
    "results": ("reader", ("name", "version")),
    "request": ("editor", ("name", "target", "version", "stage")),
    "approve": ("editor", ("request_id", "reason", "override")),
    "reject": ("editor", ("request_id", "reason")),
    "requests": ("reader", ("name", "state")),
    "get_request": ("reader", ("request_id",)),
}


def encode(value: Any) -> Any:
    """Policies as their text, requests and results as dicts."""
    if isinstance(value, list):
        return [encode(v) for v in value]
    if hasattr(value, "protects"):  # a Policy
        return {"text": value.text}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def routes() -> list[Route]:
    """The governance routes (the context comes from the app's state)."""

    async def call(request: Request) -> Response:
        from satchel.evaluate.result import EvaluationResult
        from satchel.registry.api import Registry
        from satchel.registry.governance import Governance

        ctx: Context = request.app.state.registry
        method = request.path_params["method"]
        if method not in METHODS:
            raise RegistryNotFoundError(f"no governance method {method[:60]!r}",
                                        kind="method", name=method[:60])
        role, allowed = METHODS[method]
        who = ctx.identify(request)
        who.require(role, method.replace("_", " "))
        kwargs = await ctx.json_body(request)
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise BadRequest(f"{method} does not take {', '.join(k[:40] for k in unknown)}")
        if method == "attach_results":
            try:
                kwargs["result"] = EvaluationResult.from_dict(kwargs.get("result") or {})
            except (KeyError, TypeError, ValueError, AttributeError):
                raise BadRequest("result is not an evaluation result (EvaluationResult."
                                 "to_dict)") from None
        gov = Governance(Registry._from_store(ctx.store, who.name), roles=(who.role,))
        try:
            result = await to_thread.run_sync(lambda: getattr(gov, method)(**kwargs))
        except TypeError:
            raise BadRequest(f"{method} is missing a required argument "
                             f"({', '.join(allowed)})") from None
        return JSONResponse({"result": encode(result)})

    return [Route(PREFIX + "/{method}", call, methods=["POST"])]
