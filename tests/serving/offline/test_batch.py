"""``satchel batch``: streamed scoring of Parquet, CSV and JSONL files, atomic output."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import satchel
from satchel.cli import main
from satchel.errors import (
    DestinationExistsError,
    InputFormatError,
    OutputError,
    PredictionError,
    SignatureError,
)
from satchel.serving.offline.batch import score_file
from satchel.serving.offline.progress import Progress

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _write(frame: pd.DataFrame, path: Path) -> Path:
    fmt = path.suffix
    if fmt == ".parquet":
        frame.to_parquet(path, index=False)
    elif fmt == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    return pd.read_json(path, orient="records", lines=True)


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if "satchel-tmp" in p.name]


@pytest.fixture(scope="module")
def iris_ids(iris: tuple[Any, Any]) -> pd.DataFrame:
    return iris[0].assign(id=np.arange(150) * 7)[["id", *FEATURES]]


@pytest.fixture(scope="module")
def proba_dir(tmp_path_factory: pytest.TempPathFactory, iris: tuple[Any, Any],
              iris_logreg: Any) -> Path:
    path = tmp_path_factory.mktemp("models") / "proba"
    satchel.save_model(iris_logreg, path, predict_fn="predict_proba",
                       input_example=iris[0].head(5))
    return path


# --- models --------------------------------------------------------------------------------


class Texts(satchel.PythonModel):
    """x (double) and s (optional string) -> x * 2 and whether s is missing."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        s = model_input["s"] if "s" in model_input else pd.Series([None] * len(model_input))
        return pd.DataFrame({"x2": model_input["x"] * 2, "s_missing": s.isna().to_numpy()})


class FailsLate(satchel.PythonModel):
    """x + 1, but raises on x >= 500 (a later batch)."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        if (model_input["x"] >= 500).any():
            raise RuntimeError("x too large")
        return model_input["x"] + 1


class Slow(satchel.PythonModel):
    """x + 1, 50 ms per batch: a run long enough to interrupt."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        time.sleep(0.05)
        return model_input["x"] + 1


# --- results -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_results_equal_in_process_predict(fmt: str, tmp_path: Path, iris_ids: pd.DataFrame,
                                          iris_model_dir: Path) -> None:
    src = _write(iris_ids, tmp_path / f"in.{fmt}")
    dst = tmp_path / f"out.{fmt}"
    model = satchel.load_model(iris_model_dir)
    result = score_file(model, src, dst, batch_rows=16, keep=["id"])
    assert result.rows == 150
    out = _read(dst)
    assert list(out.columns) == ["id", "prediction"]
    assert out["id"].tolist() == iris_ids["id"].tolist()
    np.testing.assert_array_equal(out["prediction"], model.predict(iris_ids[FEATURES]))
    assert _leftovers(tmp_path) == []


def test_2d_output_gets_the_columns_satchel_predict_writes(
        tmp_path: Path, iris_ids: pd.DataFrame, proba_dir: Path, iris_logreg: Any) -> None:
    src = _write(iris_ids, tmp_path / "in.csv")
    dst = tmp_path / "out.parquet"
    assert main(["batch", "-m", str(proba_dir), "-i", str(src), "-o", str(dst),
                 "--keep", "id", "--batch-rows", "40", "-q"]) == 0
    out = pd.read_parquet(dst)
    assert list(out.columns) == ["id", "0", "1", "2"]
    np.testing.assert_array_equal(out[["0", "1", "2"]].to_numpy(),
                                  iris_logreg.predict_proba(iris_ids[FEATURES]))
    # `satchel predict` names the same output the same way
    single = tmp_path / "single.parquet"
    assert main(["predict", "-m", str(proba_dir), "-i", str(src), "-o", str(single)]) == 0
    assert list(pd.read_parquet(single).columns) == ["0", "1", "2"]


def test_unnamed_tensor_from_a_parquet_list_column(tmp_path: Path,
                                                   rowsum_model_dir: Path) -> None:
    table = pa.table({"v": pa.array([[1.0, 2.0, 3.5], [4.0, 5.0, 6.0]], pa.list_(pa.float64()))})
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    score_file(satchel.load_model(rowsum_model_dir), src, tmp_path / "out.parquet")
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.field("prediction").type == pa.float32()
    assert out.column("prediction").to_pylist() == [6.5, 15.0]


