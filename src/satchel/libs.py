"""What flavors need from core about their own library: import it, compare versions.

A flavor imports its library only when it saves or loads (so ``import satchel`` stays
light); :func:`require` turns a missing library into an error that names the extra to
install, and :func:`warn_if_newer` warns when a model was saved by a newer release than
the one installed (files written by a newer release may use features an older one lacks).

Also the plumbing the flavors of libraries with their own model file share (xgboost,
lightgbm, catboost): which classes a flavor saves (matched by qualified name against the
flavor's fixed table, never imported by name, and without importing the library to ask:
an object of it cannot exist before it is imported), the plain predictor, and the
module-level ``load_model`` that hands back the library's object.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from types import ModuleType
from typing import Any

from satchel.env import installed_version
from satchel.errors import LibraryVersionWarning, MissingLibraryError, ModelFormatError

_RELEASE = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def require(module: str, *, flavor: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` for ``flavor``, or raise naming ``pip install 'satchel[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'satchel[{extra or flavor}]'"
        raise MissingLibraryError(
            f"the {flavor} flavor needs the '{module}' module, which cannot be imported "
            f"({type(exc).__name__}: {exc}); install it with {hint}",
            flavor=flavor,
            module=module,
        ) from None


def release(version: str) -> tuple[int, ...] | None:
    """The numeric release of a version string (``'2.1.0rc1'`` -> ``(2, 1, 0)``), or None."""
    m = _RELEASE.match(str(version))
    if m is None:
        return None
    parts = [int(p) for p in m.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()  # 2.1 and 2.1.0 are the same release
    return tuple(parts)


def is_newer(saved: str, installed: str) -> bool:
    """True when ``saved`` is a later release than ``installed`` (unparseable: False)."""
    a, b = release(saved), release(installed)
    return a is not None and b is not None and a > b


def warn_if_newer(
    distribution: str, saved: object, *, what: str = "the model", stacklevel: int = 3
) -> None:
    """Warn when ``what`` was saved with a newer ``distribution`` than the installed one."""
    if not saved:
        return
    installed = installed_version(distribution)
    if installed is not None and is_newer(str(saved), installed):
        warnings.warn(
            LibraryVersionWarning(
                f"{what} was saved with {distribution} {saved}, newer than the installed "
                f"{distribution} {installed}; it may not load or predict the same",
                distribution=distribution,
                saved=str(saved),
                installed=installed,
            ),
            stacklevel=stacklevel,
        )


def accepted_kwargs(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword names ``fn`` accepts, or None when it takes ``**kwargs``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return frozenset(
        n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def native_file_error(file: Path, library: str, exc: BaseException) -> ModelFormatError:
    """A one-line error for a native model file its library cannot read."""
    first = str(exc).strip().splitlines()
    reason = first[0] if first else type(exc).__name__
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return ModelFormatError(
        f"{file.name} is not a model file {library} can read ({type(exc).__name__}: {reason})",
        path=str(file),
    )


# --- shared by the flavors of model-file libraries ----------------------------------


def class_name(obj: Any) -> str:
    """``module.QualName`` of ``obj``'s class, as MLflow writes ``model_class``."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def is_one_of(obj: Any, library: str, classes: Collection[str]) -> bool:
    """True when ``library`` is imported and ``obj``'s class is in ``classes``."""
    return library in sys.modules and class_name(obj) in classes


def check_saves(obj: Any, flavor: str, classes: Collection[str]) -> str:
    """The class name of ``obj``; raises ModelFormatError naming the classes ``flavor``
    saves when it is not one of them."""
    cls = class_name(obj)
    if cls not in classes:
        raise ModelFormatError(
            f"the {flavor} flavor saves {', '.join(sorted(classes))}; {cls} is not one of them"
        )
    return cls


class PlainPredictor:
    """``model.predict(data)``, as MLflow's pyfunc calls it for catboost and lightgbm
    models (params unused)."""

    row_independent = True

    def __init__(self, model: Any) -> None:
        self.model = model
        self._predict = model.predict

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._predict(data)


def load_native(path: str | os.PathLike[str], flavor: str, options: dict[str, Any]) -> Any:
    """Load the model at ``path`` and return its native object; raises ModelFormatError
    when the directory holds another flavor's model."""
    from satchel.model import load_model

    model = load_model(path, **options)
    if model.flavor.name != flavor:
        raise ModelFormatError(f"{path} is a {model.flavor.name} model, not {flavor}")
    return model.unwrap()
