"""satchel's own registry API (what ``Registry("http://...")`` speaks).

``POST /api/satchel/v1/call/{method}`` with the method's keyword arguments as a JSON
object returns ``{"result": ...}``; files travel as content-addressed blobs
(``HEAD/PUT/GET /api/satchel/v1/blobs/{sha256}``) and trees
(``GET /api/satchel/v1/trees/{digest}``), so a client uploads only what the server
lacks and verifies what it downloads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from satchel.errors import RegistryNotFoundError
from satchel.registry.artifacts import Tree, check_relpath
from satchel.serving.registry.app_context import Context
from satchel.serving.registry.app_errors import BadRequest

PREFIX = "/api/satchel/v1"

# method -> (role, keyword arguments it accepts); identity comes from the token.
READS = {
    "get_model": ("name",),
    "get_version": ("name", "version"),
    "get_version_by_alias": ("name", "alias"),
    "get_latest_version": ("name", "stage"),
    "search_models": ("name_like", "tags", "alias", "max_results", "offset"),
    "search_versions": ("name", "name_like", "stage", "tags", "alias", "run_id", "digest",
                        "max_results", "offset"),
    "audit": ("name", "limit"),
    "verify_audit": ("name",),
}
WRITES = {
    "create_model": ("name", "description", "tags"),
    "register_tree": ("files", "name", "source", "description", "tags", "run_id",
                      "git_commit", "training_data_digest", "metadata"),
    "set_model_description": ("name", "description"),
    "set_model_tag": ("name", "key", "value"),
    "delete_model_tag": ("name", "key"),
    "set_version_description": ("name", "version", "description"),
    "set_version_tag": ("name", "version", "key", "value"),
    "delete_version_tag": ("name", "version", "key"),
    "set_stage": ("name", "version", "stage", "archive_existing_versions"),
    "set_alias": ("name", "alias", "version"),
    "delete_alias": ("name", "alias"),
}
# Admin only: deleting, and renaming (it frees a name that others resolve, like a delete).
DELETES = {"delete_version": ("name", "version"), "delete_model": ("name",),
           "rename_model": ("name", "new_name")}
MAX_BLOB = 8 << 30


def to_json(value: Any) -> Any:
    """Entities and lists of them as JSON-ready values."""
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def routes(ctx: Context) -> list[Route]:
    """The native API's routes over ``ctx``'s store."""

    async def call(request: Request) -> Response:
        method = request.path_params["method"]
        if method in READS:
            role, allowed = "reader", READS[method]
        elif method in WRITES:
            role, allowed = "editor", WRITES[method]
        elif method in DELETES:
            role, allowed = "admin", DELETES[method]
        else:
            raise RegistryNotFoundError(f"no registry method {method[:60]!r}",
                                        kind="method", name=method[:60])
        identity = ctx.identify(request)
        identity.require(role, method.replace("_", " "))
        kwargs = await ctx.json_body(request)
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise BadRequest(f"{method} does not take {', '.join(k[:40] for k in unknown)}")
        fn: Callable[..., Any] = getattr(ctx.store, method)
        if method == "register_tree":
            kwargs["tree"] = _tree(kwargs.pop("files", None))
        if role != "reader":
            kwargs["actor"] = identity.name
        if role == "reader" and method.startswith("get_") and ctx.store.engine.dialect.name \
                == "sqlite":
            # One-row SQLite reads cost less on the loop than the hop to a thread.
            return JSONResponse({"result": to_json(fn(**kwargs))})
        result = await to_thread.run_sync(lambda: fn(**kwargs))
        return JSONResponse({"result": to_json(result)})

    async def blob_head(request: Request) -> Response:
        ctx.identify(request).require("reader", "read files")
        exists = ctx.store.artifacts.has_blob(request.path_params["sha"])
        return Response(status_code=200 if exists else 404)

    async def blob_get(request: Request) -> Response:
        ctx.identify(request).require("reader", "read files")
        sha = request.path_params["sha"]
        path = ctx.store.artifacts.blob_path(sha)
        if not path.is_file():
            raise RegistryNotFoundError(f"no file with sha256 {sha[:12]}...", kind="blob",
                                        name=sha)
        return FileResponse(path, media_type="application/octet-stream")

    async def blob_put(request: Request) -> Response:
        ctx.identify(request).require("editor", "upload files")
        sha = request.path_params["sha"]
        ctx.store.artifacts.blob_path(sha)  # validate the digest's form first
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BLOB:
                    raise BadRequest(f"a file over {MAX_BLOB} bytes is refused")
                spool.write(chunk)
            spool.seek(0)
            await to_thread.run_sync(lambda: ctx.store.artifacts.put_blob(spool, sha))
        return JSONResponse({"sha256": sha, "size": size}, status_code=201)

    async def tree_get(request: Request) -> Response:
        ctx.identify(request).require("reader", "read files")
        digest = request.path_params["digest"]
        ctx.store.artifacts.tree_path(digest)  # validates the form
        tree = await to_thread.run_sync(lambda: ctx.store.tree(digest))
        return JSONResponse({"digest": digest,
                             "files": {k: list(v) for k, v in tree.files.items()}})

    return [
        Route(f"{PREFIX}/call/{{method}}", call, methods=["POST"]),
        Route(f"{PREFIX}/blobs/{{sha}}", blob_get, methods=["GET"]),
        Route(f"{PREFIX}/blobs/{{sha}}", blob_head, methods=["HEAD"]),
        Route(f"{PREFIX}/blobs/{{sha}}", blob_put, methods=["PUT"]),
        Route(f"{PREFIX}/trees/{{digest}}", tree_get, methods=["GET"]),
    ]


def _tree(files: Any) -> Tree:
    if not isinstance(files, dict) or not files:
        raise BadRequest("register_tree needs files: {path: [sha256, size]}")
    out: dict[str, tuple[str, int]] = {}
    for rel, entry in files.items():
        if (not isinstance(rel, str) or not isinstance(entry, list) or len(entry) != 2
                or not isinstance(entry[0], str) or not isinstance(entry[1], int)):
            raise BadRequest("files must map each path to [sha256, size]")
        out[check_relpath(rel)] = (entry[0], entry[1])
    return Tree(out)