def test_csv_cells_are_parsed_as_rest_csv_bodies_are(tmp_path: Path,
                                                     save_python_model: Any) -> None:
    example = pd.DataFrame({"x": [1.0, 2.0], "s": ["a", None]})
    model_dir = save_python_model(Texts(), tmp_path / "m", input_example=example)
    src = tmp_path / "in.csv"
    src.write_text("x,s,extra\n1.5,a,q\n2,,r\n-3,NA,s\n")
    dst = tmp_path / "out.csv"
    score_file(satchel.load_model(model_dir), src, dst, keep=["extra"])
    out = pd.read_csv(dst)
    assert out["x2"].tolist() == [3.0, 4.0, -6.0]
    # an empty cell in a text column is missing; "NA" there is text
    assert out["s_missing"].tolist() == [False, True, False]
    assert out["extra"].tolist() == ["q", "r", "s"]

    src.write_text("x,s\n1.5,a\nNA,b\n,c\n")
    with pytest.raises(SignatureError, match="column 'x' is required but has 2 null values"):
        score_file(satchel.load_model(model_dir), src, tmp_path / "o2.csv")
    src.write_text("x,s\n1.5,a\nabc,b\n")
    with pytest.raises(InputFormatError, match="cannot read in.csv: .*'abc'"):
        score_file(satchel.load_model(model_dir), src, tmp_path / "o3.csv")
    assert not (tmp_path / "o2.csv").exists() and not (tmp_path / "o3.csv").exists()


def test_jsonl_optional_column_may_be_absent(tmp_path: Path, save_python_model: Any) -> None:
    example = pd.DataFrame({"x": [1.0, 2.0], "s": ["a", None]})
    model_dir = save_python_model(Texts(), tmp_path / "m", input_example=example)
    src = tmp_path / "in.jsonl"
    src.write_text('{"x": 1}\n{"x": 2.5}\n')
    score_file(satchel.load_model(model_dir), src, tmp_path / "out.jsonl")
    out = pd.read_json(tmp_path / "out.jsonl", lines=True)
    assert out.to_dict("records") == [{"x2": 2.0, "s_missing": True},
                                      {"x2": 5.0, "s_missing": True}]


def test_an_empty_input_gives_an_empty_output_with_the_kept_columns(
        tmp_path: Path, iris_ids: pd.DataFrame, iris_model_dir: Path) -> None:
    src = _write(iris_ids.head(0), tmp_path / "in.parquet")
    model = satchel.load_model(iris_model_dir)
    assert score_file(model, src, tmp_path / "out.parquet", keep=["id"]).rows == 0
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 0 and table.schema.names == ["id"]
    assert table.schema.field("id").type == pa.int64()
    score_file(model, src, tmp_path / "out.csv", keep=["id"])
    assert (tmp_path / "out.csv").read_text().strip() == '"id"'


# --- refusals ------------------------------------------------------------------------------


def test_usage_errors(tmp_path: Path, iris_ids: pd.DataFrame, iris_model_dir: Path) -> None:
    model = satchel.load_model(iris_model_dir)
    src = _write(iris_ids, tmp_path / "in.parquet")
    dst = tmp_path / "out.parquet"
    with pytest.raises(InputFormatError, match=r"--keep column \['nope'\] not in in.parquet"):
        score_file(model, src, dst, keep=["nope"])
    with pytest.raises(InputFormatError, match="cannot tell the format of out.txt"):
        score_file(model, src, tmp_path / "out.txt")
    with pytest.raises(OutputError, match=r"kept column \['prediction'\] would clash"):
        clashing = _write(iris_ids.assign(prediction=1), tmp_path / "clash.parquet")
        score_file(model, clashing, dst, keep=["prediction"])
    dst.write_text("precious")
    with pytest.raises(DestinationExistsError, match="--overwrite"):
        score_file(model, src, dst)
    assert dst.read_text() == "precious"
    score_file(model, src, dst, overwrite=True)
    assert len(pd.read_parquet(dst)) == 150
    assert _leftovers(tmp_path) == []


def test_lists_are_refused_for_csv_output(tmp_path: Path, named_model_dir: Path) -> None:
    # named tensors a [-1, 2] and b [-1] -> {"total", "flag"}: fine for CSV
    table = pa.table({"a": pa.array([[1.0, 2.0]], pa.list_(pa.float64())), "b": [3]})
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    score_file(satchel.load_model(named_model_dir), src, tmp_path / "out.csv")
    assert pd.read_csv(tmp_path / "out.csv").to_dict("records") == [{"total": 6.0,
                                                                      "flag": True}]
    with pytest.raises(OutputError, match=r"\['a'\] hold lists or structs, which CSV cannot"):
        score_file(satchel.load_model(named_model_dir), src, tmp_path / "kept.csv", keep=["a"])
    assert not (tmp_path / "kept.csv").exists() and _leftovers(tmp_path) == []


