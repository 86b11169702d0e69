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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from satchel._cast import cast_numeric
from satchel.errors import ModelFormatError, SignatureError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.manifest import Manifest
from satchel.paths import inside
from satchel.schema import Schema, Signature, TensorSpec

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx.data"
# protobuf cannot serialise a message of 2 GiB or more: bigger models keep their weights
# in a side file (onnx.checker.MAXIMUM_PROTOBUF is the same number).
PROTOBUF_LIMIT = 2**31
# MLflow's default, written when the caller names none, so a GPU host uses its GPU.
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
CPU = "CPUExecutionProvider"
# Available in CPU wheels but only runs remote "azure" operators: never a default.
_NOT_DEFAULT = {"AzureExecutionProvider", CPU}
SESSION_KEYS = (
    "intra_op_num_threads",
    "inter_op_num_threads",
    "execution_mode",
    "graph_optimization_level",
    "extra_session_config",
)
_OPT_LEVELS = (0, 1, 2, 3, 99)

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
        provider_list = _check_providers(chosen if chosen is not None else DEFAULT_PROVIDERS)
        options = _check_session_options(onnx_session_options)
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


def _check_providers(providers: Any) -> list[Any]:
    if isinstance(providers, str) or not isinstance(providers, (list, tuple)) or not providers:
        raise ValueError("providers must be a non-empty list of provider names")
    out: list[Any] = []
    for p in providers:
        if isinstance(p, str):
            out.append(p)
        elif (
            isinstance(p, (list, tuple))
            and len(p) == 2
            and isinstance(p[0], str)
            and isinstance(p[1], dict)
        ):
            out.append([p[0], dict(p[1])])  # YAML has no tuples; MLflow reads lists back
        else:
            raise ValueError(f"provider {p!r} is neither a name nor a (name, options) pair")
    return out


def _check_session_options(options: dict[str, Any] | None) -> dict[str, Any] | None:
    if options is None:
        return None
    if not isinstance(options, dict):
        raise TypeError(f"onnx_session_options must be a dict, not {type(options).__name__}")
    unknown = sorted(set(options) - set(SESSION_KEYS))
    if unknown:
        raise ValueError(f"unknown onnx_session_options {unknown}; known: {list(SESSION_KEYS)}")
    for key in ("intra_op_num_threads", "inter_op_num_threads"):
        v = options.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise ValueError(f"onnx_session_options {key} must be an integer >= 0, not {v!r}")
    mode = options.get("execution_mode")
    if mode is not None and str(mode).lower() not in ("sequential", "parallel"):
        raise ValueError(f"execution_mode must be 'sequential' or 'parallel', not {mode!r}")
    level = options.get("graph_optimization_level")
    if level is not None and level not in _OPT_LEVELS:
        raise ValueError(f"graph_optimization_level must be one of {_OPT_LEVELS}, not {level!r}")
    extra = options.get("extra_session_config")
    if extra is not None and not (
        isinstance(extra, dict) and all(isinstance(k, str) for k in extra)
    ):
        raise ValueError("extra_session_config must be a dict with string keys")
    return {k: (str(v) if k == "execution_mode" else v) for k, v in options.items()}


def session_options(options: dict[str, Any] | None) -> Any:
    """An ``onnxruntime.SessionOptions`` from the manifest's ``onnx_session_options``.

    Keys other than MLflow's five are ignored (MLflow applies only those five too).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not options:
        return so
    for key in ("intra_op_num_threads", "inter_op_num_threads"):
        if options.get(key):
            setattr(so, key, int(options[key]))
    mode = str(options.get("execution_mode") or "").lower()
    if mode in ("sequential", "parallel"):
        so.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL
            if mode == "parallel"
            else ort.ExecutionMode.ORT_SEQUENTIAL
        )
    level = options.get("graph_optimization_level")
    if level is not None:
        so.graph_optimization_level = ort.GraphOptimizationLevel(int(level))
    for k, v in (options.get("extra_session_config") or {}).items():
        so.add_session_config_entry(str(k), str(v))
    return so


def resolve_providers(requested: Any) -> list[Any]:
    """The providers to open a session with: the requested ones that this onnxruntime
    has (CPU appended last), or every available one with CPU last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if isinstance(requested, str):
        requested = [requested]
    if requested:
        entries = [tuple(p) if isinstance(p, list) else p for p in requested]
        usable = [p for p in entries if (p[0] if isinstance(p, tuple) else p) in available]
    else:
        usable = [p for p in available if p not in _NOT_DEFAULT]
    if not any((p[0] if isinstance(p, tuple) else p) == CPU for p in usable):
        usable.append(CPU)
    return usable


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


# --- predictor ---------------------------------------------------------------------


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
