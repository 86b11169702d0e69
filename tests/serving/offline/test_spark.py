"""spark_udf and ``satchel batch --spark`` on a real local[2] Spark session.

Spark is required (CI installs pyspark and Java): a missing one fails these tests.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import OutputError, SignatureError, UnknownParamsWarning
from satchel.serving.offline import spark as spark_module
from satchel.serving.offline.spark import spark_udf

pytestmark = pytest.mark.spark

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local[2] session bound to 127.0.0.1; workers run this interpreter."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("satchel-tests")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .getOrCreate())
    session.sparkContext.setLogLevel("FATAL")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def iris_df(spark: Any, iris: tuple[Any, Any]) -> Any:
    X, _ = iris
    return spark.createDataFrame(X.assign(id=np.arange(len(X)))).repartition(3).cache()


def _scored(df: Any, column: Any) -> pd.DataFrame:
    """Score, then bring rows back in id order with the features."""
    return df.select("id", *FEATURES, column.alias("p")).toPandas().sort_values("id")


def _job_error(match: str) -> Any:
    from pyspark.errors import PythonException

    return pytest.raises(PythonException, match=match)


# --- models --------------------------------------------------------------------------------


class LabelScore(satchel.PythonModel):
    """Returns a DataFrame of two columns: a string label and a double score."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        x = model_input["x"]
        return pd.DataFrame({"label": np.where(x > 0, "pos", "neg"), "score": x * 10.0})


class Scale(satchel.PythonModel):
    """x * k, with k an inference param (default 1)."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return model_input["x"] * float((params or {}).get("k", 1))


class OptionalB(satchel.PythonModel):
    """b where present, else -1; b is an optional long (exact beyond 2**53)."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        if "b" not in model_input:
            return np.full(len(model_input), -1, dtype=np.int64)
        return model_input["b"].fillna(-1).to_numpy(dtype=np.int64)


class LogLoads(satchel.PythonModel):
    """Appends this process's pid to a file on every load; predicts x + 1."""

    def load_context(self, context: Any) -> None:
        with open(context.model_config["log"], "a") as f:
            f.write(f"{os.getpid()}\n")

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return model_input["x"] + 1.0


@pytest.fixture(scope="module")
def proba_dir(tmp_path_factory: pytest.TempPathFactory, iris: tuple[Any, Any],
              iris_logreg: Any) -> Path:
    path = tmp_path_factory.mktemp("models") / "proba"
    satchel.save_model(iris_logreg, path, predict_fn="predict_proba",
                       input_example=iris[0].head(5))
    return path


# --- outputs -------------------------------------------------------------------------------


def test_scalar_output_with_no_arguments_equals_predict(
        spark: Any, iris_df: Any, iris_model_dir: Path, iris_logreg: Any) -> None:
    udf = spark_udf(spark, iris_model_dir)
    assert udf.returnType.simpleString() == "bigint"
    out = _scored(iris_df, udf())
    assert out["p"].dtype == np.int64
    np.testing.assert_array_equal(out["p"], iris_logreg.predict(out[FEATURES]))


def test_array_output_predict_proba_is_exact(spark: Any, iris_df: Any, proba_dir: Path,
                                             iris_logreg: Any) -> None:
    udf = spark_udf(spark, proba_dir)
    assert udf.returnType.simpleString() == "array<double>"
    out = _scored(iris_df, udf())
    np.testing.assert_array_equal(np.stack(out["p"].to_numpy()),
                                  iris_logreg.predict_proba(out[FEATURES]))


def test_struct_output_from_a_dataframe_model(spark: Any, tmp_path: Path,
                                              save_python_model: Any) -> None:
    path = save_python_model(LabelScore(), tmp_path / "m",
                             input_example=pd.DataFrame({"x": [1.0, -2.0]}))
    udf = spark_udf(spark, path)
    assert udf.returnType.simpleString() == "struct<label:string,score:double>"
    df = spark.createDataFrame(pd.DataFrame({"x": [-1.5, 0.0, 2.25]}))
    out = df.select("x", udf().alias("p")).select("x", "p.label", "p.score").toPandas()
    assert out["label"].tolist() == ["neg", "neg", "pos"]
    assert out["score"].tolist() == [-15.0, 0.0, 22.5]


