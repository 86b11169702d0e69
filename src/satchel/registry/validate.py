"""Checks on every name, alias, version, stage and tag a registry call is given.

Names end up in ``models:/NAME@ALIAS`` URIs, URLs, file paths and SQL parameters, so
the rules are strict: no ``/``, ``@``, ``\\``, ``:`` or control characters, no ``.`` or
``..``, bounded lengths. Errors name the argument and the rule.
"""

from __future__ import annotations

import re
from typing import Any

from satchel.errors import RegistryInputError
from satchel.registry.entities import STAGES

NAME_MAX = 256
KEY_MAX = 250
VALUE_MAX = 5000
_NAME_BAD = re.compile(r"[/@\\:\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
DESCRIPTION_MAX = 100_000
METADATA_MAX = 100_000


def name(value: Any, *, field: str = "name") -> str:
    """A registered model name: 1-256 printable characters without ``/@\\:``."""
    if not isinstance(value, str) or not value.strip():
        raise RegistryInputError(f"{field} must be a non-empty string", field=field)
    if len(value) > NAME_MAX:
        raise RegistryInputError(
            f"{field} is {len(value)} characters; the limit is {NAME_MAX}",
            field=field,
            limit=str(NAME_MAX),
        )
    if value != value.strip() or value in (".", "..") or _NAME_BAD.search(value):
        raise RegistryInputError(
            f"{field} {_show(value)} is not allowed: names cannot contain '/', '@', '\\', "
            "':' or control characters, be '.' or '..', or start/end with whitespace",
            field=field,
        )
    return value


def alias(value: Any) -> str:
    """An alias: letters, digits, ``_`` and ``-``, not ``latest`` and not ``v<N>``."""
    if not isinstance(value, str) or not value:
        raise RegistryInputError("alias must be a non-empty string", field="alias")
    if len(value) > KEY_MAX:
        raise RegistryInputError(
            f"alias is {len(value)} characters; the limit is {KEY_MAX}",
            field="alias",
            limit=str(KEY_MAX),
        )
    if not _ALIAS.match(value):
        raise RegistryInputError(
            f"alias {_show(value)} is not allowed: use letters, digits, '_' and '-', "
            "starting with a letter or '_'",
            field="alias",
        )
    if value.lower() == "latest" or _VERSION_ALIAS.match(value):
        raise RegistryInputError(
            f"alias {value!r} is reserved (it would read as a version reference)",
            field="alias",
        )
    return value


def version(value: Any) -> int:
    """A version number: a positive integer (``"3"`` is accepted)."""
    if isinstance(value, bool):
        raise RegistryInputError("version must be a positive integer", field="version")
    if isinstance(value, str) and value.isdigit() and len(value) <= 9:
        value = int(value)
    if not isinstance(value, int) or value < 1 or value > 2**31 - 1:
        raise RegistryInputError(
            f"version must be a positive integer, got {_show(value)}", field="version"
        )
    return value


def stage(value: Any) -> str:
    """A stage name, case-insensitive: None, Staging, Production, Archived."""
    if isinstance(value, str):
        for known in STAGES:
            if value.lower() == known.lower():
                return known
    raise RegistryInputError(
        f"stage {_show(value)} is not one of {', '.join(STAGES)}", field="stage"
    )


def tag(key: Any, value: Any) -> tuple[str, str]:
    """A tag: key 1-250 printable characters, value up to 5000 characters."""
    if not isinstance(key, str) or not key.strip() or _CONTROL.search(key):
        raise RegistryInputError(
            "tag key must be a non-empty string without control characters", field="tag"
        )
    if len(key) > KEY_MAX:
        raise RegistryInputError(
            f"tag key is {len(key)} characters; the limit is {KEY_MAX}",
            field="tag",
            limit=str(KEY_MAX),
        )
    if not isinstance(value, str):
        raise RegistryInputError(
            f"tag {key!r}: value must be a string, got {type(value).__name__}", field="tag"
        )
    if len(value) > VALUE_MAX:
        raise RegistryInputError(
            f"tag {key!r}: value is {len(value)} characters; the limit is {VALUE_MAX}",
            field="tag",
            limit=str(VALUE_MAX),
        )
    return key, value


def tags(values: Any) -> dict[str, str]:
    """A mapping of tags (None means none)."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise RegistryInputError("tags must be a mapping of strings", field="tag")
    return dict(tag(k, v) for k, v in values.items())


def description(value: Any) -> str:
    """A description: a string up to 100,000 characters (None means empty)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RegistryInputError("description must be a string", field="description")
    if len(value) > DESCRIPTION_MAX:
        raise RegistryInputError(
            f"description is {len(value)} characters; the limit is {DESCRIPTION_MAX}",
            field="description",
            limit=str(DESCRIPTION_MAX),
        )
    return value


def short_text(value: Any, *, field: str, limit: int = NAME_MAX) -> str | None:
    """An optional short string (run id, git commit, data digest)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or _CONTROL.search(value):
        raise RegistryInputError(
            f"{field} must be a string without control characters", field=field
        )
    if len(value) > limit:
        raise RegistryInputError(
            f"{field} is {len(value)} characters; the limit is {limit}",
            field=field,
            limit=str(limit),
        )
    return value


def _show(value: Any) -> str:
    """A short, safe rendering of a rejected value (never the whole thing)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
