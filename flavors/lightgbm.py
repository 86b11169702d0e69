"""lightgbm flavor: a ``Booster`` as lightgbm's text model, an sklearn-API estimator as skops.

This is how MLflow 3 stores them (``loader_module: mlflow.lightgbm``; ``lgb_version``,
``data``, ``model_class``, ``serialization_format``, ``skops_trusted_types``), so MLflow
loads what satchel saves and the other way round:

- ``Booster`` -> ``model.lgb``, lightgbm's own text format; nothing runs on load.
- ``LGBMClassifier``/``LGBMRegressor``/``LGBMRanker`` -> ``model.skops`` by default
  (MLflow's default, and what MLflow's loader expects for these classes), or
  ``model.pkl`` with ``serialization_format="cloudpickle"|"pickle"``, which runs code on
  load and is refused under ``allow_code=False``.

skops files are loaded trusting only lightgbm's own classes (fixed here) plus what the
caller passes as ``trusted_types``; the list stored in the manifest is written for
MLflow and never trusted. lightgbm is imported only when a model is saved or loaded.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from satchel.errors import ModelFormatError, SatchelError, UntrustedTypeError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.libs import (
    PlainPredictor,
    check_saves,
    class_name,
    is_one_of,
    load_native,
    native_file_error,
    require,
    warn_if_newer,
)
from satchel.manifest import Manifest
from satchel.paths import inside

BOOSTER = "lightgbm.basic.Booster"
# model_class -> attribute of the lightgbm package; a manifest never picks another class.
MODEL_CLASSES: dict[str, str] = {
    BOOSTER: "Booster",
    "lightgbm.sklearn.LGBMModel": "LGBMModel",
    "lightgbm.sklearn.LGBMClassifier": "LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor": "LGBMRegressor",
    "lightgbm.sklearn.LGBMRanker": "LGBMRanker",
}
FORMATS = ("skops", "cloudpickle", "pickle")
# What a skops file of an estimator holds beyond skops' defaults: the estimator and its
# Booster (rebuilt from lightgbm's text model) and an OrderedDict of params.
OWN_TYPES = ("collections.OrderedDict", *MODEL_CLASSES)
# The list MLflow writes as skops_trusted_types (its loader trusts exactly that list).
MLFLOW_TRUSTED = (
    "collections.OrderedDict",
    BOOSTER,
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
)


def _lgb() -> Any:
    return require("lightgbm", flavor="lightgbm")


def _skops() -> Any:
    # skops comes with the lightgbm extra: estimators are stored with it by default.
    return require("skops.io", flavor="lightgbm")


class LightGBMFlavor:
    """The ``lightgbm`` flavor."""

    name = "lightgbm"
    loader_module = "mlflow.lightgbm"
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ()

    def can_save(self, obj: Any) -> bool:
        return is_one_of(obj, "lightgbm", MODEL_CLASSES)

    def save(
        self,
        obj: Any,
        path: Path,
        *,
        serialization_format: str = "skops",
        skops_trusted_types: Sequence[str] | None = None,
    ) -> FlavorConfig:
        """Write a Booster as ``model.lgb``; an estimator as ``model.skops`` or ``model.pkl``.

        ``skops_trusted_types`` vouches for types beyond lightgbm's own that an estimator
        holds (a custom objective, say); other types make the save fail.
        """
        if serialization_format not in FORMATS:
            raise ValueError(
                f"serialization_format must be one of {FORMATS}, not {serialization_format!r}"
            )
        cls = check_saves(obj, "lightgbm", MODEL_CLASSES)
        lgb = _lgb()
        trusted = sorted({*MLFLOW_TRUSTED, *(skops_trusted_types or ())})
        section: dict[str, Any] = {"lgb_version": lgb.__version__, "model_class": cls}
        requirements: tuple[str, ...] = ()
        if cls == BOOSTER:
            rel = "model.lgb"
            obj.save_model(str(path / rel))
        elif serialization_format == "skops":
            rel = "model.skops"
            trusted = _save_skops(obj, path / rel, trusted)
            requirements = ("skops",)
        else:
            rel = "model.pkl"
            with open(path / rel, "wb") as f:
                if serialization_format == "cloudpickle":
                    import cloudpickle

                    cloudpickle.dump(obj, f, protocol=pickle.DEFAULT_PROTOCOL)
                    requirements = ("cloudpickle",)
                else:
                    pickle.dump(obj, f, protocol=pickle.DEFAULT_PROTOCOL)
        section.update(
            data=rel,
            code=None,
            serialization_format=serialization_format,
            # MLflow's loader trusts this list; satchel's never does (see module doc).
            skops_trusted_types=trusted if serialization_format == "skops" else None,
        )
        return FlavorConfig(section=section, pyfunc={"data": rel}, requirements=requirements)

    def default_requirements(self) -> list[str]:
        return ["lightgbm"]

    def unsafe_format(self, config: LoadConfig) -> str | None:
        if str(config.section.get("model_class") or BOOSTER) == BOOSTER:
            return None
        fmt = str(config.section.get("serialization_format") or "cloudpickle")
        return None if fmt == "skops" else fmt

    def load(self, path: Path, config: LoadConfig) -> Any:
        section = config.section
        cls = str(section.get("model_class") or BOOSTER)
        if cls not in MODEL_CLASSES:
            raise ModelFormatError(
                f"lightgbm model_class {cls!r} is not one satchel loads "
                f"({', '.join(sorted(MODEL_CLASSES))})"
            )
        rel = str(section.get("data") or config.pyfunc.get("data") or "model.lgb")
        file = inside(path, rel, what="lightgbm model file")
        lgb = _lgb()
        warn_if_newer("lightgbm", section.get("lgb_version"), what=f"{path.name} ({rel})")
        if cls == BOOSTER:
            try:
                return lgb.Booster(model_file=str(file))
            except lgb.basic.LightGBMError as exc:
                raise native_file_error(file, "lightgbm", exc) from None
        # MLflow < 3 had no serialization_format key and always cloudpickled.
        fmt = str(section.get("serialization_format") or "cloudpickle")
        if fmt not in FORMATS:
            raise ModelFormatError(
                f"lightgbm serialization_format {fmt!r} is not one of {FORMATS}", path=str(file)
            )
        if fmt == "skops":
            model = _load_skops(file, config.options.get("trusted_types"))
        else:
            model = _unpickle(file, fmt)
        if class_name(model) != cls:
            raise ModelFormatError(
                f"{rel} holds a {class_name(model)}, but model_class says {cls}", path=str(file)
            )
        return model

    def load_predictor(self, path: Path, config: LoadConfig) -> PlainPredictor:
        return PlainPredictor(self.load(path, config))


def _save_skops(obj: Any, file: Path, vouched: Sequence[str]) -> list[str]:
    """Dump with skops; refuse types neither lightgbm's own nor vouched for by the saver."""
    skops_io = _skops()
    try:
        skops_io.dump(obj, file)
        untrusted = skops_io.get_untrusted_types(file=file)
    except Exception as exc:  # skops raises any type for what it cannot store
        raise ModelFormatError(
            f"skops cannot store {type(obj).__name__}: {exc} (or save with "
            "serialization_format='cloudpickle')"
        ) from None
    refused = sorted(set(untrusted) - set(OWN_TYPES) - set(vouched))
    if refused:
        raise UntrustedTypeError(
            f"the skops file would hold types that are not lightgbm's own: "
            f"{', '.join(refused)}; if they are safe, pass skops_trusted_types=[...] naming them",
            types=refused,
        )
    return sorted({*vouched, *untrusted})


