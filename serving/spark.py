"""``satchel.serving.spark.spark_udf``, the documented name of the Spark UDF; it lives in
:mod:`satchel.serving.offline.spark`."""

from __future__ import annotations

from satchel.serving.offline.spark import run_batch, spark_udf

__all__ = ["run_batch", "spark_udf"]
