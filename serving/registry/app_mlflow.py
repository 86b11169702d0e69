"""MLflow's model registry REST API (``/api/2.0/mlflow/...``) over the core store.

Shapes follow MLflow's ``model_registry.proto`` JSON: versions are strings, times are
milliseconds, tags are ``[{key, value}]``, aliases of a model are ``[{alias, version}]``.
An unmodified ``mlflow.MlflowClient(registry_uri="http://...")`` creates models and
versions, moves aliases and stages, searches, and downloads a version's files through
the artifact routes in :mod:`satchel.serving.registry.app_artifacts`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from satchel.registry.entities import ModelVersion, RegisteredModel
from satchel.registry.search import LISTED, ROW_ID
from satchel.serving.registry import mlflow_filter
from satchel.serving.registry.app_context import Context
from satchel.serving.registry.app_errors import BadRequest
from satchel.serving.registry.auth import Identity
from satchel.serving.registry.response_cache import render, request_key

API = "/api/2.0/mlflow"
Handler = Callable[[Context, Identity, dict[str, Any], Request], Any]
DEFAULT_PAGE = 100


def version_json(v: ModelVersion, base: str) -> dict[str, Any]:
    """A version in MLflow's JSON form."""
    return {
        "name": v.name,
        "version": str(v.version),
        "creation_timestamp": v.created_at,
        "last_updated_timestamp": v.updated_at,
        "user_id": v.created_by,
        "current_stage": v.stage,
        "description": v.description,
        "source": v.source,
        "run_id": v.run_id or "",
        "status": "READY",
        "tags": [{"key": k, "value": val} for k, val in v.tags.items()],
        "aliases": list(v.aliases),
        "run_link": "",
    }


def model_json(m: RegisteredModel, latest: list[ModelVersion], base: str) -> dict[str, Any]:
    """A registered model in MLflow's JSON form."""
    out: dict[str, Any] = {
        "name": m.name,
        "creation_timestamp": m.created_at,
        "last_updated_timestamp": m.updated_at,
        "description": m.description,
        "tags": [{"key": k, "value": v} for k, v in m.tags.items()],
        "aliases": [{"alias": a, "version": str(n)} for a, n in m.aliases.items()],
    }
    if latest:
        out["latest_versions"] = [version_json(v, base) for v in latest]
    return out


def _req(params: dict[str, Any], key: str) -> Any:
    value = params.get(key)
    if value is None or value == "":
        raise BadRequest(f"missing value for required parameter '{key}'")
    return value


