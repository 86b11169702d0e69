"""Decoded frames share one column Index per set of names (protocols.frames): the
same labels as building it each time, never another request's state, bounded memory."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from satchel.schema import ColSpec, DataType, Schema
from satchel.serving.protocols import frames as ci
from satchel.serving.protocols import mlflow


def _split(columns: list[object], rows: list[list[object]]) -> pd.DataFrame:
    body = json.dumps({"dataframe_split": {"columns": columns, "data": rows}})
    frame = mlflow.parse_json(body).data
    assert isinstance(frame, pd.DataFrame)
    return frame


def test_same_names_share_one_index_with_the_labels_pandas_builds() -> None:
    a = _split(["x", "y"], [[1.0, 2.0]])
    b = _split(["x", "y"], [[3.0, 4.0]])
    assert a.columns is b.columns
    pd.testing.assert_index_equal(a.columns, pd.Index(["x", "y"]))
    assert b["y"].tolist() == [4.0]
    # columns of floats for a column signature, and records, take the same path
    schema = Schema([ColSpec(DataType.double, "x"), ColSpec(DataType.double, "y")])
    c = mlflow.parse_json(json.dumps({"inputs": {"x": [5.0], "y": [6.0]}}), schema).data
    assert c.columns is a.columns and c.values.tolist() == [[5.0, 6.0]]
    d = mlflow.parse_json(json.dumps({"dataframe_records": [{"x": 7.0, "y": 8.0}]})).data
    assert d.columns is a.columns and d.values.tolist() == [[7.0, 8.0]]


def test_equal_keys_of_other_types_are_not_confused() -> None:
    """1, 1.0 and True are one dict key but three column labels."""
    ints = ci.column_index([1, 2])
    floats = ci.column_index([1.0, 2.0])
    bools = ci.column_index([True, False])
    assert ints.dtype == np.int64 and floats.dtype == np.float64 and bools.dtype == bool
    assert ints.tolist() == [1, 2] and bools.tolist() == [True, False]
    assert ci.column_index(["1", "2"]).tolist() == ["1", "2"]


def test_a_model_naming_its_input_columns_does_not_reach_the_next_request() -> None:
    """Index.name can be set in place (df.columns.name = ...): the next frame with those
    names gets an Index without it."""
    first = _split(["p", "q"], [[1.0, 2.0]])
    first.columns.name = "set by a model"
    second = _split(["p", "q"], [[3.0, 4.0]])
    assert second.columns.name is None
    assert first.columns.name == "set by a model"  # the model's own frame keeps it


def test_hostile_many_distinct_names_stay_bounded() -> None:
    for i in range(3 * ci._MAX_INDEXES):
        frame = _split([f"c{i}", f"d{i}"], [[1.0, 2.0]])
        assert frame.columns.tolist() == [f"c{i}", f"d{i}"]
        assert len(ci._indexes) <= ci._MAX_INDEXES
    wide = [f"w{i}" for i in range(ci._MAX_NAMES + 1)]
    one, two = ci.column_index(wide), ci.column_index(wide)
    assert one is not two and one.tolist() == wide  # huge lists are not kept


def test_hostile_long_names_are_not_kept() -> None:
    """Two names of 40 Ki characters each (a made-up body can hold far longer ones) are
    built per request: neither the Index cache nor V2's checked-names memory keeps them,
    so what a server holds for clients' names stays bounded in bytes too."""
    from satchel.serving.protocols import v2, v2_tensors

    long_a, long_b = "a" * 40_960, "b" * 40_960
    one, two = ci.column_index([long_a, long_b]), ci.column_index([long_a, long_b])
    assert one is not two and one.tolist() == [long_a, long_b]
    assert (long_a, long_b) not in ci._indexes
    schema = Schema([ColSpec(DataType.double, long_a), ColSpec(DataType.double, long_b)])
    body = json.dumps({"inputs": [{"name": n, "shape": [1], "datatype": "FP64",
                                   "data": [float(i)]} for i, n in enumerate((long_a, long_b))]
                       }).encode()
    for _ in range(2):
        frame = v2.decode_infer(body, schema).data
        assert frame.columns.tolist() == [long_a, long_b]
        assert frame.values.tolist() == [[0.0, 1.0]]
    assert (long_a, long_b) not in v2_tensors._NAMES_SEEN
    assert all(sum(map(len, k)) <= ci._MAX_NAME_CHARS for k in ci._indexes)
    # names of ordinary length are still shared
    assert ci.column_index(["x", "y"]) is ci.column_index(["x", "y"])
