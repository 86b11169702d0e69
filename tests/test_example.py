"""Input examples are written as MLflow writes them and read back in every form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from satchel import example
from satchel.errors import ExampleError


def roundtrip(tmp_path: Path, data: object) -> tuple[dict, example.Example]:
    info = example.save(tmp_path, example.split(data))
    loaded = example.load(tmp_path, info)
    assert loaded is not None
    return info, loaded


def test_dataframe_split_orient(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"a": [1.0, np.nan], "s": ["x", "y"], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])}
    )
    info, loaded = roundtrip(tmp_path, df)
    assert info["type"] == "dataframe" and info["pandas_orient"] == "split"
    stored = json.loads((tmp_path / "input_example.json").read_text())
    assert stored["data"][1][0] is None  # NaN is written as null
    assert stored["data"][0][2].startswith("2024-01-01")
    assert list(loaded.data.columns) == ["a", "s", "t"]


def test_default_columns_use_values_orient(tmp_path: Path) -> None:
    info, loaded = roundtrip(tmp_path, pd.DataFrame([[1, 2]]))
    assert info["pandas_orient"] == "values"
    assert "columns" not in json.loads((tmp_path / "input_example.json").read_text())
    assert loaded.data.to_numpy().tolist() == [[1, 2]]


def test_ndarray_and_dict_of_arrays(tmp_path: Path) -> None:
    info, loaded = roundtrip(tmp_path, np.arange(6).reshape(2, 3))
    assert info["type"] == "ndarray" and loaded.data.tolist() == [[0, 1, 2], [3, 4, 5]]
    serving = json.loads((tmp_path / "serving_input_example.json").read_text())
    assert serving == {"inputs": [[0, 1, 2], [3, 4, 5]]}
    _, loaded = roundtrip(tmp_path, {"a": np.array([1, 2]), "b": np.array([[0.5]])})
    assert loaded.data["b"].tolist() == [[0.5]]


def test_bytes_are_base64(tmp_path: Path) -> None:
    roundtrip(tmp_path, pd.DataFrame({"b": [b"\x00\x01"]}))
    assert json.loads((tmp_path / "input_example.json").read_text())["data"] == [["AAE="]]


def test_params_wrapping(tmp_path: Path) -> None:
    info, loaded = roundtrip(tmp_path, (pd.DataFrame({"x": [1]}), {"k": 2}))
    assert info["params"] == "true" and loaded.params == {"k": 2}
    serving = json.loads((tmp_path / "serving_input_example.json").read_text())
    assert serving["params"] == {"k": 2} and "dataframe_split" in serving


def test_pre_2_16_tf_serving_form_is_read(tmp_path: Path) -> None:
    (tmp_path / "input_example.json").write_text(json.dumps({"inputs": [[1, 2]]}))
    loaded = example.load(
        tmp_path, {"artifact_path": "input_example.json", "type": "ndarray", "format": "tf-serving"}
    )
    assert loaded is not None and loaded.data.tolist() == [[1, 2]]


@pytest.mark.parametrize("bad", [object(), (1, 2, 3), ({"a": 1}, "not params")])
def test_unsupported_examples(bad: object) -> None:
    with pytest.raises(ExampleError):
        example.split(bad)


def test_corrupt_saved_example(tmp_path: Path) -> None:
    (tmp_path / "input_example.json").write_text("{oops")
    with pytest.raises(ExampleError, match="unreadable"):
        example.load(tmp_path, {"artifact_path": "input_example.json", "type": "dataframe"})
