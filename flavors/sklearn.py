"""scikit-learn flavor: estimators and pipelines, stored as cloudpickle, pickle or skops.

The MLmodel sections match MLflow's (``loader_module: mlflow.sklearn``), so MLflow loads
what satchel saves and the other way round. scikit-learn is imported only when needed.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from satchel.env import installed_version
from satchel.errors import ModelFormatError, SatchelError, UntrustedTypeError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.manifest import Manifest
from satchel.paths import inside

MODEL_FILE = "model.pkl"
FORMATS = ("cloudpickle", "pickle", "skops")
PREDICT_FNS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba",
               "decision_function")
TRUSTED_TYPES_ENV = "SATCHEL_SKOPS_TRUSTED_TYPES"


class SklearnFlavor:
    """The ``sklearn`` flavor."""

    name = "sklearn"
    loader_module = "mlflow.sklearn"
    row_independent = True

    def can_save(self, obj: Any) -> bool:
        if "sklearn" not in sys.modules:
            return False  # an sklearn object cannot exist before sklearn is imported
        from sklearn.base import BaseEstimator

        return isinstance(obj, BaseEstimator)

    def save(self, obj: Any, path: Path, *, serialization_format: str = "cloudpickle",
             predict_fn: str = "predict", **_: Any) -> FlavorConfig:
        if serialization_format not in FORMATS:
            raise ValueError(f"serialization_format must be one of {FORMATS}, "
                             f"not {serialization_format!r}")
        if predict_fn not in PREDICT_FNS:
            raise ValueError(f"predict_fn must be one of {PREDICT_FNS}, not {predict_fn!r}")
        if not hasattr(obj, predict_fn):
            raise ValueError(f"{type(obj).__name__} has no method {predict_fn}()")
        target = path / MODEL_FILE
        with open(target, "wb") as f:
            if serialization_format == "cloudpickle":
                import cloudpickle

                cloudpickle.dump(obj, f)
            elif serialization_format == "pickle":
                pickle.dump(obj, f, protocol=pickle.DEFAULT_PROTOCOL)
        if serialization_format == "skops":
            import skops.io

            skops.io.dump(obj, target)
        extra = {"cloudpickle": ("cloudpickle",), "skops": ("skops",)}.get(serialization_format, ())
        return FlavorConfig(
            section={"pickled_model": MODEL_FILE, "sklearn_version": installed_version("scikit-learn"),
                     "serialization_format": serialization_format, "code": None},
            pyfunc={"model_path": MODEL_FILE, "predict_fn": predict_fn},
            requirements=extra,
        )

    def default_requirements(self) -> list[str]:
        return ["scikit-learn"]

    def unsafe_format(self, config: LoadConfig) -> str | None:
        fmt = _format(config)
        return None if fmt == "skops" else fmt

    def load(self, path: Path, config: LoadConfig) -> Any:
        rel = config.pyfunc.get("model_path") or config.section.get("pickled_model") or MODEL_FILE
        file = inside(path, str(rel), what="sklearn model file")
        fmt = _format(config)
        if fmt == "skops":
            return _load_skops(file, config.options.get("trusted_types"))
        try:
            with open(file, "rb") as f:
                if fmt == "cloudpickle":
                    import cloudpickle

                    return cloudpickle.load(f)
                return pickle.load(f)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise ModelFormatError(f"{rel} cannot be unpickled: {type(exc).__name__}: {exc}",
                                   path=str(file)) from None

    def load_predictor(self, path: Path, config: LoadConfig) -> SklearnPredictor:
        fn = str(config.pyfunc.get("predict_fn") or "predict")
        if fn not in PREDICT_FNS:
            raise ModelFormatError(f"predict_fn {fn!r} is not one of {PREDICT_FNS}")
        return SklearnPredictor(self.load(path, config), fn)


def _format(config: LoadConfig) -> str:
    fmt = str(config.section.get("serialization_format") or "cloudpickle")
    if fmt not in FORMATS:
        raise ModelFormatError(f"sklearn serialization_format {fmt!r} is not one of {FORMATS}")
    return fmt


def trusted_types(given: Sequence[str] | None) -> list[str]:
    """The caller's trust list: the ``trusted_types`` option plus SATCHEL_SKOPS_TRUSTED_TYPES.

    Never read from the model's own manifest: a file cannot vouch for itself.
    """
    env = [t.strip() for t in os.environ.get(TRUSTED_TYPES_ENV, "").split(",") if t.strip()]
    return [*(given or ()), *env]


def _load_skops(file: Path, given: Sequence[str] | None) -> Any:
    import skops.io

    trusted = trusted_types(given)
    try:
        untrusted = skops.io.get_untrusted_types(file=file)
    except Exception as exc:
        raise ModelFormatError(f"{file.name} is not a readable skops file: {exc}",
                               path=str(file)) from None
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        raise UntrustedTypeError(
            f"{file.name} contains types you have not trusted: {', '.join(refused)}; pass "
            f"trusted_types=[...] to load_model or set {TRUSTED_TYPES_ENV}", types=refused)
    try:
        return skops.io.load(file, trusted=sorted(set(untrusted)))
    except SatchelError:
        raise
    except Exception as exc:
        raise ModelFormatError(f"{file.name} cannot be loaded by skops: {exc}",
                               path=str(file)) from None


class SklearnPredictor:
    """Calls the estimator's ``predict_fn`` on data already fitted to the signature."""

    row_independent = True

    def __init__(self, model: Any, predict_fn: str) -> None:
        if not hasattr(model, predict_fn):
            raise ModelFormatError(f"{type(model).__name__} has no method {predict_fn}()")
        self.model = model
        self.predict_fn = predict_fn
        self._fn = getattr(model, predict_fn)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._fn(data)


def save_model(sk_model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save a scikit-learn estimator; keyword arguments as :func:`satchel.save_model`,
    plus ``serialization_format`` (cloudpickle, pickle, skops) and ``predict_fn``."""
    from satchel.save import save_model as _save

    return _save(sk_model, path, flavor="sklearn", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the native estimator of a saved sklearn model."""
    from satchel.model import load_model as _load

    model = _load(path, **kwargs)
    if model.flavor.name != "sklearn":
        raise ModelFormatError(f"{path} is a {model.flavor.name} model, not sklearn")
    return model.unwrap()