# --- interruption --------------------------------------------------------------------------


def test_an_error_mid_run_leaves_no_output(tmp_path: Path, save_python_model: Any) -> None:
    model_dir = save_python_model(FailsLate(), tmp_path / "m",
                                  input_example=pd.DataFrame({"x": [1.0]}))
    src = _write(pd.DataFrame({"x": np.arange(1000, dtype=float)}), tmp_path / "in.parquet")
    dst = tmp_path / "out.parquet"
    with pytest.raises(PredictionError, match="x too large"):
        score_file(satchel.load_model(model_dir), src, dst, batch_rows=100)
    assert not dst.exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_leaves_no_output(sig: int, code: int, tmp_path: Path,
                                           save_python_model: Any) -> None:
    model_dir = save_python_model(Slow(), tmp_path / "m",
                                  input_example=pd.DataFrame({"x": [1.0]}))
    src = _write(pd.DataFrame({"x": np.arange(50_000, dtype=float)}), tmp_path / "in.parquet")
    dst = tmp_path / "out.parquet"
    # A runner that starts the suite in the background (nohup, `cmd &`) passes SIGINT on
    # ignored, and Python then keeps it ignored: restore Ctrl-C's KeyboardInterrupt.
    boot = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from satchel.cli import entry; entry()")
    cmd = [sys.executable, "-c", boot, "batch",
           "-m", str(model_dir), "-i", str(src), "-o", str(dst), "--batch-rows", "100"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _leftovers(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _leftovers(tmp_path), "the run never started writing"
        time.sleep(0.5)  # some batches written: a partial file exists now
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert not dst.exists()
    assert _leftovers(tmp_path) == []


# --- memory and progress -------------------------------------------------------------------


def _parquet_rows(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    schema = pa.schema([(f"f{i}", pa.float64()) for i in range(5)])
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, rows, 250_000):
            n = min(250_000, rows - start)
            w.write_table(pa.table({f"f{i}": rng.standard_normal(n) for i in range(5)},
                                   schema=schema))
    return path


def _peak_rss_mb(cmd: list[str]) -> float:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, err
    return usage.ru_maxrss / 1024  # KiB on Linux


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_input(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.standard_normal((200, 5)), columns=[f"f{i}" for i in range(5)])
    model_dir = tmp_path / "lr"
    satchel.save_model(LinearRegression().fit(X, X.sum(axis=1)), model_dir, input_example=X)
    rss = {}
    for rows in (1_000_000, 4_000_000):
        src = _parquet_rows(tmp_path / f"in{rows}.parquet", rows)
        dst = tmp_path / f"out{rows}.parquet"
        rss[rows] = _peak_rss_mb([sys.executable, "-c", "from satchel.cli import entry; entry()",
                                  "batch", "-m", str(model_dir), "-i", str(src), "-o", str(dst),
                                  "-q"])
        assert pq.read_metadata(dst).num_rows == rows
        src.unlink()
        dst.unlink()
    # 3M more rows are 120 MB more input (and 24 MB more output): none of it may stay
    assert rss[4_000_000] - rss[1_000_000] < 30, rss


def test_progress_log_lines_and_terminal_bar(tmp_path: Path, iris_ids: pd.DataFrame,
                                             iris_model_dir: Path) -> None:
    model = satchel.load_model(iris_model_dir)
    src = _write(iris_ids, tmp_path / "in.parquet")
    log = io.StringIO()
    score_file(model, src, tmp_path / "a.parquet", batch_rows=50,
               progress=Progress(log, interval=0, tty=False))
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("satchel batch: 50/150 rows (33%), ") and "ETA 0:00:00" in lines[0]
    assert "rows/s" in lines[0]
    assert lines[-1].startswith("satchel batch: 150/150 rows (100%)") and "done in" in lines[-1]
    bar = io.StringIO()
    score_file(model, src, tmp_path / "b.parquet", batch_rows=50,
               progress=Progress(bar, interval=0, tty=True))
    text = bar.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n")
    assert "[##########--------------------]  33% 50/150 rows" in text and "ETA" in text
    csv_log = io.StringIO()
    score_file(model, _write(iris_ids, tmp_path / "in.csv"), tmp_path / "c.parquet",
               progress=Progress(csv_log, interval=0, tty=False))
    assert csv_log.getvalue().splitlines()[-1].startswith("satchel batch: 150 rows, ")
