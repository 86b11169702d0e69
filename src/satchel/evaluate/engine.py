"""``evaluate()``: one streaming pass to collect, then metrics, intervals, comparison,
slices and curves from the collected arrays (:func:`compute`, which the Spark path
calls too, so both paths share every figure)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from satchel.errors import EvaluationError
from satchel.evaluate import bootstrap, curves, slices, task
from satchel.evaluate.collect import Collected, Predictor, collect
from satchel.evaluate.data import open_source
from satchel.evaluate.metrics import (
    ClassifierData,
    ClassifierWeighted,
    RegressorData,
    RegressorWeighted,
    classifier_point,
    regressor_point,
)
from satchel.evaluate.result import (
    HIGHER_IS_BETTER,
    PER_CLASS_METRICS,
    Comparison,
    DatasetInfo,
    EvaluationResult,
    Metric,
    ModelInfo,
)
from satchel.model import Model


def evaluate(model: str | os.PathLike[str] | Model, data: Any, target: str, *,
             baseline: str | os.PathLike[str] | Model | None = None,
             slice_by: Sequence[str] = (), task_type: str | None = None,
             resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
             batch_rows: int = 65_536, dataset_name: str | None = None) -> EvaluationResult:
    """Evaluate ``model`` on ``data`` (a DataFrame, or a Parquet, CSV or JSONL file).

    Args:
        model: a model directory, a model reference ``load_model`` resolves, or a Model.
        data: the evaluation table; read in batches of ``batch_rows`` rows.
        target: the column holding the truth.
        baseline: a second model to compare against (paired bootstrap).
        slice_by: columns (``COL`` or ``COL=V1,V2``) to compute the metrics per value of.
        task_type: ``classifier`` or ``regressor``; inferred when the model or the target
            tells (an error asks for it otherwise).
        resamples: bootstrap resamples for the intervals (0: none).
        confidence: the intervals' level.
        seed: the bootstrap's random seed (same seed, same intervals).
        dataset_name: a name recorded with the result (gates match it).

    Raises:
        EvaluationError: a missing target or slice column, a target of the wrong type, a
            task that cannot be inferred, labels the model never saw, an empty slice.
        InputFormatError: unreadable data.
    """
    start = time.monotonic()
    mine, ref = _load(model)
    base, base_ref = _load(baseline) if baseline is not None else (None, "")
    specs = [slices.parse_spec(s) for s in slice_by]
    source = open_source(data, batch_rows=batch_rows)
    check_columns(source.columns, target, [name for name, _ in specs])
    predictor = Predictor(mine)
    base_predictor = Predictor(base) if base is not None else None
    got = collect(source, target, predictor, base_predictor, [n for n, _ in specs])
    return compute(got, target=target, task_type=task_type, model=model_info(mine, ref),
                   baseline=model_info(base, base_ref) if base is not None else None,
                   estimator_type=predictor.estimator_type, slice_specs=specs,
                   resamples=resamples, confidence=confidence, seed=seed,
                   source=source.description, dataset_name=dataset_name, start=start)


def check_columns(columns: Sequence[str], target: str, slice_columns: Sequence[str]) -> None:
    """The target and every slice column exist (errors list what does)."""
    shown = ", ".join(list(columns)[:30]) + (" ..." if len(columns) > 30 else "")
    if target not in columns:
        raise EvaluationError(f"target column '{target}' is not in the data (it has: {shown})",
                              column=target)
    for c in slice_columns:
        if c not in columns:
            raise EvaluationError(f"slice column '{c}' is not in the data (it has: {shown})",
                                  column=c)
        if c == target:
            raise EvaluationError(f"slice column '{c}' is the target; slice by another column",
                                  column=c)


def _load(ref: Any) -> tuple[Model, str]:
    if isinstance(ref, Model):
        return ref, str(ref.path)
    from satchel.model import load_model

    return load_model(ref), str(ref)


def model_info(m: Model, reference: str) -> ModelInfo:
    """What the result records about a model: reference, flavor, uuid, signature, lineage."""
    man = m.manifest
    return ModelInfo(reference=reference, flavor=m.flavor_name, model_uuid=man.model_uuid,
                     signature=man.signature.to_dict() if man.signature else None,
                     metadata=dict(man.metadata or {}), created=man.utc_time_created)


def compute(got: Collected, *, target: str, task_type: str | None, model: ModelInfo,
            baseline: ModelInfo | None, estimator_type: str | None,
            slice_specs: Sequence[tuple[str, list[str] | None]], resamples: int,
            confidence: float, seed: int, source: str, dataset_name: str | None,
            start: float | None = None) -> EvaluationResult:
    """Every figure from collected arrays (the in-memory and the Spark path both end here)."""
    t0 = time.monotonic() if start is None else start
    kind = task.infer(task_type, target, got.y, got.pred, estimator_type,
                      got.classes is not None)
    plan = bootstrap.plan(len(got.y), resamples=resamples, confidence=confidence, seed=seed)
    parts = _classifier(got, target, plan) if kind == "classifier" else _regressor(got, target,
                                                                                    plan)
    result_slices = []
    for column, wanted in slice_specs:
        result_slices += slices.compute(column, got.slices[column], wanted, parts["slice"],
                                        parts.get("selection"))
    return EvaluationResult(
        task=kind, model=model,
        dataset=DatasetInfo(source, len(got.y), target, dataset_name),
        bootstrap=plan.info(), metrics=parts["metrics"], labels=parts.get("labels", []),
        per_class=parts.get("per_class", {}), confusion=parts.get("confusion"),
        baseline=baseline, baseline_metrics=parts.get("baseline_metrics", {}),
        comparison=parts.get("comparison", {}), slices=result_slices,
        bias=slices.bias(result_slices), curves=parts["curves"],
        seconds=time.monotonic() - t0)


def _classifier(got: Collected, target: str, plan: bootstrap.Plan) -> dict[str, Any]:
    task.check_labels(target, got.y)
    classes = list(got.classes) if got.classes is not None else task.sorted_labels(
        got.y, got.pred, *([got.base_pred] if got.base_pred is not None else []))
    y = task.codes(classes, got.y)
    unseen = sorted({str(v) for v in np.asarray(got.y)[y < 0].tolist()})
    if unseen:
        raise EvaluationError(f"target column '{target}' has labels the model never saw: "
                              f"{unseen[:10]} (it knows {[str(c) for c in classes][:20]})",
                              column=target)
    pred = task.codes(classes, got.pred)
    if (pred < 0).any():
        raise EvaluationError("the model predicted labels outside its own classes")
    k = len(classes)
    names = [str(c) for c in classes]
    d = ClassifierData(y, pred, _aligned(got.proba, got.classes, classes), k)
    bd = None
    if got.base_pred is not None:
        bpred = task.codes(classes, got.base_pred)
        if (bpred < 0).any():
            raise EvaluationError(f"the baseline predicts labels the model does not know: "
                                  f"{sorted({str(v) for v in got.base_pred[bpred < 0]})[:10]}")
        bd = ClassifierData(y, bpred, _aligned(got.base_proba, got.base_classes, classes), k)
        if (d.proba is None) != (bd.proba is None):
            # compare like with like: probability metrics only when both give them
            d = ClassifierData(d.y, d.pred, None, k)
            bd = ClassifierData(bd.y, bd.pred, None, k)
    present = np.unique(np.concatenate([y, pred]))
    point = classifier_point(d, present)
    draws = _draws(plan, lambda r: ClassifierWeighted(d.take(r), present),
                   None if bd is None else lambda r: ClassifierWeighted(bd.take(r), present))
    out = _package(point, draws, plan, [m for m in ("accuracy", "precision_macro",
                   "recall_macro", "f1_macro", "roc_auc", "log_loss") if m in point])
    out["labels"] = names
    out["confusion"] = point["confusion"].astype(int).tolist()
    lows = {m: bootstrap.interval(plan, [x[m] for x in draws["model"]])
            for m in PER_CLASS_METRICS} if draws["model"] else {}
    out["per_class"] = {
        names[c]: {m: Metric(m, float(point[m][c]),
                             float(lows[m][0][c]) if lows else np.nan,
                             float(lows[m][1][c]) if lows else np.nan)
                   for m in PER_CLASS_METRICS}
        for c in present.tolist()}
    if bd is not None:
        out.update(_compare(point, classifier_point(bd, present), draws, plan, out["metrics"]))

    def figure(mask: np.ndarray) -> dict[str, float]:
        # the weighted forms with unit weights: the same definitions as the point figures
        # (tests hold them equal to scikit-learn's), without scikit-learn's per-call label
        # validation, which cost ~1 s per slice of 200k rows
        sub = d.take(np.flatnonzero(mask))
        figs = ClassifierWeighted(sub, np.unique(np.r_[sub.y, sub.pred]))(
            np.ones((1, len(sub.y))))
        return {m: float(v[0]) for m, v in figs.items() if v.ndim == 1}

    out["slice"] = figure
    out["selection"] = slices.selection_rates(pred, names, k, k == 2)
    out["curves"] = curves.classifier(y, d.proba, names)
    return out


def _regressor(got: Collected, target: str, plan: bootstrap.Plan) -> dict[str, Any]:
    y, pred = task.check_regression_target(target, got.y, got.pred)
    d = RegressorData(y, pred)
    bd = None
    if got.base_pred is not None:
        bd = RegressorData(y, task.check_regression_target(target, got.y, got.base_pred)[1])
    point = regressor_point(d)
    draws = _draws(plan, lambda r: RegressorWeighted(d.take(r)),
                   None if bd is None else lambda r: RegressorWeighted(bd.take(r)))
    out = _package(point, draws, plan, list(point))
    if bd is not None:
        out.update(_compare(point, regressor_point(bd), draws, plan, out["metrics"]))
    out["slice"] = lambda mask: {m: float(v[0]) for m, v in RegressorWeighted(
        d.take(np.flatnonzero(mask)))(np.ones((1, int(mask.sum())))).items()}
    out["curves"] = curves.regressor(y, pred)
    return out


def _aligned(proba: np.ndarray | None, own: list[Any] | None, classes: list[Any]
             ) -> np.ndarray | None:
    """Probability columns reordered to ``classes`` (zeros for a class the model lacks)."""
    if proba is None:
        return None
    if own is None:
        return proba if proba.shape[1] == len(classes) else None
    out = np.zeros((proba.shape[0], len(classes)))
    idx = task.codes(classes, np.asarray(own, dtype=object))
    out[:, idx[idx >= 0]] = proba[:, idx >= 0]
    return out


def _draws(plan: bootstrap.Plan, mine: Callable[[Any], Any],
           base: Callable[[Any], Any] | None) -> dict[str, list[dict[str, np.ndarray]]]:
    """Bootstrap figures of the model and (same weights) the baseline, per subset."""
    if base is None:
        return {"model": bootstrap.run(plan, mine), "baseline": []}
    both = bootstrap.run(plan, lambda r: _pair(mine(r), base(r)))
    return {"model": [{k[2:]: v for k, v in d.items() if k.startswith("m:")} for d in both],
            "baseline": [{k[2:]: v for k, v in d.items() if k.startswith("b:")} for d in both]}


def _pair(a: Callable[[np.ndarray], dict[str, np.ndarray]],
          b: Callable[[np.ndarray], dict[str, np.ndarray]]
          ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def both(w: np.ndarray) -> dict[str, np.ndarray]:
        return {**{f"m:{k}": v for k, v in a(w).items()},
                **{f"b:{k}": v for k, v in b(w).items()}}

    return both


def _package(point: dict[str, Any], draws: dict[str, list[dict[str, np.ndarray]]],
             plan: bootstrap.Plan, names: list[str]) -> dict[str, Any]:
    metrics = {}
    for m in names:
        lo, hi = (bootstrap.interval(plan, [x[m] for x in draws["model"]])
                  if draws["model"] else (np.nan, np.nan))
        metrics[m] = Metric(m, float(point[m]), float(lo), float(hi))
    return {"metrics": metrics, "draws": draws}


def _compare(point: dict[str, Any], base: dict[str, Any],
             draws: dict[str, list[dict[str, np.ndarray]]], plan: bootstrap.Plan,
             metrics: dict[str, Metric]) -> dict[str, Any]:
    comparison, base_metrics = {}, {}
    for m in metrics:
        b_lo, b_hi = (bootstrap.interval(plan, [x[m] for x in draws["baseline"]])
                      if draws["baseline"] else (np.nan, np.nan))
        base_metrics[m] = Metric(m, float(base[m]), float(b_lo), float(b_hi))
        diffs = [mm[m] - bb[m] for mm, bb in zip(draws["model"], draws["baseline"])]
        lo, hi = bootstrap.interval(plan, diffs) if diffs else (np.nan, np.nan)
        diff = float(point[m]) - float(base[m])
        significant = bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
        worse = diff < 0 if HIGHER_IS_BETTER.get(m, True) else diff > 0
        comparison[m] = Comparison(m, float(point[m]), float(base[m]), diff, float(lo),
                                   float(hi), significant, significant and worse)
    return {"comparison": comparison, "baseline_metrics": base_metrics}
