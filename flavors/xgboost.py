"""xgboost flavor: a ``Booster`` or an sklearn-API estimator, stored in xgboost's own format.

The file is what ``save_model`` of the estimator writes (UBJSON ``model.ubj`` by default,
or ``model.json``): no pickle, nothing runs on load. The MLmodel sections are MLflow's
(``loader_module: mlflow.xgboost``; ``xgb_version``, ``data``, ``model_class``,
``model_format``), so MLflow loads what satchel saves and the other way round.
``model_class`` is read from a fixed table of xgboost classes, never imported by name.
xgboost is imported only when a model is saved or loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from satchel.errors import ModelFormatError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.libs import (
    accepted_kwargs,
    check_saves,
    is_one_of,
    load_native,
    native_file_error,
    require,
    warn_if_newer,
)
from satchel.manifest import Manifest
from satchel.paths import inside

FORMATS = ("ubj", "json")
# Formats read but not written: the legacy binary ("xgb"/"deprecated") of MLflow < 2.
READ_FORMATS = (*FORMATS, "xgb", "deprecated")
# model_class (as MLflow writes it) -> attribute of the xgboost package. Classes outside
# the table are refused: a manifest never chooses what to instantiate.
MODEL_CLASSES: dict[str, str] = {
    "xgboost.core.Booster": "Booster",
    "xgboost.sklearn.XGBModel": "XGBModel",
    "xgboost.sklearn.XGBClassifier": "XGBClassifier",
    "xgboost.sklearn.XGBRegressor": "XGBRegressor",
    "xgboost.sklearn.XGBRanker": "XGBRanker",
    "xgboost.sklearn.XGBRFClassifier": "XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor": "XGBRFRegressor",
}


def _xgb() -> Any:
    return require("xgboost", flavor="xgboost")


class XGBoostFlavor:
    """The ``xgboost`` flavor."""

    name = "xgboost"
    loader_module = "mlflow.xgboost"
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ()

    def can_save(self, obj: Any) -> bool:
        return is_one_of(obj, "xgboost", MODEL_CLASSES)

    def save(self, obj: Any, path: Path, *, model_format: str = "ubj") -> FlavorConfig:
        """Write the model with its own ``save_model`` as ``model.<model_format>``."""
        if model_format not in FORMATS:
            raise ValueError(f"model_format must be one of {FORMATS}, not {model_format!r}")
        cls = check_saves(obj, "xgboost", MODEL_CLASSES)
        xgb = _xgb()
        rel = f"model.{model_format}"
        try:
            obj.save_model(str(path / rel))
        except xgb.core.XGBoostError as exc:
            raise ModelFormatError(f"xgboost cannot save {type(obj).__name__}: {exc}") from None
        return FlavorConfig(
            section={
                "xgb_version": xgb.__version__,
                "data": rel,
                "model_class": cls,
                "model_format": model_format,
                "code": None,
            },
            pyfunc={"data": rel},
        )

    def default_requirements(self) -> list[str]:
        return ["xgboost"]

    def unsafe_format(self, config: LoadConfig) -> str | None:
        return None  # UBJSON/JSON trees: data only

    def load(self, path: Path, config: LoadConfig) -> Any:
        section = config.section
        rel = str(section.get("data") or config.pyfunc.get("data") or "model.ubj")
        file = inside(path, rel, what="xgboost model file")
        fmt = str(section.get("model_format") or Path(rel).suffix.lstrip(".") or "ubj")
        if fmt not in READ_FORMATS:
            raise ModelFormatError(
                f"xgboost model_format {fmt!r} is not one of {READ_FORMATS}", path=str(file)
            )
        cls = str(section.get("model_class") or "xgboost.core.Booster")
        attr = MODEL_CLASSES.get(cls)
        if attr is None:
            raise ModelFormatError(
                f"xgboost model_class {cls!r} is not one satchel loads "
                f"({', '.join(sorted(MODEL_CLASSES))})",
                path=str(file),
            )
        if not file.is_file():
            raise ModelFormatError(f"xgboost model file {rel} is missing", path=str(file))
        xgb = _xgb()
        warn_if_newer("xgboost", section.get("xgb_version"), what=f"{path.name} ({rel})")
        model = getattr(xgb, attr)()
        try:
            model.load_model(str(file))
        except xgb.core.XGBoostError as exc:
            raise native_file_error(file, "xgboost", exc) from None
        return model

    def load_predictor(self, path: Path, config: LoadConfig) -> XGBoostPredictor:
        return XGBoostPredictor(self.load(path, config))


class XGBoostPredictor:
    """Predicts as MLflow's xgboost pyfunc does.

    A Booster gets a ``DMatrix`` of the input; an sklearn-API estimator its ``predict``.
    Both validate feature names. Params that ``predict`` accepts (``output_margin``,
    ``iteration_range`` ...) are passed on; others are ignored, as MLflow ignores them.
    """

    row_independent = True

    def __init__(self, model: Any) -> None:
        xgb = _xgb()
        self.model = model
        self._dmatrix = xgb.DMatrix if isinstance(model, xgb.Booster) else None
        self._accepted = accepted_kwargs(model.predict)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {}
        if params:
            kwargs = {
                k: v
                for k, v in params.items()
                if (self._accepted is None or k in self._accepted) and k != "validate_features"
            }
            if "iteration_range" in kwargs and kwargs["iteration_range"] is not None:
                kwargs["iteration_range"] = tuple(kwargs["iteration_range"])
        if self._dmatrix is not None:
            return self.model.predict(self._dmatrix(data), validate_features=True, **kwargs)
        return self.model.predict(data, validate_features=True, **kwargs)


def save_model(xgb_model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save an xgboost ``Booster`` or sklearn-API estimator.

    Keyword arguments as :func:`satchel.save_model`, plus ``model_format`` (``"ubj"``,
    the default, or ``"json"``).
    """
    from satchel.save import save_model as _save

    return _save(xgb_model, path, flavor="xgboost", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the native xgboost object (Booster or estimator) of a saved xgboost model."""
    return load_native(path, "xgboost", kwargs)
