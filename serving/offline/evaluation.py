"""Executor side of ``satchel evaluate --spark``: each Python worker folds its partition's
Arrow batches into the evaluation's mergeable tables (``satchel.evaluate.stream``:
confusion cells, score histograms, distinct scores, per-scope sums), exactly as the
in-memory path folds a file's batches, and sends the folded state to the driver as one
pickled value. Predictions go through the same ``Predictor`` the in-memory path uses
(``satchel.evaluate.collect``), so both paths predict identically. No row leaves the
executor. pyarrow is imported on first use; no pyspark here but ``SparkFiles`` (through
``spark._worker_model``).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from satchel.errors import SatchelError
from satchel.evaluate.collect import Predictor
from satchel.model import Model

# the one row each partition returns: its Spark partition id and its pickled state
STATE_DDL = "part long, state binary"
PART, TARGET = "__satchel_part", "__satchel_target"
_PREDICTORS: dict[int, Predictor] = {}


@dataclass(frozen=True)
class Side:
    """One model on the executors: its shipping plan, the batch columns holding its
    inputs and the input names they stand for."""

    plan: Any  # satchel.serving.offline.spark._Plan
    columns: tuple[str, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class FoldPlan:
    """What every partition's fold needs: plain, picklable values."""

    state: bytes  # a pickled empty Evaluation, made on the driver
    model: Side
    baseline: Side | None
    slices: tuple[tuple[str, str], ...]  # (slice column, its batch column)
    offsets: dict[int, int]  # partition id -> table position of its first row


def slice_column(i: int) -> str:
    return f"__satchel_slice_{i}"


def input_column(side: str, i: int) -> str:
    return f"__satchel_{side}{i}"


def fold(plan: FoldPlan, batches: Iterator[Any]) -> Iterator[Any]:
    """mapInArrow body: a partition's record batches in, one batch of (part, state) out.

    A SatchelError (a target of the wrong type, labels the model never saw ...) travels
    to the driver as (class name, message) and is raised there, so the user sees the same
    one-line error as in memory, not an executor traceback.
    """
    import pyarrow as pa

    ev = pickle.loads(plan.state)  # noqa: S301 - the driver's own object, pickled by it
    part = -1
    try:
        model = _predictor(plan.model)
        base = _predictor(plan.baseline) if plan.baseline is not None else None
        for batch in batches:
            if not batch.num_rows:
                continue
            if part < 0:
                part = int(batch.column(PART)[0].as_py())
                ev.offset = plan.offsets.get(part, 0)
            plain = pa.RecordBatch.from_arrays(
                [batch.column(TARGET), *[batch.column(c) for _, c in plan.slices]],
                names=[TARGET, *[c for _, c in plan.slices]]).to_pandas()
            pred, proba = _predict(model, plan.model, batch)
            bpred, bproba = _predict(base, plan.baseline, batch) if base is not None \
                else (None, None)
            ev.add(plain[TARGET].to_numpy(), pred, proba, bpred, bproba,
                   {name: plain[c].to_numpy() for name, c in plan.slices})
        payload = pickle.dumps(("ok", ev), protocol=pickle.HIGHEST_PROTOCOL)
    except SatchelError as exc:
        payload = pickle.dumps(("error", type(exc).__name__, str(exc)))
    yield pa.RecordBatch.from_arrays([pa.array([part], pa.int64()),
                                      pa.array([payload], pa.binary())],
                                     names=["part", "state"])


def _predictor(side: Side) -> tuple[Model, Predictor]:
    from satchel.serving.offline.spark import _worker_model

    model = _worker_model(side.plan)
    predictor = _PREDICTORS.get(id(model))
    if predictor is None:
        predictor = _PREDICTORS.setdefault(id(model), Predictor(model))
    return model, predictor


def _predict(got: tuple[Model, Predictor], side: Side | None, batch: Any) -> Any:
    from satchel.serving.offline import tabular

    assert side is not None
    model, predictor = got
    sig = model.signature
    schema = sig.inputs if sig is not None else None
    arrays = [batch.column(c) for c in side.columns]
    columns, fields = tabular.expand_struct(arrays, list(side.names), schema)
    return predictor(tabular.model_input(columns, fields or list(side.names), schema))


def raise_if_error(answer: tuple[Any, ...]) -> Any:
    """Driver side: the Evaluation a partition sent, or the error it met, raised as the
    same satchel error class with the same message."""
    if answer[0] == "ok":
        return answer[1]
    from satchel import errors

    _, name, message = answer
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, SatchelError)):
        cls = errors.EvaluationError
    try:
        exc = cls(message)
    except TypeError:  # a class with required keyword details: the message only
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
    raise exc
