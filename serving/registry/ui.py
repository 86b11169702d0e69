"""The registry web UI at ``/``: models, versions with lineage, aliases and stages,
attached evaluation results and their reports, promotion requests with approve/reject
for approvers, and the audit trail with its verification status.

Server-rendered HTML (``ui_pages``), no script. Sign-in takes a registry token and keeps
it in an HttpOnly, SameSite=Strict cookie, so every page and form acts as that token's
identity and role, exactly as the API does (a server without a token file lets everyone
in as ``anonymous`` admin, as the API does).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from satchel.errors import RegistryAuthError, SatchelError
from satchel.serving.registry import ui_pages
from satchel.serving.registry.app_context import Context
from satchel.serving.registry.app_errors import BadRequest, status_of
from satchel.serving.registry.auth import Identity

COOKIE = "satchel_registry_token"
_MAX_FORM = 64 << 10


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.registry
    return ctx


def _identity(request: Request) -> Identity:
    ctx = _ctx(request)
    token = request.cookies.get(COOKIE)
    header = f"Bearer {token}" if token else request.headers.get("authorization")
    return ctx.tokens.identify(header)


def _governance(ctx: Context, who: Identity) -> Any:
    from satchel.registry.api import Registry
    from satchel.registry.governance import Governance

    # the server's store acting as the signed-in identity; its role counts for approvals
    return Governance(Registry._from_store(ctx.store, who.name), roles=(who.role,))


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (what the UI's forms send), size-bounded; parsed here so
    the server needs no multipart library."""
    from urllib.parse import parse_qs

    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            raise BadRequest(f"a form over {_MAX_FORM} bytes is refused")
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form is not valid urlencoded UTF-8") from None
    return {k: v[0] for k, v in pairs.items()}


def _page(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "img-src data:; form-action 'self'; frame-ancestors 'none'",
        "cache-control": "no-store"})


def _guarded(handler: Any) -> Any:
    """Sign-in redirect for a missing/unknown token; errors as a page (4xx, no trace)."""

    async def endpoint(request: Request) -> Response:
        try:
            who = _identity(request)
        except RegistryAuthError:
            return RedirectResponse("/login", status_code=303)
        try:
            result: Response = await handler(request, who)
            return result
        except SatchelError as exc:
            status, _ = status_of(exc)
            return _page(ui_pages.error(who, status, str(exc).splitlines()[0][:400]), status)

    return endpoint


async def login_form(request: Request) -> Response:
    return _page(ui_pages.login())


async def login(request: Request) -> Response:
    token = (await _form(request)).get("token", "").strip()
    try:
        _ctx(request).tokens.identify(f"Bearer {token}")
    except RegistryAuthError:
        return _page(ui_pages.login("That token is not known to this registry."), 401)
    reply = RedirectResponse("/", status_code=303)
    reply.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                     secure=request.url.scheme == "https", path="/")
    return reply


async def logout(request: Request) -> Response:
    reply = RedirectResponse("/login", status_code=303)
    reply.delete_cookie(COOKIE, path="/")
    return reply


async def home(request: Request, who: Identity) -> Response:
    who.require("reader", "read the registry")
    store = _ctx(request).store
    items = await to_thread.run_sync(lambda: store.search_models(None, max_results=1000))
    return _page(ui_pages.models(who, items))


async def model(request: Request, who: Identity) -> Response:
    who.require("reader", "read the registry")
    name = request.path_params["name"]
    ctx = _ctx(request)

    def load() -> str:
        store = ctx.store
        gov = _governance(ctx, who)
        m = store.get_model(name)
        versions = sorted(store.search_versions(name, max_results=1000),
                          key=lambda v: -v.version)
        policy = gov.get_policy(name)
        can_decide = policy is not None and (
            who.name in policy.approvers + policy.admins or who.role == "admin")
        evaluations = {v.version: gov.evaluations(name, v.version) for v in versions}
        return ui_pages.model(who, m, versions, policy, gov.requests(name), evaluations,
                              store.audit(name, None), store.verify_audit(name), can_decide,
                              request.query_params.get("message"))

    return _page(await to_thread.run_sync(load))


async def evaluation(request: Request, who: Identity) -> Response:
    who.require("reader", "read the registry")
    from satchel.evaluate import report

    ctx = _ctx(request)
    name, eid = request.path_params["name"], int(request.path_params["eid"])
    result = await to_thread.run_sync(lambda: _governance(ctx, who).evaluation(name, eid))
    return _page(await to_thread.run_sync(lambda: report.render(result)))


def _decide(approve: bool) -> Any:
    async def handler(request: Request, who: Identity) -> Response:
        who.require("editor", "approve or reject requests")
        rid = int(request.path_params["rid"])
        form = await _form(request)
        ctx = _ctx(request)
        gov = _governance(ctx, who)

        def run() -> Any:
            if approve:
                return gov.approve(rid, reason=form.get("reason") or None,
                                   override=form.get("override") == "1")
            return gov.reject(rid, form.get("reason", ""))

        req = await to_thread.run_sync(run)
        note = (f"Request {req.id} {req.state}: {req.target_kind} {req.target} → version "
                f"{req.version}")
        return RedirectResponse(f"/models/{quote(req.model, safe='')}?message={quote(note)}",
                                status_code=303)

    return handler


def routes() -> list[Route]:
    """The UI's routes (mounted by ``create_app(extra_routes=...)``)."""
    return [
        Route("/", _guarded(home), methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["GET"]),
        Route("/models/{name}", _guarded(model), methods=["GET"]),
        Route("/models/{name}/evaluations/{eid:int}", _guarded(evaluation), methods=["GET"]),
        Route("/requests/{rid:int}/approve", _guarded(_decide(True)), methods=["POST"]),
        Route("/requests/{rid:int}/reject", _guarded(_decide(False)), methods=["POST"]),
    ]
