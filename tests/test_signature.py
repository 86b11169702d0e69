"""infer_signature over every input shape satchel accepts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from satchel import infer_signature
from satchel.errors import SignatureError
from satchel.schema import Array, ColSpec, DataType, Map, Object, Property, TensorSpec


def cols(sig_part: object) -> dict[str, tuple[object, bool]]:
    return {s.name: (s.type, s.required) for s in sig_part.inputs}  # type: ignore[attr-defined]


def test_dataframe_numpy_and_nullable_dtypes() -> None:
    df = pd.DataFrame(
        {
            "i32": np.array([1, 2], dtype=np.int32),
            "i64": [1, 2],
            "f32": np.array([1.0, 2.0], dtype=np.float32),
            "f64": [1.0, None],
            "b": [True, False],
            "n_int": pd.array([1, None], dtype="Int64"),
            "n_bool": pd.array([True, False], dtype="boolean"),
            "n_str": pd.array(["a", "b"], dtype="string"),
            "s": ["x", "y"],
            "by": [b"x", b"y"],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "cat": pd.Categorical(["u", "v"]),
        }
    )
    got = cols(infer_signature(df).inputs)
    assert got == {
        "i32": (DataType.integer, True),
        "i64": (DataType.long, True),
        "f32": (DataType.float, True),
        "f64": (DataType.double, False),
        "b": (DataType.boolean, True),
        "n_int": (DataType.long, False),
        "n_bool": (DataType.boolean, True),
        "n_str": (DataType.string, True),
        "s": (DataType.string, True),
        "by": (DataType.binary, True),
        "t": (DataType.datetime, True),
        "cat": (DataType.string, True),
    }


def test_object_columns_of_lists_and_dicts() -> None:
    df = pd.DataFrame(
        {
            "ids": [[1, 2], [3]],
            "o": [{"k": "a", "v": 1.5}, {"k": "b", "v": 2.0}],
            "when": [dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
        }
    )
    got = cols(infer_signature(df).inputs)
    assert got["ids"] == (Array(DataType.long), True)
    assert got["o"] == (
        Object((Property("k", DataType.string), Property("v", DataType.double))),
        True,
    )
    assert got["when"] == (DataType.datetime, True)
    assert infer_signature(pd.DataFrame({"m": [{}]})).inputs.inputs[0].type == Map(DataType.string)


def test_mixed_object_column_is_an_error_naming_it() -> None:
    with pytest.raises(SignatureError, match="column 'x': values of mixed types"):
        infer_signature(pd.DataFrame({"x": ["a", 1]}))


def test_series_ndarray_dict_records() -> None:
    assert infer_signature(pd.Series([1.0, 2.0], name="y")).inputs.inputs == (
        ColSpec(DataType.double, "y"),
    )
    assert infer_signature(pd.Series(["a"])).inputs.inputs == (ColSpec(DataType.string),)
    assert infer_signature(np.zeros((5, 28, 28), dtype=np.float32)).inputs.inputs == (
        TensorSpec("float32", (-1, 28, 28)),
    )
    d = infer_signature({"a": np.zeros(3, dtype=np.int64), "b": np.zeros((3, 2))})
    assert d.inputs.inputs == (TensorSpec("int64", (-1,), "a"), TensorSpec("float64", (-1, 2), "b"))
    recs = infer_signature([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    assert cols(recs.inputs) == {"a": (DataType.long, True), "b": (DataType.string, True)}
    assert cols(infer_signature({"a": [1.5], "b": ["x"]}).inputs) == {
        "a": (DataType.double, True),
        "b": (DataType.string, True),
    }


def test_output_and_params() -> None:
    sig = infer_signature(
        pd.DataFrame({"x": [1.0]}),
        np.array([1]),
        {
            "k": 3,
            "t": 0.5,
            "name": "n",
            "flag": True,
            "xs": [1.0, 2.0],
            "when": dt.datetime(2024, 1, 1),
        },
    )
    assert sig.outputs.inputs == (TensorSpec("int64", (-1,)),)
    params = {p.name: (p.dtype, p.default, p.shape) for p in sig.params}
    assert params == {
        "k": (DataType.long, 3, None),
        "t": (DataType.double, 0.5, None),
        "name": (DataType.string, "n", None),
        "flag": (DataType.boolean, True, None),
        "xs": (DataType.double, [1.0, 2.0], (-1,)),
        "when": (DataType.datetime, dt.datetime(2024, 1, 1), None),
    }


def test_bad_params() -> None:
    with pytest.raises(SignatureError, match="param 'b'"):
        infer_signature(pd.DataFrame({"x": [1]}), params={"b": b"bytes"})
    with pytest.raises(SignatureError, match="empty list"):
        infer_signature(pd.DataFrame({"x": [1]}), params={"e": []})
