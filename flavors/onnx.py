"""ONNX flavor: an ``onnx.ModelProto`` (or a .onnx file) run by onnxruntime.

The MLmodel sections match MLflow's (``loader_module: mlflow.onnx``), so MLflow loads what
satchel saves and the other way round. ONNX files hold a graph and weights, never code,
so loading one runs nothing but onnxruntime's kernels.

Input routing (docs/onnx.md): a dict of arrays is fed by input name; an ndarray only to a
single-input graph; a DataFrame by column name when the graph has one input per column,
or as one 2-D tensor when the graph has a single input. Output is a dict of arrays by
output name, or a DataFrame (one column per output) when the input was a DataFrame.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from satchel.errors import ModelFormatError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.flavors._onnx_predictor import OnnxPredictor
from satchel.flavors._onnx_session import (
    DEFAULT_PROVIDERS,
    check_providers,
    check_session_options,
    resolve_providers,
    session_options,
)
from satchel.manifest import Manifest
from satchel.paths import inside
from satchel.schema import Schema, Signature, TensorSpec

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx.data"
# protobuf cannot serialise a message of 2 GiB or more: bigger models keep their weights
# in a side file (onnx.checker.MAXIMUM_PROTOBUF is the same number).
PROTOBUF_LIMIT = 2**31


class OnnxFlavor:
    """The ``onnx`` flavor."""

    name = "onnx"
    # Imported before a model's code paths are importable (satchel._checks).
    libraries = ("onnx", "onnxruntime")
    loader_module = "mlflow.onnx"
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ("onnx_session_options", "providers")

    def can_save(self, obj: Any) -> bool:
        if isinstance(obj, (str, os.PathLike)):
            return str(obj).lower().endswith(".onnx") and Path(obj).is_file()
        onnx = sys.modules.get("onnx")  # a ModelProto cannot exist before onnx is imported
        return onnx is not None and isinstance(obj, onnx.ModelProto)

    def save(
        self,
        obj: Any,
        path: Path,
        *,
        providers: list[Any] | None = None,
        onnx_execution_providers: list[Any] | None = None,
        onnx_session_options: dict[str, Any] | None = None,
        save_as_external_data: bool | None = None,
        external_data_size_threshold: int = 1024,
    ) -> FlavorConfig:
        """Write ``model.onnx`` (plus ``model.onnx.data`` for external weights).

        ``save_as_external_data`` None (default) stores weights externally only when the
        model is too big for one protobuf (2 GiB); True forces it for tensors of at least
        ``external_data_size_threshold`` bytes. ``providers`` (MLflow's name:
        ``onnx_execution_providers``) defaults to CUDA then CPU, as MLflow writes.
        """
        import onnx

        chosen = providers if providers is not None else onnx_execution_providers
        provider_list = check_providers(chosen if chosen is not None else DEFAULT_PROVIDERS)
        options = check_session_options(onnx_session_options)
        model = _as_model_proto(obj)
        external = (
            model.ByteSize() >= PROTOBUF_LIMIT
            if save_as_external_data is None
            else bool(save_as_external_data)
        )
        target = path / MODEL_FILE
        if external:
            # onnx.save_model moves the weights out of the proto it is given: work on a copy
            # so the caller's model stays whole.
            copy = onnx.ModelProto()
            copy.CopyFrom(model)
            _raw_initializers(copy, external_data_size_threshold)
            onnx.save_model(
                copy,
                target,
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=EXTERNAL_DATA_FILE,
                size_threshold=external_data_size_threshold,
            )
        else:
            onnx.save_model(model, target)
        # By path, so models over 2 GiB and external data are checked too.
        try:
            onnx.checker.check_model(str(target))
        except Exception as exc:  # the checker raises several types
            raise ModelFormatError(
                f"the ONNX model fails onnx.checker: {_first_line(exc)}", path=str(target)
            ) from None
        return FlavorConfig(
            section={
                "onnx_version": onnx.__version__,
                "data": MODEL_FILE,
                "providers": provider_list,
                "onnx_session_options": options,
                "code": None,
            },
            pyfunc={"data": MODEL_FILE},
            signature=graph_signature(model),
        )

    def default_requirements(self) -> list[str]:
        return ["onnx", "onnxruntime"]

    def load(self, path: Path, config: LoadConfig) -> Any:
        import onnx

        file = _model_file(path, config)
        try:
            return onnx.load(str(file))
        except Exception as exc:  # third-party readers raise any type
            raise ModelFormatError(
                f"{file.name} is not a readable ONNX model: {_first_line(exc)}", path=str(file)
            ) from None

    def load_predictor(self, path: Path, config: LoadConfig) -> OnnxPredictor:
        import onnxruntime as ort

        file = _model_file(path, config)
        options = config.options.get(
            "onnx_session_options", config.section.get("onnx_session_options")
        )
        requested = config.options.get("providers", config.section.get("providers"))
        try:
            session = ort.InferenceSession(
                str(file),
                sess_options=session_options(options),
                providers=resolve_providers(requested),
            )
        except Exception as exc:  # third-party readers raise any type
            raise ModelFormatError(
                f"{file.name} cannot be loaded by onnxruntime: {_first_line(exc)}", path=str(file)
            ) from None
        return OnnxPredictor(session, config.inputs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _model_file(path: Path, config: LoadConfig) -> Path:
    rel = config.pyfunc.get("data") or config.section.get("data") or MODEL_FILE
    return inside(path, str(rel), what="ONNX model file")


def _as_model_proto(obj: Any) -> Any:
    import onnx

    if isinstance(obj, onnx.ModelProto):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        src = Path(obj)
        if not src.is_file():
            raise FileNotFoundError(f"ONNX file {src} does not exist")
        try:
            return onnx.load(str(src))  # external data is read from beside the file
        except Exception as exc:  # third-party readers raise any type
            raise ModelFormatError(
                f"{src} is not a readable ONNX model: {_first_line(exc)}", path=str(src)
            ) from None
    raise TypeError(
        f"the onnx flavor saves an onnx.ModelProto or a path to a .onnx file, "
        f"not {type(obj).__name__}"
    )


def _raw_initializers(model: Any, threshold: int) -> None:
    """Store big initializers as raw bytes: onnx moves only ``raw_data`` to external files,
    and converters such as skl2onnx write typed lists (``float_data``) instead."""
    from onnx import TensorProto, numpy_helper

    for i, t in enumerate(model.graph.initializer):
        if t.HasField("raw_data") or t.data_type == TensorProto.STRING:
            continue
        arr = numpy_helper.to_array(t)
        if arr.nbytes >= threshold:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, t.name))


# --- signature from the graph ------------------------------------------------------


def _value_info_spec(vi: Any) -> TensorSpec | None:
    from onnx import helper

    if vi.type.WhichOneof("value") != "tensor_type":
        return None
    tt = vi.type.tensor_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
    except (KeyError, TypeError, ValueError):
        return None
    if dtype.kind not in "biufO":
        return None  # bfloat16, float8 ...: no type a signature can name
    if not tt.HasField("shape"):
        return None  # unknown rank: nothing honest to write
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
    return TensorSpec(str(dtype), shape, vi.name)


def graph_signature(model: Any) -> Signature | None:
    """TensorSpecs for the graph's inputs (and outputs, when all are tensors).

    Symbolic or unknown dimensions become -1. None when an input is not a plain tensor.
    """
    # Models of IR < 4 list their initializers among the inputs: those are weights.
    init = {t.name for t in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in init]
    inputs = [s for s in map(_value_info_spec, graph_inputs) if s is not None]
    if not inputs or len(inputs) != len(graph_inputs):
        return None
    outputs = [s for s in map(_value_info_spec, model.graph.output) if s is not None]
    full = bool(outputs) and len(outputs) == len(model.graph.output)
    return Signature(Schema(inputs), Schema(outputs) if full else None)


def save_model(onnx_model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save an ``onnx.ModelProto`` or a .onnx file; keyword arguments as
    :func:`satchel.save_model`, plus ``providers``, ``onnx_session_options`` and
    ``save_as_external_data``."""
    from satchel.save import save_model as _save

    return _save(onnx_model, path, flavor="onnx", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the ``onnx.ModelProto`` of a saved ONNX model."""
    from satchel.model import load_model as _load

    model = _load(path, **kwargs)
    if model.flavor.name != "onnx":
        raise ModelFormatError(f"{path} is a {model.flavor.name} model, not onnx")
    return model.unwrap()
