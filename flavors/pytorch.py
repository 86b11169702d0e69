"""PyTorch flavor: a ``torch.nn.Module`` stored as MLflow stores it.

Two storage formats, both in MLflow's layout (``data/model.pth`` or ``data/model.pt2``,
``loader_module: mlflow.pytorch``), so MLflow loads what satchel saves and the other way:

- ``pickle`` (satchel's default): ``torch.save`` of the whole module with cloudpickle, as
  MLflow writes it. Loading unpickles, which runs code: refused by ``allow_code=False``.
- ``pt2``: a ``torch.export`` program (MLflow 3's default outside Databricks). It needs an
  input example to trace. ``torch.export.load`` would unpickle any record the archive
  marks as pickled, so before loading satchel checks that every record is JSON or short
  text metadata, raw tensor bytes, or a checkpoint torch's ``weights_only`` reader accepts
  (tensors and plain containers only); an archive that fails is refused under
  ``allow_code=False``.

Prediction follows MLflow's pyfunc wrapper: a DataFrame is fed as one float32 tensor and
the output comes back as a DataFrame on the input's index; an ndarray is fed with its own
dtype and an ndarray comes back; params are keyword arguments of ``forward``. Inference
runs on ``device`` (load option, else the manifest's pyfunc ``config.device``, else
``MLFLOW_DEFAULT_PREDICTION_DEVICE``, else CUDA when available, else CPU).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from satchel import libs
from satchel.errors import CodeNotAllowedError, ModelFormatError, SignatureError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.manifest import Manifest
from satchel.paths import inside

DATA_DIR = "data"
PICKLE_FILE = "model.pth"
PT2_FILE = "model.pt2"
PICKLE_INFO_FILE = "pickle_module_info.txt"
# What MLflow writes as the pickle module: MLflow imports it to load. satchel never
# imports a module named by a model; cloudpickle output is read by the standard unpickler.
MLFLOW_PICKLE_MODULE = "mlflow.pytorch.pickle_module"
FORMATS = ("pickle", "pt2")
EXTRA = "pytorch"


def _torch() -> Any:
    return libs.require("torch", flavor="pytorch", extra=EXTRA)


def _is_torch_type(obj: Any) -> bool:
    # Cheap test on class names first: never import torch for an object that is not its.
    return any(c.__module__.split(".")[0] == "torch" for c in type(obj).__mro__)


class PytorchFlavor:
    """The ``pytorch`` flavor."""

    name = "pytorch"
    loader_module = "mlflow.pytorch"
    # Modules are run in eval mode, where standard layers treat rows independently.
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ("device",)
    input_example_option = "example_inputs"

    def can_save(self, obj: Any) -> bool:
        if "torch" not in sys.modules or not _is_torch_type(obj):
            return False
        import torch

        return isinstance(obj, torch.nn.Module)

    def save(
        self,
        obj: Any,
        path: Path,
        *,
        serialization_format: str = "pickle",
        example_inputs: Any = None,
    ) -> FlavorConfig:
        """Write ``data/model.pth`` (pickle) or ``data/model.pt2`` (pt2).

        ``example_inputs`` (an array or tensor, or a tuple of them) is what ``pt2`` traces
        the module with; :func:`save_model` fills it from ``input_example``.
        """
        torch = _torch()
        if serialization_format not in FORMATS:
            raise ValueError(
                f"serialization_format must be one of {FORMATS}, not {serialization_format!r}"
            )
        if not isinstance(obj, torch.nn.Module):
            raise TypeError(f"the pytorch flavor saves a torch.nn.Module, not {type(obj).__name__}")
        data = path / DATA_DIR
        data.mkdir()
        if serialization_format == "pt2":
            _save_pt2(torch, obj, data / PT2_FILE, example_inputs)
        else:
            (data / PICKLE_INFO_FILE).write_text(MLFLOW_PICKLE_MODULE)
            if isinstance(obj, torch.jit.ScriptModule):
                torch.jit.save(obj, str(data / PICKLE_FILE))
            else:
                import cloudpickle

                torch.save(obj, data / PICKLE_FILE, pickle_module=cloudpickle)
        return FlavorConfig(
            section={
                "model_data": DATA_DIR,
                "pytorch_version": str(torch.__version__),
                "code": None,
                "serialization_format": serialization_format,
            },
            pyfunc={
                "data": DATA_DIR,
                "pickle_module_name": MLFLOW_PICKLE_MODULE,
                "config": {"device": None},  # MLflow's key for pyfunc's model_config
            },
            requirements=("cloudpickle",) if serialization_format == "pickle" else (),
        )

    def default_requirements(self) -> list[str]:
        return ["torch"]

    def unsafe_format(self, config: LoadConfig) -> str | None:
        # MLflow does not record the format (it looks at the files); load() decides then.
        fmt = config.section.get("serialization_format")
        return "pickle (torch.save)" if fmt == "pickle" else None

    def load(self, path: Path, config: LoadConfig) -> Any:
        torch = _torch()
        libs.warn_if_newer(
            "torch", config.section.get("pytorch_version"), what=f"the PyTorch model {path.name}"
        )
        rel = config.section.get("model_data") or config.pyfunc.get("data") or DATA_DIR
        data = inside(path, str(rel), what="PyTorch model data")
        device = _device(torch, config)
        allow_code = bool(config.options.get("allow_code", True))
        file = data / PT2_FILE if data.is_dir() else data
        if data.is_dir() and not file.is_file():
            file = data / PICKLE_FILE
        if not file.is_file():
            raise ModelFormatError(
                f"{rel}/ holds neither {PICKLE_FILE} nor {PT2_FILE}", path=str(data)
            )
        if file.name.endswith(".pt2"):
            unsafe = pt2_pickled_record(file)
            if unsafe is not None and not allow_code:
                raise CodeNotAllowedError(
                    f"{file.name} holds the record {unsafe!r}, which torch would unpickle "
                    "(it can run code); refused because allow_code=False"
                )
            try:
                module = torch.export.load(str(file)).module()
            except Exception as exc:  # third-party readers raise any type
                raise _unreadable(file, exc) from None
            _check_device(torch, module, device, file)
            return module
        if not allow_code:
            raise CodeNotAllowedError(
                f"{file.name} is a torch.save pickle, which runs code when loaded; refused "
                "because allow_code=False"
            )
        try:
            if _is_torchscript(file):
                module = torch.jit.load(str(file), map_location=device)
            else:
                module = torch.load(str(file), map_location=device, weights_only=False)
        except Exception as exc:  # third-party readers raise any type
            raise _unreadable(file, exc) from None
        if not isinstance(module, torch.nn.Module):
            raise ModelFormatError(
                f"{file.name} holds a {type(module).__name__}, not a torch.nn.Module",
                path=str(file),
            )
        module.eval()
        return module.to(device)

    def load_predictor(self, path: Path, config: LoadConfig) -> TorchPredictor:
        torch = _torch()
        return TorchPredictor(self.load(path, config), _device(torch, config))


def _unreadable(file: Path, exc: BaseException) -> ModelFormatError:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return ModelFormatError(f"{file.name} is not a readable PyTorch model: {first}", path=str(file))


def _is_torchscript(file: Path) -> bool:
    try:
        with zipfile.ZipFile(file) as z:
            return any(n.endswith("/constants.pkl") for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def _device(torch: Any, config: LoadConfig) -> str:
    device = config.options.get("device")
    if device is None:  # MLflow's spelling: load_model(..., model_config={"device": ...})
        device = (config.options.get("model_config") or {}).get("device")
    if device is None:
        device = (config.pyfunc.get("config") or {}).get("device")
    if device is None:
        device = os.environ.get("MLFLOW_DEFAULT_PREDICTION_DEVICE") or (
            "cuda" if torch.cuda.is_available() else "cpu"
        )
    return str(device)


def _check_device(torch: Any, module: Any, device: str, file: Path) -> None:
    # An exported program's weights cannot move between devices.
    want = torch.device(device).type
    for t in (*module.parameters(), *module.buffers()):
        if t.device.type != want:
            raise ModelFormatError(
                f"{file.name} was exported with weights on '{t.device.type}' and cannot run "
                f"on '{want}'; load it with device='{t.device.type}'",
                path=str(file),
            )


def _save_pt2(torch: Any, module: Any, file: Path, example_inputs: Any) -> None:
    if isinstance(module, torch.jit.ScriptModule):
        raise ValueError("a TorchScript module cannot be saved as pt2; use 'pickle'")
    if example_inputs is None:
        raise ValueError(
            "serialization_format='pt2' traces the module and needs an input example: pass "
            "input_example= (an array, a tensor or a tuple of them)"
        )
    items = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    tensors = []
    for item in items:
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(np.ascontiguousarray(item))
        if not isinstance(item, torch.Tensor):
            raise TypeError(
                f"a pt2 input example must be arrays or tensors, not {type(item).__name__}"
            )
        # torch.export fixes a dimension of size 1 to that size; two copies of a one-row
        # example keep the batch dimension free.
        tensors.append(torch.cat([item, item]) if item.ndim and item.shape[0] == 1 else item)
    dims = tuple({0: torch.export.Dim.DYNAMIC} if t.ndim else None for t in tensors)
    was_training = module.training
    module.eval()
    try:
        program = torch.export.export(module, tuple(tensors), dynamic_shapes=dims)
    except Exception as exc:  # torch.export raises many types
        raise ModelFormatError(
            f"torch.export cannot trace {type(module).__name__}: {_first_line(exc)} (save "
            "with serialization_format='pickle' instead)"
        ) from None
    finally:
        module.train(was_training)
    torch.export.save(program, str(file))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --- is a pt2 archive free of pickles? ---------------------------------------------

_TEXT_RECORD = re.compile(rb"[A-Za-z0-9._-]{1,64}\n?")
_PAYLOAD_CONFIG = re.compile(r"(^|/)data/(weights|constants)/[^/]+_config\.json$")


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (UnicodeDecodeError, ValueError):
        return None


def pt2_pickled_record(file: Path) -> str | None:
    """The first record of a pt2 archive that torch would unpickle, or None when none is.

    A record passes when it is JSON, a short text token (no pickle fits in one: GLOBAL
    needs two newlines and the binary opcodes non-ASCII bytes), raw tensor bytes that a
    payload config says are read without pickle, or a checkpoint that torch's
    ``weights_only`` reader (tensors and plain containers only) accepts.
    """
    import torch

    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise ModelFormatError(f"{file.name} is not a pt2 archive (not a zip file)") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        raw: set[str] = set()
        pickled: set[str] = set()
        for info in infos:
            if not _PAYLOAD_CONFIG.search(info.filename):
                continue
            doc = _json(archive.read(info))
            entries = doc.get("config") if isinstance(doc, dict) else None
            if not isinstance(entries, dict):
                continue
            folder = info.filename.rsplit("/", 1)[0]
            for entry in entries.values():
                name = entry.get("path_name") if isinstance(entry, dict) else None
                if not isinstance(name, str) or "/" in name:
                    continue
                raw_read = entry.get("use_pickle") is False and name.startswith(
                    ("weight_", "tensor_")
                )
                (raw if raw_read else pickled).add(f"{folder}/{name}")
        raw -= pickled
        for info in infos:
            if info.filename in raw:
                continue
            content = archive.read(info)
            if _TEXT_RECORD.fullmatch(content) or _json(content) is not None:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # its notes on pickle protocols
                    torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
            except Exception:  # anything the restricted reader refuses
                return info.filename
    return None


# --- predictor ---------------------------------------------------------------------


class TorchPredictor:
    """Runs the module without autograd, as MLflow's pyfunc wrapper does."""

    row_independent = True

    def __init__(self, module: Any, device: str) -> None:
        import torch

        self.module = module
        self.device = device
        self._torch = torch
        self._cpu = torch.device(device).type == "cpu"

    def _tensor(self, arr: Any, label: str) -> Any:
        if arr.dtype == object or arr.dtype.kind in "USMm":
            raise SignatureError(
                f"{label}: a PyTorch model takes numeric arrays, given dtype {arr.dtype}",
                column=label,
                expected="numeric tensor",
                given=str(arr.dtype),
            )
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr)  # torch.from_numpy wants memory it may write to
        t = self._torch.from_numpy(arr)
        return t if self._cpu else t.to(self.device)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Feed ``data`` to the module; see the module docstring for shapes."""
        if params and "device" in params:
            raise SignatureError(
                "'device' is a load option (load_model(..., device=...)), not a param",
                column="device",
            )
        kwargs = params or {}
        frame = None
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(data, pd.DataFrame):
            frame = data
            args: tuple[Any, ...] = (self._tensor(data.to_numpy(dtype=np.float32), "input"),)
        elif isinstance(data, np.ndarray):
            args = (self._tensor(data, "input"),)
        elif isinstance(data, dict):
            kwargs = {
                **{k: self._tensor(np.asarray(v), f"input '{k}'") for k, v in data.items()},
                **kwargs,
            }
            args = ()
        else:
            raise SignatureError(
                f"a PyTorch model takes a DataFrame, an ndarray or a dict of arrays, not "
                f"{type(data).__name__}",
                given=type(data).__name__,
            )
        with self._torch.inference_mode():
            out = self.module(*args, **kwargs)
        if isinstance(out, dict):
            return {str(k): _numpy(v) for k, v in out.items()}
        if not isinstance(out, self._torch.Tensor):
            raise TypeError(
                f"the model returned {type(out).__name__}; a PyTorch model served by satchel "
                "returns one tensor or a dict of tensors"
            )
        result = _numpy(out)
        if frame is not None:
            return sys.modules["pandas"].DataFrame(result, index=frame.index)
        return result


def _numpy(t: Any) -> Any:
    return t.detach().cpu().numpy()


def save_model(pytorch_model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save a ``torch.nn.Module``; keyword arguments as :func:`satchel.save_model`, plus
    ``serialization_format`` (``pickle``, the default, or ``pt2``). For ``pt2`` the
    ``input_example`` (arrays or tensors) is what the module is traced with."""
    from satchel.save import save_model as _save

    if kwargs.get("input_example") is not None:
        kwargs["input_example"] = _example_to_numpy(kwargs["input_example"])
    return _save(pytorch_model, path, flavor="pytorch", **kwargs)


def _example_to_numpy(example: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(example, torch.Tensor):
        return example.detach().cpu().numpy()
    return example


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the ``torch.nn.Module`` of a saved PyTorch model (``device=`` to place it)."""
    from satchel.model import load_model as _load

    model = _load(path, **kwargs)
    if model.flavor.name != "pytorch":
        raise ModelFormatError(f"{path} is a {model.flavor.name} model, not pytorch")
    return model.unwrap()
