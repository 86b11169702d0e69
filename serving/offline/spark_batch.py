"""``satchel batch --spark``: read a table with Spark, score it with
:func:`~satchel.serving.offline.spark.spark_udf`, write the result atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from satchel.errors import InputFormatError
from satchel.serving.offline.spark import spark_udf
from satchel.serving.offline.spark_session import (
    absolute,
    quote,
    read_table,
    session,
    write_atomic,
)


def run_batch(model_path: str | os.PathLike[str], input_path: str, output_path: str,
              master: str, in_fmt: str, out_fmt: str, keep: Sequence[str] = (),
              overwrite: bool = False, load_options: dict[str, Any] | None = None) -> None:
    """``satchel batch --spark``: read with Spark, score with ``spark_udf``, write a
    directory of part files to a hidden sibling, then rename it onto ``output_path``.

    A session already running in this process is used and left running; otherwise one
    is started for ``master`` (bound to 127.0.0.1 for ``local[...]``) and stopped after.
    """
    if master.startswith("local"):
        input_path, output_path = absolute(input_path), absolute(output_path)
    with session(master, "satchel batch") as spark:
        df = read_table(spark, input_path, in_fmt)
        missing = [k for k in keep if k not in df.columns]
        if missing:
            raise InputFormatError(f"--keep columns {missing} not in {input_path}")
        udf = spark_udf(spark, model_path, **(load_options or {}))
        scored = df.select(*[df[quote(k)] for k in keep], udf().alias("__satchel_prediction"))
        out = scored.select(*[quote(k) for k in keep], *_prediction_columns(udf.returnType))
        write_atomic(spark, out, output_path, out_fmt, overwrite)


def _prediction_columns(rtype: Any) -> list[Any]:
    """Named as the local engine names them: ``prediction``, or a struct's fields."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    p = F.col("__satchel_prediction")
    if isinstance(rtype, T.StructType):
        return [p.getField(f.name).alias(f.name) for f in rtype.fields]
    return [p.alias("prediction")]