def _tags(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise BadRequest("tags must be a list of {key, value} objects")
    return {str(t.get("key")): t.get("value", "") for t in raw}


def _page(params: dict[str, Any]) -> tuple[int, int]:
    raw_size = params.get("max_results") or DEFAULT_PAGE
    raw_token = params.get("page_token") or 0
    try:
        size = int(raw_size)
    except (TypeError, ValueError):
        raise BadRequest("max_results must be an integer from 1 to 10000") from None
    if size < 1 or size > 10_000:
        raise BadRequest("max_results must be an integer from 1 to 10000")
    # A page token is the offset this server put in next_page_token; anything else
    # (including a number too long for the database's OFFSET) is refused by name.
    try:
        offset = int(raw_token) if len(str(raw_token)) <= _TOKEN_DIGITS else -1
    except (TypeError, ValueError):
        offset = -1
    if offset < 0:
        raise BadRequest("page_token is not a page token this server returned "
                         "(a non-negative integer from next_page_token)")
    return size, offset


_TOKEN_DIGITS = 15


def _latest(store: Any, name: str) -> list[ModelVersion]:
    # MLflow lists the newest version of each stage as latest_versions.
    seen: dict[str, ModelVersion] = {}
    for v in store.search_versions(name, max_results=10_000):
        seen.setdefault(v.stage, v)
    return list(seen.values())


# ---------------------------------------------------------------- registered models

def create_model(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    m = ctx.store.create_model(_req(p, "name"), actor=who.name,
                               description=p.get("description"), tags=_tags(p.get("tags")))
    return {"registered_model": model_json(m, [], str(r.base_url))}


def get_model(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    m = ctx.store.get_model(_req(p, "name"))
    return {"registered_model": model_json(m, _latest(ctx.store, m.name), str(r.base_url))}


def update_model(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    m = ctx.store.set_model_description(_req(p, "name"), p.get("description") or "",
                                        actor=who.name)
    return {"registered_model": model_json(m, [], str(r.base_url))}


def rename_model(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    m = ctx.store.rename_model(_req(p, "name"), _req(p, "new_name"), actor=who.name)
    return {"registered_model": model_json(m, _latest(ctx.store, m.name), str(r.base_url))}


def delete_model(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    ctx.store.delete_model(_req(p, "name"), actor=who.name)
    return {}


def search_models(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    f = mlflow_filter.parse(p.get("filter"))
    if f.run_id or f.version or f.source:
        raise BadRequest("registered models can be filtered by name and tags only")
    size, offset = _page(p)
    pattern = f.name_like if f.name_like is not None else f.name
    found = ctx.store.search_models(pattern, tags=f.tags or None, max_results=size + 1,
                                    offset=offset)
    out: dict[str, Any] = {"registered_models": [
        model_json(m, _latest(ctx.store, m.name), str(r.base_url)) for m in found[:size]
        if f.keeps(m.tags)]}
    if len(found) > size:
        out["next_page_token"] = str(offset + size)
    return out


def latest_versions(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    name = _req(p, "name")
    stages = p.get("stages") or []
    if isinstance(stages, str):
        stages = [stages]
    latest = _latest(ctx.store, ctx.store.get_model(name).name)
    if stages:
        wanted = {s.lower() for s in stages}
        latest = [v for v in latest if v.stage.lower() in wanted]
    return {"model_versions": [version_json(v, str(r.base_url)) for v in latest]}


def set_model_tag(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    ctx.store.set_model_tag(_req(p, "name"), _req(p, "key"), p.get("value", ""),
                            actor=who.name)
    return {}


def delete_model_tag(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    ctx.store.delete_model_tag(_req(p, "name"), _req(p, "key"), actor=who.name)
    return {}


def set_alias(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    ctx.store.set_alias(_req(p, "name"), _req(p, "alias"), _req(p, "version"), actor=who.name)
    return {}


def delete_alias(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    ctx.store.delete_alias(_req(p, "name"), _req(p, "alias"), actor=who.name)
    return {}


def get_by_alias(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    v = ctx.store.get_version_by_alias(_req(p, "name"), _req(p, "alias"))
    return {"model_version": version_json(v, str(r.base_url))}


# ---------------------------------------------------------------- model versions

def create_version(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    from satchel.serving.registry.app_artifacts import register_source

    v = register_source(ctx, who, name=_req(p, "name"), source=_req(p, "source"),
                        run_id=p.get("run_id") or None, tags=_tags(p.get("tags")),
                        description=p.get("description"))
    return {"model_version": version_json(v, str(r.base_url))}


def get_version(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    v = ctx.store.get_version(_req(p, "name"), _req(p, "version"))
    return {"model_version": version_json(v, str(r.base_url))}


def update_version(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    v = ctx.store.set_version_description(_req(p, "name"), _req(p, "version"),
                                          p.get("description") or "", actor=who.name)
    return {"model_version": version_json(v, str(r.base_url))}


def delete_version(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    ctx.store.delete_version(_req(p, "name"), _req(p, "version"), actor=who.name)
    return {}


def search_versions(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    # Rendered from the database's rows, each version's JSON reused while its row, tags
    # and aliases are unchanged (see fragments): no entities are built.
    f = mlflow_filter.parse(p.get("filter"))
    size, offset = _page(p)
    found = ctx.store.version_rows(f.name, name_like=f.name_like, run_id=f.run_id,
                                   tags=f.tags or None, max_results=size + 1,
                                   offset=offset)
    rows = found.rows
    if f.version is not None:
        rows = [x for x in rows if x[_VERSION] == f.version]
    if f.source is not None:
        rows = [x for x in rows if x[_SOURCE] == f.source]
    page = rows[:size]
    if f.tags_not:
        page = [x for x in page if f.keeps(found.tags.get(x[ROW_ID]) or {})]
    body = b'{"model_versions":' + ctx.fragments.array(page, found.tags, found.aliases)
    if len(rows) > size:
        body += b',"next_page_token":"%d"' % (offset + size)
    return body + b"}"


_VERSION = LISTED.index("version")
_SOURCE = LISTED.index("source")


def download_uri(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    from satchel.serving.registry.app_artifacts import tree_uri

    v = ctx.store.get_version(_req(p, "name"), _req(p, "version"))
    return {"artifact_uri": tree_uri(r, v.digest)}


def transition_stage(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    archive = p.get("archive_existing_versions", False)
    if isinstance(archive, str):
        archive = archive.lower() == "true"
    v = ctx.store.set_stage(_req(p, "name"), _req(p, "version"), _req(p, "stage"),
                            actor=who.name, archive_existing_versions=bool(archive))
    return {"model_version": version_json(v, str(r.base_url))}


def set_version_tag(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    ctx.store.set_version_tag(_req(p, "name"), _req(p, "version"), _req(p, "key"),
                              p.get("value", ""), actor=who.name)
    return {}


def delete_version_tag(ctx: Context, who: Identity, p: dict[str, Any], r: Request) -> Any:
    ctx.store.delete_version_tag(_req(p, "name"), _req(p, "version"), _req(p, "key"),
                                 actor=who.name)
    return {}


# Reads whose reply depends on the request's parameters and the registry's contents only
# (not on the caller or the URL it used): their rendered bodies are cached per registry
# generation (see response_cache and generation).
CACHED_READS = {get_by_alias, get_version, search_models, search_versions, get_model,
                latest_versions}
# The download URI names the server as the client reached it: not cached, but a
# single-row SQLite read, answered on the loop.
QUICK_READS = {download_uri}

# path, methods, role, handler
TABLE: tuple[tuple[str, tuple[str, ...], str, Handler], ...] = (
    # the hot reads first: starlette tries routes in order
    ("/registered-models/alias", ("GET",), "reader", get_by_alias),
    ("/model-versions/get", ("GET",), "reader", get_version),
    ("/registered-models/create", ("POST",), "editor", create_model),
    ("/registered-models/get", ("GET",), "reader", get_model),
    ("/registered-models/update", ("PATCH",), "editor", update_model),
    # admin: a rename frees the old name, which deployments resolve (like a delete)
    ("/registered-models/rename", ("POST",), "admin", rename_model),
    ("/registered-models/delete", ("DELETE",), "admin", delete_model),
    ("/registered-models/search", ("GET",), "reader", search_models),
    ("/registered-models/list", ("GET",), "reader", search_models),
    ("/registered-models/get-latest-versions", ("GET", "POST"), "reader", latest_versions),
    ("/registered-models/set-tag", ("POST",), "editor", set_model_tag),
    ("/registered-models/delete-tag", ("DELETE",), "editor", delete_model_tag),
    ("/registered-models/alias", ("POST",), "editor", set_alias),
    ("/registered-models/alias", ("DELETE",), "editor", delete_alias),
    ("/model-versions/create", ("POST",), "editor", create_version),
    ("/model-versions/update", ("PATCH",), "editor", update_version),
    ("/model-versions/delete", ("DELETE",), "admin", delete_version),
    ("/model-versions/search", ("GET",), "reader", search_versions),
    ("/model-versions/get-download-uri", ("GET",), "reader", download_uri),
    ("/model-versions/transition-stage", ("POST",), "editor", transition_stage),
    ("/model-versions/set-tag", ("POST",), "editor", set_version_tag),
    ("/model-versions/delete-tag", ("DELETE",), "editor", delete_version_tag),
)


def _endpoint(ctx: Context, role: str, handler: Handler) -> Callable[[Request],
                                                                     Awaitable[Response]]:
    action = handler.__name__.replace("_", " ")
    # Single-row SQLite reads take well under a millisecond: on the loop they cost less
    # than the hop to a worker thread. Searches, writes (which may wait for the write
    # lock) and every PostgreSQL call (a network round trip) run in threads so the loop
    # keeps answering.
    inline = handler in QUICK_READS and ctx.store.engine.dialect.name == "sqlite"
    cached = handler in CACHED_READS
    route = handler.__name__

    async def endpoint(request: Request) -> Response:
        who = ctx.identify(request)
        who.require(role, action)
        params = await ctx.params(request)
        if cached and request.method == "GET":
            key = request_key(route, params)
            generation = await ctx.generations.read()
            body = ctx.cache.get(key, generation)
            if body is None:
                body = await to_thread.run_sync(
                    lambda: _render(who, params, request, key, generation))
            return Response(body, media_type="application/json")
        if inline:
            result = handler(ctx, who, params, request)
        else:
            result = await to_thread.run_sync(lambda: handler(ctx, who, params, request))
        if isinstance(result, bytes):  # a reply rendered by the handler itself
            return Response(result, media_type="application/json")
        return result if isinstance(result, Response) else JSONResponse(result)

    def _render(who: Identity, params: dict[str, Any], request: Request, key: Any,
                generation: int) -> bytes:
        # Computed after the generation was read: a change landing meanwhile is stored
        # under the older generation, which the database no longer reports, so the next
        # read computes again.
        result = handler(ctx, who, params, request)
        body = result if isinstance(result, bytes) else render(result)
        ctx.cache.put(key, generation, body)
        return body

    return endpoint


def routes(ctx: Context) -> list[Route]:
    """Every MLflow registry route, under ``/api/2.0/mlflow`` and ``/ajax-api/2.0/mlflow``."""
    out = []
    for prefix in (API, "/ajax-api/2.0/mlflow"):
        for path, methods, role, handler in TABLE:
            out.append(Route(prefix + path, _endpoint(ctx, role, handler), methods=list(methods)))
    return out
