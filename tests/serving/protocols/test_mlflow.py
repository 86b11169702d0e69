"""The scoring protocol's bodies as pure functions: content types, JSON, CSV, Parquet, replies."""

from __future__ import annotations

import base64
import datetime
import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from satchel.errors import InputFormatError, UnsupportedMediaTypeError
from satchel.schema import ColSpec, DataType, Schema, TensorSpec
from satchel.serving.protocols import mlflow, tables

SCHEMA = Schema([ColSpec(DataType.double, "x"), ColSpec(DataType.string, "s"),
                 ColSpec(DataType.long, "n")])


# --- content types ---------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "kind"), [
    ("application/json", "json"), ("Application/JSON; charset=utf-8", "json"),
    ('application/json;charset="UTF8"', "json"), ("text/csv", "csv"),
    ("application/csv; charset=utf-8", "csv"), ("application/vnd.apache.parquet", "parquet"),
])
def test_supported_content_types(content_type: str, kind: str) -> None:
    assert mlflow.body_kind(content_type) == kind


@pytest.mark.parametrize(("content_type", "needle"), [
    (None, "no Content-Type"), ("", "no Content-Type"), ("text/plain", "'text/plain'"),
    ("application/json; charset=latin-1", "charset 'latin-1'"),
    ("application/json; format=pandas-split", "parameter 'format'"),
])
def test_unsupported_content_types(content_type: str | None, needle: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as err:
        mlflow.body_kind(content_type)
    assert needle in str(err.value)
    assert isinstance(err.value, InputFormatError)
    if "charset" not in needle and "parameter" not in needle:
        assert "text/csv" in str(err.value) and "application/vnd.apache.parquet" in str(err.value)


# --- JSON ------------------------------------------------------------------------------


def _parse(payload: Any, schema: Schema | None = SCHEMA) -> mlflow.ParsedInput:
    return mlflow.parse_json(json.dumps(payload).encode(), schema)


# The dtype pandas gives text: "object" on pandas 2, "str" on pandas 3 (both supported).
STR = str(pd.Series(["a"]).dtype)


def test_dataframe_split_keeps_column_types_and_index() -> None:
    parsed = _parse({"dataframe_split": {"columns": ["x", "s", "n"], "index": [5, 6],
                                         "data": [[1.5, "a", 1], [2.0, "b", 2]]}})
    df = parsed.data
    assert parsed.format == "dataframe_split" and parsed.params is None
    assert list(df.columns) == ["x", "s", "n"] and list(df.index) == [5, 6]
    assert [str(t) for t in df.dtypes] == ["float64", STR, "int64"]
    assert df["s"].tolist() == ["a", "b"]


def test_all_float_rows_become_one_block() -> None:
    df = _parse({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}, None).data
    assert df.dtypes.tolist() == [np.float64, np.float64] and df.iloc[0].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(("values", "dtype"), [
    ([1.0, 2.5], "float64"), ([1, 2], "int64"), ([1, 2.5], "float64"), ([True, False], "bool"),
    (["a", "b"], STR), ([1.0, None], "float64"), ([2**70, 1], "object"),
    ([[1, 2], [3]], "object"), (["a", None], STR),
])
def test_column_inference_matches_pandas(values: list[Any], dtype: str) -> None:
    df = mlflow.frame_from_rows([[v] for v in values], ["c"], "test")
    assert str(df["c"].dtype) == dtype
    assert str(pd.DataFrame({"c": values})["c"].dtype) == dtype


def test_dataframe_split_without_columns_uses_signature_names() -> None:
    df = _parse({"dataframe_split": {"data": [[1.0, "a", 1]]}}).data
    assert list(df.columns) == ["x", "s", "n"]


def test_records_with_missing_keys_become_nulls() -> None:
    df = _parse({"dataframe_records": [{"x": 1.0, "s": "a"}, {"x": 2.0, "n": 3}]}).data
    assert list(df.columns) == ["x", "s", "n"]
    # a missing text value is None on pandas 2 and NaN in pandas 3's str dtype: a null
    assert pd.isna(df["s"].tolist()[1]) and np.isnan(df["n"].tolist()[0])


def test_inputs_and_instances_for_column_schemas() -> None:
    columnar = _parse({"inputs": {"x": [1.0, 2.0], "s": ["a", "b"], "n": [1, 2]}}).data
    scalars = _parse({"inputs": {"x": 1.0, "s": "a", "n": 1}}).data
    rows = _parse({"instances": [[1.0, "a", 1]]}).data
    for df in (columnar, scalars, rows):
        assert isinstance(df, pd.DataFrame) and list(df.columns) == ["x", "s", "n"]
        assert df["s"].iloc[0] == "a" and df["n"].dtype == np.int64


def test_inputs_for_tensor_schemas_and_without_schema() -> None:
    tensor = Schema([TensorSpec("float32", (-1, 2))])
    arr = _parse({"inputs": [[1, 2], [3, 4]]}, tensor).data
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 2)
    named = _parse({"inputs": {"a": [[1, 2]], "b": [1]}}, None).data
    assert set(named) == {"a", "b"} and named["a"].shape == (1, 2)
    records = _parse({"instances": [{"a": 1, "b": 2}]}, None).data
    assert isinstance(records, pd.DataFrame)


