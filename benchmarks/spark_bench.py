"""satchel's spark_udf against a hand-written iterator pandas_udf (the floor), and MLflow's.

1M rows x 20 double features (a Parquet file generated once under /tmp), local[2],
8 partitions cached in memory, a 100-tree RandomForestClassifier (max_depth 12) saved
by satchel. Each variant scores every row into Spark's ``noop`` sink; variants run
round-robin, after one warm-up each (worker start, model load), and the table shows the
best and median seconds over --repeats rounds and the ratios to the floor measured in
the same Spark session (on a shared machine other processes only add time, so "best"
is the steadier figure). A last line times what one Python worker does per 10,000-row
batch, floor and satchel alternating in one process: the overhead without Spark's noise.

The floor is the UDF a careful user writes by hand: an iterator pandas_udf that unpickles
the same estimator once per iterator (once per task) and calls ``predict`` on each batch.
MLflow runs in its own process and Spark session (with /work/mlflow-venv's python, which
needs ``pyspark[sql]``), next to its own floor; it loads satchel's directory as
``mlflow.sklearn``.

    .venv/bin/python benchmarks/spark_bench.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

WORK = Path("/tmp/satchel-bench")
MLFLOW_PY = Path("/work/mlflow-venv/bin/python")
FEATURES = [f"f{i}" for i in range(20)]


def make_data(rows: int) -> Path:
    """The input Parquet (random normal features), written once per row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = WORK / f"features_{rows}.parquet"
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([(f, pa.float64()) for f in FEATURES])
    with pq.ParquetWriter(tmp, schema) as w:
        for start in range(0, rows, 250_000):
            n = min(250_000, rows - start)
            w.write_table(pa.table({f: rng.standard_normal(n) for f in FEATURES}, schema=schema))
    tmp.rename(path)
    return path


