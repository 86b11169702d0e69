"""Error classes -> HTTP status and MLflow error code, and the JSON error reply.

Replies never carry a stack trace or echo the request; messages are the errors' own
one-line texts (which name what exists, the field, the limit).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from satchel.errors import (
    IntegrityError,
    ModelFormatError,
    PolicyError,
    RegistryAuthError,
    RegistryConflictError,
    RegistryInputError,
    RegistryNotFoundError,
    RegistrySchemaError,
    RegistryUnavailableError,
    SatchelError,
)

log = logging.getLogger("satchel.serving.registry")


class BadRequest(SatchelError):
    """The request itself is malformed (not JSON, a missing or mistyped field)."""


def status_of(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, MLflow error code) for an error."""
    if isinstance(exc, RegistryAuthError):
        return (401, "UNAUTHENTICATED") if exc.missing_identity else (403, "PERMISSION_DENIED")
    if isinstance(exc, RegistryNotFoundError):
        return 404, "RESOURCE_DOES_NOT_EXIST"
    if isinstance(exc, RegistryConflictError):
        if "already exists" in str(exc):
            return 409, "RESOURCE_ALREADY_EXISTS"
        return 409, "INVALID_STATE"
    if isinstance(exc, PolicyError):
        return 409, "INVALID_STATE"
    if isinstance(exc, (RegistryInputError, BadRequest, IntegrityError, ModelFormatError)):
        return 400, "INVALID_PARAMETER_VALUE"
    if isinstance(exc, (RegistryUnavailableError, RegistrySchemaError)):
        return 503, "TEMPORARILY_UNAVAILABLE"
    if isinstance(exc, SatchelError):
        return 400, "BAD_REQUEST"
    return 500, "INTERNAL_ERROR"


def error_reply(exc: BaseException) -> JSONResponse:
    """The JSON reply for an error: ``{"error_code", "message", ...}`` plus structured
    fields satchel's own client uses to raise the same class again."""
    status, code = status_of(exc)
    body: dict[str, Any] = {"error_code": code}
    if status == 500:
        log.error("registry server error: %s: %s", type(exc).__name__, exc)
        body["message"] = "internal error in the registry server (see its log)"
    else:
        body["message"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        body["error_class"] = type(exc).__name__
        for attr in ("field", "limit", "kind", "name", "available", "checks", "file"):
            if hasattr(exc, attr):
                body[attr] = getattr(exc, attr)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def handle(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler."""
    return error_reply(exc)
