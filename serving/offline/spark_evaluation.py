"""``satchel evaluate --spark``: Spark reads the table, and each executor folds its
partition into the evaluation's mergeable tables (``satchel.serving.offline.evaluation``,
through ``mapInArrow``); the driver receives one small state per partition and merges
them in partition order. No row reaches the driver.

The row positions that seed the regression bootstrap's groups are the table's own: a
first, model-free job counts each partition's rows, so each executor knows where its
partition starts (for one file, Spark's partitions are its splits in order, so these are
the positions the in-memory path gives).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from functools import partial
from typing import Any

from satchel._fs import verify_digests
from satchel.manifest import Manifest
from satchel.serving.offline.evaluation import (
    PART,
    STATE_DDL,
    TARGET,
    FoldPlan,
    Side,
    fold,
    input_column,
    raise_if_error,
    slice_column,
)
from satchel.serving.offline.spark import SparkUDF, _local_dir, _Plan, _ship
from satchel.serving.offline.spark_session import (
    absolute,
    pandas3_notice_handled,
    quote,
    read_table,
    session,
)


def _side(spark: Any, model_uri: str | os.PathLike[str], tag: str, env_manager: str,
          wheelhouse: str | os.PathLike[str] | None) -> tuple[Side, list[Any]]:
    """The model shipped as for ``spark_udf`` (with ``env_manager="venv"``, its
    environment built on the driver and each executor predicting in a worker of it, as
    ``spark_udf(env_manager="venv")`` does), and its input columns (the signature's
    inputs by name, bound as ``spark_udf(...)()`` binds them)."""
    from satchel.serving.offline import spark_env

    root = _local_dir(model_uri)
    manifest = Manifest.read(root)
    if manifest.artifact_digests:
        verify_digests(root, manifest.artifact_digests)
    env_python = spark_env.prepare(root, env_manager, wheelhouse)
    wheels = (spark_env.ship_wheelhouse(spark, wheelhouse)
              if env_python is not None and wheelhouse is not None else None)
    archive, digest = _ship(spark, root, manifest)
    plan = _Plan(archive, digest, None, None, "evaluation", (), env_python, wheels)
    sig = manifest.signature
    names, cols = SparkUDF(plan, None, sig.inputs if sig is not None else None,
                           root.name)._bind(())
    aliases = tuple(input_column(tag, i) for i in range(len(cols)))
    return Side(plan, aliases, tuple(names)), [c.alias(a) for c, a in zip(cols, aliases)]


def fold_on_spark(master: str, data_path: str, fmt: str, target: str,
                  slice_by: Sequence[str], model_path: str | os.PathLike[str],
                  baseline_path: str | os.PathLike[str] | None, empty: Any,
                  env_manager: str = "local",
                  wheelhouse: str | os.PathLike[str] | None = None) -> Any:
    """``empty`` (a ``satchel.evaluate.stream.Evaluation`` with no rows) after every row
    of the table at ``data_path`` was folded into it on the executors; with
    ``env_manager="venv"`` each model predicts in its own environment there.

    Raises:
        EvaluationError: a named column is missing; EnvironmentBuildError,
            PythonMismatchError: a model's environment cannot be built.
    """
    from pyspark.sql import functions as F

    from satchel.errors import EvaluationError

    if master.startswith("local"):
        data_path = absolute(data_path)
    with session(master, "satchel evaluate") as spark, pandas3_notice_handled():
        df = read_table(spark, data_path, fmt)
        for c in [target, *slice_by]:
            if c not in df.columns:
                raise EvaluationError(f"column '{c}' is not in the data (it has: "
                                      f"{', '.join(df.columns[:30])})", column=c)
        model, model_cols = _side(spark, model_path, "m", env_manager, wheelhouse)
        baseline, base_cols = _side(spark, baseline_path, "b", env_manager, wheelhouse) \
            if baseline_path is not None else (None, [])
        counts = dict(df.select(F.spark_partition_id().alias("p")).groupBy("p").count()
                      .collect())
        offsets, at = {}, 0
        for p in sorted(counts):
            offsets[int(p)], at = at, at + int(counts[p])
        slices = tuple((c, slice_column(i)) for i, c in enumerate(slice_by))
        plan = FoldPlan(pickle.dumps(empty), model, baseline, slices, offsets)
        table = df.select(F.spark_partition_id().alias(PART),
                          F.col(quote(target)).alias(TARGET),
                          *[F.col(quote(c)).alias(a) for c, a in slices],
                          *model_cols, *base_cols)
        states = table.mapInArrow(partial(fold, plan), STATE_DDL)
        answers = sorted(((int(r["part"]), bytes(r["state"])) for r in states.collect()),
                         key=lambda t: t[0])
        for _, state in answers:
            empty.merge(raise_if_error(pickle.loads(state)))  # noqa: S301 - our executors'
    return empty