def test_params_are_returned() -> None:
    parsed = _parse({"inputs": {"x": [1.0], "s": ["a"], "n": [1]}, "params": {"k": 1}})
    assert parsed.params == {"k": 1} and parsed.format == "inputs"


@pytest.mark.parametrize(("body", "needle"), [
    (b'{"inputs": [1, 2,]}', "line 1, column 18 (char 17)"),
    (b'{\n  "inputs": [1 2]\n}', "line 2, column 16"),
    (b"", "malformed JSON"),
    (b'{"inputs": "\xff"}', "not valid UTF-8"),
    (b"[" * 100000, "nested too deeply"),
    (b"[1, 2]", "not a list"),
    (b'"x"', "not a string"),
    (b'{"params": {}}', "has none of them"),
    (b'{"inputs": [1], "instances": [1]}', "has several: ['instances', 'inputs']"),
    (b'{"inputs": [1], "colums": [1]}', "unknown keys ['colums']"),
    (b'{"inputs": [1], "params": [1]}', "'params' must be an object"),
    (b'{"dataframe_split": [[1]]}', "must be an object"),
    (b'{"dataframe_split": {"columns": ["a"]}}', "needs a 'data' key"),
    (b'{"dataframe_split": {"data": [[1]], "orient": "x"}}', "unknown keys ['orient']"),
    (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}', "row 0 has 1 values"),
    (b'{"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}', "duplicate column"),
    (b'{"dataframe_split": {"data": {"a": 1}}}', "must be a list of rows"),
    (b'{"dataframe_split": {"data": [[1]], "index": [1, 2]}}', "index"),
    (b'{"dataframe_records": {"a": 1}}', "list of records"),
    (b'{"dataframe_records": [{"a": 1}, 3]}', "list of records"),
    (b'{"inputs": {"x": [1, 2], "s": ["a"], "n": [1, 2]}}', "one length"),
])
def test_json_errors(body: bytes, needle: str) -> None:
    with pytest.raises(InputFormatError) as err:
        mlflow.parse_json(body, SCHEMA)
    assert needle in str(err.value)


def test_error_messages_do_not_echo_the_payload() -> None:
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"],
                                           "data": [["SECRET"] * 3] * 100}}).encode()
    with pytest.raises(InputFormatError) as err:
        mlflow.parse_json(body, SCHEMA)
    assert "SECRET" not in str(err.value)


def test_parse_request_dispatches_on_content_type() -> None:
    csv = mlflow.parse_request(b"x,s,n\n1,a,2\n", "text/csv", SCHEMA)
    assert csv.format == "csv" and csv.params is None and csv.data["s"].tolist() == ["a"]
    buf = io.BytesIO()
    pd.DataFrame({"x": [1.0]}).to_parquet(buf)
    pq = mlflow.parse_request(buf.getvalue(), "application/vnd.apache.parquet")
    assert pq.format == "parquet" and pq.data["x"].tolist() == [1.0]


# --- CSV and Parquet -------------------------------------------------------------------