def make_model() -> Path:
    """A 100-tree RandomForestClassifier on 20k rows, saved by satchel (once)."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    import satchel

    path = WORK / "rf100"
    if path.exists():
        return path
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.standard_normal((20_000, 20)), columns=FEATURES)
    y = (X["f0"] + X["f1"] * X["f2"] - X["f3"] > 0).astype(np.int64) + (X["f4"] > 1)
    rf = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(X, y)
    satchel.save_model(rf, path, input_example=X.head(5))
    return path


def session() -> Any:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("satchel-spark-bench")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.host", "127.0.0.1").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "4g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def load_input(spark: Any, data: Path) -> Any:
    df = spark.read.parquet(str(data)).repartition(8).cache()
    df.count()
    return df


def floor_udf(model_file: str) -> Any:
    """The hand-written floor: unpickle once per iterator, predict each batch."""
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    names = list(FEATURES)

    def predict(batches: Any) -> Any:
        import cloudpickle

        with open(model_file, "rb") as f:
            model = cloudpickle.load(f)
        for cols in batches:
            yield pd.Series(model.predict(pd.DataFrame(dict(zip(names, cols)))))

    # real objects, not strings: pyspark reads these hints to pick the UDF kind
    predict.__annotations__ = {"batches": Iterator[tuple[pd.Series, ...]],
                               "return": Iterator[pd.Series]}
    return pandas_udf(predict, "long")


def run(df: Any, variants: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds per full scoring pass, variants round-robin after one warm-up each."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rnd in range(repeats + 1):
        for name, make in variants.items():
            t = time.perf_counter()
            df.select(make()).write.format("noop").mode("overwrite").save()
            elapsed = time.perf_counter() - t
            print(f"  round {rnd} {name:<22} {elapsed:6.2f} s{' (warm-up)' if not rnd else ''}",
                  file=sys.stderr)
            if rnd:
                times[name].append(elapsed)
    return times


def per_batch(model_dir: Path, data: Path, batches: int) -> tuple[float, float]:
    """Seconds for what one Python worker does per 10,000-row Arrow batch, summed over
    ``batches`` batches, floor and satchel alternating batch by batch (so load from other
    processes hits both alike). Floor: Arrow -> pandas (Spark does this for a pandas_udf),
    DataFrame, predict, Series. satchel: model input, predict_detailed, Arrow result."""
    import cloudpickle
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    import satchel
    from satchel.serving.offline import spark_types, tabular

    model = satchel.load_model(model_dir)
    schema = model.signature.inputs if model.signature else None
    with open(model_dir / "model.pkl", "rb") as f:
        est = cloudpickle.load(f)
    arrow_type, names = pa.int64(), list(FEATURES)
    floor_s = satchel_s = 0.0
    reader = pq.ParquetFile(data).iter_batches(batch_size=10_000)
    for i, rb in zip(range(batches + 1), reader):
        cols = [rb.column(n) for n in names]
        t0 = time.perf_counter()
        series = [c.to_pandas() for c in cols]
        floor_out = pd.Series(est.predict(pd.DataFrame(dict(zip(names, series)))))
        t1 = time.perf_counter()
        data_in = tabular.model_input(cols, names, schema)
        out = spark_types.fit(model.predict_detailed(data_in).output, arrow_type, "bigint",
                              rb.num_rows)
        t2 = time.perf_counter()
        assert out.to_numpy().tolist() == floor_out.tolist()
        if i:  # the first batch warms caches for both
            floor_s += t1 - t0
            satchel_s += t2 - t1
    return floor_s, satchel_s


def child_mlflow(args: argparse.Namespace) -> int:
    """Runs under /work/mlflow-venv: MLflow's spark_udf and the floor in one session."""
    import mlflow.pyfunc

    spark = session()
    df = load_input(spark, Path(args.data))
    cols = [df[c] for c in FEATURES]
    mudf = mlflow.pyfunc.spark_udf(spark, args.model, result_type="long", env_manager="local")
    floor_col = floor_udf(str(Path(args.model) / "model.pkl"))(*cols)
    mlflow_col = mudf(*cols)
    times = run(df, {"floor (mlflow run)": lambda: floor_col,
                     f"mlflow {mlflow.__version__} spark_udf": lambda: mlflow_col}, args.repeats)
    bad = df.select(mlflow_col.alias("a"), floor_col.alias("b")).where("a != b").count()
    print(json.dumps({"times": times, "mismatches": bad}))
    spark.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, default=60, help="batches for the in-process check")
    ap.add_argument("--child-mlflow", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_mlflow:
        return child_mlflow(args)

    from satchel.serving.offline import spark as satchel_spark

    data, model = make_data(args.rows), make_model()
    spark = session()
    df = load_input(spark, data)
    cols = [df[c] for c in FEATURES]
    # Columns are built once: SparkUDF picks arrow_udf or pandas_udf when called
    arrow_col = satchel_spark.spark_udf(spark, model)()
    floor_col = floor_udf(str(model / "model.pkl"))(*cols)
    available = satchel_spark._arrow_udf_available
    satchel_spark._arrow_udf_available = lambda: False  # type: ignore[method-assign]
    try:
        pandas_col = satchel_spark.spark_udf(spark, model)()
    finally:
        satchel_spark._arrow_udf_available = available  # type: ignore[method-assign]
    variants = {"floor (hand-written)": lambda: floor_col,
                "satchel spark_udf": lambda: arrow_col,
                "satchel (pandas_udf path)": lambda: pandas_col}
    times = run(df, variants, args.repeats)
    bad = df.select(arrow_col.alias("a"), floor_col.alias("b")).where("a != b").count()
    spark.stop()

    mlflow_times: dict[str, list[float]] = {}
    mlflow_note = "not run: /work/mlflow-venv not found"
    if MLFLOW_PY.exists():
        proc = subprocess.run([str(MLFLOW_PY), __file__, "--child-mlflow", "--data", str(data),
                               "--model", str(model), "--repeats", str(args.repeats)],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode == 0:
            reply = json.loads(proc.stdout.strip().splitlines()[-1])
            mlflow_times = reply["times"]
            mlflow_note = f"predictions differing from its floor: {reply['mismatches']}"
        else:
            mlflow_note = f"failed (exit {proc.returncode}); see stderr above"

    floor_s, satchel_s = per_batch(model, data, args.batches)
    print(f"\n{args.rows:,} rows x {len(FEATURES)} doubles, local[2], 8 cached partitions, "
          f"RandomForestClassifier(100 trees, max_depth 12); {args.repeats} rounds "
          "(best = least disturbed by other processes)")
    head = (f"{'variant':<30} {'best s':>7} {'median s':>9} {'rows/s':>10} {'best vs':>8} "
            f"{'median vs':>10}")
    print(head)
    print("-" * len(head))

    def table(group: dict[str, list[float]], floor_name: str) -> None:
        base, best = statistics.median(group[floor_name]), min(group[floor_name])
        for name, ts in group.items():
            med = statistics.median(ts)
            print(f"{name:<30} {min(ts):7.2f} {med:9.2f} {args.rows / med:10,.0f} "
                  f"{best / min(ts):7.2f}x {base / med:9.2f}x")

    table(times, "floor (hand-written)")
    print(f"(satchel vs floor: {bad} differing predictions)")
    if mlflow_times:
        table(mlflow_times, "floor (mlflow run)")
    print(f"(MLflow: {mlflow_note})")
    print(f"\nper 10,000-row batch in one process, {args.batches} batches alternating: floor "
          f"{floor_s:.2f} s, satchel {satchel_s:.2f} s -> satchel at {floor_s / satchel_s:.3f}x "
          "the floor's speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
