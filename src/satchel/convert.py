"""Convert a saved scikit-learn model into an ONNX model directory (skl2onnx).

The result is written only if the ONNX model agrees with the original on the saved input
example (or a given sample): labels equal, probabilities within ``atol``, regression
values within ``atol + rtol * |expected|``. Otherwise nothing is written.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from satchel._fs import atomic_directory
from satchel.coercion import enforce_input
from satchel.errors import ConversionError
from satchel.manifest import Manifest
from satchel.schema import ColSpec, DataType, Schema, Signature, TensorSpec

TARGETS = ("onnx",)
SINGLE_INPUT = "input"
_NUMERIC = {DataType.double, DataType.float, DataType.long, DataType.integer}
_EXAMPLE_ROWS = 5


def convert(
    model_dir: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str],
    *,
    sample: Any = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    overwrite: bool = False,
    target_opset: int | None = None,
    **load_options: Any,
) -> Manifest:
    """Convert the sklearn model saved at ``model_dir`` to ONNX, saved at ``out``.

    Args:
        model_dir: a model directory with the sklearn flavor.
        to: the target format; only ``"onnx"``.
        out: the directory to write; refused if it exists, unless ``overwrite``.
        sample: data to compare predictions on (DataFrame, ndarray or records);
            default: the model's saved input example.
        rtol, atol: tolerances. Labels must be equal; probabilities within ``atol``;
            other numeric outputs within ``atol + rtol * |expected|``.
        target_opset: the ONNX opset to convert to (skl2onnx's default when None).
        **load_options: passed to :func:`satchel.load_model` (``allow_code``,
            ``trusted_types`` ...).

    Returns:
        The manifest of the ONNX model directory.

    Raises:
        ConversionError: the model is not sklearn, skl2onnx cannot convert it, there is
            nothing to compare on, or the predictions differ (the message names the
            largest difference). Nothing is written then.
    """
    from satchel.model import load_model
    from satchel.save import save_model

    if to not in TARGETS:
        raise ConversionError(f"cannot convert to {to!r}; supported targets: {list(TARGETS)}")
    source = load_model(model_dir, **load_options)
    if source.flavor.name != "sklearn":
        raise ConversionError(
            f"{model_dir} is a {source.flavor.name} model; only scikit-learn models convert to ONNX"
        )
    estimator = source.unwrap()
    sig = source.signature
    example = source.input_example()
    data = sample if sample is not None else (example.data if example is not None else None)
    if data is None:
        raise ConversionError(
            f"{model_dir} has no input example to check the conversion on; pass a sample"
        )
    inputs = sig.inputs if sig is not None and sig.inputs is not None else _infer_inputs(data)
    x = enforce_input(data, inputs).data
    onnx_model = _to_onnx(estimator, inputs, target_opset)
    expected = _sklearn_outputs(estimator, x)
    saved_example = example.data if example is not None else _head(data)
    carried = Signature(inputs, None, sig.params if sig is not None else None)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        # tmp is empty, so save_model writes into it without needing overwrite.
        manifest = save_model(
            onnx_model,
            tmp,
            flavor="onnx",
            signature=carried,
            input_example=saved_example,
            metadata=source.metadata or None,
        )
        got = _onnx_outputs(load_model(tmp).predict(x))
        _compare(expected, got, rtol, atol)
    return manifest


def _infer_inputs(data: Any) -> Schema:
    from satchel.signature import infer_schema

    return infer_schema(data)


def _head(data: Any) -> Any:
    if hasattr(data, "iloc"):
        return data.iloc[:_EXAMPLE_ROWS]
    if isinstance(data, np.ndarray):
        return data[:_EXAMPLE_ROWS]
    return data


def initial_types(inputs: Schema, n_features: int | None) -> list[tuple[str, Any]]:
    """skl2onnx input declarations for a signature.

    Numeric columns become one float tensor ``input`` of width len(columns), in the
    signature's order (what a plain estimator takes); anything else one input per
    column, named after it (what a ColumnTransformer pipeline takes).
    """
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    specs = list(inputs.inputs)
    if inputs.is_tensor:
        if len(specs) != 1:
            raise ConversionError("only single-tensor sklearn signatures convert to ONNX")
        spec = specs[0]
        if not isinstance(spec, TensorSpec):
            raise ConversionError("a tensor schema holds a column spec")
        width = spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] != -1 else n_features
        if len(spec.shape) != 2 or width is None or np.dtype(spec.dtype).kind not in "iuf":
            raise ConversionError(f"cannot convert a model taking tensor {spec.type_name}")
        return [(SINGLE_INPUT, FloatTensorType([None, int(width)]))]
    cols = [s for s in specs if isinstance(s, ColSpec)]
    if all(c.type in _NUMERIC for c in cols):
        return [(SINGLE_INPUT, FloatTensorType([None, len(cols)]))]
    by_type = {
        DataType.double: FloatTensorType,
        DataType.float: FloatTensorType,
        DataType.long: Int64TensorType,
        DataType.integer: Int64TensorType,
        DataType.boolean: BooleanTensorType,
        DataType.string: StringTensorType,
    }
    out = []
    for c in cols:
        kind = by_type.get(c.type) if isinstance(c.type, DataType) else None
        if kind is None:
            raise ConversionError(f"column '{c.name}' of type {c.type_name} has no ONNX input type")
        out.append((str(c.name), kind([None, 1])))
    return out


def _to_onnx(estimator: Any, inputs: Schema, target_opset: int | None) -> Any:
    try:
        from skl2onnx import convert_sklearn
    except ImportError:
        raise ConversionError(
            "converting to ONNX needs skl2onnx: pip install 'satchel[onnx]'"
        ) from None
    from sklearn.base import is_classifier

    declared = initial_types(inputs, getattr(estimator, "n_features_in_", None))
    # Probabilities as one [N, C] tensor rather than a list of dicts (ZipMap): cheaper,
    # and comparable to predict_proba.
    options = {"zipmap": False} if is_classifier(estimator) else None
    try:
        onnx_model = convert_sklearn(
            estimator, initial_types=declared, options=options, target_opset=target_opset
        )
    except Exception as exc:  # skl2onnx raises many types for unsupported models
        text = str(exc).strip().splitlines()
        raise ConversionError(
            f"skl2onnx cannot convert {type(estimator).__name__}: "
            f"{text[0] if text else type(exc).__name__}"
        ) from None
    graph_inputs = [i.name for i in onnx_model.graph.input]
    if graph_inputs != [name for name, _ in declared]:
        raise ConversionError(
            f"the ONNX graph's inputs {graph_inputs} do not match the "
            f"model's columns {[n for n, _ in declared]}"
        )
    return onnx_model


def _sklearn_outputs(estimator: Any, x: Any) -> dict[str, np.ndarray]:
    from sklearn.base import is_classifier

    out = {"predict": np.asarray(estimator.predict(x))}
    if is_classifier(estimator) and hasattr(estimator, "predict_proba"):
        out["proba"] = np.asarray(estimator.predict_proba(x))
    return out


def _onnx_outputs(result: Any) -> list[np.ndarray]:
    """The ONNX model's outputs in graph order, each as one array."""
    if isinstance(result, dict):
        return [np.asarray(v) for v in result.values()]
    arrays = []
    for name in result.columns:
        col = result[name].to_numpy()
        if col.dtype == object and len(col) and isinstance(col[0], np.ndarray):
            col = np.stack(col)
        arrays.append(col)
    return arrays


def _label_differences(got: np.ndarray, want: np.ndarray) -> int:
    # Labels keep their type through numbers and booleans (True == 1); anything with
    # text is compared as text (skl2onnx returns string classes as str).
    if got.dtype.kind in "biuf" and want.dtype.kind in "biuf":
        return int((got.astype(np.float64) != want.astype(np.float64)).sum())
    return int((got.astype(str) != want.astype(str)).sum())


def _compare(
    expected: dict[str, np.ndarray], got: list[np.ndarray], rtol: float, atol: float
) -> None:
    first = got[0]
    want = expected["predict"]
    if "proba" in expected:
        if first.shape != want.shape:
            raise ConversionError(
                f"the ONNX labels have shape {list(first.shape)}, "
                f"scikit-learn's {list(want.shape)}; nothing was written"
            )
        diff = _label_differences(first, want)
        if diff:
            raise ConversionError(
                f"the ONNX model's labels differ from scikit-learn's on {diff} "
                f"of {len(want)} sample rows; nothing was written"
            )
        if len(got) < 2:
            raise ConversionError("the ONNX model has no probabilities output to compare")
        proba, want_p = got[1].astype(np.float64), expected["proba"]
        if proba.shape != want_p.shape:
            raise ConversionError(
                f"the ONNX probabilities have shape {list(proba.shape)}, "
                f"scikit-learn's {list(want_p.shape)}; nothing was written"
            )
        worst = float(np.max(np.abs(proba - want_p))) if proba.size else 0.0
        if not worst <= atol:
            raise ConversionError(
                f"the ONNX model's probabilities differ from scikit-learn's "
                f"by up to {worst:.3g} (tolerance {atol:g}); nothing was "
                "written"
            )
        return
    values = first.astype(np.float64).reshape(want.shape) if first.size == want.size else None
    if values is None:
        raise ConversionError(
            f"the ONNX output has shape {list(first.shape)}, scikit-learn's "
            f"{list(want.shape)}; nothing was written"
        )
    want_f = want.astype(np.float64)
    excess = np.abs(values - want_f) - (atol + rtol * np.abs(want_f))
    if excess.size and not float(np.max(excess)) <= 0:
        worst = float(np.max(np.abs(values - want_f)))
        raise ConversionError(
            f"the ONNX model's predictions differ from scikit-learn's by up "
            f"to {worst:.3g} (tolerance atol={atol:g}, rtol={rtol:g}); "
            "nothing was written"
        )
