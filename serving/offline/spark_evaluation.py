"""``satchel evaluate --spark``: the model (and a baseline) scored on the executors by an
evaluation UDF that keeps, per row, the prediction and class probabilities; only those,
the target and the slice columns come back to the driver, a batch at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from satchel._fs import verify_digests
from satchel.manifest import Manifest
from satchel.serving.offline.spark import (
    SparkUDF,
    _empty,
    _local_dir,
    _make_udf,
    _parse_type,
    _Plan,
    _ship,
    batch_inputs,
)
from satchel.serving.offline.spark_session import (
    absolute,
    pandas3_notice_handled,
    quote,
    read_table,
    session,
)


def _score_evaluation(plan: _Plan, names: list[str], batches: Any) -> Any:
    """Executor side of the evaluation UDF: predictions and probabilities per row."""
    from satchel.serving.offline import evaluation

    for model, data, _rows in batch_inputs(plan, names, batches):
        yield _empty(plan.arrow_type) if data is None else evaluation.score(model, data)


class _EvaluationUDF(SparkUDF):
    def __call__(self, *cols: Any) -> Any:
        names, columns = self._bind(cols)
        return _make_udf(self._plan, names, self.returnType, _score_evaluation)(*columns)


def evaluation_udf(spark: Any, model_uri: str | os.PathLike[str]) -> SparkUDF:
    """A column of ``struct<code, value, text, proba>`` per row (see
    ``satchel.serving.offline.evaluation``), the model shipped and cached as for
    ``spark_udf``."""
    from satchel.serving.offline import evaluation

    root = _local_dir(model_uri)
    manifest = Manifest.read(root)
    if manifest.artifact_digests:
        verify_digests(root, manifest.artifact_digests)
    archive, digest = _ship(spark, root, manifest)
    spark_type = _parse_type(evaluation.DDL)
    plan = _Plan(archive, digest, None, evaluation.arrow_type(), spark_type.simpleString())
    sig = manifest.signature
    return _EvaluationUDF(plan, spark_type, sig.inputs if sig is not None else None, root.name)


def batches_for_evaluation(master: str, data_path: str, fmt: str, target: str,
                           slice_by: Sequence[str], model_path: str | os.PathLike[str],
                           baseline_path: str | os.PathLike[str] | None,
                           classes: list[Any] | None, base_classes: list[Any] | None,
                           batch_rows: int = 65_536) -> Iterator[dict[str, Any]]:
    """Read the table with Spark, predict on the executors, and bring back to the driver
    only the target, the slice columns and each model's predictions and probabilities, in
    partition order (for one file, its row order, so the bootstrap draws as in memory),
    ``batch_rows`` rows at a time: the driver holds one batch and one partition, never the
    whole column set."""
    import itertools

    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import functions as F

    from satchel.errors import EvaluationError
    from satchel.serving.offline import evaluation

    if master.startswith("local"):
        data_path = absolute(data_path)
    with session(master, "satchel evaluate") as spark:
        df = read_table(spark, data_path, fmt)
        for c in [target, *slice_by]:
            if c not in df.columns:
                raise EvaluationError(f"column '{c}' is not in the data (it has: "
                                      f"{', '.join(df.columns[:30])})", column=c)
        names = ["__satchel_target", *[f"__satchel_slice_{i}" for i in range(len(slice_by))],
                 "__satchel_model"]
        cols = [F.col(quote(target)).alias("__satchel_target"),
                *[F.col(quote(c)).alias(f"__satchel_slice_{i}") for i, c in enumerate(slice_by)],
                evaluation_udf(spark, model_path)().alias("__satchel_model")]
        if baseline_path is not None:
            names.append("__satchel_baseline")
            cols.append(evaluation_udf(spark, baseline_path)().alias("__satchel_baseline"))
        # a partition at a time, in partition order: the order of monotonically increasing
        # ids, which the in-memory order of one file is. No sort: a global orderBy samples
        # its input first, which would run the models twice
        rows = df.select(*cols).toLocalIterator(prefetchPartitions=True)
        with pandas3_notice_handled():
            while True:
                chunk = list(itertools.islice(rows, batch_rows))
                if not chunk:
                    break
                columns = list(zip(*chunk))
                # plain columns through Arrow, so they convert as the in-memory path's do
                # (integers with nulls become floats with NaN, text stays text)
                plain = [pa.array(list(c)).to_pandas().to_numpy()
                         for c in columns[:1 + len(slice_by)]]
                frame = pd.DataFrame({n: pd.Series(c, dtype=object)
                                      for n, c in zip(names[1 + len(slice_by):],
                                                      columns[1 + len(slice_by):])})
                pred, proba = evaluation.decode(frame, "__satchel_model", classes)
                out: dict[str, Any] = {
                    "y": plain[0], "pred": pred, "proba": proba,
                    "slices": {c: plain[1 + i] for i, c in enumerate(slice_by)},
                    "base_pred": None, "base_proba": None}
                if baseline_path is not None:
                    out["base_pred"], out["base_proba"] = evaluation.decode(
                        frame, "__satchel_baseline", base_classes)
                yield out