def test_result_type_as_ddl_struct_and_as_datatype(spark: Any, iris_df: Any, proba_dir: Path,
                                                   iris_logreg: Any) -> None:
    from pyspark.sql import types as T

    udf = spark_udf(spark, proba_dir, "setosa double, versicolor double, virginica float")
    out = iris_df.select("id", *FEATURES, udf().alias("p")).select(
        "id", *FEATURES, "p.*").toPandas().sort_values("id")
    proba = iris_logreg.predict_proba(out[FEATURES])
    np.testing.assert_array_equal(out["setosa"], proba[:, 0])
    assert out["virginica"].dtype == np.float32
    np.testing.assert_array_equal(out["virginica"], proba[:, 2].astype(np.float32))

    typed = spark_udf(spark, proba_dir, T.ArrayType(T.FloatType()))
    got = _scored(iris_df, typed())
    np.testing.assert_array_equal(np.stack(got["p"].to_numpy()),
                                  iris_logreg.predict_proba(got[FEATURES]).astype(np.float32))


def test_bad_result_types_fail_on_the_driver(spark: Any, iris_model_dir: Path) -> None:
    with pytest.raises(OutputError, match="'notatype' is not a Spark type"):
        spark_udf(spark, iris_model_dir, "notatype")
    with pytest.raises(OutputError, match="map<string,int> is not supported"):
        spark_udf(spark, iris_model_dir, "map<string, int>")
    with pytest.raises(OutputError, match="must be a Spark DataType or a DDL string"):
        spark_udf(spark, iris_model_dir, 3)


# --- inputs --------------------------------------------------------------------------------


def test_positional_columns_take_the_signature_order(spark: Any, iris_df: Any,
                                                     iris_model_dir: Path, iris_logreg: Any
                                                     ) -> None:
    from pyspark.sql import functions as F

    udf = spark_udf(spark, iris_model_dir)
    # Column objects are positional: renamed columns still feed the inputs in order.
    renamed = iris_df.select("id", *FEATURES, *[F.col(c).alias(f"c{i}")
                                                for i, c in enumerate(FEATURES)])
    out = _scored(renamed, udf(*[F.col(f"c{i}") for i in range(4)]))
    np.testing.assert_array_equal(out["p"], iris_logreg.predict(out[FEATURES]))
    # Names that are all signature inputs are matched by name, in any order.
    shuffled = _scored(iris_df, udf(*reversed(FEATURES)))
    np.testing.assert_array_equal(shuffled["p"], out["p"])


def test_struct_column_is_matched_by_field_name(spark: Any, iris_df: Any,
                                                iris_model_dir: Path, iris_logreg: Any) -> None:
    from pyspark.sql import functions as F

    udf = spark_udf(spark, iris_model_dir)
    out = _scored(iris_df, udf(F.struct(*reversed(FEATURES), "id")))
    np.testing.assert_array_equal(out["p"], iris_logreg.predict(out[FEATURES]))


def test_binding_errors_are_raised_on_the_driver(spark: Any, iris_model_dir: Path,
                                                 tmp_path: Path, iris: tuple[Any, Any],
                                                 iris_logreg: Any) -> None:
    udf = spark_udf(spark, iris_model_dir)
    with pytest.raises(SignatureError, match="takes 4 inputs .* given 5 columns"):
        udf(*FEATURES, "id")
    with pytest.raises(SignatureError, match=r"missing required inputs \['petal_length', "
                       r"'petal_width'\]"):
        udf("sepal_length", "sepal_width")
    bare = tmp_path / "bare"
    satchel.save_model(iris_logreg, bare)
    with pytest.raises(SignatureError, match="has no input signature"):
        spark_udf(spark, bare, "long")()
    with pytest.raises(OutputError, match="no output signature"):
        spark_udf(spark, bare)


def test_model_without_signature_gets_string_columns_by_name(
        spark: Any, iris_df: Any, tmp_path: Path, iris_logreg: Any) -> None:
    bare = tmp_path / "bare"
    satchel.save_model(iris_logreg, bare)
    out = _scored(iris_df, spark_udf(spark, bare, "long")(*FEATURES))
    np.testing.assert_array_equal(out["p"], iris_logreg.predict(out[FEATURES]))


def test_array_column_feeds_a_tensor_reshaped_to_the_spec(spark: Any,
                                                          rowsum_model_dir: Path) -> None:
    from pyspark.sql import functions as F

    df = spark.createDataFrame(pd.DataFrame({"a": [1.0, 4.0], "b": [2.0, 5.0],
                                             "c": [3.5, 6.0]}))
    udf = spark_udf(spark, rowsum_model_dir)  # float32 [-1, 3] -> float32 [-1]
    assert udf.returnType.simpleString() == "float"
    got = df.select(udf(F.array("a", "b", "c")).alias("s")).toPandas()["s"].tolist()
    assert got == [6.5, 15.0]
    # three scalar columns feed the same tensor as one 2-D array
    assert df.select(udf("a", "b", "c").alias("s")).toPandas()["s"].tolist() == [6.5, 15.0]


