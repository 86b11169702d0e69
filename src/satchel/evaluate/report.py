"""The evaluation report: one self-contained HTML file drawn from an EvaluationResult.

Everything is read from the result (curves included), so a report can be redrawn from a
results JSON alone — which is how the registry UI shows the results attached to a version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from satchel.evaluate.gates import GateResult
from satchel.evaluate.result import EvaluationResult, Metric, ModelInfo, SliceResult
from satchel.report import svg
from satchel.report.html import (
    Markup,
    badge,
    esc,
    figure,
    fmt,
    join,
    keyvalues,
    page,
    section,
    table,
    tag,
)

_MAIN = {"classifier": "accuracy", "regressor": "rmse"}


def render(result: EvaluationResult, gates: Sequence[GateResult] = ()) -> str:
    """The whole report as an HTML document."""
    parts = [_summary(result, gates), _metrics(result)]
    if result.comparison:
        parts.append(_comparison(result))
    if result.per_class:
        parts.append(_per_class(result))
    figs = _figures(result)
    if figs:
        parts.append(section("Figures", *figs, id_="figures"))
    if result.slices:
        parts.append(_slices(result))
    parts.append(_model(result.model, "Model: signature and lineage", "model"))
    if result.baseline is not None:
        parts.append(_model(result.baseline, "Baseline: signature and lineage", "baseline"))
    subtitle = (f"{result.task} · {result.dataset.rows:,} rows of {result.dataset.source} · "
                f"target {result.dataset.target}")
    return page(f"Evaluation of {os.path.basename(result.model.reference.rstrip('/'))}",
                subtitle, *parts)


def write(result: EvaluationResult, path: str | os.PathLike[str],
          gates: Sequence[GateResult] = ()) -> None:
    """Write the report atomically (a temporary sibling renamed into place)."""
    from satchel._fs import atomic_write_text

    atomic_write_text(path, render(result, gates))


def _summary(r: EvaluationResult, gates: Sequence[GateResult]) -> Markup:
    b = r.bootstrap
    items: list[tuple[str, Any]] = [
        ("model", r.model.reference), ("flavor", r.model.flavor),
        ("model uuid", r.model.model_uuid or "–"),
        ("dataset", f"{r.dataset.source}" + (f" (named {r.dataset.name})" if r.dataset.name
                                             else "")),
        ("rows", f"{r.dataset.rows:,}"), ("task", r.task),
        ("intervals", f"{b.confidence:.0%} {b.method}, {b.resamples} resamples, seed {b.seed}"
         + (f", {b.subsets} subsets of {b.subset_rows:,} rows" if b.subsets > 1 else "")
         + (f", rows in {b.groups:,} random groups per slice" if b.groups else "")),
        ("evaluated in", f"{r.seconds:.2f} s"),
    ]
    if r.roc_auc_tie_bound:
        items.append(("ROC AUC", f"from a score histogram, within {r.roc_auc_tie_bound:.1g} of "
                      "the exact figure"))
    if r.baseline is not None:
        items.insert(1, ("baseline", r.baseline.reference))
    body = [keyvalues(items)]
    if gates:
        ok = all(g.passed for g in gates)
        body.append(tag("h3", "Gates ", badge("passed" if ok else "failed", ok)))
        body.append(table(["gate", "verdict", "figures"],
                          [(g.gate, badge("pass" if g.passed else "fail", g.passed), g.detail)
                           for g in gates], class_="gates"))
    return section("Summary", *body, id_="summary")


def _metrics(r: EvaluationResult) -> Markup:
    rows = [(m.name, fmt(m.value), _interval(m)) for m in r.metrics.values()]
    return section("Metrics", table(["metric", "value", f"{r.bootstrap.confidence:.0%} interval"],
                                    rows, class_="metrics"), id_="metrics")


def _comparison(r: EvaluationResult) -> Markup:
    rows = []
    for c in r.comparison.values():
        verdict = badge("worse" if c.regression else ("better" if c.significant else
                                                       "no significant difference"),
                        None if not c.significant else not c.regression)
        rows.append((c.name, fmt(c.model), fmt(c.baseline), f"{c.difference:+.4g}",
                     f"{c.low:+.4g} to {c.high:+.4g}", verdict))
    return section("Against the baseline", tag("p", "Differences are model minus baseline; the "
                   "interval is a paired bootstrap (the same resampled rows for both)."),
                   table(["metric", "model", "baseline", "difference", "interval", "verdict"],
                         rows, class_="comparison"), id_="comparison")


def _per_class(r: EvaluationResult) -> Markup:
    rows = [(label, *[f"{fmt(m.value)} ({_interval(m)})" for m in figs.values()])
            for label, figs in r.per_class.items()]
    names = list(next(iter(r.per_class.values())))
    return section("Per class", table(["class", *names], rows, class_="per-class"),
                   id_="per-class")


def _figures(r: EvaluationResult) -> list[Markup]:
    out = []
    if r.confusion is not None:
        out.append(figure(svg.heatmap(r.confusion, r.labels, title="Confusion matrix",
                                      xlabel="predicted", ylabel="actual"), "Confusion matrix"))
    by_kind: dict[str, list[Any]] = {}
    for c in r.curves:
        by_kind.setdefault(c.kind, []).append(c)
    spec = {"roc": ("ROC curve", "false positive rate", "true positive rate", True),
            "pr": ("Precision-recall curve", "recall", "precision", False),
            "calibration": ("Calibration", "mean predicted probability", "observed frequency",
                            True)}
    for kind, (title, xl, yl, diag) in spec.items():
        curves = by_kind.get(kind)
        if curves:
            series = [(f"{c.label}" + (f" (area {c.score:.3f})" if c.score is not None else ""),
                       c.x, c.y) for c in curves]
            out.append(figure(svg.lines(series, title=title, xlabel=xl, ylabel=yl,
                                        diagonal=diag, markers=kind == "calibration"), title))
    for c in by_kind.get("residuals", []):
        out.append(figure(svg.scatter(c.x, c.y, title="Residuals", xlabel="predicted",
                                      ylabel="actual − predicted", hline=0.0), "Residuals"))
    for c in by_kind.get("actual_vs_predicted", []):
        out.append(figure(svg.scatter(c.x, c.y, title="Actual against predicted",
                                      xlabel="predicted", ylabel="actual", diagonal=True),
                          "Actual against predicted"))
    return out


def _slices(r: EvaluationResult) -> Markup:
    parts: list[Markup] = []
    main = _MAIN[r.task]
    columns: dict[str, list[Any]] = {}
    for s in r.slices:
        columns.setdefault(s.column, []).append(s)
    for column, group in columns.items():
        names = list(group[0].metrics)
        rates = list(group[0].selection_rate)
        rows = [(s.value, s.rows, *[_slice_cell(s, n) for n in names],
                 *[fmt(s.selection_rate.get(k)) for k in rates]) for s in group]
        ci = f"{r.bootstrap.confidence:.0%} interval"
        parts.append(table(["value", "rows", *names, *[f"selection rate {k}" for k in rates]],
                           rows, caption=f"by {column} (each figure with its {ci})",
                           class_="slices"))
        if main in group[0].metrics:
            parts.append(figure(svg.bars([s.value for s in group],
                                         [s.metrics[main] for s in group],
                                         title=f"{main} by {column}", ylabel=main,
                                         reference=r.metrics[main].value),
                                f"{main} by {column}"))
    if r.bias:
        rows = [(b.column, b.metric, "largest gap" if b.kind == "gap" else
                 "selection-rate ratio", fmt(b.value), b.best, b.worst) for b in r.bias]
        parts.append(table(["column", "metric / class", "figure", "value", "best / highest",
                            "worst / lowest"], rows, caption="Bias figures", class_="bias"))
    return section("Slices", *parts, id_="slices")


def _model(info: ModelInfo, title: str, id_: str) -> Markup:
    items: list[tuple[str, Any]] = [("reference", info.reference), ("flavor", info.flavor),
                                    ("model uuid", info.model_uuid or "–"),
                                    ("created", info.created or "–")]
    items += [(f"metadata: {k}", v if isinstance(v, str) else json.dumps(v, default=str))
              for k, v in sorted(info.metadata.items())]
    body = [keyvalues(items)]
    sig = info.signature or {}
    inputs = _columns(sig.get("inputs"))
    if inputs:
        body.append(table(["input", "type", "required"], inputs, caption="Signature inputs"))
    outputs = _columns(sig.get("outputs"))
    if outputs:
        body.append(table(["output", "type", "required"], outputs, caption="Signature outputs"))
    if not sig:
        body.append(tag("p", "This model was saved without a signature."))
    return section(title, *body, id_=id_)


def _columns(raw: Any) -> list[tuple[str, str, str]]:
    if not raw:
        return []
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    out = []
    for i, s in enumerate(specs if isinstance(specs, list) else []):
        if not isinstance(s, dict):
            continue
        kind = s.get("type")
        if kind == "tensor":
            ts = s.get("tensor-spec") or {}
            kind = f"tensor {ts.get('dtype')} {ts.get('shape')}"
        out.append((str(s.get("name", f"#{i}")), str(kind), "yes" if s.get("required", True)
                    else "no"))
    return out


def _slice_cell(s: SliceResult, name: str) -> str:
    lo, hi = s.low.get(name, float("nan")), s.high.get(name, float("nan"))
    if lo != lo or hi != hi:
        return fmt(s.metrics[name])
    return f"{fmt(s.metrics[name])} ({fmt(lo)} – {fmt(hi)})"


def _interval(m: Metric) -> str:
    if m.low != m.low or m.high != m.high:
        return "–"
    return f"{fmt(m.low)} – {fmt(m.high)}"


__all__ = ["render", "write", "join", "esc"]
