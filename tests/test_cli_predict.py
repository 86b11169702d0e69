"""``satchel predict``: the REST body formats from a file or stdin, JSON/CSV/Parquet out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest

import satchel
from satchel.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, Signature

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "satchel", "predict", *args],
                          capture_output=True, input=stdin, timeout=120)


@pytest.fixture(scope="module")
def frame(iris: tuple[Any, Any]) -> pd.DataFrame:
    return iris[0].iloc[[0, 60, 120]].reset_index(drop=True)


@pytest.fixture(scope="module")
def expected(frame: pd.DataFrame, iris_logreg: Any) -> list[int]:
    return [int(v) for v in iris_logreg.predict(frame)]


def _split(frame: pd.DataFrame) -> bytes:
    return json.dumps({"dataframe_split": {"columns": list(frame.columns),
                                           "data": frame.to_numpy().tolist()}}).encode()


def test_json_from_stdin(iris_model_dir: Path, frame: pd.DataFrame,
                         expected: list[int]) -> None:
    r = run("-m", str(iris_model_dir), stdin=_split(frame))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"predictions": expected}


@pytest.mark.parametrize("fmt", ["records", "instances", "inputs"])
def test_other_json_formats_from_a_file(tmp_path: Path, iris_model_dir: Path,
                                        frame: pd.DataFrame, expected: list[int],
                                        fmt: str) -> None:
    body = {"records": {"dataframe_records": frame.to_dict(orient="records")},
            "instances": {"instances": frame.to_numpy().tolist()},
            "inputs": {"inputs": frame.to_dict(orient="list")}}[fmt]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(body))
    r = run("-m", str(iris_model_dir), "-i", str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"predictions": expected}


def test_csv_and_parquet_inputs_and_outputs(tmp_path: Path, iris_model_dir: Path,
                                            frame: pd.DataFrame, expected: list[int]) -> None:
    csv_in = tmp_path / "in.csv"
    frame.to_csv(csv_in, index=False)
    pq_in = tmp_path / "in.parquet"
    frame.to_parquet(pq_in)
    r = run("-m", str(iris_model_dir), "-i", str(csv_in), "-o", str(tmp_path / "out.csv"))
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(tmp_path / "out.csv")["prediction"].tolist() == expected
    r = run("-m", str(iris_model_dir), "-i", str(pq_in), "-o", str(tmp_path / "out.parquet"))
    assert r.returncode == 0, r.stderr
    assert pd.read_parquet(tmp_path / "out.parquet")["prediction"].tolist() == expected
    r = run("-m", str(iris_model_dir), "-t", "csv", "--output-format", "csv",
            stdin=csv_in.read_bytes())
    assert r.returncode == 0 and pd.read_csv(io.BytesIO(r.stdout))["prediction"].tolist() == \
        expected
    r = run("-m", str(iris_model_dir), "-t", "text/csv; charset=utf-8", stdin=csv_in.read_bytes())
    assert json.loads(r.stdout) == {"predictions": expected}


class Scale(satchel.PythonModel):
    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return model_input["x"] * (params or {}).get("k", 1.0)


def test_params(tmp_path: Path) -> None:
    sig = Signature(inputs=Schema([ColSpec(DataType.double, "x")]),
                    params=ParamSchema([ParamSpec("k", DataType.double, 1.0)]))
    module = sys.modules[Scale.__module__]
    cloudpickle.register_pickle_by_value(module)
    try:
        satchel.save_model(Scale(), tmp_path / "m", flavor="python", signature=sig)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    body = json.dumps({"inputs": {"x": [1.0, 2.0]}, "params": {"k": 3}}).encode()
    r = run("-m", str(tmp_path / "m"), stdin=body)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"predictions": [{"x": 3.0}, {"x": 6.0}]}


def test_extra_column_is_noted(iris_model_dir: Path, frame: pd.DataFrame,
                               expected: list[int]) -> None:
    r = run("-m", str(iris_model_dir), stdin=_split(frame.assign(extra=1)))
    assert r.returncode == 0 and json.loads(r.stdout) == {"predictions": expected}
    assert b"ignored input columns not in the signature: ['extra']" in r.stderr


@pytest.mark.parametrize(("body", "needle"), [
    (b'{"dataframe_split": {"columns": ["a"], "data": [[1,]]}}', b"malformed JSON: "),
    (b'{"dataframe_split": {"columns": ["sepal_length"], "data": [[1.0]]}}', b"sepal_width"),
    (b'{"data": [[1]]}', b"exactly one of the keys"),
    (b'[[1, 2, 3, 4]]', b"not a list"),
])
def test_data_errors_exit_1_with_one_line(iris_model_dir: Path, body: bytes,
                                          needle: bytes) -> None:
    r = run("-m", str(iris_model_dir), stdin=body)
    assert r.returncode == 1 and r.stdout == b""
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satchel: error: ")
    assert needle in r.stderr and b"Traceback" not in r.stderr


def test_bad_type_option(iris_model_dir: Path) -> None:
    r = run("-m", str(iris_model_dir), "-t", "xml", stdin=b"{}")
    assert r.returncode != 0 and b"-t must be one of" in r.stderr
