"""``Registry("http://host:port")``: the same operations against a registry server.

Speaks the server's native API (``/api/satchel/v1``) over the standard library's HTTP
client, one kept-alive connection per thread. Reads are retried with exponential
backoff when the server is unreachable or answers 502/503/504; writes are retried only
when the connection was refused (the request never reached the server), so a write is
never applied twice. After the last attempt: RegistryUnavailableError naming the
server and the attempts. Files move as content-addressed blobs: registering uploads only
blobs the server lacks, and a download is verified blob by blob into the local cache
(``$SATCHEL_CACHE_DIR``, default ``~/.satchel/cache``) before it is used.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from satchel import errors
from satchel._fs import verify_digests
from satchel.errors import IntegrityError, RegistryError, RegistryUnavailableError
from satchel.manifest import Manifest
from satchel.registry import uri as uris
from satchel.registry.artifacts import ArtifactStore, Tree, tree_digest
from satchel.registry.entities import AuditEntry, AuditReport, ModelVersion, RegisteredModel

API = "/api/satchel/v1"
_RETRY_STATUS = (502, 503, 504)


class _Http:
    def __init__(self, base: str, token: str | None, retries: int, backoff: float,
                 timeout: float) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.RegistryInputError("registry server URI must be http(s)://host:port",
                                            field="registry_uri")
        self.base = base.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = (http.client.HTTPSConnection if self.scheme == "https"
                   else http.client.HTTPConnection)
            conn = cls(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def request(self, method: str, path: str, body: bytes | Any = None, *,
                idempotent: bool, content_type: str = "application/json",
                stream: bool = False) -> http.client.HTTPResponse:
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 5.0))
                if hasattr(body, "seek"):
                    body.seek(0)
            try:
                conn = self._conn()
                conn.request(method, self.prefix + path, body=body, headers=headers)
                resp = conn.getresponse()
            except ConnectionRefusedError as exc:
                self._drop()
                last = exc
                continue
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                last = exc
                if idempotent:
                    continue
                break
            if resp.status in _RETRY_STATUS and idempotent and attempt < self.retries:
                resp.read()
                last = ConnectionError(f"HTTP {resp.status}")
                continue
            if not stream and resp.status < 400:
                return resp
            return resp
        reason = type(last).__name__ if last is not None else "no answer"
        raise RegistryUnavailableError(
            f"the registry server {self.base} did not answer after {self.retries + 1} "
            f"attempts ({reason}: {str(last)[:120]})"
        )


def _raise(status: int, payload: bytes) -> None:
    try:
        body = json.loads(payload)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or f"registry server answered HTTP {status}")
    cls = body.get("error_class")
    if status == 401 or (status == 403 and cls == "RegistryAuthError"):
        raise errors.RegistryAuthError(message, missing_identity=status == 401)
    if cls == "RegistryNotFoundError" or status == 404:
        raise errors.RegistryNotFoundError(message, kind=str(body.get("kind") or "model"),
                                           name=str(body.get("name") or ""),
                                           available=body.get("available") or [])
    if cls == "RegistryConflictError":
        raise errors.RegistryConflictError(message)
    if cls == "PolicyError":
        raise errors.PolicyError(message, checks=body.get("checks") or [])
    if cls == "IntegrityError":
        raise IntegrityError(message, file=str(body.get("file") or ""))
    if cls == "RegistrySchemaError":
        raise errors.RegistrySchemaError(message)
    if status >= 500:
        raise RegistryUnavailableError(message)
    raise errors.RegistryInputError(message, field=str(body.get("field") or "request"),
                                    limit=body.get("limit"))


class HttpStore:
    """A registry server behind the store interface of :class:`SqlStore`."""

    def __init__(self, url: str, *, token: str | None = None, retries: int | None = None,
                 backoff: float = 0.2, timeout: float = 60.0,
                 cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.url = url
        env_retries = os.environ.get("SATCHEL_REGISTRY_RETRIES")
        self.http = _Http(
            url, token or os.environ.get("SATCHEL_REGISTRY_TOKEN") or None,
            retries if retries is not None else int(env_retries or 4), backoff, timeout,
        )
        self.cache = ArtifactStore(cache_dir or uris.default_cache_dir())
        self.guards: list[Any] = []

    # --------------------------------------------------------------- plumbing

    def call(self, method: str, *, write: bool = False, **kwargs: Any) -> Any:
        """Call a store method on the server; returns the decoded result."""
        body = json.dumps({k: v for k, v in kwargs.items() if v is not None})
        resp = self.http.request("POST", f"{API}/call/{method}", body.encode("utf-8"),
                                 idempotent=not write)
        payload = resp.read()
        if resp.status >= 400:
            _raise(resp.status, payload)
        return json.loads(payload)["result"]

    def dispose(self) -> None:
        """Close this thread's connection."""
        self.http._drop()

    # --------------------------------------------------------------- reads

    def get_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.from_dict(self.call("get_model", name=name))

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        return ModelVersion.from_dict(self.call("get_version", name=name, version=version))

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return ModelVersion.from_dict(self.call("get_version_by_alias", name=name, alias=alias))

    def get_latest_version(self, name: str, stage: str | None = None) -> ModelVersion:
        return ModelVersion.from_dict(self.call("get_latest_version", name=name, stage=stage))

    def search_models(self, name_like: str | None = None, **kw: Any) -> list[RegisteredModel]:
        return [RegisteredModel.from_dict(d)
                for d in self.call("search_models", name_like=name_like, **kw)]

    def search_versions(self, name: str | None = None, **kw: Any) -> list[ModelVersion]:
        return [ModelVersion.from_dict(d) for d in self.call("search_versions", name=name, **kw)]

    def audit(self, name: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        return [AuditEntry.from_dict(d) for d in self.call("audit", name=name, limit=limit)]

    def verify_audit(self, name: str | None = None) -> AuditReport:
        d = self.call("verify_audit", name=name)
        return AuditReport(ok=d["ok"], entries=d["entries"], problems=tuple(d["problems"]))

    # --------------------------------------------------------------- writes

    def _write(self, method: str, **kwargs: Any) -> Any:
        kwargs.pop("actor", None)  # the server records the token's identity
        kwargs.pop("context", None)
        return self.call(method, write=True, **kwargs)

    def create_model(self, name: str, **kw: Any) -> RegisteredModel:
        return RegisteredModel.from_dict(self._write("create_model", name=name, **kw))

    def set_model_description(self, name: str, description: str, **kw: Any) -> RegisteredModel:
        return RegisteredModel.from_dict(self._write("set_model_description", name=name,
                                                     description=description, **kw))

    def set_model_tag(self, name: str, key: str, value: str, **kw: Any) -> None:
        self._write("set_model_tag", name=name, key=key, value=value, **kw)

    def delete_model_tag(self, name: str, key: str, **kw: Any) -> None:
        self._write("delete_model_tag", name=name, key=key, **kw)

    def delete_model(self, name: str, **kw: Any) -> None:
        self._write("delete_model", name=name, **kw)

    def rename_model(self, name: str, new_name: str, **kw: Any) -> RegisteredModel:
        return RegisteredModel.from_dict(self._write("rename_model", name=name,
                                                     new_name=new_name, **kw))

    def set_version_description(self, name: str, version: int | str, description: str,
                                **kw: Any) -> ModelVersion:
        return ModelVersion.from_dict(self._write(
            "set_version_description", name=name, version=version, description=description,
            **kw))

    def set_version_tag(self, name: str, version: int | str, key: str, value: str,
                        **kw: Any) -> None:
        self._write("set_version_tag", name=name, version=version, key=key, value=value, **kw)

    def delete_version_tag(self, name: str, version: int | str, key: str, **kw: Any) -> None:
        self._write("delete_version_tag", name=name, version=version, key=key, **kw)

    def set_stage(self, name: str, version: int | str, stage: str, **kw: Any) -> ModelVersion:
        return ModelVersion.from_dict(self._write("set_stage", name=name, version=version,
                                                  stage=stage, **kw))

    def set_alias(self, name: str, alias: str, version: int | str, **kw: Any) -> ModelVersion:
        return ModelVersion.from_dict(self._write("set_alias", name=name, alias=alias,
                                                  version=version, **kw))

    def delete_alias(self, name: str, alias: str, **kw: Any) -> None:
        self._write("delete_alias", name=name, alias=alias, **kw)

    def delete_version(self, name: str, version: int | str, **kw: Any) -> None:
        self._write("delete_version", name=name, version=version, **kw)

    def register(self, path: str | os.PathLike[str], name: str, *,
                 source: str | None = None, metadata: Mapping[str, Any] | None = None,
                 **kw: Any) -> ModelVersion:
        """Upload the blobs the server lacks, then record the version."""
        root = Path(path).expanduser().absolute()
        manifest = Manifest.read(root)
        if manifest.artifact_digests:
            verify_digests(root, manifest.artifact_digests)
        files: dict[str, tuple[str, int]] = {}
        from satchel.registry.artifacts import _walk

        for file, rel in _walk(root):
            files[rel] = (_sha256(file), file.stat().st_size)
        for rel, (sha, _) in files.items():
            head = self.http.request("HEAD", f"{API}/blobs/{sha}", idempotent=True)
            head.read()
            if head.status == 200:
                continue
            with open(root / rel, "rb") as f:
                resp = self.http.request("PUT", f"{API}/blobs/{sha}", f, idempotent=True,
                                         content_type="application/octet-stream")
                payload = resp.read()
            if resp.status >= 400:
                _raise(resp.status, payload)
        return ModelVersion.from_dict(self._write(
            "register_tree", files={k: list(v) for k, v in files.items()}, name=name,
            source=source if source is not None else str(root),
            metadata=dict(metadata) if metadata else None, **kw))

    # --------------------------------------------------------------- files

    def tree(self, digest: str) -> Tree:
        resp = self.http.request("GET", f"{API}/trees/{quote(digest)}", idempotent=True)
        payload = resp.read()
        if resp.status >= 400:
            _raise(resp.status, payload)
        data = json.loads(payload)
        return Tree({str(k): (str(v[0]), int(v[1])) for k, v in data["files"].items()})

    def local_path(self, version: ModelVersion) -> Path:
        """The version's files in the local cache, downloaded and verified on first use."""
        cached = self.cache.tree_path(version.digest)
        if cached.is_dir():
            return cached
        tree = self.tree(version.digest)
        if tree_digest(tree.files) != version.digest:
            raise IntegrityError(
                f"the server's file list for {version.name} version {version.version} does "
                "not match its digest; refused, nothing cached", file="(file list)")
        fetched: list[str] = []
        try:
            for rel, (sha, _) in tree.files.items():
                if self.cache.has_blob(sha):
                    continue
                resp = self.http.request("GET", f"{API}/blobs/{sha}", idempotent=True,
                                         stream=True)
                if resp.status >= 400:
                    _raise(resp.status, resp.read())
                try:
                    self.cache.put_blob(resp, expected=sha)
                except IntegrityError:
                    raise IntegrityError(
                        f"{rel} of {version.name} version {version.version} failed "
                        "verification on download; refused, nothing cached", file=rel
                    ) from None
                fetched.append(sha)
            return self.cache.materialize(tree)
        except BaseException:
            # A version that fails half-way leaves nothing of itself in the cache.
            for sha in fetched:
                self.cache.blob_path(sha).unlink(missing_ok=True)
            raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["HttpStore", "RegistryError"]
