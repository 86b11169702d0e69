"""The policy guard: inside the registry's write transaction, refuse a move of a protected
alias or stage unless it carries an approvable request, and record the approval.

Approval happens here, not before: ``Governance.approve`` calls ``set_alias`` (or
``set_stage``) with ``context={"governance_request": ID, ...}``, and this guard checks the
request against the locked state and marks it approved in the same transaction as the
move and its audit entries. Either all of it commits or none of it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from satchel.errors import PolicyError
from satchel.registry import audit
from satchel.registry.hooks import Change
from satchel.registry.reads import now_ms

_MOVES = {"set_alias": "alias", "delete_alias": "alias", "set_stage": "stage"}


def install(store: Any) -> None:
    """Add the guard to a store once (stores are shared per process)."""
    if check not in store.guards:
        store.guards.append(check)


def _policy(session: Any, model: str) -> Any:
    from satchel.registry.governance.policy import Policy
    from satchel.registry.governance.tables import PolicyRow

    row = session.execute(select(PolicyRow.text).where(PolicyRow.model == model)).scalar()
    return None if row is None else Policy.parse(row, source=f"policy of {model!r}")


def check(change: Change) -> None:
    """The guard (see the module docstring)."""
    if change.action == "rename_model" and change.session is not None:
        _follow_rename(change)
        return
    kind = _MOVES.get(change.action)
    if kind is None or change.session is None:
        return
    target = _target(change, kind)
    if target is None:
        return
    policy = _policy(change.session, change.model)
    if policy is None or not policy.protects(kind, target):
        return
    request_id = change.context.get("governance_request")
    if change.action == "delete_alias" or request_id is None:
        verb = "deleted" if change.action == "delete_alias" else "moved"
        raise PolicyError(
            f"{kind} {target!r} of {change.model!r} is protected by its policy and cannot be "
            f"{verb} directly; request the move: satchel registry request {change.model} "
            f"{'--stage ' if kind == 'stage' else ''}{target} VERSION")
    _approve(change, policy, kind, target, int(request_id))


def _follow_rename(change: Change) -> None:
    """A renamed model keeps its policy, attached evaluations and promotion requests
    (they are keyed by name): otherwise a rename would drop the protection of its
    aliases and stages."""
    from sqlalchemy import update

    from satchel.registry.governance.tables import EvaluationRow, PolicyRow, RequestRow

    old, new = str((change.before or {})["name"]), change.model
    s = change.session
    if s.get(PolicyRow, new) is not None:
        raise PolicyError(f"a policy for {new!r} already exists; remove it before renaming "
                          f"{old!r} to {new!r}")
    for table in (PolicyRow, EvaluationRow, RequestRow):
        s.execute(update(table).where(table.model == old).values(model=new))


def _target(change: Change, kind: str) -> str | None:
    if kind == "stage":
        return str(change.after) if change.after is not None else None
    state = change.after if change.after is not None else change.before
    if isinstance(state, dict) and len(state) == 1:
        return str(next(iter(state)))
    return None


def _approve(change: Change, policy: Any, kind: str, target: str, request_id: int) -> None:
    from satchel.registry.governance.tables import RequestRow

    s = change.session
    row = s.get(RequestRow, request_id)
    if row is None or row.model != change.model:
        raise PolicyError(f"no promotion request {request_id} for {change.model!r}")
    if (row.target_kind, row.target, row.version) != (kind, target, change.version):
        raise PolicyError(f"request {request_id} is for {row.target_kind} {row.target!r} -> "
                          f"version {row.version}, not {kind} {target!r} -> {change.version}")
    actor, roles = change.actor, set(change.context.get("roles") or ())
    override = bool(change.context.get("override"))
    is_admin = actor in policy.admins or "admin" in roles
    if row.state not in ("pending", "gates_failed"):
        raise PolicyError(f"request {request_id} is {row.state}; only a pending request can "
                          "be approved")
    if actor == row.requested_by:
        raise PolicyError(f"{actor!r} requested this move (request {request_id}); another "
                          "approver must approve it")
    if not (actor in policy.approvers or "approver" in roles or is_admin):
        raise PolicyError(f"{actor!r} is not an approver of {change.model!r} (approvers: "
                          f"{', '.join(policy.approvers) or 'none'})")
    failed = [g for g in json.loads(row.gates) if not g["passed"]]
    if row.state == "gates_failed":
        names = "; ".join(f"{g['gate']}: {g['detail']}" for g in failed)
        if not override:
            raise PolicyError(f"request {request_id} failed its gates ({names}); it cannot be "
                              "approved (an admin may override)",
                              checks=[g["gate"] for g in failed])
        if not is_admin:
            raise PolicyError(f"only an admin of {change.model!r} may override failed gates "
                              f"(admins: {', '.join(policy.admins) or 'none'})")
    reason = change.context.get("reason")
    if row.state == "gates_failed":
        _record(
            s, actor=actor, action="override_gates", model=change.model, version=row.version,
            before={"request": request_id, "failed": [g["gate"] for g in failed]},
            after={"request": request_id, "override": True, "reason": reason})
    _record(
        s, actor=actor, action="approve_request", model=change.model, version=row.version,
        before={"request": request_id, "state": row.state},
        after={"request": request_id, "state": "approved", kind: target, "reason": reason})
    row.override = 1 if row.state == "gates_failed" else 0
    row.state, row.decided_by, row.decided_at, row.reason = "approved", actor, now_ms(), reason


def _record(s: Any, **entry: Any) -> None:
    # the head is already locked by this transaction; this appends after it
    head = audit.lock_head(s)
    audit.append(s, head, at=now_ms(), **entry)
