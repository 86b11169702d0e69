"""The typed result of an evaluation, and its JSON form.

Everything here is plain data (floats, strings, lists), so a result written with
:meth:`EvaluationResult.to_json` reads back equal with :meth:`EvaluationResult.from_dict`,
and the report, the registry and the gates need no numpy to read one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_VERSION = 1

# Metrics where a larger value is better; the others (errors, losses) are smaller-better.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision_macro": True,
    "recall_macro": True,
    "f1_macro": True,
    "roc_auc": True,
    "log_loss": False,
    "precision": True,
    "recall": True,
    "f1": True,
    "mae": False,
    "rmse": False,
    "r2": True,
    "mape": False,
}
CLASSIFIER_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                      "log_loss")
PER_CLASS_METRICS = ("precision", "recall", "f1")
REGRESSOR_METRICS = ("mae", "rmse", "r2", "mape")


@dataclass(frozen=True)
class Metric:
    """One figure with its bootstrap interval (``low``/``high``, 95% by default)."""

    name: str
    value: float
    low: float
    high: float

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER.get(self.name, True)


@dataclass(frozen=True)
class Comparison:
    """Model minus baseline for one metric, with the paired-bootstrap interval of the
    difference; ``significant`` when that interval excludes zero, ``regression`` when it
    is significant in the worse direction."""

    name: str
    model: float
    baseline: float
    difference: float
    low: float
    high: float
    significant: bool
    regression: bool


@dataclass(frozen=True)
class SliceResult:
    """The metrics on the rows where ``column`` equals ``value``."""

    column: str
    value: str
    rows: int
    metrics: dict[str, float]
    selection_rate: dict[str, float] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)  # each metric's interval bounds
    high: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BiasFigure:
    """Across the slices of one column: the largest gap for a metric (``kind="gap"``, best
    minus worst slice) or the selection-rate ratio for a class (``kind="selection_rate_ratio"``,
    lowest rate over highest)."""

    column: str
    metric: str
    kind: str
    value: float
    best: str
    worst: str


@dataclass(frozen=True)
class Curve:
    """Points of a figure (ROC, precision-recall, calibration, residuals), thinned to a few
    hundred so results stay small and a report can be redrawn from the JSON alone."""

    kind: str
    label: str
    x: list[float]
    y: list[float]
    score: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What was evaluated: its reference as given, flavor, uuid, signature and lineage."""

    reference: str
    flavor: str
    model_uuid: str | None
    signature: dict[str, Any] | None
    metadata: dict[str, Any]
    created: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """The evaluation data: where it came from, its row count and the target column."""

    source: str
    rows: int
    target: str
    name: str | None = None


@dataclass(frozen=True)
class BootstrapInfo:
    """How the intervals were made: ``method`` is ``poisson bootstrap`` (each row weighted
    Poisson(1) per resample, drawn per cell of rows; regression rows in ``groups`` random
    groups per slice). Results written by older versions say ``bootstrap`` or ``bag of
    little bootstraps`` (``subsets`` of ``subset_rows`` rows)."""

    method: str
    resamples: int
    confidence: float
    seed: int
    subsets: int
    subset_rows: int
    groups: int = 0


@dataclass(frozen=True)
class EvaluationResult:
    """Everything ``satchel evaluate`` measured; ``metrics`` by name, in the task's order."""

    task: str
    model: ModelInfo
    dataset: DatasetInfo
    bootstrap: BootstrapInfo
    metrics: dict[str, Metric]
    labels: list[str] = field(default_factory=list)
    per_class: dict[str, dict[str, Metric]] = field(default_factory=dict)
    confusion: list[list[int]] | None = None
    baseline: ModelInfo | None = None
    baseline_metrics: dict[str, Metric] = field(default_factory=dict)
    comparison: dict[str, Comparison] = field(default_factory=dict)
    slices: list[SliceResult] = field(default_factory=list)
    bias: list[BiasFigure] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    seconds: float = 0.0
    format_version: int = FORMAT_VERSION
    # ROC AUC from a score histogram (only past exact.SCORE_CAP distinct scores) is within
    # this of the exact figure, overall and in every slice; 0 when every ROC AUC is exact
    roc_auc_tie_bound: float = 0.0

    def metric(self, name: str) -> float:
        """The value of a metric (``accuracy``) or per-class one (``f1[setosa]``)."""
        if name in self.metrics:
            return self.metrics[name].value
        if name.endswith("]") and "[" in name:
            base, label = name[:-1].split("[", 1)
            if label in self.per_class and base in self.per_class[label]:
                return self.per_class[label][base].value
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes null)."""
        return _clean(asdict(self))  # type: ignore[no-any-return]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        """Read back what :meth:`to_dict` wrote."""

        def metrics(d: dict[str, Any]) -> dict[str, Metric]:
            return {k: Metric(**_nan(v)) for k, v in d.items()}

        base = data.get("baseline")
        return cls(
            task=data["task"],
            model=ModelInfo(**data["model"]),
            dataset=DatasetInfo(**data["dataset"]),
            bootstrap=BootstrapInfo(**data["bootstrap"]),
            metrics=metrics(data["metrics"]),
            labels=list(data.get("labels") or []),
            per_class={k: metrics(v) for k, v in (data.get("per_class") or {}).items()},
            confusion=data.get("confusion"),
            baseline=ModelInfo(**base) if base else None,
            baseline_metrics=metrics(data.get("baseline_metrics") or {}),
            comparison={k: Comparison(**_nan(v))
                        for k, v in (data.get("comparison") or {}).items()},
            slices=[SliceResult(**{**s, "metrics": _nan(s["metrics"]),
                                    "low": _nan(s.get("low") or {}),
                                    "high": _nan(s.get("high") or {})})
                    for s in data.get("slices") or []],
            bias=[BiasFigure(**_nan(b)) for b in data.get("bias") or []],
            curves=[Curve(**c) for c in data.get("curves") or []],
            seconds=float(data.get("seconds") or 0.0),
            format_version=int(data.get("format_version") or FORMAT_VERSION),
            roc_auc_tie_bound=float(data.get("roc_auc_tie_bound") or 0.0),
        )


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _nan(d: dict[str, Any]) -> dict[str, Any]:
    # null stood for NaN (a metric undefined on this data, e.g. one class in a slice)
    return {k: (math.nan if v is None and k not in ("best", "worst") else v)
            for k, v in d.items()}
