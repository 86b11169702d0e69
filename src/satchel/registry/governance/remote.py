"""Governance against a registry server (``http(s)://``): the same methods as
:class:`~satchel.registry.governance.service.Governance`, each one HTTP call to the
server's governance API; the server's token decides the identity and role."""

from __future__ import annotations

import json
from typing import Any

from satchel.evaluate.gates import GateResult
from satchel.evaluate.result import EvaluationResult
from satchel.registry.governance.policy import Policy
from satchel.registry.governance.service import PromotionRequest

PREFIX = "/api/satchel/v1/governance"


class RemoteGovernance:
    """Governance through ``store`` (a :class:`satchel.registry.client.HttpStore`)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _call(self, method: str, **kwargs: Any) -> Any:
        from satchel.registry.client import _raise

        body = json.dumps({k: v for k, v in kwargs.items() if v is not None}).encode("utf-8")
        resp = self.store.http.request("POST", f"{PREFIX}/{method}", body, idempotent=False)
        payload = resp.read()
        if resp.status >= 400:
            _raise(resp.status, payload)
        return json.loads(payload)["result"]

    def set_policy(self, name: str, text: str) -> Policy:
        self._call("set_policy", name=name, text=text)
        return Policy.parse(text)

    def get_policy(self, name: str) -> Policy | None:
        got = self._call("get_policy", name=name)
        return None if got is None else Policy.parse(got["text"])

    def delete_policy(self, name: str) -> None:
        self._call("delete_policy", name=name)

    def attach_results(self, name: str, version: int | str, result: EvaluationResult) -> int:
        return int(self._call("attach_results", name=name, version=version,
                              result=result.to_dict()))

    def results(self, name: str, version: int | str) -> list[EvaluationResult]:
        return [EvaluationResult.from_dict(d) for d in
                self._call("results", name=name, version=version)]

    def request(self, name: str, target: str, version: int | str, *,
                stage: bool = False) -> PromotionRequest:
        return _request(self._call("request", name=name, target=target, version=version,
                                   stage=stage))

    def approve(self, request_id: int, *, reason: str | None = None,
                override: bool = False) -> PromotionRequest:
        return _request(self._call("approve", request_id=request_id, reason=reason,
                                   override=override))

    def reject(self, request_id: int, reason: str) -> PromotionRequest:
        return _request(self._call("reject", request_id=request_id, reason=reason))

    def get_request(self, request_id: int) -> PromotionRequest:
        return _request(self._call("get_request", request_id=request_id))

    def requests(self, name: str | None = None, state: str | None = None
                 ) -> list[PromotionRequest]:
        return [_request(d) for d in self._call("requests", name=name, state=state)]


def _request(d: dict[str, Any]) -> PromotionRequest:
    fields = {k: d[k] for k in PromotionRequest.__dataclass_fields__ if k in d}
    fields["gates"] = tuple(GateResult(**g) for g in d.get("gates") or [])
    return PromotionRequest(**fields)
