"""The python flavor: a ``satchel.PythonModel`` subclass or a plain callable, cloudpickled,
or a model from code: a ``.py`` file that builds the model and calls
``satchel.set_model(model)``, stored as source and run on load (no pickle).

Artifacts are copied under ``artifacts/`` and handed to ``load_context``; ``code_paths``
are copied under ``code/`` and put on ``sys.path`` at load time.
"""

from __future__ import annotations

import inspect
import os
import shutil
from pathlib import Path
from typing import Any

from satchel.code_model import run_model_script
from satchel.env import installed_version
from satchel.errors import ModelFormatError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.manifest import Manifest
from satchel.paths import inside
from satchel.pyfunc import PythonModel, PythonModelContext

MODEL_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"
CODE_KEY = "model_code"  # the section key naming the stored source file


class PythonFlavor:
    """The ``python`` flavor (``loader_module: satchel.flavors.python``)."""

    name = "python"
    # Imported before a model's code paths are importable (satchel._checks).
    libraries = ("cloudpickle",)
    loader_module = "satchel.flavors.python"
    # Custom code may look across rows; servers batch it only if the model says so.
    row_independent = False
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ()
    fallback = True
    # Custom code imports what it likes: requirements.txt lists what it really imported.
    infer_requirements = True

    def can_save(self, obj: Any) -> bool:
        if _is_source(obj):
            return True
        return isinstance(obj, PythonModel) or (callable(obj) and not isinstance(obj, type))

    def save(
        self,
        obj: Any,
        path: Path,
        *,
        artifacts: dict[str, str] | None = None,
        model_config: dict[str, Any] | None = None,
    ) -> FlavorConfig:
        if isinstance(obj, (str, os.PathLike)):
            source = Path(obj)
            if not _is_source(obj) or not source.is_file():
                raise ValueError(
                    f"python_model {str(obj)!r} must be an existing .py file (a model from "
                    "code that calls satchel.set_model)"
                )
        elif not self.can_save(obj):
            raise TypeError(
                f"the python flavor saves a satchel.PythonModel, a callable or a .py file, "
                f"not {type(obj).__name__}"
            )
        stored = _copy_artifacts(path, artifacts or {})
        section: dict[str, Any]
        requirements: tuple[str, ...] = ()
        if isinstance(obj, (str, os.PathLike)):
            shutil.copy2(source, path / source.name)
            section = {CODE_KEY: source.name, "kind": "code"}
        else:
            import cloudpickle

            with open(path / MODEL_FILE, "wb") as f:
                cloudpickle.dump(obj, f)
            section = {
                "python_model": MODEL_FILE,
                "cloudpickle_version": installed_version("cloudpickle"),
                "kind": "class" if isinstance(obj, PythonModel) else "callable",
            }
            requirements = ("cloudpickle",)
        if stored:
            section["artifacts"] = stored
        if model_config:
            section["model_config"] = dict(model_config)
        return FlavorConfig(section=section, requirements=requirements)

    def default_requirements(self) -> list[str]:
        return []

    def unsafe_format(self, config: LoadConfig) -> str | None:
        return "python source" if config.section.get(CODE_KEY) else "cloudpickle"

    def load(self, path: Path, config: LoadConfig) -> Any:
        code = config.section.get(CODE_KEY)
        if code:
            obj = run_model_script(inside(path, str(code), what="model code"))
            if not (isinstance(obj, PythonModel) or callable(obj)):
                raise ModelFormatError(
                    f"model code {code} registered a {type(obj).__name__}; set_model takes a "
                    "satchel.PythonModel or a callable",
                    path=str(path / str(code)),
                )
        else:
            obj = _unpickle(path, config)
        if isinstance(obj, PythonModel):
            artifacts = {
                name: str(inside(path, entry["path"], what=f"artifact '{name}'"))
                for name, entry in (config.section.get("artifacts") or {}).items()
            }
            obj.load_context(
                PythonModelContext(
                    artifacts=artifacts, model_config=config.section.get("model_config") or {}
                )
            )
        return obj

    def load_predictor(self, path: Path, config: LoadConfig) -> PythonPredictor:
        return PythonPredictor(self.load(path, config))


def _is_source(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike)) and str(obj).endswith(".py")


def _unpickle(path: Path, config: LoadConfig) -> Any:
    import cloudpickle

    rel = str(config.section.get("python_model") or MODEL_FILE)
    file = inside(path, rel, what="python model file")
    try:
        with open(file, "rb") as f:
            return cloudpickle.load(f)
    except (ImportError, AttributeError, EOFError) as exc:
        raise ModelFormatError(
            f"{rel} cannot be unpickled: {type(exc).__name__}: {exc} "
            "(are its code_paths saved with it?)",
            path=str(file),
        ) from None


def _copy_artifacts(root: Path, artifacts: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    if not artifacts:
        return out
    (root / ARTIFACTS_DIR).mkdir()
    for name, src in artifacts.items():
        p = Path(src)
        if not p.exists():
            raise FileNotFoundError(f"artifact '{name}': {p} does not exist")
        rel = f"{ARTIFACTS_DIR}/{name}"
        if p.is_dir():
            shutil.copytree(p, root / rel)
        else:
            (root / rel).mkdir()
            rel = f"{rel}/{p.name}"
            shutil.copy2(p, root / rel)
        out[name] = {"path": rel, "uri": str(p)}
    return out


class PythonPredictor:
    """Calls a PythonModel's ``predict`` or a plain callable."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        if isinstance(obj, PythonModel):
            declared = getattr(obj, "row_independent", None)
            self.row_independent = bool(declared) if declared is not None else False
            self._call = obj.predict
            self._takes_params = True
        else:
            self.row_independent = bool(getattr(obj, "row_independent", False))
            self._call = obj
            self._takes_params = _accepts_params(obj)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if self._takes_params:
            return self._call(data, params=params)
        return self._call(data)


def _accepts_params(fn: Any) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return "params" in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
    )


def _load_pyfunc(path: str) -> PythonPredictor:
    """MLflow's loader hook: lets ``mlflow.pyfunc.load_model`` open a satchel python model."""
    root = Path(path)
    manifest = Manifest.read(root)
    section = manifest.flavors.get("python", {})
    return PythonFlavor().load_predictor(
        root, LoadConfig(section=section, pyfunc=manifest.pyfunc or {})
    )


def save_model(
    path: str | os.PathLike[str],
    python_model: Any,
    *,
    artifacts: dict[str, str] | None = None,
    **kwargs: Any,
) -> Manifest:
    """Save a PythonModel, a callable, or a model from code; keyword arguments as
    :func:`satchel.save_model`, plus ``artifacts`` (name -> local path) and ``model_config``.

    ``python_model="model.py"`` stores that source file instead of a pickle: loading
    runs it and takes the model it registers with ``satchel.set_model(model)``."""
    from satchel.save import save_model as _save

    return _save(python_model, path, flavor="python", artifacts=artifacts, **kwargs)
