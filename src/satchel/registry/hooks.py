"""Policy hooks: functions that may refuse a registry change before it is applied.

Every change passes through :meth:`SqlStore._apply <satchel.registry.sqlstore.SqlStore>`,
which builds a :class:`Change` and calls each registered guard inside the write
transaction, after the current state was read under lock and before anything is
written. A guard refuses by raising :class:`satchel.errors.PolicyError` (the whole
change is rolled back, nothing is audited). Governance (protected aliases, approvals,
promotion gates) plugs in here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Change:
    """A change about to be applied.

    Attributes:
        action: ``create_model``, ``register``, ``set_alias``, ``delete_alias``,
            ``set_stage``, ``set_model_tag``, ``delete_model_tag``, ``set_version_tag``,
            ``delete_version_tag``, ``set_model_description``,
            ``set_version_description``, ``delete_version``, ``delete_model``,
            ``rename_model`` (its ``model`` is the new name, ``before`` names the old).
        actor: the identity making the change.
        model: the registered model's name.
        version: the version concerned, if any.
        before / after: the state the audit entry will record.
        context: what the caller passed as ``context=`` (e.g. an approval id); never
            interpreted by the store itself.
        session: the SQLAlchemy session of the write transaction, so a guard can read
            (or write its own tables) atomically with the change.
    """

    action: str
    actor: str
    model: str
    version: int | None
    before: Any
    after: Any
    context: Mapping[str, Any] = field(default_factory=dict)
    session: Any = None


Guard = Callable[[Change], None]
