"""The ONNX flavor's predictor: routes a dict, an array or a DataFrame to the graph's
inputs, fitting dtypes and checking shapes once per input, and shapes the outputs back."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from satchel._cast import cast_numeric
from satchel.errors import SignatureError
from satchel.schema import Schema, TensorSpec

# onnxruntime's type strings -> numpy dtypes for the inputs the predictor checks.
_ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.dtype("float32"),
    "tensor(double)": np.dtype("float64"),
    "tensor(float16)": np.dtype("float16"),
    "tensor(bool)": np.dtype("bool"),
    "tensor(int8)": np.dtype("int8"),
    "tensor(int16)": np.dtype("int16"),
    "tensor(int32)": np.dtype("int32"),
    "tensor(int64)": np.dtype("int64"),
    "tensor(uint8)": np.dtype("uint8"),
    "tensor(uint16)": np.dtype("uint16"),
    "tensor(uint32)": np.dtype("uint32"),
    "tensor(uint64)": np.dtype("uint64"),
    "tensor(string)": np.dtype(object),
}


@dataclass(frozen=True)
class _Input:
    name: str
    ort_type: str
    dtype: Any  # numpy dtype, or None for non-tensor inputs (passed through)
    shape: tuple[Any, ...] | None  # None: rank unknown
    fixed: tuple[tuple[int, int], ...]  # (axis, size) of every fixed dimension
    label: str


def _input(arg: Any) -> _Input:
    shape = arg.shape if isinstance(arg.shape, list) and arg.shape else None
    fixed = tuple((i, d) for i, d in enumerate(shape or ()) if isinstance(d, int) and d >= 0)
    return _Input(
        arg.name,
        arg.type,
        _ORT_DTYPES.get(arg.type),
        tuple(shape) if shape else None,
        fixed,
        f"input '{arg.name}'",
    )


def _shape_str(shape: tuple[Any, ...] | None) -> str:
    return (
        "["
        + ", ".join(str(d) if isinstance(d, int) and d >= 0 else "-1" for d in shape or ())
        + "]"
    )


class OnnxPredictor:
    """Feeds one ``InferenceSession``; everything per-input is computed once, at load."""

    row_independent = True

    def __init__(self, session: Any, inputs: Schema | None = None) -> None:
        self.session = session
        self._inputs = tuple(_input(a) for a in session.get_inputs())
        self._by_name = {i.name: i for i in self._inputs}
        self._output_names = [o.name for o in session.get_outputs()]
        self._run = session.run
        # Model.predict fits tensors to the signature first (dtype, rank, fixed dims);
        # when the signature says what the graph says, that check is the only one.
        self._trusted = _signature_covers(inputs, self._inputs)

    def _fit(self, spec: _Input, arr: Any) -> Any:
        if type(arr) is not np.ndarray:
            arr = np.asarray(arr)
        want = spec.dtype
        if want is not None and arr.dtype != want:
            if want.kind == "O":
                if arr.dtype.kind not in "OUS":
                    raise SignatureError(
                        f"{spec.label}: expected {spec.ort_type}, given {arr.dtype}",
                        column=spec.name,
                        expected=spec.ort_type,
                        given=str(arr.dtype),
                    )
            else:
                # The one coercion policy: lossless casts, float64 -> float32 rounds but
                # refuses overflow.
                arr = cast_numeric(arr, want, spec.label, spec.ort_type)
        shape = spec.shape
        if shape is not None:
            if arr.ndim != len(shape):
                raise self._shape_error(spec, arr, f" (rank {len(shape)} vs {arr.ndim})")
            for axis, size in spec.fixed:
                if arr.shape[axis] != size:
                    raise self._shape_error(spec, arr, "")
        return arr

    @staticmethod
    def _shape_error(spec: _Input, arr: Any, tail: str) -> SignatureError:
        want, given = _shape_str(spec.shape), str(list(arr.shape))
        return SignatureError(
            f"{spec.label}: expected shape {want}, given shape {given}{tail}",
            column=spec.name,
            expected=want,
            given=given,
        )

    def _feed_dict(self, data: dict[str, Any]) -> dict[str, Any]:
        missing = [i.name for i in self._inputs if i.name not in data]
        if missing:
            raise SignatureError(
                f"missing graph inputs {missing}; the graph takes "
                f"{list(self._by_name)}, given {_names(data)}",
                column=missing[0],
                expected=str(list(self._by_name)),
                given=str(_names(data)),
            )
        return {i.name: self._fit(i, data[i.name]) for i in self._inputs}

    def _feed_frame(self, df: Any) -> dict[str, Any]:
        columns = df.columns
        if all(i.name in columns for i in self._inputs) and (
            len(self._inputs) > 1 or len(columns) == 1
        ):
            feeds = {}
            for spec in self._inputs:
                arr = _column_array(df[spec.name])
                if spec.shape is not None and len(spec.shape) == 2 and arr.ndim == 1:
                    arr = arr.reshape(-1, 1)  # skl2onnx takes one column as [N, 1]
                feeds[spec.name] = self._fit(spec, arr)
            return feeds
        if len(self._inputs) == 1:
            spec = self._inputs[0]
            arr = df.to_numpy()
            if spec.shape is not None and len(spec.shape) == 1 and arr.shape[1] == 1:
                arr = arr[:, 0]
            return {spec.name: self._fit(spec, arr)}
        graph = [i.name for i in self._inputs]
        raise SignatureError(
            f"the graph's inputs {graph} do not match the DataFrame's columns "
            f"{_names(columns)}; name one column per graph input",
            expected=str(graph),
            given=str(_names(columns)),
        )

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Run the session; see the module docstring for input routing and output shapes."""
        frame = None
        if self._trusted and isinstance(data, (dict, np.ndarray)):
            if isinstance(data, np.ndarray) and len(self._inputs) == 1:
                return dict(zip(self._output_names,
                                self._run(self._output_names, {self._inputs[0].name: data})))
            if isinstance(data, dict) and data.keys() == self._by_name.keys():
                return dict(zip(self._output_names, self._run(self._output_names, data)))
        if isinstance(data, dict):
            feeds = self._feed_dict(data)
        elif isinstance(data, np.ndarray):
            if len(self._inputs) != 1:
                raise SignatureError(
                    f"an array can feed only a single-input graph; this graph "
                    f"takes {list(self._by_name)}: give a dict of arrays",
                    expected=str(list(self._by_name)),
                    given="ndarray",
                )
            feeds = {self._inputs[0].name: self._fit(self._inputs[0], data)}
        else:
            pd = sys.modules.get("pandas")
            if pd is not None and isinstance(data, pd.Series):
                data = data.to_frame()
            if pd is None or not isinstance(data, pd.DataFrame):
                if isinstance(data, list) and len(self._inputs) == 1:
                    return self.predict(np.asarray(data), params)
                raise SignatureError(
                    f"input of type {type(data).__name__} cannot feed an ONNX "
                    "graph; give a DataFrame, a dict of arrays or an ndarray",
                    given=type(data).__name__,
                )
            frame = data
            feeds = self._feed_frame(data)
        outputs = self._run(self._output_names, feeds)
        if frame is None:
            return dict(zip(self._output_names, outputs))
        return _to_frame(self._output_names, outputs, frame)


