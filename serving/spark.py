"""``satchel.serving.spark.spark_udf``, the documented name of the Spark UDF; it lives in
:mod:`satchel.serving.offline.spark`."""

from __future__ import annotations

from satchel.serving.offline.spark import spark_udf
from satchel.serving.offline.spark_batch import run_batch

__all__ = ["run_batch", "spark_udf"]