def _load_skops(file: Path, given: Sequence[str] | None) -> Any:
    skops_io = _skops()
    try:
        untrusted = skops_io.get_untrusted_types(file=file)
    except Exception as exc:  # third-party readers raise any type
        raise native_file_error(file, "skops", exc) from None
    refused = sorted(set(untrusted) - set(OWN_TYPES) - set(given or ()))
    if refused:
        raise UntrustedTypeError(
            f"{file.name} contains types that are not lightgbm's own: {', '.join(refused)}; "
            "pass trusted_types=[...] to load_model if you trust them (the model's own "
            "skops_trusted_types list is never used)",
            types=refused,
        )
    try:
        return skops_io.load(file, trusted=sorted(set(untrusted)))
    except SatchelError:
        raise
    except Exception as exc:  # third-party readers raise any type
        raise native_file_error(file, "skops", exc) from None


def _unpickle(file: Path, fmt: str) -> Any:
    try:
        with open(file, "rb") as f:
            if fmt == "cloudpickle":
                import cloudpickle

                return cloudpickle.load(f)
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise native_file_error(file, fmt, exc) from None


def save_model(lgb_model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save a lightgbm ``Booster`` or sklearn-API estimator.

    Keyword arguments as :func:`satchel.save_model`, plus, for estimators,
    ``serialization_format`` (``"skops"``, the default, ``"cloudpickle"`` or ``"pickle"``)
    and ``skops_trusted_types``.
    """
    from satchel.save import save_model as _save

    return _save(lgb_model, path, flavor="lightgbm", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the native lightgbm object (Booster or estimator) of a saved lightgbm model."""
    return load_native(path, "lightgbm", kwargs)