def _signature_covers(inputs: Schema | None, graph: tuple[_Input, ...]) -> bool:
    """True when fitting to ``inputs`` already gives each graph input its dtype, rank and
    fixed dimensions (a tensor signature naming exactly the graph's inputs)."""
    if inputs is None or not inputs.is_tensor or len(inputs.inputs) != len(graph):
        return False
    specs = list(inputs.inputs)
    if len(graph) == 1 and specs[0].name is None:
        pairs = [(specs[0], graph[0])]
    else:
        by_name = {s.name: s for s in specs}
        if set(by_name) != {g.name for g in graph}:
            return False
        pairs = [(by_name[g.name], g) for g in graph]
    for spec, g in pairs:
        if not isinstance(spec, TensorSpec) or g.dtype is None or g.shape is None:
            return False
        if np.dtype(spec.dtype) != g.dtype or len(spec.shape) != len(g.shape):
            return False
        if any(spec.shape[axis] != size for axis, size in g.fixed):
            return False
    return True


def _names(keys: Any) -> list[str]:
    names = [str(k) for k in keys]
    return names if len(names) <= 20 else [*names[:20], f"... ({len(names)} in all)"]


def _column_array(col: Any) -> Any:
    values = col.to_numpy()
    if values.dtype == object and len(values) and isinstance(values[0], (list, np.ndarray)):
        return np.stack([np.asarray(v) for v in values])  # a column of tensors
    return values


def _to_frame(names: list[str], outputs: list[Any], frame: Any) -> Any:
    """One column per output: [N] and [N, 1] as scalars, [N, C, ...] as one array per row.

    MLflow flattens every output with reshape(-1), which breaks on a classifier's [N, C]
    probabilities; here each row keeps its own array. When an output does not have one
    entry per input row, a frame cannot hold it and the dict of arrays is returned.
    """
    import pandas as pd

    n = len(frame)
    columns: dict[str, Any] = {}
    for name, out in zip(names, outputs):
        # A ZipMap output is a list of dicts (one per row): keep the dicts as objects.
        if not isinstance(out, (np.ndarray, list)):
            return dict(zip(names, outputs))
        arr = out if isinstance(out, np.ndarray) else _objects(out)
        if arr.ndim == 0 or arr.shape[0] != n:
            return dict(zip(names, outputs))
        if arr.ndim == 1:
            columns[name] = arr
        elif arr.ndim == 2 and arr.shape[1] == 1:
            columns[name] = arr[:, 0]
        else:
            columns[name] = _objects(arr)
    return pd.DataFrame(columns, index=frame.index, copy=False)


def _objects(values: Any) -> Any:
    """A 1-D object array holding each item of ``values`` (rows of an array, dicts ...)."""
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # slice assignment would broadcast nested arrays
        arr[i] = v
    return arr
