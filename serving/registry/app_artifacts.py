"""MLflow's artifact routes (``/api/2.0/mlflow-artifacts/artifacts``) over the store.

Downloads: a version's download URI is ``<server>/api/2.0/mlflow-artifacts/artifacts/
trees/<digest>``; MLflow's ``HttpArtifactRepository`` lists it (``GET ...?path=``) and
fetches each file (``GET .../trees/<digest>/<file>``). Uploads: MLflow clients ``PUT``
a model directory under ``uploads/<path>`` and then create a version with ``source``
``mlflow-artifacts:/uploads/<path>``; the server registers those files (verified like
any registration) and the upload area is only a staging place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from satchel.errors import RegistryInputError, RegistryNotFoundError
from satchel.registry.artifacts import Tree, check_relpath
from satchel.registry.entities import ModelVersion
from satchel.serving.registry.app_context import Context
from satchel.serving.registry.app_errors import BadRequest
from satchel.serving.registry.auth import Identity

ROOT = "/api/2.0/mlflow-artifacts/artifacts"
MAX_UPLOAD = 8 << 30


def tree_uri(request: Request, digest: str) -> str:
    """The HTTP artifact URI MLflow's client downloads a version from."""
    return f"{str(request.base_url).rstrip('/')}{ROOT}/trees/{digest}"


def _uploads(ctx: Context) -> Path:
    return Path(ctx.store.artifacts.root) / "uploads"


def _split(path: str) -> tuple[str, str]:
    """('trees', rest) or ('uploads', rest) for an artifact path, refusing anything else."""
    path = path.strip("/")
    head, _, rest = path.partition("/")
    if head not in ("trees", "uploads"):
        raise RegistryNotFoundError(f"no artifacts under {path[:60]!r} (trees/ and uploads/ "
                                    "exist)", kind="artifact", name=path[:60])
    if rest:
        check_relpath(rest)
    return head, rest


def _tree_for(ctx: Context, rest: str) -> tuple[Tree, str, str]:
    digest, _, inner = rest.partition("/")
    ctx.store.artifacts.tree_path(digest)  # validates the form
    return ctx.store.tree(digest), digest, inner


def _list_tree(tree: Tree, inner: str) -> list[dict[str, Any]]:
    if inner in tree.files:
        return []  # MLflow's clients expect an empty listing for a file's own path
    prefix = f"{inner}/" if inner else ""
    entries: dict[str, dict[str, Any]] = {}
    for rel, (_, size) in tree.files.items():
        if not rel.startswith(prefix):
            continue
        head, sep, _ = rel[len(prefix):].partition("/")
        if sep:
            entries.setdefault(head, {"path": head, "is_dir": True})
        else:
            entries[head] = {"path": head, "is_dir": False, "file_size": size}
    if inner and not entries:
        raise RegistryNotFoundError(f"no directory {inner[:60]!r} in this version",
                                    kind="artifact", name=inner[:60])
    return sorted(entries.values(), key=lambda e: str(e["path"]))


def _list_dir(root: Path) -> list[dict[str, Any]]:
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if p.is_symlink():
            continue
        if p.is_dir():
            out.append({"path": p.name, "is_dir": True})
        elif p.is_file():
            out.append({"path": p.name, "is_dir": False, "file_size": p.stat().st_size})
    return out


