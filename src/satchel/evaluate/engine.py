"""``evaluate()``: one streaming pass that predicts batch by batch and folds each batch
into per-cell sums (:mod:`satchel.evaluate.stream`), then every figure from those sums.
Memory is independent of the number of rows. :func:`compute` feeds whole arrays through
the same pass; the Spark path folds each partition into an ``Evaluation`` on the
executors and merges them (:func:`result_of` turns either into the result)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from satchel.errors import EvaluationError
from satchel.evaluate import bootstrap, slices
from satchel.evaluate.collect import Collected, Predictor
from satchel.evaluate.data import open_source
from satchel.evaluate.result import DatasetInfo, EvaluationResult, ModelInfo
from satchel.evaluate.stream import Evaluation
from satchel.model import Model


def evaluate(model: str | os.PathLike[str] | Model, data: Any, target: str, *,
             baseline: str | os.PathLike[str] | Model | None = None,
             slice_by: Sequence[str] = (), task_type: str | None = None,
             resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
             batch_rows: int = 65_536, dataset_name: str | None = None) -> EvaluationResult:
    """Evaluate ``model`` on ``data`` (a DataFrame, or a Parquet, CSV or JSONL file).

    Args:
        model: a model directory, a model reference ``load_model`` resolves, or a Model.
        data: the evaluation table; read in batches of ``batch_rows`` rows, memory
            independent of its length.
        target: the column holding the truth.
        baseline: a second model to compare against (paired bootstrap).
        slice_by: columns (``COL`` or ``COL=V1,V2``) to compute the metrics per value of.
        task_type: ``classifier`` or ``regressor``; inferred when the model or the target
            tells (an error asks for it otherwise).
        resamples: Poisson bootstrap resamples for the intervals (0: none).
        confidence: the intervals' level.
        seed: the bootstrap's random seed (same seed, same intervals).
        dataset_name: a name recorded with the result (gates match it).

    Raises:
        EvaluationError: a missing target or slice column, a target of the wrong type, a
            task that cannot be inferred, labels the model never saw, an empty slice.
        InputFormatError: unreadable data.
    """
    start = time.monotonic()
    plan = bootstrap.plan(resamples=resamples, confidence=confidence, seed=seed)
    mine, ref = _load(model)
    base, base_ref = _load(baseline) if baseline is not None else (None, "")
    specs = [slices.parse_spec(s) for s in slice_by]
    source = open_source(data, batch_rows=batch_rows)
    check_columns(source.columns, target, [name for name, _ in specs])
    predictor = Predictor(mine)
    base_predictor = Predictor(base) if base is not None else None
    ev = Evaluation(target=target, task_type=task_type,
                    estimator_type=predictor.estimator_type, classes=predictor.classes,
                    base_classes=base_predictor.classes if base_predictor else None,
                    baseline=base_predictor is not None, slice_specs=specs, seed=seed)
    for frame in source.frames:
        if not len(frame):
            continue
        features = frame.drop(columns=[target])
        pred, proba = predictor(features)
        bpred, bproba = base_predictor(features) if base_predictor is not None else (None, None)
        ev.add(frame[target].to_numpy(), pred, proba, bpred, bproba,
               {c: frame[c].to_numpy() for c, _ in specs})
    return result_of(ev, plan, model_info(mine, ref),
                   model_info(base, base_ref) if base is not None else None,
                   source.description, dataset_name, start)


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


def compute(got: Collected | Iterable[Collected], *, target: str, task_type: str | None,
            model: ModelInfo, baseline: ModelInfo | None, estimator_type: str | None,
            slice_specs: Sequence[tuple[str, list[str] | None]], resamples: int,
            confidence: float, seed: int, source: str, dataset_name: str | None,
            start: float | None = None, batch_rows: int = 65_536,
            classes: list[Any] | None = None, base_classes: list[Any] | None = None,
            baseline_given: bool | None = None) -> EvaluationResult:
    """Every figure from arrays: whole arrays, fed in batches as a file
    would be, or an iterable of chunks (then ``classes``, ``base_classes`` and
    ``baseline_given`` say what the chunks cannot before the first arrives)."""
    plan = bootstrap.plan(resamples=resamples, confidence=confidence, seed=seed)
    if isinstance(got, Collected):
        classes, base_classes = got.classes, got.base_classes
        baseline_given = got.base_pred is not None
        chunks: Iterable[Collected] = [got]
    else:
        chunks = got
    ev = Evaluation(target=target, task_type=task_type, estimator_type=estimator_type,
                    classes=classes, base_classes=base_classes,
                    baseline=bool(baseline_given), slice_specs=slice_specs, seed=seed)
    for chunk in chunks:
        for i in range(0, len(chunk.y), batch_rows):
            rows = slice(i, i + batch_rows)
            ev.add(chunk.y[rows], chunk.pred[rows], _part(chunk.proba, rows),
                   _part(chunk.base_pred, rows), _part(chunk.base_proba, rows),
                   {c: v[rows] for c, v in chunk.slices.items()})
    return result_of(ev, plan, model, baseline, source, dataset_name, start)


def _part(a: Any, rows: slice) -> Any:
    return None if a is None else a[rows]


def result_of(ev: Evaluation, plan: bootstrap.Plan, model: ModelInfo,
              baseline: ModelInfo | None, source: str, dataset_name: str | None,
              start: float | None) -> EvaluationResult:
    """The typed result of a finished evaluation (every figure from its tables)."""
    t0 = time.monotonic() if start is None else start
    figures = ev.figures(plan, source)
    assert ev.kind is not None
    return EvaluationResult(task=ev.kind, model=model,
                            dataset=DatasetInfo(source, ev.rows, ev.target, dataset_name),
                            baseline=baseline, seconds=time.monotonic() - t0, **figures)