def test_csv_string_columns_stay_text_and_numbers_parse() -> None:
    df = tables.parse_csv(b"x,s,n,extra\n1.5,007,1,NA\n,NA,2,x\n", SCHEMA)
    assert df["s"].tolist() == ["007", "NA"]
    assert df["x"].dtype == np.float64 and np.isnan(df["x"].iloc[1])
    assert df["n"].dtype == np.int64


def test_csv_without_schema_uses_pandas_defaults() -> None:
    df = tables.parse_csv(b"a,b\n1,x\n2,NA\n")
    assert df["a"].tolist() == [1, 2] and df["b"].isna().tolist() == [False, True]


def test_csv_binary_columns_are_base64() -> None:
    schema = Schema([ColSpec(DataType.binary, "blob")])
    raw = base64.b64encode(b"\x00\x01hi").decode()
    assert tables.parse_csv(f"blob\n{raw}\n".encode(), schema)["blob"].tolist() == [b"\x00\x01hi"]
    with pytest.raises(InputFormatError, match="base64"):
        tables.parse_csv(b"blob\nnot base64!\n", schema)


@pytest.mark.parametrize(("body", "needle"), [
    (b"", "empty"), (b'a,b\n1,"2\n', "malformed CSV"), (b"a\n\xff\n", "UTF-8")])
def test_csv_errors(body: bytes, needle: str) -> None:
    with pytest.raises(InputFormatError, match=needle):
        tables.parse_csv(body)


def test_parquet_round_trip_and_errors() -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    pd.testing.assert_frame_equal(tables.parse_parquet(buf.getvalue()), frame)
    with pytest.raises(InputFormatError, match="malformed Parquet"):
        tables.parse_parquet(b"PAR1 not really")


# --- replies ---------------------------------------------------------------------------


def _reply(output: Any) -> Any:
    return json.loads(mlflow.format_predictions(output))


def test_reply_shapes() -> None:
    assert _reply(np.array([1, 2])) == {"predictions": [1, 2]}
    assert _reply(np.array([[0.5, np.nan]])) == {"predictions": [[0.5, None]]}
    assert _reply(pd.DataFrame({"a": [1.0, np.nan], "b": ["x", "y"]})) == {
        "predictions": [{"a": 1.0, "b": "x"}, {"a": None, "b": "y"}]}
    assert _reply(pd.Series([1, 2])) == {"predictions": [{"0": 1}, {"0": 2}]}
    assert _reply(pd.Series([1], name="p")) == {"predictions": [{"p": 1}]}
    assert _reply({"a": np.array([1, 2]), "b": np.array([[1.5], [np.inf]])}) == {
        "predictions": {"a": [1, 2], "b": [[1.5], [None]]}}


def test_reply_dates_bytes_and_objects() -> None:
    stamps = np.array(["2024-01-02T03:04:05", "NaT"], dtype="datetime64[ns]")
    out = _reply(pd.DataFrame({"t": stamps, "blob": [b"hi", None]}))
    assert out["predictions"][0]["t"].startswith("2024-01-02T03:04:05")
    assert out["predictions"][1] == {"t": None, "blob": None}
    assert out["predictions"][0]["blob"] == base64.b64encode(b"hi").decode()
    assert _reply(np.array([datetime.date(2024, 1, 2)], dtype=object)) == {
        "predictions": ["2024-01-02"]}


def test_reply_is_compact_json_bytes() -> None:
    body = mlflow.format_predictions(np.array([1, 2]))
    assert body == b'{"predictions":[1,2]}'


# --- tables for satchel predict --------------------------------------------------------


def test_output_frames() -> None:
    assert tables.output_frame(np.array([1, 2])).columns.tolist() == ["prediction"]
    assert tables.output_frame(np.array([[1, 2]])).columns.tolist() == ["0", "1"]
    assert tables.output_frame({"a": np.array([1]), "b": np.array([2])}).columns.tolist() == [
        "a", "b"]
    assert tables.output_frame(pd.Series([1])).columns.tolist() == ["prediction"]
    csv = tables.write_table(pd.DataFrame({"a": [1, 2]}), "csv")
    assert csv == b"a\n1\n2\n"
    back = pd.read_parquet(io.BytesIO(tables.write_table(pd.DataFrame({"a": [1]}), "parquet")))
    assert back["a"].tolist() == [1]
