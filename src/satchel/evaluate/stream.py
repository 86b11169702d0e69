"""One evaluation fed batch by batch: the task is settled on the first batch, each batch
goes into the classifier's or the regressor's cells, and :meth:`Evaluation.figures`
turns the cells into metrics with intervals, the comparison, the slices and the curves.

The in-memory path feeds it Arrow batches as they are read and predicted; the Spark path
feeds it the arrays it collected. Both end in the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from satchel.errors import EvaluationError
from satchel.evaluate import bootstrap, curves, macro, slices, task
from satchel.evaluate.classifier import COUNT_METRICS, ClassifierStream, confusion, count_figures
from satchel.evaluate.regressor import GROUPS, RegressorStream
from satchel.evaluate.result import (
    HIGHER_IS_BETTER,
    PER_CLASS_METRICS,
    Comparison,
    Metric,
    SliceResult,
)


class Evaluation:
    """The running state of one evaluation (memory independent of the rows)."""

    def __init__(self, *, target: str, task_type: str | None, estimator_type: str | None,
                 classes: list[Any] | None, base_classes: list[Any] | None, baseline: bool,
                 slice_specs: Sequence[tuple[str, list[str] | None]], seed: int) -> None:
        self.target = target
        self.task_type = task_type
        self.estimator_type = estimator_type
        self.classes, self.base_classes = classes, base_classes
        self.baseline = baseline
        self.specs = list(slice_specs)
        self.scopes = slices.Scopes([c for c, _ in self.specs])
        self.seed = seed
        self.kind: str | None = None
        self.stream: ClassifierStream | RegressorStream | None = None
        self.rows = 0
        self.offset = 0  # table position of this evaluation's first row (a Spark partition's)

    def add(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
            bpred: np.ndarray | None, bproba: np.ndarray | None,
            slice_values: dict[str, np.ndarray]) -> None:
        """One batch of rows."""
        if not len(y):
            return
        if self.stream is None:
            self._start(task.infer(self.task_type, self.target, y, pred, self.estimator_type,
                                   self.classes is not None))
        scopes = [self.scopes.codes(c, slice_values[c]) for c, _ in self.specs]
        if isinstance(self.stream, ClassifierStream):
            self.stream.add(y, pred, proba, bpred, bproba, scopes,
                            first_row=self.offset + self.rows)
        else:
            assert self.stream is not None
            self.stream.add(y, pred, bpred, scopes, first_row=self.offset + self.rows)
        self.rows += len(y)

    def _start(self, kind: str) -> None:
        self.kind = kind
        self.stream = (ClassifierStream(self.target, self.classes, self.base_classes,
                                        self.baseline, self.seed) if kind == "classifier"
                       else RegressorStream(self.target, self.seed))

    def merge(self, other: Evaluation) -> None:
        """Add another evaluation of other rows of the same table (a Spark partition
        folded on an executor): afterwards every figure is the one of both sets of rows.

        Raises:
            EvaluationError: the two settled on different tasks (pass the task).
        """
        if other.stream is None:
            return
        if self.stream is None:
            assert other.kind is not None
            self._start(other.kind)
        elif other.kind != self.kind:
            raise EvaluationError(f"parts of the table look like a {self.kind} and parts like "
                                  f"a {other.kind}; pass --task classifier or --task regressor "
                                  "(task= in Python)", column=self.target)
        remap = np.asarray([0] + [self.scopes.id(c, t) for c, t in other.scopes.names[1:]],
                           dtype=np.int64)
        if isinstance(self.stream, ClassifierStream):
            assert isinstance(other.stream, ClassifierStream)
            self.stream.merge(other.stream, remap)
        else:
            assert isinstance(self.stream, RegressorStream)
            assert isinstance(other.stream, RegressorStream)
            self.stream.merge(other.stream, remap)
        self.rows += other.rows

    def figures(self, plan: bootstrap.Plan, source: str) -> dict[str, Any]:
        """Every figure, as keyword arguments of :class:`EvaluationResult`."""
        if self.stream is None:
            raise EvaluationError(f"{source} has no rows to evaluate")
        if isinstance(self.stream, ClassifierStream):
            out = _classifier(self.stream, plan, self)
            out["bootstrap"] = plan.info()
        else:
            out = _regressor(self.stream, plan, self)
            out["bootstrap"] = plan.info(groups=GROUPS)
        out["bias"] = slices.bias(out["slices"])
        return out


def _metric(plan: bootstrap.Plan, name: str, value: float, draws: np.ndarray | None) -> Metric:
    lo, hi = bootstrap.interval(plan, draws)
    return Metric(name, float(value), float(lo), float(hi))


def _classifier(s: ClassifierStream, plan: bootstrap.Plan, ev: Evaluation) -> dict[str, Any]:
    classes, keys, counts = s.finish()
    k, names = len(classes), [str(c) for c in classes]
    cnt, mcell, bcell = confusion(keys, counts, 0, k)
    cf = count_figures(plan, cnt, mcell, bcell if s.baseline else None, k, 0)
    point, draws, conf = cf["point"], cf["draws"], cf["conf"]
    present = np.flatnonzero(conf.sum(axis=0) + conf.sum(axis=1) > 0)
    metrics = {m: _metric(plan, m, point[m], draws.get(f"m:{m}")) for m in COUNT_METRICS}
    sf = s.scores.figures(plan, 0, 0, s.distinct, s.log_loss(0)) \
        if s.scores is not None else None
    if sf is not None:
        metrics["roc_auc"] = _metric(plan, "roc_auc", sf.roc_auc, sf.auc_draws)
        metrics["log_loss"] = _metric(plan, "log_loss", sf.log_loss, sf.loss_draws)
    per_class = {names[c]: {m: _metric(plan, m, point[m][c],
                                       draws[f"m:{m}"][:, c] if draws else None)
                            for m in PER_CLASS_METRICS} for c in present.tolist()}
    out: dict[str, Any] = {"metrics": metrics, "labels": names, "per_class": per_class,
                           "confusion": conf.astype(int).tolist(),
                           "curves": curves.classifier(s.scores, names,
                                                       sf.per_class_auc if sf else {}),
                           "roc_auc_tie_bound": sf.tie_bound if sf is not None else 0.0}
    if s.baseline:
        base_point = {m: cf["base_point"][m] for m in COUNT_METRICS}
        base_draws = {m: draws.get(f"b:{m}") for m in COUNT_METRICS}
        diffs = {m: draws[f"m:{m}"] - draws[f"b:{m}"] if draws else None
                 for m in COUNT_METRICS}
        if sf is not None and s.base_scores is not None and s.pair is not None:
            bf = s.base_scores.figures(plan, 0, 0, s.base_distinct, s.log_loss(0, True))
            base_point.update(roc_auc=bf.roc_auc, log_loss=bf.log_loss)
            base_draws.update(roc_auc=bf.auc_draws, log_loss=bf.loss_draws)
            paired = s.pair.differences(plan, sf.roc_auc - bf.roc_auc, sorted(sf.per_class_auc))
            mine = s.scores.groups if s.scores is not None else None
            if mine is not None and s.base_scores.groups is not None \
                    and sf.per_class_auc and plan.resamples:
                # more than two classes: both macro AUCs weighed by the same row groups
                dm, db = macro.draws(plan, [mine, s.base_scores.groups],
                                     [sf.roc_auc, bf.roc_auc], 0, sorted(sf.per_class_auc),
                                     (2, 1))
                paired["roc_auc"] = dm - db
            diffs.update(roc_auc=paired.get("roc_auc"), log_loss=paired.get("log_loss"))
        out.update(_compare(plan, metrics, base_point, base_draws, diffs))
    out["slices"], bound = _classifier_slices(s, plan, ev, keys, counts, k, names)
    # past the score cap the slices' ROC AUC comes from histograms too: the bound covers all
    out["roc_auc_tie_bound"] = max(out["roc_auc_tie_bound"], bound)
    return out


def _classifier_slices(s: ClassifierStream, plan: bootstrap.Plan, ev: Evaluation,
                       keys: np.ndarray, counts: np.ndarray, k: int, names: list[str]
                       ) -> tuple[list[SliceResult], float]:
    from satchel.evaluate.classifier import PACK

    rows = _rows_by_scope(PACK.unpack(keys)[0], counts)
    out, bound = [], 0.0
    for column, wanted in ev.specs:
        for value, sid in ev.scopes.chosen(column, wanted, rows):
            cnt, mcell, _ = confusion(keys, counts, sid, k)
            cf = count_figures(plan, cnt, mcell, None, k, sid)
            conf = cf["conf"]
            figs = {m: (cf["point"][m], cf["draws"].get(f"m:{m}")) for m in COUNT_METRICS}
            if s.scores is not None:
                sf = s.scores.figures(plan, sid, sid, s.distinct, s.log_loss(sid))
                figs["roc_auc"] = (sf.roc_auc, sf.auc_draws)
                figs["log_loss"] = (sf.log_loss, sf.loss_draws)
                bound = max(bound, sf.tie_bound)
            predicted = conf.sum(axis=0)
            which = [1] if k == 2 else list(range(k))
            total = max(float(conf.sum()), 1.0)
            out.append(_slice(plan, column, value, rows[sid], figs,
                              {names[c]: float(predicted[c] / total) for c in which}))
    return out, bound


def _regressor(s: RegressorStream, plan: bootstrap.Plan, ev: Evaluation) -> dict[str, Any]:
    fig = s.figures(plan, 0, ev.baseline)
    draws = fig["draws"]
    metrics = {m: _metric(plan, m, v, draws.get(f"m:{m}")) for m, v in fig["point"].items()}
    out: dict[str, Any] = {"metrics": metrics, "curves": curves.regressor(*s.residual_sample())}
    if ev.baseline:
        base_point = dict(fig["base_point"])
        diffs = {m: draws[f"m:{m}"] - draws[f"b:{m}"] if draws else None for m in metrics}
        out.update(_compare(plan, metrics, base_point,
                            {m: draws.get(f"b:{m}") for m in metrics}, diffs))
    from satchel.evaluate.regressor import PACK

    sc, _ = PACK.unpack(s.table.keys)
    rows = _rows_by_scope(sc, s.table.sums[:, 0])
    result = []
    for column, wanted in ev.specs:
        for value, sid in ev.scopes.chosen(column, wanted, rows):
            f = s.figures(plan, sid, False)
            figs = {m: (v, f["draws"].get(f"m:{m}")) for m, v in f["point"].items()}
            result.append(_slice(plan, column, value, rows[sid], figs, {}))
    out["slices"] = result
    return out


def _rows_by_scope(scope: np.ndarray, counts: np.ndarray) -> dict[int, int]:
    ids, inverse = np.unique(scope, return_inverse=True)
    total = np.bincount(inverse, weights=counts)
    return {int(i): int(round(t)) for i, t in zip(ids, total)}


def _slice(plan: bootstrap.Plan, column: str, value: str, rows: int,
           figs: dict[str, tuple[float, np.ndarray | None]],
           selection: dict[str, float]) -> SliceResult:
    metrics, low, high = {}, {}, {}
    for m, (v, d) in figs.items():
        lo, hi = bootstrap.interval(plan, d)
        metrics[m], low[m], high[m] = float(v), float(lo), float(hi)
    return SliceResult(column, value, rows, metrics, selection, low, high)


def _compare(plan: bootstrap.Plan, metrics: dict[str, Metric], base: dict[str, float],
             base_draws: dict[str, np.ndarray | None], diffs: dict[str, np.ndarray | None]
             ) -> dict[str, Any]:
    comparison, base_metrics = {}, {}
    for m, mine in metrics.items():
        base_metrics[m] = _metric(plan, m, base[m], base_draws.get(m))
        lo, hi = bootstrap.interval(plan, diffs.get(m))
        diff = mine.value - float(base[m])
        significant = bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
        worse = diff < 0 if HIGHER_IS_BETTER.get(m, True) else diff > 0
        comparison[m] = Comparison(m, mine.value, float(base[m]), diff, float(lo), float(hi),
                                   significant, significant and worse)
    return {"comparison": comparison, "baseline_metrics": base_metrics}
