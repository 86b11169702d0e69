"""The gates a promotion request runs: each returns GateResults that name the figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from satchel.errors import SatchelError
from satchel.evaluate.gates import GateResult
from satchel.evaluate.result import EvaluationResult
from satchel.registry.entities import ModelVersion
from satchel.registry.governance.policy import Policy


def run(policy: Policy, candidate: ModelVersion, holder: ModelVersion | None,
        results: list[EvaluationResult], files: Path | None) -> list[GateResult]:
    """Every gate the policy asks for (all run; none stops the others)."""
    out: list[GateResult] = []
    if policy.evaluation is not None:
        out += evaluation(policy, candidate, holder, results)
    if policy.signature_compatible:
        out.append(signature(candidate, holder))
    if policy.validate:
        out.append(validate(candidate, files))
    if policy.model_card:
        out.append(model_card(policy.model_card, candidate))
    return out


def evaluation(policy: Policy, candidate: ModelVersion, holder: ModelVersion | None,
               results: list[EvaluationResult]) -> list[GateResult]:
    t = policy.evaluation
    assert t is not None
    chosen = [r for r in results if t.dataset is None or r.dataset.name == t.dataset]
    if not chosen:
        where = f" on dataset {t.dataset!r}" if t.dataset else ""
        return [GateResult("evaluation", False,
                           f"no evaluation result{where} is attached to version "
                           f"{candidate.version}; run satchel evaluate "
                           f"models:/{candidate.name}/{candidate.version} ... "
                           "--register-results")]
    result = chosen[-1]  # the newest
    verdicts = []
    for v in t.check(result):
        if v.gate != "no significant regression":
            verdicts.append(v)
            continue
        if holder is None:
            verdicts.append(GateResult(v.gate, True, "no version holds the target yet"))
        elif result.baseline is None or result.baseline.model_uuid != holder.model_uuid:
            verdicts.append(GateResult(
                v.gate, False, f"the evaluation did not compare against the current holder "
                f"(version {holder.version}); evaluate with --baseline "
                f"models:/{holder.name}/{holder.version}"))
        else:
            verdicts.append(v)
    return verdicts


def signature(candidate: ModelVersion, holder: ModelVersion | None) -> GateResult:
    """The holder's clients keep working: every input the candidate requires was an input of
    the holder, with the same type."""
    if holder is None:
        return GateResult("signature compatible", True, "no version holds the target yet")
    old, new = _inputs(holder.signature), _inputs(candidate.signature)
    if old is None or new is None:
        which = "holder" if old is None else "candidate"
        return GateResult("signature compatible", old is None and new is None,
                          f"the {which} has no column signature to compare")
    problems = []
    for name, (kind, required) in new.items():
        if name not in old:
            if required:
                problems.append(f"new required input {name!r} ({kind})")
        elif old[name][0] != kind:
            problems.append(f"input {name!r} changed type {old[name][0]} -> {kind}")
    if problems:
        return GateResult("signature compatible", False,
                          f"against version {holder.version}: " + "; ".join(problems))
    return GateResult("signature compatible", True,
                      f"inputs compatible with version {holder.version}")


def _inputs(sig: dict[str, Any] | None) -> dict[str, tuple[str, bool]] | None:
    raw = (sig or {}).get("inputs")
    if not raw:
        return None
    specs = json.loads(raw) if isinstance(raw, str) else raw
    out = {}
    for i, s in enumerate(specs):
        kind = s.get("type")
        if kind == "tensor":
            kind = json.dumps(s.get("tensor-spec"), sort_keys=True)
        elif not isinstance(kind, str):
            kind = json.dumps(kind, sort_keys=True)
        out[str(s.get("name", i))] = (str(kind), bool(s.get("required", True)))
    return out


def validate(candidate: ModelVersion, files: Path | None) -> GateResult:
    """``satchel validate`` on the version's files: digests, load, predict on the example."""
    if files is None:
        return GateResult("validate", False, "the version's files are not available")
    from satchel.model import load_model

    try:
        model = load_model(files)
        example = model.input_example()
        if example is None:
            return GateResult("validate", True, "loaded; no input example to predict on")
        model.predict_detailed(example.data, example.params)
    except (SatchelError, OSError) as exc:
        return GateResult("validate", False, str(exc).splitlines()[0][:300])
    return GateResult("validate", True, "digests verified, loaded, predicted on its example")


def model_card(fields: tuple[str, ...], candidate: ModelVersion) -> GateResult:
    meta = candidate.metadata or {}
    missing = [f for f in fields if meta.get(f) in (None, "", [], {})]
    if missing:
        return GateResult("model card", False, f"version {candidate.version} metadata lacks "
                          f"{missing} (register with --metadata KEY=VALUE)")
    return GateResult("model card", True, f"has {list(fields)}")
