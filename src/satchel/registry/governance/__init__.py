"""Governance over the registry: per-model promotion policies, evaluation results attached
to versions, and promotion requests that run gates and need a second person's approval
before a protected alias or stage moves.

The policy guard (:func:`satchel.registry.governance.guard.check`) is installed on every
database store when it is opened, so a protected alias cannot be moved around it from
any entry point: only an approved request (or an audited admin override) moves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from satchel.registry.governance.policy import Policy as Policy
    from satchel.registry.governance.service import Governance as Governance
    from satchel.registry.governance.service import PromotionRequest as PromotionRequest

_EXPORTS = {
    "Policy": "satchel.registry.governance.policy",
    "Governance": "satchel.registry.governance.service",
    "PromotionRequest": "satchel.registry.governance.service",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    import importlib

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'satchel.registry.governance' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
