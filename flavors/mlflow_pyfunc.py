"""MLflow custom models (``loader_module: mlflow.pyfunc.model``), loaded without mlflow.

Such a model is a cloudpickled subclass of ``mlflow.pyfunc.PythonModel`` (or a function
MLflow wrapped in one), with ``artifacts/`` and ``code/`` beside it. satchel unpickles it
with a restricted mapping that gives the few MLflow names such pickles refer to satchel
equivalents (``_mlflow_compat``), calls ``load_context(context)`` with MLflow's context
(``artifacts``, ``model_config``) and ``predict`` as MLflow does. It is still pickle:
``load_model(allow_code=False)`` refuses it. A model that uses any other MLflow name
(``ChatModel``, ``ResponsesAgent`` ...) is refused naming it; with mlflow installed,
``allow_mlflow=True`` loads such a model through mlflow itself.

Directories whose ``python_function`` section has ``model_code_path`` (MLflow's models
from code) are loaded by the ``python`` flavor's code loader, which this flavor calls.
satchel never saves this format (save a ``satchel.PythonModel`` with the python flavor).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path
from typing import Any

from satchel.errors import FlavorLoadError, ModelFormatError
from satchel.flavor import LoadConfig
from satchel.libs import warn_if_newer
from satchel.paths import inside

OPT_IN = "allow_mlflow"
MODEL_FILE = "python_model.pkl"
# MLflow's python_model_compression values -> how to open the file.
_OPENERS: dict[str, Any] = {"lzma": lzma.open, "bzip2": bz2.open, "gzip": gzip.open}


class MlflowPyfuncFlavor:
    """The ``mlflow_pyfunc`` flavor: load-only."""

    name = "mlflow_pyfunc"
    loader_module = "mlflow.pyfunc.model"
    # Custom code may look across rows of a call: never batch requests together.
    row_independent = False
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ()

    def can_save(self, obj: Any) -> bool:
        return False

    def save(self, obj: Any, path: Path) -> Any:
        raise TypeError(
            "satchel does not save MLflow custom models; subclass "
            "satchel.PythonModel and save it with the python flavor"
        )

    def default_requirements(self) -> list[str]:
        return []

    def unsafe_format(self, config: LoadConfig) -> str | None:
        if config.pyfunc.get("model_code_path"):
            return "python source"
        return "cloudpickle"  # python_model.pkl

    def load(self, path: Path, config: LoadConfig) -> Any:
        """The model object: satchel's stand-in-based ``PythonModel`` (or MLflow's own
        with ``allow_mlflow=True``)."""
        if config.options.get(OPT_IN):
            return _through_mlflow(path).unwrap_python_model()
        return self._load_compat(path, config)[0]

    def load_predictor(self, path: Path, config: LoadConfig) -> Any:
        if config.options.get(OPT_IN):
            return MlflowPredictor(_through_mlflow(path))
        from satchel.flavors._mlflow_pyfunc_compat import CompatPredictor

        model, context = self._load_compat(path, config)
        return CompatPredictor(model, context)

    def _load_compat(self, path: Path, config: LoadConfig) -> tuple[Any, Any]:
        from satchel.flavors._mlflow_pyfunc_compat import PythonModelContext

        pf = config.pyfunc
        if pf.get("model_code_path"):
            from satchel.flavors._mlflow_pyfunc_compat import load_code_model

            model = load_code_model(path, pf)
        else:
            model = _unpickle(path, pf)
        artifacts = {
            str(name): str(inside(path, str(entry["path"]), what=f"artifact '{name}'"))
            for name, entry in (pf.get("artifacts") or {}).items()
        }
        context = PythonModelContext(artifacts=artifacts, model_config=pf.get("config") or {})
        load_context = getattr(model, "load_context", None)
        if callable(load_context):
            load_context(context)
        return model, context


def _unpickle(path: Path, pf: dict[str, Any]) -> Any:
    from satchel.flavors._mlflow_pyfunc_compat import FunctionPythonModel, RestrictedUnpickler

    rel = str(pf.get("python_model") or MODEL_FILE)
    file = inside(path, rel, what="python model file")
    if not file.is_file():
        raise ModelFormatError(f"{rel} is missing from {path.name}", path=str(file))
    compression = pf.get("python_model_compression")
    if compression and compression not in _OPENERS:
        raise ModelFormatError(
            f"python_model_compression {compression!r} is not one of {sorted(_OPENERS)}",
            path=str(file),
        )
    warn_if_newer("cloudpickle", pf.get("cloudpickle_version"), what=path.name)
    opener = _OPENERS.get(str(compression), open) if compression else open
    try:
        with opener(file, "rb") as f:
            model = RestrictedUnpickler(f, where=rel).load()
    except FlavorLoadError:
        raise
    except (ImportError, AttributeError, EOFError, OSError, ValueError) as exc:
        raise ModelFormatError(
            f"{rel} cannot be unpickled: {type(exc).__name__}: {exc} "
            "(are the modules it imports installed, and its code/ saved with it?)",
            path=str(file),
        ) from None
    except Exception as exc:  # unpickling runs arbitrary constructors
        raise ModelFormatError(
            f"{rel} cannot be unpickled: {type(exc).__name__}: {exc}", path=str(file)
        ) from None
    if callable(model) and not hasattr(model, "predict"):
        model = FunctionPythonModel(model)
    if not callable(getattr(model, "predict", None)):
        raise ModelFormatError(
            f"{rel} holds a {type(model).__name__}, which has no predict()", path=str(file)
        )
    return model


def _through_mlflow(path: Path) -> Any:
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise FlavorLoadError(
            f"{path.name} was asked to load through mlflow ({OPT_IN}=True), but mlflow "
            f"cannot be imported ({exc}); install mlflow (pip install mlflow), or load "
            f"without {OPT_IN} to use satchel's own loader",
            flavor=MlflowPyfuncFlavor.name,
        ) from None
    return mlflow.pyfunc.load_model(str(path))


class MlflowPredictor:
    """Calls MLflow's ``PyFuncModel.predict`` (after satchel's own coercion)."""

    row_independent = False

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if params:
            return self.model.predict(data, params=params)
        return self.model.predict(data)
