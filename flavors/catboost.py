"""catboost flavor: ``CatBoost``/``CatBoostClassifier``/``CatBoostRegressor``/``CatBoostRanker``
stored in catboost's own binary format (``cbm``), or its JSON.

The layout is MLflow's (``loader_module: mlflow.catboost``; ``catboost_version``,
``model_type``, ``save_format``, ``data: model.cb``), so MLflow loads what satchel saves
and the other way round. ``model_type`` is looked up in a fixed table of catboost
classes. Nothing in the file runs code on load. catboost is imported only when a model
is saved or loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from satchel.errors import ModelFormatError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.libs import (
    PlainPredictor,
    class_name,
    load_native,
    native_file_error,
    require,
    warn_if_newer,
)
from satchel.manifest import Manifest
from satchel.paths import inside

DATA_FILE = "model.cb"  # MLflow's name for the file, whatever its format
FORMATS = ("cbm", "json")
MODEL_TYPES = ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")


def _cb() -> Any:
    return require("catboost", flavor="catboost")


class CatBoostFlavor:
    """The ``catboost`` flavor."""

    name = "catboost"
    loader_module = "mlflow.catboost"
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ()

    def can_save(self, obj: Any) -> bool:
        if "catboost" not in sys.modules:
            return False  # a catboost object cannot exist before catboost is imported
        cls = type(obj)
        return cls.__module__.split(".")[0] == "catboost" and cls.__name__ in MODEL_TYPES

    def save(self, obj: Any, path: Path, *, save_format: str = "cbm") -> FlavorConfig:
        """Write the model with its own ``save_model`` as ``model.cb``."""
        if save_format not in FORMATS:
            raise ValueError(f"save_format must be one of {FORMATS}, not {save_format!r}")
        if not self.can_save(obj):
            raise ModelFormatError(
                f"the catboost flavor saves {', '.join(MODEL_TYPES)}; "
                f"{class_name(obj)} is not one of them"
            )
        cb = _cb()
        try:
            obj.save_model(str(path / DATA_FILE), format=save_format)
        except cb.CatBoostError as exc:
            raise ModelFormatError(f"catboost cannot save {type(obj).__name__}: {exc}") from None
        return FlavorConfig(
            section={
                "catboost_version": cb.__version__,
                "code": None,
                "model_type": type(obj).__name__,
                "save_format": save_format,
                "data": DATA_FILE,
            },
            pyfunc={"data": DATA_FILE},
        )

    def default_requirements(self) -> list[str]:
        return ["catboost"]

    def unsafe_format(self, config: LoadConfig) -> str | None:
        return None  # catboost's binary or JSON trees: data only

    def load(self, path: Path, config: LoadConfig) -> Any:
        section = config.section
        rel = str(section.get("data") or config.pyfunc.get("data") or DATA_FILE)
        file = inside(path, rel, what="catboost model file")
        model_type = str(section.get("model_type") or "CatBoost")
        if model_type not in MODEL_TYPES:
            raise ModelFormatError(
                f"catboost model_type {model_type!r} is not one of {MODEL_TYPES}", path=str(file)
            )
        fmt = str(section.get("save_format") or "cbm")
        if fmt not in FORMATS:
            raise ModelFormatError(
                f"catboost save_format {fmt!r} is not one satchel loads ({FORMATS})",
                path=str(file),
            )
        cb = _cb()
        warn_if_newer("catboost", section.get("catboost_version"), what=f"{path.name} ({rel})")
        model = getattr(cb, model_type)()
        try:
            model.load_model(str(file), format=fmt)
        except cb.CatBoostError as exc:
            raise native_file_error(file, "catboost", exc) from None
        return model

    def load_predictor(self, path: Path, config: LoadConfig) -> PlainPredictor:
        return PlainPredictor(self.load(path, config))


def save_model(cb_model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save a catboost model; keyword arguments as :func:`satchel.save_model`, plus
    ``save_format`` (``"cbm"``, the default, or ``"json"``)."""
    from satchel.save import save_model as _save

    return _save(cb_model, path, flavor="catboost", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the native catboost model of a saved catboost model."""
    return load_native(path, "catboost", kwargs)
