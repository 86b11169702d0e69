"""``spark_udf(..., env_manager="venv")`` on a real local[2] Spark session: the model needs
a library this interpreter (the driver's and the Python workers') does not have."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satchel.errors import EnvironmentBuildError
from satchel.serving.offline.spark import SparkUDF, spark_udf

from .conftest import ABSENT

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A local[2] session (the one already running, else a new one stopped at the end)."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    session = active or (SparkSession.builder.master("local[2]").appName("satchel-env-tests")
                         .config("spark.driver.bindAddress", "127.0.0.1")
                         .config("spark.driver.host", "127.0.0.1")
                         .config("spark.ui.enabled", "false")
                         .getOrCreate())
    session.sparkContext.setLogLevel("FATAL")
    yield session
    if active is None:
        session.stop()


def _job_error(match: str) -> Any:
    from pyspark.errors import PythonException

    return pytest.raises((PythonException, Exception), match=match)


def test_scores_in_the_models_environment(spark: Any, tabulate_model_dir: Path,
                                          env_cache_dir: Path) -> None:
    with pytest.raises(ImportError):
        __import__(ABSENT)  # neither the driver nor the local Python workers have it
    df = spark.createDataFrame([(i,) for i in range(40)], "x long").repartition(3)
    udf = spark_udf(spark, tabulate_model_dir, env_manager="venv")
    # built on the driver, under the cache the test session points at
    assert udf._plan.env_python is not None
    assert Path(udf._plan.env_python).is_relative_to(env_cache_dir)
    rows = df.select("x", udf("x").alias("p")).collect()
    got = {r["x"]: r["p"] for r in rows}
    assert len(got) == 40
    for x, p in got.items():
        version, _width, doubled = p.split(":")
        assert version == "0.9.0" and doubled == str(x * 2)
    # a second UDF of the same model reuses the cached environment (no rebuild)
    again = spark_udf(spark, tabulate_model_dir, env_manager="venv")
    assert again._plan.env_python == udf._plan.env_python
    assert df.select(again("x").alias("p")).count() == 40


def test_local_env_manager_cannot_import_the_library(spark: Any,
                                                     tabulate_model_dir: Path) -> None:
    df = spark.createDataFrame([(1,)], "x long")
    udf = spark_udf(spark, tabulate_model_dir)
    with _job_error(ABSENT):
        df.select(udf("x")).collect()


def test_unknown_env_manager_is_refused_on_the_driver(spark: Any,
                                                      tabulate_model_dir: Path) -> None:
    with pytest.raises(EnvironmentBuildError, match="env_manager 'conda' is not supported"):
        spark_udf(spark, tabulate_model_dir, env_manager="conda")
    with pytest.raises(EnvironmentBuildError, match="wheelhouse is only used"):
        spark_udf(spark, tabulate_model_dir, wheelhouse="/nonexistent")


def test_an_executor_without_the_environment_names_the_missing_interpreter(
        spark: Any, tabulate_model_dir: Path, tmp_path: Path) -> None:
    udf = spark_udf(spark, tabulate_model_dir, env_manager="venv")
    missing = tmp_path / "nowhere" / "bin" / "python"
    broken = SparkUDF(dataclasses.replace(udf._plan, env_python=str(missing)),
                      udf.returnType, udf._inputs, "model")
    df = spark.createDataFrame([(1,)], "x long")
    with _job_error("does not exist on this executor"):
        df.select(broken("x")).collect()


def test_an_executor_without_the_environment_builds_it_from_the_shipped_wheelhouse(
        spark: Any, tabulate_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from satchel.cli import main

    from .conftest import ABSENT_PIN, copy_model, set_requirements

    model = copy_model(tabulate_model_dir, tmp_path / "m")
    set_requirements(model, [ABSENT_PIN, "six==1.14.0"])  # a key no other test builds
    house = tmp_path / "house"
    assert main(["env", "prepare", str(model), "--wheelhouse", str(house)]) == 0
    udf = spark_udf(spark, model, env_manager="venv", wheelhouse=house)
    assert udf._plan.env_wheels is not None
    # the executors' host lacks the environment: the interpreter the plan names is
    # nowhere, and their own cache (wherever their Python workers keep it) has no entry
    key = Path(udf._plan.env_python).parent.parent.name
    executor_cache = Path(spark.sparkContext.parallelize([0], 1).map(
        lambda _: str(__import__("satchel.envs.cache", fromlist=["_"]).default_cache_dir())
    ).first())
    shutil.rmtree(executor_cache / key, ignore_errors=True)
    missing = tmp_path / "driver-only" / "bin" / "python"
    plan = dataclasses.replace(udf._plan, env_python=str(missing))
    remote = SparkUDF(plan, udf.returnType, udf._inputs, "m")
    df = spark.createDataFrame([(i,) for i in range(6)], "x long").repartition(2)
    got = sorted(r["p"] for r in df.select(remote("x").alias("p")).collect())
    assert [p.split(":")[0] for p in got] == ["0.9.0"] * 6
    # built on the executor, offline, from the wheelhouse, into its cache at the same key
    built = executor_cache / key
    assert (built / "bin" / "python").exists()
    assert "six==1.14.0" in (built / "satchel-env.json").read_text()
