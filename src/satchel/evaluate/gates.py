"""Thresholds on an evaluation result: ``satchel evaluate --thresholds gates.yaml`` and the
metric part of a registry promotion policy.

```yaml
dataset: holdout            # optional: the result must be on this named dataset
metrics:                    # bounds on figures: min and/or max
  accuracy: {min: 0.9}
  rmse: {max: 3.5}
  "f1[setosa]": {min: 0.8}  # a per-class figure
no_significant_regression: true   # against the baseline the result compared with
bias:
  max_gap: {accuracy: 0.05}       # largest gap between slices, per metric
  min_selection_rate_ratio: 0.8   # lowest over highest selection rate, per class
```

A file that names an unknown metric, key or bound is refused when read (PolicyFormatError);
a gate whose figure was not measured (no probabilities for ``roc_auc``, no baseline, no
slices) fails and says why.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from satchel.errors import PolicyFormatError
from satchel.evaluate.result import (
    CLASSIFIER_METRICS,
    HIGHER_IS_BETTER,
    PER_CLASS_METRICS,
    REGRESSOR_METRICS,
    EvaluationResult,
)

KNOWN = set(CLASSIFIER_METRICS) | set(REGRESSOR_METRICS)
_PER_CLASS = re.compile(r"^(" + "|".join(PER_CLASS_METRICS) + r")\[(.+)\]$")
_TOP_KEYS = {"dataset", "metrics", "no_significant_regression", "bias"}


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict with the figures it compared, e.g. ``accuracy 0.912 >= 0.9``."""

    gate: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Thresholds:
    """Parsed thresholds; build with :meth:`from_dict` or :meth:`load`."""

    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    no_significant_regression: bool = False
    max_gap: dict[str, float] = field(default_factory=dict)
    min_selection_rate_ratio: float | None = None
    dataset: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Thresholds:
        """Read a YAML file (PolicyFormatError naming the file when it is not valid)."""
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise PolicyFormatError(f"{os.fspath(path)} is not valid YAML: "
                              f"{str(exc).splitlines()[0]}") from None
        return cls.from_dict(data if data is not None else {}, source=os.fspath(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "thresholds") -> Thresholds:
        """Validate and parse; every refusal names the key and what was given."""
        if not isinstance(data, dict):
            raise PolicyFormatError(f"{source}: expected a mapping, got {type(data).__name__}")
        extra = sorted(set(map(str, data)) - _TOP_KEYS)
        if extra:
            raise PolicyFormatError(f"{source}: unknown key(s) {extra}; "
                                    f"allowed: {sorted(_TOP_KEYS)}")
        metrics: dict[str, tuple[float | None, float | None]] = {}
        for name, bound in _mapping(data.get("metrics"), f"{source}: metrics").items():
            _check_metric(name, source)
            if not isinstance(bound, dict) or not bound or set(bound) - {"min", "max"}:
                raise PolicyFormatError(f"{source}: metrics.{name} must be a mapping with min "
                                        f"and/or max, got {bound!r:.80}")
            metrics[name] = (_number(bound.get("min"), f"{source}: metrics.{name}.min"),
                             _number(bound.get("max"), f"{source}: metrics.{name}.max"))
        bias = _mapping(data.get("bias"), f"{source}: bias")
        bad = sorted(set(bias) - {"max_gap", "min_selection_rate_ratio"})
        if bad:
            raise PolicyFormatError(f"{source}: unknown bias key(s) {bad}; allowed: max_gap, "
                              "min_selection_rate_ratio")
        gaps = {}
        for name, limit in _mapping(bias.get("max_gap"), f"{source}: bias.max_gap").items():
            _check_metric(name, source)
            gaps[name] = _number(limit, f"{source}: bias.max_gap.{name}", required=True)
        ratio = _number(bias.get("min_selection_rate_ratio"),
                        f"{source}: bias.min_selection_rate_ratio")
        nsr = data.get("no_significant_regression", False)
        if not isinstance(nsr, bool):
            raise PolicyFormatError(f"{source}: no_significant_regression must be true or "
                                    f"false, got {type(nsr).__name__}")
        dataset = data.get("dataset")
        if dataset is not None and not isinstance(dataset, str):
            raise PolicyFormatError(f"{source}: dataset must be a name (text), got "
                              f"{type(dataset).__name__}")
        return cls(metrics, nsr, {k: v for k, v in gaps.items() if v is not None}, ratio,
                   dataset)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form back (for storing a policy)."""
        out: dict[str, Any] = {}
        if self.dataset:
            out["dataset"] = self.dataset
        if self.metrics:
            out["metrics"] = {k: {b: v for b, v in (("min", lo), ("max", hi)) if v is not None}
                              for k, (lo, hi) in self.metrics.items()}
        if self.no_significant_regression:
            out["no_significant_regression"] = True
        bias: dict[str, Any] = {}
        if self.max_gap:
            bias["max_gap"] = dict(self.max_gap)
        if self.min_selection_rate_ratio is not None:
            bias["min_selection_rate_ratio"] = self.min_selection_rate_ratio
        if bias:
            out["bias"] = bias
        return out

    def check(self, result: EvaluationResult) -> list[GateResult]:
        """Every gate's verdict on ``result`` (all are run; none stops the others)."""
        out: list[GateResult] = []
        if self.dataset is not None:
            got = result.dataset.name
            out.append(GateResult("dataset", got == self.dataset,
                                  f"evaluated on dataset {got!r}, the policy requires "
                                  f"{self.dataset!r}"))
        for name, (lo, hi) in self.metrics.items():
            out.append(_bound(result, name, lo, hi))
        if self.no_significant_regression:
            out.append(_regression(result))
        for name, limit in self.max_gap.items():
            gaps = [b for b in result.bias if b.kind == "gap" and b.metric == name]
            if not gaps:
                out.append(GateResult(f"bias gap {name}", False,
                                      f"no slice gap for {name} was measured (evaluate with "
                                      "--slice-by)"))
                continue
            worst = max(gaps, key=lambda b: b.value)
            ok = worst.value <= limit
            out.append(GateResult(f"bias gap {name}", ok,
                                  f"largest {name} gap {worst.value:.4g} ({worst.column}: "
                                  f"{worst.best} vs {worst.worst}) {_cmp(ok, '<=')} {limit:g}"))
        if self.min_selection_rate_ratio is not None:
            limit = self.min_selection_rate_ratio
            ratios = [b for b in result.bias if b.kind == "selection_rate_ratio"
                      and math.isfinite(b.value)]
            if not ratios:
                out.append(GateResult("selection rate ratio", False, "no selection-rate ratio "
                                      "was measured (a classifier evaluated with --slice-by)"))
            else:
                low = min(ratios, key=lambda b: b.value)
                out.append(GateResult("selection rate ratio", low.value >= limit,
                                      f"lowest selection-rate ratio {low.value:.4g} for class "
                                      f"{low.metric} ({low.column}: {low.worst} vs {low.best}) "
                                      f"{_cmp(low.value >= limit, '>=')} {limit:g}"))
        return out


def _bound(result: EvaluationResult, name: str, lo: float | None,
           hi: float | None) -> GateResult:
    try:
        value = result.metric(name)
    except KeyError:
        return GateResult(f"metric {name}", False, f"{name} was not measured for this "
                          f"{result.task} (measured: {sorted(result.metrics)})")
    if not math.isfinite(value):
        return GateResult(f"metric {name}", False, f"{name} is undefined on this data")
    parts, ok = [], True
    if lo is not None:
        ok &= value >= lo
        parts.append(f"{_cmp(value >= lo, '>=')} {lo:g}")
    if hi is not None:
        ok &= value <= hi
        parts.append(f"{_cmp(value <= hi, '<=')} {hi:g}")
    return GateResult(f"metric {name}", ok, f"{name} {value:.4g} " + " and ".join(parts))


def _regression(result: EvaluationResult) -> GateResult:
    if not result.comparison:
        return GateResult("no significant regression", False,
                          "no baseline comparison in the result (evaluate with --baseline)")
    worse = [c for c in result.comparison.values() if c.regression]
    if not worse:
        return GateResult("no significant regression", True,
                          f"no metric is significantly worse than the baseline "
                          f"({len(result.comparison)} compared)")
    text = "; ".join(f"{c.name} {c.model:.4g} vs {c.baseline:.4g} (difference {c.difference:+.4g},"
                     f" 95% interval {c.low:+.4g} to {c.high:+.4g})" for c in worse)
    return GateResult("no significant regression", False, f"significantly worse: {text}")


def _cmp(ok: bool, op: str) -> str:
    flipped = {">=": "<", "<=": ">"}[op]
    return op if ok else flipped


def _check_metric(name: Any, source: str) -> None:
    if not isinstance(name, str) or (name not in KNOWN and not _PER_CLASS.match(name)):
        raise PolicyFormatError(f"{source}: unknown metric {name!r}; known: {sorted(KNOWN)} or a "
                          f"per-class figure like f1[LABEL]")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyFormatError(f"{where} must be a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _number(value: Any, where: str, *, required: bool = False) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(float(value)):
        raise PolicyFormatError(f"{where} must be a number, got {type(value).__name__}")
    return float(value)


__all__ = ["GateResult", "Thresholds", "HIGHER_IS_BETTER"]