def test_named_tensors_from_array_and_scalar_columns(spark: Any,
                                                     named_model_dir: Path) -> None:
    from pyspark.sql import functions as F

    df = spark.createDataFrame(pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 0.25], "b": [3, -1]}))
    udf = spark_udf(spark, named_model_dir, "struct<total: double, flag: boolean>")
    out = df.select(udf(F.array("x", "y").alias("a"), "b").alias("p")).select("p.*").toPandas()
    assert out["total"].tolist() == [4.5, 1.25]
    assert out["flag"].tolist() == [True, False]


class Received(satchel.PythonModel):
    """Reports what the model received: dtypes after the policy, and two values as text."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        kinds = ",".join(f"{c}:{t}" for c, t in model_input.dtypes.items())
        return pd.DataFrame({"kinds": [kinds] * len(model_input),
                             "ts": model_input["ts"].astype(str),
                             "l": model_input["l"].astype("string")})


def test_spark_types_meet_the_coercion_policy_as_documented(spark: Any, tmp_path: Path,
                                                             save_python_model: Any) -> None:
    """The table in docs/spark.md, row by row (optional columns hold a null)."""
    import datetime as dt

    from satchel.schema import Array, ColSpec, DataType, Schema, Signature

    specs = [ColSpec(DataType.long, "l", False), ColSpec(DataType.boolean, "b", False),
             ColSpec(DataType.double, "d"), ColSpec(DataType.float, "f"),
             ColSpec(DataType.long, "i"), ColSpec(DataType.datetime, "day"),
             ColSpec(DataType.datetime, "ts"), ColSpec(DataType.string, "s", False),
             ColSpec(DataType.binary, "bin"), ColSpec(Array(DataType.double), "arr")]
    sig = Signature(inputs=Schema(specs), outputs=Schema([
        ColSpec(DataType.string, "kinds"), ColSpec(DataType.string, "ts"),
        ColSpec(DataType.string, "l")]))
    path = save_python_model(Received(), tmp_path / "m", signature=sig)
    utc = dt.UTC
    rows = [(2**60 + 1, True, 1.5, 2.5, 7, dt.date(2020, 1, 2),
             dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=utc), "x", b"\x00", [1.0, 2.0]),
            (None, None, 2.0, 0.25, 8, dt.date(2020, 1, 3),
             dt.datetime(2020, 7, 2, 3, 4, 5, tzinfo=utc), None, b"y", [3.0])]
    ddl = ("l long, b boolean, d double, f double, i int, day date, ts timestamp, "
           "s string, bin binary, arr array<double>")
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        df = spark.createDataFrame(rows, ddl).coalesce(1)
        out = df.select(spark_udf(spark, path)().alias("p")).select("p.*").toPandas()
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    text = str(pd.Series(["a"]).dtype)  # "object" on pandas 2, "str" on pandas 3
    assert out["kinds"][0] == ("l:Int64,b:boolean,d:float64,f:float32,i:int64,"
                               f"day:datetime64[ns],ts:datetime64[ns],s:{text},bin:object,"
                               "arr:object")
    # exact long beside a null; timestamps in UTC whatever the session zone (New York's
    # wall time would be 2020-01-01 22:04:05 and 2020-07-01 23:04:05)
    assert out["l"].tolist()[0] == str(2**60 + 1) and pd.isna(out["l"].tolist()[1])
    assert out["ts"].tolist() == ["2020-01-02 03:04:05", "2020-07-02 03:04:05"]


# --- nulls and params --------------------------------------------------------------------


def test_optional_column_may_be_null_or_absent(spark: Any, tmp_path: Path,
                                               save_python_model: Any) -> None:
    big = 2**60 + 1  # float64 would round it: nulls must not turn longs into doubles
    example = pd.DataFrame({"a": [1.0, 2.0], "b": pd.array([5, None], dtype="Int64")})
    path = save_python_model(OptionalB(), tmp_path / "m", input_example=example)
    sig = satchel.load_model(path).signature
    assert sig is not None and sig.inputs is not None
    assert [s.required for s in sig.inputs.inputs] == [True, False]
    df = spark.createDataFrame([(1.0, big), (2.0, None), (3.0, 7)], "a double, b long")
    udf = spark_udf(spark, path, "long")
    assert df.select(udf().alias("p")).toPandas()["p"].tolist() == [big, -1, 7]
    assert df.select(udf("a").alias("p")).toPandas()["p"].tolist() == [-1, -1, -1]


def test_params_are_checked_on_the_driver_and_reach_every_batch(
        spark: Any, tmp_path: Path, save_python_model: Any) -> None:
    path = save_python_model(Scale(), tmp_path / "m",
                             input_example=(pd.DataFrame({"x": [1.0, 2.0]}), {"k": 1}))
    df = spark.range(100).selectExpr("cast(id as double) as x").repartition(4)
    out = df.select("x", spark_udf(spark, path, params={"k": 3})().alias("p")).toPandas()
    np.testing.assert_array_equal(out["p"], out["x"] * 3)
    default = df.select("x", spark_udf(spark, path)().alias("p")).toPandas()
    np.testing.assert_array_equal(default["p"], default["x"])
    with pytest.raises(SignatureError, match="param 'k': expected long"):
        spark_udf(spark, path, params={"k": "three"})
    with pytest.warns(UnknownParamsWarning, match="'kk'"):
        spark_udf(spark, path, params={"kk": 2})


# --- execution -----------------------------------------------------------------------------


def test_eight_partitions_load_the_model_once_per_python_worker(
        spark: Any, tmp_path: Path, save_python_model: Any) -> None:
    log = tmp_path / "loads.txt"
    log.touch()
    path = save_python_model(LogLoads(), tmp_path / "m", model_config={"log": str(log)},
                             input_example=pd.DataFrame({"x": [1.0]}))
    df = spark.range(4000).selectExpr("cast(id as double) as x").repartition(8)
    assert df.rdd.getNumPartitions() == 8
    udf = spark_udf(spark, path)
    for _ in range(2):  # two jobs, 16 tasks, many Arrow batches
        out = df.select("x", udf().alias("p")).toPandas()
        np.testing.assert_array_equal(out["p"], out["x"] + 1)
    pids = log.read_text().split()
    assert pids, "the model was never loaded in a worker"
    assert len(pids) == len(set(pids)), f"a worker loaded the model twice: {pids}"
    assert len(pids) <= 4  # local[2]: a handful of workers, not one load per task


def test_model_directory_is_shipped_so_the_local_copy_may_go(
        spark: Any, iris_df: Any, iris: tuple[Any, Any], iris_logreg: Any,
        tmp_path: Path) -> None:
    # a fresh save (new model_uuid, so a new digest): no worker has it cached yet
    path = tmp_path / "fresh"
    satchel.save_model(iris_logreg, path, input_example=iris[0].head(3))
    udf = spark_udf(spark, path, "int")
    shutil.rmtree(path)
    out = _scored(iris_df, udf())
    np.testing.assert_array_equal(out["p"], iris_logreg.predict(out[FEATURES]))


def test_a_tampered_model_is_refused_before_shipping(spark: Any, iris_model_dir: Path,
                                                     tmp_path: Path) -> None:
    from satchel.errors import IntegrityError

    copy = tmp_path / "copy"
    shutil.copytree(iris_model_dir, copy)
    (copy / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(IntegrityError, match="model.pkl was modified"):
        spark_udf(spark, copy)


def test_pandas_udf_path_for_older_spark(spark: Any, iris_df: Any, proba_dir: Path,
                                         iris_logreg: Any, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setattr(spark_module, "_arrow_udf_available", lambda: False)
    udf = spark_udf(spark, proba_dir)
    out = _scored(iris_df, udf())
    np.testing.assert_array_equal(np.stack(out["p"].to_numpy()),
                                  iris_logreg.predict_proba(out[FEATURES]))
    struct = spark_udf(spark, proba_dir, "setosa double, versicolor double, virginica double")
    got = iris_df.select("id", *FEATURES, struct().alias("p")).select(
        "id", *FEATURES, "p.*").toPandas().sort_values("id")
    np.testing.assert_array_equal(got["versicolor"],
                                  iris_logreg.predict_proba(got[FEATURES])[:, 1])


def test_onnx_model(spark: Any, iris_df: Any, tmp_path: Path, iris_logreg: Any) -> None:
    from pyspark.sql import functions as F
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(iris_logreg, initial_types=[("input", FloatTensorType([None, 4]))],
                          options={"zipmap": False})
    path = tmp_path / "onnx"
    satchel.save_model(onx, path)
    udf = spark_udf(spark, path)
    assert udf.returnType.simpleString() == "struct<label:bigint,probabilities:array<float>>"
    out = iris_df.select("id", *FEATURES, udf(F.array(*FEATURES).alias("input")).alias("p")
                         ).select("id", *FEATURES, "p.*").toPandas().sort_values("id")
    X = out[FEATURES].to_numpy()
    assert (out["label"].to_numpy() == iris_logreg.predict(out[FEATURES])).mean() > 0.98
    np.testing.assert_allclose(np.stack(out["probabilities"].to_numpy()),
                               iris_logreg.predict_proba(pd.DataFrame(X, columns=FEATURES)),
                               atol=1e-5)


# --- satchel batch --spark -----------------------------------------------------------------


def test_satchel_batch_on_spark_equals_local_predict(
        spark: Any, tmp_path: Path, iris: tuple[Any, Any], iris_model_dir: Path,
        iris_logreg: Any) -> None:
    from satchel.cli import main

    X = iris[0].assign(id=np.arange(150))
    src = tmp_path / "in.parquet"
    X.to_parquet(src)
    dst = tmp_path / "out.parquet"
    assert main(["batch", "-m", str(iris_model_dir), "-i", str(src), "-o", str(dst),
                 "--keep", "id", "--spark", "local[2]", "-q"]) == 0
    assert dst.is_dir()  # Spark writes a directory of part files
    out = pd.read_parquet(dst).sort_values("id")
    assert list(out.columns) == ["id", "prediction"]
    np.testing.assert_array_equal(out["prediction"], iris_logreg.predict(X[FEATURES]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]
    # the shared session is still usable: satchel stops only a session it started
    assert spark.range(3).count() == 3
    # an existing output is refused without --overwrite, and kept as it was
    assert main(["batch", "-m", str(iris_model_dir), "-i", str(src), "-o", str(dst),
                 "--spark", "local[2]", "-q"]) == 1
    assert list(pd.read_parquet(dst).columns) == ["id", "prediction"]


# --- errors inside jobs (last: a failed task costs its Python worker, restarted on demand) ---


def test_output_that_does_not_fit_the_result_type_names_both(spark: Any, iris_df: Any,
                                                             proba_dir: Path) -> None:
    udf = spark_udf(spark, proba_dir, "long")
    with _job_error(r"shape \[\d+, 3\]; result type bigint needs 1-D values"):
        iris_df.select(udf()).collect()
    frac = spark_udf(spark, proba_dir, "array<int>")
    with _job_error("result type array<int>: output: expected int, given float64: values "
                    "with a fractional part"):
        iris_df.select(frac()).collect()


def test_null_in_a_required_column_names_the_column_and_count(
        spark: Any, iris: tuple[Any, Any], iris_model_dir: Path) -> None:
    rows = [tuple(None if (i in (2, 7) and c == "petal_width") else float(v)
                  for c, v in r.items()) for i, (_, r) in enumerate(iris[0].head(10).iterrows())]
    df = spark.createDataFrame(rows, ", ".join(f"{c} double" for c in FEATURES)).coalesce(1)
    with _job_error("column 'petal_width' is required but has 2 null values"):
        df.select(spark_udf(spark, iris_model_dir)()).collect()


def test_array_column_of_the_wrong_width_names_the_shapes(spark: Any,
                                                         rowsum_model_dir: Path) -> None:
    from pyspark.sql import functions as F

    df = spark.createDataFrame(pd.DataFrame({"a": [1.0, 4.0], "b": [2.0, 5.0]})).coalesce(1)
    with _job_error(r"input: expected shape \[-1, 3\], given shape \[2, 2\]"):
        df.select(spark_udf(spark, rowsum_model_dir)(F.array("a", "b"))).collect()


def test_no_pandas3_notice_from_satchels_own_udf(spark: Any, iris_df: Any,
                                                  iris_model_dir: Path) -> None:
    # Under pandas 3, PySpark warns whenever a UDF is built; satchel's UDF (tested with
    # pandas 2 and 3) handles that where it builds one, so users see nothing.
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        udf = spark_udf(spark, iris_model_dir)
        rows = iris_df.select(udf()).collect()
    assert len(rows) == iris_df.count()
    notices = [w for w in seen if "does not yet fully support pandas" in str(w.message)]
    assert notices == []
