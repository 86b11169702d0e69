"""Find flavors by name through entry points, lazily, one at a time.

No module named by a model's manifest is ever imported: ``loader_module`` values are
mapped to flavor names through the fixed table below, and flavor names are resolved only
against installed entry points.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from satchel.errors import FlavorLoadError, FlavorNotFoundError, ModelFormatError
from satchel.flavor import REQUIRED_MEMBERS, Flavor
from satchel.manifest import Manifest

GROUP = "satchel.flavors"

# loader_module values (MLflow's and satchel's) -> flavor names. Data, never imported.
LOADER_MODULES: dict[str, str] = {
    "mlflow.sklearn": "sklearn",
    "mlflow.onnx": "onnx",
    "satchel.flavors.python": "python",
    "mlflow.pyfunc.model": "mlflow_pyfunc",
    "mlflow.pyfunc.loaders.code_model": "mlflow_pyfunc",
    # MLflow's chat/agent models: refused naming the MLflow class they need, unless
    # loaded through mlflow itself (allow_mlflow=True).
    "mlflow.pyfunc.loaders.chat_model": "mlflow_pyfunc",
    "mlflow.pyfunc.loaders.chat_agent": "mlflow_pyfunc",
    "mlflow.pyfunc.loaders.responses_agent": "mlflow_pyfunc",
    "mlflow.xgboost": "xgboost",
    "mlflow.lightgbm": "lightgbm",
    "mlflow.catboost": "catboost",
    "mlflow.pytorch": "pytorch",
    "mlflow.tensorflow": "tensorflow",
    "mlflow.keras": "keras",
    "mlflow.transformers": "transformers",
    "mlflow.statsmodels": "statsmodels",
    "mlflow.prophet": "prophet",
    "mlflow.spark": "spark",
    "mlflow.h2o": "h2o",
}

# How to get a flavor that is known but not installed.
_HINTS: dict[str, str] = {
    "sklearn": "pip install 'satchel[sklearn]'",
    "onnx": "pip install 'satchel[onnx]'",
    "xgboost": "pip install 'satchel[xgboost]'",
    "lightgbm": "pip install 'satchel[lightgbm]'",
    "catboost": "pip install 'satchel[catboost]'",
    "statsmodels": "pip install 'satchel[statsmodels]'",
    "pytorch": "pip install 'satchel[pytorch]'",
    "keras": "pip install 'satchel[keras]'",
    "tensorflow": "pip install 'satchel[keras]' (a .keras model) or tensorflow (a SavedModel)",
    "transformers": "pip install 'satchel[transformers]'",
    "mlflow_pyfunc": "this is an MLflow custom PythonModel, which satchel's built-in "
    "mlflow_pyfunc flavor loads: reinstall satchel",
}

_cache: dict[str, Flavor] = {}
_registered: dict[str, Any] = {}


def register(name: str, flavor: Any) -> None:
    """Register a flavor object in-process (tests, notebooks); entry points are the norm."""
    _registered[name] = flavor
    _cache.pop(name, None)


def unregister(name: str) -> None:
    """Undo :func:`register`."""
    _registered.pop(name, None)
    _cache.pop(name, None)


def _entry_points(name: str | None = None) -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=GROUP)
    if name is not None:
        eps = eps.select(name=name)
    return list(eps)


def _own_entry_point(name: str) -> metadata.EntryPoint | None:
    # Reading satchel's own dist-info is much cheaper than scanning every installed
    # distribution; built-ins are still ordinary entry points.
    try:
        eps = metadata.distribution("satchel").entry_points
    except metadata.PackageNotFoundError:
        return None
    found = [ep for ep in eps if ep.group == GROUP and ep.name == name]
    return found[0] if found else None


def available() -> list[str]:
    """Names of every installed flavor, without importing any of them."""
    return sorted({ep.name for ep in _entry_points()} | set(_registered))


def get(name: str) -> Flavor:
    """The flavor registered as ``name``, imported on first use and validated."""
    if name in _cache:
        return _cache[name]
    if name in _registered:
        obj = _registered[name]
    else:
        ep = _own_entry_point(name)
        if ep is None:
            found = _entry_points(name)
            if not found:
                hint = _HINTS.get(
                    name,
                    f"install a package that registers '{name}' under the "
                    f"'{GROUP}' entry-point group",
                )
                raise FlavorNotFoundError(
                    f"no installed plugin provides flavor '{name}' ({hint}); installed "
                    f"flavors: {', '.join(available()) or 'none'}",
                    flavor=name,
                )
            ep = found[0]
        try:
            obj = ep.load()
        except ImportError as exc:
            hint = _HINTS.get(name, f"install the package that provides '{ep.value}'")
            raise FlavorLoadError(
                f"flavor '{name}' ({ep.value}) cannot be imported: {exc}; {hint}", flavor=name
            ) from None
    flavor = obj() if isinstance(obj, type) else obj
    missing = [m for m in REQUIRED_MEMBERS if not hasattr(flavor, m)]
    if missing:
        raise FlavorLoadError(
            f"flavor plugin '{name}' ({type(flavor).__qualname__}) lacks {', '.join(missing)}",
            flavor=name,
        )
    if getattr(flavor, "name", None) != name:
        raise FlavorLoadError(
            f"flavor plugin registered as '{name}' calls itself '{getattr(flavor, 'name', None)}'",
            flavor=name,
        )
    _cache[name] = flavor
    return flavor  # type: ignore[no-any-return]


def loader_module(flavor: Flavor) -> str:
    """What a flavor writes as ``python_function.loader_module``."""
    return str(getattr(flavor, "loader_module", f"satchel.flavors.{flavor.name}"))


def for_object(obj: Any) -> Flavor:
    """The flavor that saves ``obj``: the first whose ``can_save`` accepts it."""
    flavors = []
    for name in available():
        try:
            flavors.append(get(name))
        except FlavorLoadError:
            continue  # a broken plugin must not stop saving with the others
    # A library's own flavor (xgboost for an XGBClassifier) outranks a generic one that
    # also accepts it (sklearn takes any BaseEstimator); fallbacks come last.
    ordered = sorted(
        flavors,
        key=lambda f: (bool(getattr(f, "fallback", False)), bool(getattr(f, "generic", False))),
    )
    for flavor in ordered:
        if flavor.can_save(obj):
            return flavor
    from satchel.errors import UnsupportedModelError

    raise UnsupportedModelError(
        f"no installed flavor can save an object of type {type(obj).__module__}."
        f"{type(obj).__qualname__}; installed flavors: {', '.join(available()) or 'none'}"
    )


def for_manifest(manifest: Manifest, source: str = "MLmodel") -> Flavor:
    """The flavor that loads a model, from its ``python_function`` section.

    ``satchel_flavor`` (written by satchel) wins; otherwise ``loader_module`` is looked
    up in the fixed table.
    """
    pf = manifest.pyfunc
    if pf is None:
        names = ", ".join(manifest.flavors)
        raise ModelFormatError(
            f"{source} has no python_function flavor (flavors: {names}); "
            "satchel loads models through their python_function entry",
            path=source,
        )
    explicit = pf.get("satchel_flavor")
    if explicit:
        return get(str(explicit))
    loader = str(pf.get("loader_module", ""))
    if not loader:
        raise ModelFormatError(f"{source}: python_function has no loader_module", path=source)
    name = LOADER_MODULES.get(loader)
    if name is None:
        raise FlavorNotFoundError(
            f"loader_module '{loader}' is not known to satchel; a plugin registering its "
            f"flavor under '{GROUP}' is needed (flavors in this model: "
            f"{', '.join(k for k in manifest.flavors if k != 'python_function')})",
            flavor=loader,
        )
    return get(name)
