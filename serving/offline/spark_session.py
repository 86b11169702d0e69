"""The Spark plumbing satchel's Spark jobs share: a session started (and stopped) only
when none is running, reading and atomically writing a table, column quoting, and
PySpark's pandas-3 notice. ``satchel batch --spark`` (``spark_batch``) and ``satchel
evaluate --spark`` (``spark_evaluation``) use it; pyspark is imported inside functions.
"""

from __future__ import annotations

import contextlib
import re
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from satchel.errors import DestinationExistsError

# PySpark 4.x warns on every UDF it builds when pandas is 3.x. satchel's UDF moves Arrow
# batches (pandas only where Spark < 4.1 needs it), tested under pandas 2 and 3, so the
# notice is dropped where satchel builds UDFs and collects results, not for everyone.
PANDAS3_NOTICE = "PySpark does not yet fully support pandas >= 3"
WORKER_WARNINGS = f"ignore:{PANDAS3_NOTICE}:FutureWarning"


@contextlib.contextmanager
def pandas3_notice_handled() -> Iterator[None]:
    """Drop PySpark's pandas-3 FutureWarning inside this block (and only it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(PANDAS3_NOTICE),
                                category=FutureWarning)
        yield


def quote(name: str) -> str:
    """A column name as a Spark SQL identifier (any character, backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def absolute(path: str) -> str:
    """A local path made absolute (executors may run elsewhere); URLs unchanged."""
    return path if "://" in path else str(Path(path).resolve())


@contextlib.contextmanager
def session(master: str, app_name: str) -> Iterator[Any]:
    """The active SparkSession, used and left running; or one started for ``master``
    (bound to 127.0.0.1 for ``local[...]``, workers on this interpreter) and stopped at
    the end of the block."""
    from pyspark.sql import SparkSession

    started = SparkSession.getActiveSession() is None
    builder = SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        builder = (builder.config("spark.pyspark.python", sys.executable)
                   .config("spark.executorEnv.PYTHONWARNINGS", WORKER_WARNINGS)
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.host", "127.0.0.1").config("spark.ui.enabled", "false"))
    spark = builder.getOrCreate()
    try:
        yield spark
    finally:
        if started:
            spark.stop()


def read_table(spark: Any, path: str, fmt: str) -> Any:
    """A DataFrame of a CSV (header, inferred types), JSON-lines or Parquet table."""
    reader = spark.read
    if fmt == "csv":
        return reader.option("header", True).option("inferSchema", True).csv(path)
    if fmt == "jsonl":
        return reader.json(path)
    return reader.parquet(path)


def write_atomic(spark: Any, df: Any, output: str, fmt: str, overwrite: bool) -> None:
    """Write ``df`` as a directory of part files to a hidden sibling, then rename it
    onto ``output``: readers see the old output or the whole new one, never a part."""
    # Hadoop's FileSystem API, so the rename works on HDFS as on a local disk
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path
    dst = hpath(output)
    fs = dst.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.exists(dst) and not overwrite:
        raise DestinationExistsError(f"{output} already exists; pass --overwrite to replace it")
    tmp = hpath(dst.getParent(), f".{dst.getName()}.{uuid.uuid4().hex[:12]}.satchel-tmp")
    try:
        writer = df.write.mode("error")
        if fmt == "csv":
            writer.option("header", True).csv(tmp.toString())
        elif fmt == "jsonl":
            writer.json(tmp.toString())
        else:
            writer.parquet(tmp.toString())
        if fs.exists(dst):
            fs.delete(dst, True)
        if not fs.rename(tmp, dst):
            raise OSError(f"could not rename the Spark output into {output}")
    except BaseException:
        fs.delete(tmp, True)
        raise
