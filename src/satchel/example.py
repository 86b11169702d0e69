"""Input examples: ``input_example.json`` and ``serving_input_example.json``, in MLflow's form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from satchel import _json, _normalize
from satchel.errors import ExampleError
from satchel.paths import member

INPUT_EXAMPLE = "input_example.json"
SERVING_EXAMPLE = "serving_input_example.json"


@dataclass(frozen=True)
class Example:
    """An input example split into its data and optional params."""

    data: Any
    params: dict[str, Any] | None = None


def split(example: Any) -> Example:
    """Accept ``data`` or a ``(data, params)`` tuple, and normalise records to a DataFrame."""
    params = None
    if isinstance(example, tuple):
        if len(example) != 2 or not isinstance(example[1], dict):
            raise ExampleError("an input example tuple must be (data, params_dict)")
        example, params = example
    pd = _normalize.pandas()
    if isinstance(example, list) and example and all(isinstance(r, dict) for r in example):
        example = pd.DataFrame.from_records(example)
    elif isinstance(example, dict) and not all(isinstance(v, np.ndarray) for v in example.values()):
        example = _normalize.to_frame(example, [str(k) for k in example])
    elif isinstance(example, pd.Series):
        example = example.to_frame()
    elif isinstance(example, list):
        example = np.asarray(example)
    if not isinstance(example, (pd.DataFrame, np.ndarray, dict)):
        raise ExampleError(
            f"an input example of type {type(example).__name__} is not "
            "supported; give a DataFrame, ndarray, dict of arrays or records"
        )
    return Example(example, params)


def save(directory: Path, example: Example) -> dict[str, Any]:
    """Write both example files; return the ``saved_input_example_info`` manifest entry."""
    pd = _normalize.pandas()
    data = example.data
    info: dict[str, Any] = {"artifact_path": INPUT_EXAMPLE, "serving_input_path": SERVING_EXAMPLE}
    try:
        if isinstance(data, pd.DataFrame):
            default_cols = list(data.columns) == list(range(data.shape[1]))
            rows = _json.jsonable(data.to_numpy(dtype=object))
            stored: Any = (
                {"data": rows}
                if default_cols
                else {"columns": [str(c) for c in data.columns], "data": rows}
            )
            info.update(type="dataframe", pandas_orient="values" if default_cols else "split")
            serving: dict[str, Any] = {"dataframe_split": stored}
        else:
            stored = _json.jsonable(data)
            info["type"] = "ndarray"
            serving = {"inputs": stored}
        if example.params:
            info["params"] = "true"
            stored = {"inputs": stored, "params": _json.jsonable(example.params)}
            serving["params"] = _json.jsonable(example.params)
        (directory / INPUT_EXAMPLE).write_text(json.dumps(stored, allow_nan=False), "utf-8")
        (directory / SERVING_EXAMPLE).write_text(
            json.dumps(serving, indent=2, allow_nan=False), "utf-8"
        )
    except (TypeError, ValueError) as exc:
        raise ExampleError(f"the input example cannot be written as JSON: {exc}") from None
    return info


def load(directory: Path, info: dict[str, Any] | None) -> Example | None:
    """Read a saved example back (None when the model has none)."""
    if not info:
        return None
    path = member(
        directory, info.get("artifact_path", INPUT_EXAMPLE), what="input example", must_exist=False
    )
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ExampleError(f"input example {path.name} is unreadable: {exc}") from None
    params = None
    if str(info.get("params", "")).lower() == "true" and isinstance(raw, dict):
        params = raw.get("params")
        raw = raw.get("inputs")
    kind = info.get("type")
    try:
        if kind == "dataframe":
            pd = _normalize.pandas()
            if isinstance(raw, dict) and "inputs" in raw and "data" not in raw:
                raw = raw["inputs"]
            if isinstance(raw, dict):
                return Example(pd.DataFrame(raw["data"], columns=raw.get("columns")), params)
            return Example(pd.DataFrame(raw), params)
        if kind == "ndarray":
            if isinstance(raw, dict) and set(raw) == {"inputs"}:
                raw = raw["inputs"]  # pre-2.16 tf-serving wrapping
            if isinstance(raw, dict):
                return Example({k: np.asarray(v) for k, v in raw.items()}, params)
            return Example(np.asarray(raw), params)
        return Example(raw, params)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExampleError(
            f"input example {path.name} does not match its type {kind!r}: {exc}"
        ) from None
