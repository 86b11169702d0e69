"""``Governance(registry)``: policies, attached evaluation results and promotion requests.

Every change here is one registry write transaction with its audit entry: setting a
policy (before -> after text), attaching a result, requesting a move (with the gate
results), rejecting. Approving is the move itself, checked by the guard
(:mod:`satchel.registry.governance.guard`) in the move's own transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from satchel.errors import (
    PolicyError,
    RegistryConflictError,
    RegistryInputError,
    RegistryNotFoundError,
)
from satchel.evaluate.gates import GateResult
from satchel.evaluate.result import EvaluationResult
from satchel.registry.api import Registry
from satchel.registry.entities import ModelVersion
from satchel.registry.governance import checks
from satchel.registry.governance.guard import install
from satchel.registry.governance.policy import Policy
from satchel.registry.governance.tables import EvaluationRow, PolicyRow, RequestRow
from satchel.registry.reads import now_ms

STATES = ("pending", "gates_failed", "approved", "rejected")


@dataclass(frozen=True)
class PromotionRequest:
    """A request to point ``target`` (an alias or a stage) at ``version``."""

    id: int
    model: str
    target_kind: str
    target: str
    version: int
    requested_by: str
    requested_at: int
    state: str
    gates: tuple[GateResult, ...]
    holder: int | None
    decided_by: str | None = None
    decided_at: int | None = None
    reason: str | None = None
    override: bool = False

    @property
    def gates_passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["gates"] = [g.__dict__ for g in self.gates]
        return d


def open_governance(registry: Registry, *, roles: tuple[str, ...] = ()) -> Any:
    """Governance for ``registry``: local (:class:`Governance`) over a database URI,
    :class:`~satchel.registry.governance.remote.RemoteGovernance` over a server."""
    if hasattr(registry.store, "write"):
        return Governance(registry, roles=roles)
    from satchel.registry.governance.remote import RemoteGovernance

    return RemoteGovernance(registry.store)


class Governance:
    """Governance over ``registry``, acting as ``registry.actor`` (with ``roles`` from a
    server token, e.g. ``("approver",)``)."""

    def __init__(self, registry: Registry, *, roles: tuple[str, ...] = ()) -> None:
        if not hasattr(registry.store, "write"):
            raise RegistryInputError("governance needs a database registry URI (a registry "
                                     "server applies it on its side)", field="registry_uri")
        self.registry, self.store, self.roles = registry, registry.store, tuple(roles)
        install(self.store)

    @property
    def actor(self) -> str:
        return self.registry.actor

    # ------------------------------------------------------------------ policy

    def set_policy(self, name: str, text: str) -> Policy:
        """Store ``name``'s policy (YAML); refused whole when it does not parse."""
        policy = Policy.parse(text, source=f"policy of {name!r}")
        self.registry.get_model(name)  # names what exists when it does not
        with self.store.write() as s:
            row = s.get(PolicyRow, name)
            before = None if row is None else row.text
            if before == text:
                return policy
            self.store.record(s, actor=self.actor, action="set_policy", model=name,
                              version=None, before=before, after=text)
            if row is None:
                s.add(PolicyRow(model=name, text=text, updated_at=now_ms(),
                                updated_by=self.actor))
            else:
                row.text, row.updated_at, row.updated_by = text, now_ms(), self.actor
        return policy

    def get_policy(self, name: str) -> Policy | None:
        with self.store.read() as s:
            text = s.execute(select(PolicyRow.text).where(PolicyRow.model == name)).scalar()
        return None if text is None else Policy.parse(text, source=f"policy of {name!r}")

    def delete_policy(self, name: str) -> None:
        """Remove a policy (audited); its aliases move directly again."""
        with self.store.write() as s:
            row = s.get(PolicyRow, name)
            if row is None:
                raise RegistryNotFoundError(f"model {name!r} has no policy", kind="policy",
                                            name=name, available=[])
            self.store.record(s, actor=self.actor, action="delete_policy", model=name,
                              version=None, before=row.text, after=None)
            s.delete(row)

    # ------------------------------------------------------------------ results

    def attach_results(self, name: str, version: int | str,
                       result: EvaluationResult) -> int:
        """Attach an evaluation result to a version (audited with its headline figures)."""
        mv = self.registry.get_version(name, version)
        if result.model.model_uuid and mv.model_uuid and result.model.model_uuid != \
                mv.model_uuid:
            raise RegistryConflictError(
                f"the result is for model {result.model.model_uuid}, but {name} version "
                f"{mv.version} is model {mv.model_uuid}; evaluate that version")
        text = result.to_json(indent=None)
        with self.store.write() as s:
            self.store.record(s, actor=self.actor, action="attach_evaluation", model=name,
                              version=mv.version, before=None, after={
                                  "dataset": result.dataset.name, "rows": result.dataset.rows,
                                  "task": result.task,
                                  "metrics": {k: m.value for k, m in result.metrics.items()}})
            row = EvaluationRow(model=name, version=mv.version, dataset=result.dataset.name,
                                result=text, created_at=now_ms(), created_by=self.actor)
            s.add(row)
            s.flush()
            return int(row.id)

    def results(self, name: str, version: int | str) -> list[EvaluationResult]:
        """A version's attached results, oldest first."""
        mv = self.registry.get_version(name, version)
        with self.store.read() as s:
            texts = s.execute(select(EvaluationRow.result).where(
                EvaluationRow.model == name, EvaluationRow.version == mv.version)
                .order_by(EvaluationRow.id)).scalars().all()
        return [EvaluationResult.from_dict(json.loads(t)) for t in texts]

    def evaluations(self, name: str, version: int) -> list[tuple[int, EvaluationResult]]:
        """(id, result) of a version's attached results, oldest first."""
        with self.store.read() as s:
            rows = s.execute(select(EvaluationRow.id, EvaluationRow.result).where(
                EvaluationRow.model == name, EvaluationRow.version == int(version))
                .order_by(EvaluationRow.id)).all()
        return [(int(i), EvaluationResult.from_dict(json.loads(t))) for i, t in rows]

    def evaluation(self, name: str, evaluation_id: int) -> EvaluationResult:
        """One attached result by id."""
        with self.store.read() as s:
            text = s.execute(select(EvaluationRow.result).where(
                EvaluationRow.model == name, EvaluationRow.id == int(evaluation_id))).scalar()
        if text is None:
            raise RegistryNotFoundError(f"no evaluation {evaluation_id} of {name!r}",
                                        kind="evaluation", name=str(evaluation_id))
        return EvaluationResult.from_dict(json.loads(text))

    # ------------------------------------------------------------------ requests

    def request(self, name: str, target: str, version: int | str, *,
                stage: bool = False) -> PromotionRequest:
        """Request moving alias (or stage) ``target`` of ``name`` to ``version``: the gates
        run now and their results are recorded with the request."""
        kind = "stage" if stage else "alias"
        policy = self.get_policy(name)
        candidate = self.registry.get_version(name, version)
        if policy is None or not policy.protects(kind, target):
            raise RegistryInputError(
                f"{kind} {target!r} of {name!r} is not protected by a policy; move it directly "
                f"(satchel registry {'stage' if stage else 'alias'} ...)", field=kind)
        holder = self._holder(name, kind, target)
        if holder is not None and holder.version == candidate.version:
            raise RegistryConflictError(f"{kind} {target!r} of {name!r} already points at "
                                        f"version {candidate.version}")
        files = self.registry.local_path(candidate) if policy.validate else None
        gates = checks.run(policy, candidate, holder, self.results(name, candidate.version),
                           files)
        state = "pending" if all(g.passed for g in gates) else "gates_failed"
        with self.store.write() as s:
            row = RequestRow(model=name, target_kind=kind, target=target,
                             version=candidate.version, requested_by=self.actor,
                             requested_at=now_ms(), state=state,
                             gates=json.dumps([g.__dict__ for g in gates]),
                             holder=None if holder is None else holder.version, override=0)
            s.add(row)
            s.flush()
            self.store.record(s, actor=self.actor, action="request_promotion", model=name,
                              version=candidate.version,
                              before={kind: target, "holder": row.holder},
                              after={"request": row.id, "state": state,
                                     "gates": [[g.gate, g.passed] for g in gates]})
            rid = int(row.id)
        return self.get_request(rid)

    def approve(self, request_id: int, *, reason: str | None = None,
                override: bool = False) -> PromotionRequest:
        """Approve: the alias (or stage) moves in the same transaction that records the
        approval. Refused for the requester, a non-approver, a decided request, and a
        request whose gates failed (unless an admin overrides, audited as such)."""
        req = self.get_request(request_id)
        context = {"governance_request": req.id, "reason": reason, "override": override,
                   "roles": list(self.roles)}
        if req.state not in ("pending", "gates_failed"):
            raise PolicyError(f"request {req.id} is {req.state}; only a pending request can be "
                              "approved")
        if req.target_kind == "alias":
            self.store.set_alias(req.model, req.target, req.version, actor=self.actor,
                                 context=context)
        else:
            self.store.set_stage(req.model, req.version, req.target, actor=self.actor,
                                 context=context)
        return self.get_request(req.id)

    def reject(self, request_id: int, reason: str) -> PromotionRequest:
        """Reject with a reason (approvers and admins; audited)."""
        if not reason or not reason.strip():
            raise RegistryInputError("a rejection needs a reason", field="reason")
        req = self.get_request(request_id)
        policy = self.get_policy(req.model)
        allowed = policy is not None and (self.actor in policy.approvers + policy.admins or
                                          {"approver", "admin"} & set(self.roles))
        if not allowed:
            raise PolicyError(f"{self.actor!r} is not an approver of {req.model!r}")
        with self.store.write() as s:
            row = s.get(RequestRow, req.id)
            assert row is not None  # read above; requests are never deleted
            if row.state not in ("pending", "gates_failed"):
                raise PolicyError(f"request {req.id} is {row.state}; only a pending request "
                                  "can be rejected")
            self.store.record(s, actor=self.actor, action="reject_request", model=req.model,
                              version=req.version, before={"request": req.id,
                                                           "state": row.state},
                              after={"request": req.id, "state": "rejected",
                                     "reason": reason})
            row.state, row.decided_by, row.decided_at, row.reason = (
                "rejected", self.actor, now_ms(), reason)
        return self.get_request(req.id)

    def get_request(self, request_id: int) -> PromotionRequest:
        with self.store.read() as s:
            row = s.get(RequestRow, int(request_id))
            if row is None:
                raise RegistryNotFoundError(f"no promotion request {request_id}",
                                            kind="request", name=str(request_id),
                                            available=[])
            return _request(row)

    def requests(self, name: str | None = None, state: str | None = None
                 ) -> list[PromotionRequest]:
        """Requests, newest first, by model and state."""
        if state is not None and state not in STATES:
            raise RegistryInputError(f"state must be one of {list(STATES)}, not {state!r}",
                                     field="state")
        q = select(RequestRow).order_by(RequestRow.id.desc())
        if name is not None:
            q = q.where(RequestRow.model == name)
        if state is not None:
            q = q.where(RequestRow.state == state)
        with self.store.read() as s:
            return [_request(r) for r in s.execute(q).scalars()]

    def _holder(self, name: str, kind: str, target: str) -> ModelVersion | None:
        if kind == "alias":
            try:
                return self.registry.get_version_by_alias(name, target)
            except RegistryNotFoundError:
                return None
        found = self.registry.search_versions(name, stage=target)
        return max(found, key=lambda v: v.version) if found else None


def _request(row: Any) -> PromotionRequest:
    return PromotionRequest(
        id=row.id, model=row.model, target_kind=row.target_kind, target=row.target,
        version=row.version, requested_by=row.requested_by, requested_at=row.requested_at,
        state=row.state, gates=tuple(GateResult(**g) for g in json.loads(row.gates)),
        holder=row.holder, decided_by=row.decided_by, decided_at=row.decided_at,
        reason=row.reason, override=bool(row.override))
