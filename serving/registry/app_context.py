"""What every registry route needs: the store, the token table, request parsing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from satchel.serving.registry.app_errors import BadRequest
from satchel.serving.registry.auth import Identity, TokenTable
from satchel.serving.registry.fragments import VersionFragments
from satchel.serving.registry.generation import Generations
from satchel.serving.registry.response_cache import ResponseCache

MAX_JSON = 4 << 20


@dataclass
class Context:
    """The store (a :class:`satchel.registry.sqlstore.SqlStore`), who may use it, the
    read routes' reply cache and the search replies' per-version fragments (per
    process: each worker keeps its own)."""

    store: Any
    tokens: TokenTable
    cache: ResponseCache = field(default_factory=ResponseCache)
    fragments: VersionFragments = field(default_factory=VersionFragments)
    generations: Generations = field(init=False)

    def __post_init__(self) -> None:
        self.generations = Generations(self.store)

    def identify(self, request: Request) -> Identity:
        """The caller's identity from its bearer token (401 when missing or unknown)."""
        return self.tokens.identify(request.headers.get("authorization"))

    async def json_body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object (empty body: ``{}``); size-limited, never echoed."""
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_JSON:
                raise BadRequest(f"a JSON body over {MAX_JSON} bytes is refused")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("the request body must be a JSON object")
        return data

    async def params(self, request: Request) -> dict[str, Any]:
        """Query parameters merged with a JSON body (MLflow's clients send GET requests
        as query strings and other methods as JSON)."""
        merged: dict[str, Any] = {}
        for key in request.query_params:
            values = request.query_params.getlist(key)
            merged[key] = values if len(values) > 1 else values[0]
        if request.method != "GET":
            merged.update(await self.json_body(request))
        return merged
