"""The python flavor: a ``satchel.PythonModel`` subclass or a plain callable, cloudpickled.

Artifacts are copied under ``artifacts/`` and handed to ``load_context``; ``code_paths``
are copied under ``code/`` and put on ``sys.path`` at load time.
"""

from __future__ import annotations

import inspect
import os
import shutil
from pathlib import Path
from typing import Any

from satchel.env import installed_version
from satchel.errors import ModelFormatError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.manifest import Manifest
from satchel.paths import inside
from satchel.pyfunc import PythonModel, PythonModelContext

MODEL_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"


class PythonFlavor:
    """The ``python`` flavor (``loader_module: satchel.flavors.python``)."""

    name = "python"
    # Imported before a model's code paths are importable (satchel._checks).
    libraries = ("cloudpickle",)
    loader_module = "satchel.flavors.python"
    # Custom code may look across rows; servers batch it only if the model says so.
    row_independent = False
    fallback = True

    def can_save(self, obj: Any) -> bool:
        return isinstance(obj, PythonModel) or (callable(obj) and not isinstance(obj, type))

    def save(
        self,
        obj: Any,
        path: Path,
        *,
        artifacts: dict[str, str] | None = None,
        model_config: dict[str, Any] | None = None,
    ) -> FlavorConfig:
        import cloudpickle

        if not self.can_save(obj):
            raise TypeError(
                f"the python flavor saves a satchel.PythonModel or a callable, "
                f"not {type(obj).__name__}"
            )
        stored = _copy_artifacts(path, artifacts or {})
        with open(path / MODEL_FILE, "wb") as f:
            cloudpickle.dump(obj, f)
        section: dict[str, Any] = {
            "python_model": MODEL_FILE,
            "cloudpickle_version": installed_version("cloudpickle"),
            "kind": "class" if isinstance(obj, PythonModel) else "callable",
        }
        if stored:
            section["artifacts"] = stored
        if model_config:
            section["model_config"] = dict(model_config)
        return FlavorConfig(section=section, requirements=("cloudpickle",))

    def default_requirements(self) -> list[str]:
        return []

    def unsafe_format(self, config: LoadConfig) -> str | None:
        return "cloudpickle"

    def load(self, path: Path, config: LoadConfig) -> Any:
        import cloudpickle

        rel = str(config.section.get("python_model") or MODEL_FILE)
        file = inside(path, rel, what="python model file")
        try:
            with open(file, "rb") as f:
                obj = cloudpickle.load(f)
        except (ImportError, AttributeError, EOFError) as exc:
            raise ModelFormatError(
                f"{rel} cannot be unpickled: {type(exc).__name__}: {exc} "
                "(are its code_paths saved with it?)",
                path=str(file),
            ) from None
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
    """Save a PythonModel or a callable; keyword arguments as :func:`satchel.save_model`,
    plus ``artifacts`` (name -> local path) and ``model_config``."""
    from satchel.save import save_model as _save

    return _save(python_model, path, flavor="python", artifacts=artifacts, **kwargs)
