"""The model registry: versions, aliases, stages, lineage and a hash-chained audit trail.

``satchel.registry.Registry(uri=None)`` is the Python API; ``models:/`` URIs resolve
through it everywhere a model is taken. The database layer (SQLAlchemy, Alembic) is
imported on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from satchel.registry.api import Registry as Registry
    from satchel.registry.api import fetch as fetch
    from satchel.registry.entities import STAGES as STAGES
    from satchel.registry.entities import AuditEntry as AuditEntry
    from satchel.registry.entities import AuditReport as AuditReport
    from satchel.registry.entities import ModelVersion as ModelVersion
    from satchel.registry.entities import RegisteredModel as RegisteredModel
    from satchel.registry.hooks import Change as Change
    from satchel.registry.hooks import Guard as Guard
    from satchel.registry.uri import ModelRef as ModelRef
    from satchel.registry.uri import is_models_uri as is_models_uri
    from satchel.registry.uri import parse as parse

_EXPORTS = {
    "Registry": "satchel.registry.api",
    "fetch": "satchel.registry.api",
    "ModelVersion": "satchel.registry.entities",
    "RegisteredModel": "satchel.registry.entities",
    "AuditEntry": "satchel.registry.entities",
    "AuditReport": "satchel.registry.entities",
    "STAGES": "satchel.registry.entities",
    "Change": "satchel.registry.hooks",
    "Guard": "satchel.registry.hooks",
    "ModelRef": "satchel.registry.uri",
    "parse": "satchel.registry.uri",
    "is_models_uri": "satchel.registry.uri",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'satchel.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
