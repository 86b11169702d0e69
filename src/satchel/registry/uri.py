"""``models:/`` URIs: parse them, and say where the registry lives.

Forms: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/STAGE`` (None,
Staging, Production, Archived, any case) and ``models:/NAME/latest``. Parsing needs no
database and no third-party import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from satchel.errors import RegistryInputError
from satchel.registry import validate as check

SCHEME = "models:"
ENV_URI = "SATCHEL_REGISTRY_URI"
ENV_CACHE = "SATCHEL_CACHE_DIR"
DEFAULT_HOME = "~/.satchel"


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/`` URI: exactly one of version, alias, stage or latest is set."""

    name: str
    version: int | None = None
    alias: str | None = None
    stage: str | None = None
    latest: bool = False

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        if self.stage is not None:
            return f"models:/{self.name}/{self.stage}"
        return f"models:/{self.name}/latest"


def is_models_uri(value: object) -> bool:
    """True for a string that starts with ``models:``."""
    return isinstance(value, str) and value.startswith(SCHEME)


def parse(uri: str) -> ModelRef:
    """Parse a ``models:/`` URI; errors say which form was expected."""
    if not is_models_uri(uri):
        raise RegistryInputError(f"not a models:/ URI: {uri[:60]!r}", field="uri")
    body = uri[len(SCHEME):]
    if body.startswith("//"):
        raise RegistryInputError(
            "models:// URIs with a host or profile are not supported; use "
            "models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/STAGE or "
            "models:/NAME/latest and set SATCHEL_REGISTRY_URI for the registry",
            field="uri",
        )
    body = body.lstrip("/")
    if "/" not in body and "@" in body:
        name, alias = body.rsplit("@", 1)
        return ModelRef(check.name(name), alias=check.alias(alias))
    parts = body.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise RegistryInputError(
            f"malformed models URI {uri[:80]!r}: expected models:/NAME/VERSION, "
            "models:/NAME@ALIAS, models:/NAME/STAGE or models:/NAME/latest",
            field="uri",
        )
    name, selector = check.name(parts[0]), parts[1]
    if selector.isdigit():
        return ModelRef(name, version=check.version(selector))
    if selector.lower() == "latest":
        return ModelRef(name, latest=True)
    try:
        return ModelRef(name, stage=check.stage(selector))
    except RegistryInputError:
        raise RegistryInputError(
            f"models URI {uri[:80]!r}: {selector[:40]!r} is not a version number, a stage "
            "(None, Staging, Production, Archived) or 'latest' (aliases are written "
            "models:/NAME@ALIAS)",
            field="uri",
        ) from None


def default_registry_uri() -> str:
    """``$SATCHEL_REGISTRY_URI``, else SQLite at ``~/.satchel/registry.db``."""
    env = os.environ.get(ENV_URI)
    if env:
        return env
    path = os.path.join(os.path.expanduser(DEFAULT_HOME), "registry.db")
    return f"sqlite:///{path}"


def default_cache_dir() -> str:
    """Where versions downloaded from a registry server are kept, keyed by digest."""
    return os.path.expanduser(os.environ.get(ENV_CACHE) or os.path.join(DEFAULT_HOME, "cache"))


def is_http(uri: str) -> bool:
    """True for a registry server URI."""
    return uri.startswith(("http://", "https://"))