def routes(ctx: Context) -> list[Route]:
    """The artifact routes."""

    async def listing(request: Request) -> Response:
        ctx.identify(request).require("reader", "list artifacts")
        path = request.query_params.get("path", "")
        if not path.strip("/"):
            return JSONResponse({"files": [{"path": "trees", "is_dir": True},
                                           {"path": "uploads", "is_dir": True}]})
        head, rest = _split(path)
        if head == "uploads":
            files = await to_thread.run_sync(lambda: _list_dir(_uploads(ctx) / rest))
            return JSONResponse({"files": files})
        if not rest:
            return JSONResponse({"files": []})
        tree, _, inner = await to_thread.run_sync(lambda: _tree_for(ctx, rest))
        return JSONResponse({"files": _list_tree(tree, inner)})

    async def download(request: Request) -> Response:
        ctx.identify(request).require("reader", "download artifacts")
        head, rest = _split(request.path_params["path"])
        if head == "uploads":
            target = _uploads(ctx) / rest
            if not rest or not target.is_file() or target.is_symlink():
                raise RegistryNotFoundError(f"no uploaded file {rest[:60]!r}",
                                            kind="artifact", name=rest[:60])
            return FileResponse(target, media_type="application/octet-stream")
        tree, digest, inner = await to_thread.run_sync(lambda: _tree_for(ctx, rest))
        entry = tree.files.get(inner)
        if entry is None:
            raise RegistryNotFoundError(f"no file {inner[:60]!r} in version tree "
                                        f"{digest[:12]}", kind="artifact", name=inner[:60])
        return FileResponse(ctx.store.artifacts.blob_path(entry[0]),
                            media_type="application/octet-stream")

    async def upload(request: Request) -> Response:
        ctx.identify(request).require("editor", "upload artifacts")
        head, rest = _split(request.path_params["path"])
        if head != "uploads" or not rest:
            raise BadRequest("uploads go under uploads/<path>; version files are immutable")
        target = _uploads(ctx) / rest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        raise BadRequest(f"an upload over {MAX_UPLOAD} bytes is refused")
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return JSONResponse({}, status_code=200)

    return [
        Route(ROOT, listing, methods=["GET"]),
        Route(ROOT + "/{path:path}", download, methods=["GET"]),
        Route(ROOT + "/{path:path}", upload, methods=["PUT"]),
    ]


def _source_path(source: str) -> str:
    """The artifact path (``uploads/...`` or ``trees/...``) a version source names."""
    if source.startswith("mlflow-artifacts:"):
        path = urlsplit(source).path
    elif source.startswith(("http://", "https://")):
        path = urlsplit(source).path
        if ROOT not in path:
            raise RegistryInputError("source URL is not an artifact of this registry server",
                                     field="source")
        path = path.split(ROOT, 1)[1]
    else:
        path = source
    return unquote(path).strip("/")


def register_source(ctx: Context, who: Identity, *, name: str, source: str,
                    run_id: str | None, tags: dict[str, str],
                    description: str | None) -> ModelVersion:
    """Create a version from files already on this server (an upload, another version's
    tree, or ``models:/NAME/VERSION``); any other source is refused with what works."""
    if not isinstance(source, str) or len(source) > 4096:
        raise RegistryInputError("source must be a string up to 4096 characters",
                                 field="source")
    if source.startswith("runs:/"):
        raise RegistryInputError(
            f"source {source[:120]!r} is a run of an MLflow tracking store this registry "
            "server cannot see; register from the machine that has it (satchel registry "
            "register runs:/RUN_ID/PATH --mlflow-tracking-uri file:./mlruns --registry-uri "
            "THIS_SERVER), or upload the files and use mlflow-artifacts:/uploads/<path>",
            field="source")
    if source.startswith("models:/"):
        from satchel.registry.uri import parse

        ref = parse(source)
        if ref.version is None:
            raise RegistryInputError("a models:/ source must name a version number",
                                     field="source")
        existing = ctx.store.get_version(ref.name, ref.version)
        made: ModelVersion = ctx.store.register_tree(
            ctx.store.tree(existing.digest), name, actor=who.name, source=source,
            run_id=run_id, tags=tags, description=description)
        return made
    head, rest = _split(_source_path(source))
    if head == "trees":
        tree, _, _ = _tree_for(ctx, rest)
        same: ModelVersion = ctx.store.register_tree(
            tree, name, actor=who.name, source=source, run_id=run_id, tags=tags,
            description=description)
        return same
    staged = _uploads(ctx) / rest
    if not rest or not staged.is_dir():
        raise RegistryInputError(
            f"source {source[:80]!r} is not an uploaded model directory on this server; "
            "upload the files with PUT /api/2.0/mlflow-artifacts/artifacts/uploads/<path> and "
            "use source mlflow-artifacts:/uploads/<path>",
            field="source",
        )
    version: ModelVersion = ctx.store.register(
        staged, name, actor=who.name, source=source, run_id=run_id, tags=tags,
        description=description)
    # The files now live content-addressed; the staging copy is no longer needed.
    shutil.rmtree(staged, ignore_errors=True)
    return version
