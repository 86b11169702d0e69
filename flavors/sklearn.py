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
from satchel.libs import warn_if_newer
from satchel.manifest import Manifest
from satchel.paths import inside

MODEL_FILE = "model.pkl"
SKOPS_FILE = "model.skops"  # MLflow's name for the skops format
FORMATS = ("cloudpickle", "pickle", "skops")
PREDICT_FNS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "predict_joint_log_proba",
    "decision_function",
)
TRUSTED_TYPES_ENV = "SATCHEL_SKOPS_TRUSTED_TYPES"


class SklearnFlavor:
    """The ``sklearn`` flavor."""

    name = "sklearn"
    # Imported before a model's code paths are importable (satchel._checks).
    libraries = ("sklearn", "cloudpickle")
    loader_module = "mlflow.sklearn"
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ()
    # xgboost, lightgbm and catboost estimators are BaseEstimators too: their own flavors
    # store them natively and are asked first.
    generic = True

    def can_save(self, obj: Any) -> bool:
        if "sklearn" not in sys.modules:
            return False  # an sklearn object cannot exist before sklearn is imported
        from sklearn.base import BaseEstimator

        return isinstance(obj, BaseEstimator)

    def save(
        self,
        obj: Any,
        path: Path,
        *,
        serialization_format: str = "cloudpickle",
        predict_fn: str = "predict",
        skops_trusted_types: Sequence[str] | None = None,
    ) -> FlavorConfig:
        """Write the estimator as ``model.pkl`` (pickle, cloudpickle) or ``model.skops``.

        For skops, ``skops_trusted_types`` is the saver vouching for the types the file
        holds beyond skops' defaults; every such type must be listed or the save fails
        (as in MLflow). The list is written to the manifest for MLflow, which trusts it;
        satchel never does: its loader takes trust only from the caller.
        """
        if serialization_format not in FORMATS:
            raise ValueError(
                f"serialization_format must be one of {FORMATS}, not {serialization_format!r}"
            )
        if predict_fn not in PREDICT_FNS:
            raise ValueError(f"predict_fn must be one of {PREDICT_FNS}, not {predict_fn!r}")
        if not hasattr(obj, predict_fn):
            raise ValueError(f"{type(obj).__name__} has no method {predict_fn}()")
        section: dict[str, Any] = {
            "sklearn_version": installed_version("scikit-learn"),
            "serialization_format": serialization_format,
            "code": None,
        }
        if serialization_format == "skops":
            rel = SKOPS_FILE
            vouched, _ = _save_skops(obj, path / rel, skops_trusted_types)
            section["skops_trusted_types"] = vouched
        else:
            rel = MODEL_FILE
            with open(path / rel, "wb") as f:
                if serialization_format == "cloudpickle":
                    import cloudpickle

                    # The default protocol, as MLflow writes: readable by older Pythons.
                    cloudpickle.dump(obj, f, protocol=pickle.DEFAULT_PROTOCOL)
                else:
                    pickle.dump(obj, f, protocol=pickle.DEFAULT_PROTOCOL)
        extra = {"cloudpickle": ("cloudpickle",), "skops": ("skops",)}.get(serialization_format, ())
        return FlavorConfig(
            section={"pickled_model": rel, **section},
            pyfunc={"model_path": rel, "predict_fn": predict_fn},
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
        warn_if_newer("scikit-learn", config.section.get("sklearn_version"), what=path.name)
        if fmt == "skops":
            # Trust comes from the caller only: load_model's trusted_types, or, while a
            # save checks its own example, the types that same caller vouched for.
            given = [
                *(config.options.get("trusted_types") or ()),
                *(config.options.get("skops_trusted_types") or ()),
            ]
            return _load_skops(file, given)
        try:
            with open(file, "rb") as f:
                if fmt == "cloudpickle":
                    import cloudpickle

                    return cloudpickle.load(f)
                return pickle.load(f)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise ModelFormatError(
                f"{rel} cannot be unpickled: {type(exc).__name__}: {exc}", path=str(file)
            ) from None

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


def _save_skops(
    obj: Any, file: Path, vouched: Sequence[str] | None
) -> tuple[list[str] | None, Any]:
    """Dump with skops and read it back; refuse types the saver has not vouched for.

    Returns the list to write as ``skops_trusted_types`` (None when the saver gave none)
    and the object read back from the file.
    """
    import skops.io

    try:
        skops.io.dump(obj, file)
    except Exception as exc:  # skops raises any type for what it cannot store
        raise ModelFormatError(
            f"skops cannot store {type(obj).__name__}: {exc} (functions "
            "and classes must be importable at top level; or save with "
            "serialization_format='cloudpickle')"
        ) from None
    given = sorted(set(vouched or ()))
    untrusted = skops.io.get_untrusted_types(file=file)
    refused = sorted(set(untrusted) - set(given))
    if refused:
        raise UntrustedTypeError(
            f"the skops file would contain types skops does not trust by default: "
            f"{', '.join(refused)}; if they are safe, pass skops_trusted_types=[...] naming "
            "them (loaders still decide for themselves)",
            types=refused,
        )
    try:
        reloaded = skops.io.load(file, trusted=sorted(set(untrusted)))
    except Exception as exc:  # skops raises any type
        raise ModelFormatError(
            f"skops wrote {type(obj).__name__} but cannot read it back: {exc}"
        ) from None
    return (given or None), reloaded


def _load_skops(file: Path, given: Sequence[str] | None) -> Any:
    import skops.io

    trusted = trusted_types(given)
    try:
        untrusted = skops.io.get_untrusted_types(file=file)
    except Exception as exc:  # third-party readers raise any type
        raise ModelFormatError(
            f"{file.name} is not a readable skops file: {exc}", path=str(file)
        ) from None
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        raise UntrustedTypeError(
            f"{file.name} contains types you have not trusted: {', '.join(refused)}; pass "
            f"trusted_types=[...] to load_model or set {TRUSTED_TYPES_ENV} (the model's own "
            "skops_trusted_types list is never used)",
            types=refused,
        )
    try:
        # Exactly the types just checked: nothing else in the file can be instantiated.
        return skops.io.load(file, trusted=sorted(set(untrusted)))
    except SatchelError:
        raise
    except Exception as exc:  # third-party readers raise any type
        raise ModelFormatError(
            f"{file.name} cannot be loaded by skops: {exc}", path=str(file)
        ) from None


class SklearnPredictor:
    """Calls the estimator's ``predict_fn`` on data already fitted to the signature.

    A table of one numeric dtype whose columns are exactly the estimator's
    ``feature_names_in_`` (or any such table, for an estimator fitted on an array) goes
    to scikit-learn as the array it holds: scikit-learn would only check those names
    and take the same array out of it, and that check costs several times a linear
    model's whole predict on a few rows. Anything else is passed on as it is.
    """

    row_independent = True

    def __init__(self, model: Any, predict_fn: str) -> None:
        if not hasattr(model, predict_fn):
            raise ModelFormatError(f"{type(model).__name__} has no method {predict_fn}()")
        self.model = model
        self.predict_fn = predict_fn
        self._fn = getattr(model, predict_fn)
        self._names, self._array_fn = _array_path(model, predict_fn)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if self._array_fn is not None:
            values = _numeric_block(data, self._names)
            if values is not None:
                return self._array_fn(values)
        return self._fn(data)


def _array_path(model: Any, predict_fn: str) -> tuple[list[str] | None, Any]:
    """(the estimator's feature names, ``predict_fn`` of a twin that takes their array),
    or (None, None) when a table must reach the estimator as a table.

    The twin is a shallow copy (it shares every fitted array) without
    ``feature_names_in_``, so scikit-learn does not warn that an array has no names:
    the caller checks the names instead (:func:`_numeric_block`). Only scikit-learn's
    own estimators qualify, and only when no estimator inside them (a pipeline's steps,
    an ensemble's members) was fitted on named columns, since those would see the array.
    """
    import copy

    if not type(model).__module__.startswith("sklearn.") or _inner_names(model, 0):
        return None, None
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None, getattr(model, predict_fn)
    if not all(isinstance(n, str) for n in names):
        return None, None
    twin = copy.copy(model)
    vars(twin).pop("feature_names_in_", None)
    if hasattr(twin, "feature_names_in_"):  # a property (e.g. a meta-estimator's)
        return None, None
    return [str(n) for n in names], getattr(twin, predict_fn)


def _inner_names(obj: Any, depth: int) -> bool:
    """True when an estimator held by ``obj`` (at any depth up to 4) has feature names."""
    if depth > 4:
        return True  # too deep to be sure: keep the table path
    values: list[Any] = []
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        values.extend(value.values() if isinstance(value, dict) else
                      value if isinstance(value, (list, tuple)) else [value])
    for value in values:
        if isinstance(value, (list, tuple)):
            if any(_is_estimator(v) and (hasattr(v, "feature_names_in_")
                                         or _inner_names(v, depth + 1)) for v in value):
                return True
        elif _is_estimator(value) and (hasattr(value, "feature_names_in_")
                                       or _inner_names(value, depth + 1)):
            return True
    return False


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and hasattr(value, "__dict__")


def _numeric_block(data: Any, names: list[str] | None) -> Any:
    """The array of a DataFrame of one int or float dtype whose columns are ``names``
    in order (any columns when None), else None."""
    import numpy as np

    from satchel import _normalize

    if _normalize.pandas_kind(data) != "frame":
        return None
    if names is not None and data.columns.tolist() != names:
        return None
    get = getattr(getattr(data, "_mgr", None), "get_dtypes", None)
    dtypes = set(get()) if get is not None else set(data.dtypes.tolist())
    if len(dtypes) != 1:
        return None
    dtype = dtypes.pop()
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":
        return None
    return data.to_numpy()


def save_model(sk_model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save a scikit-learn estimator; keyword arguments as :func:`satchel.save_model`,
    plus ``serialization_format`` (cloudpickle, pickle, skops), ``predict_fn`` and, for
    skops, ``skops_trusted_types``."""
    from satchel.save import save_model as _save

    return _save(sk_model, path, flavor="sklearn", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the native estimator of a saved sklearn model."""
    from satchel.model import load_model as _load

    model = _load(path, **kwargs)
    if model.flavor.name != "sklearn":
        raise ModelFormatError(f"{path} is a {model.flavor.name} model, not sklearn")
    return model.unwrap()
