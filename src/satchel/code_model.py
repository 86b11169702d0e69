"""Models from code: a Python source file that builds the model and registers it.

The file is stored in the model directory instead of a pickle; loading runs it (which
runs code, so ``allow_code=False`` refuses it) and takes what it passed to
:func:`set_model`. Flavors call :func:`run_model_script`; it can put stand-in modules in
front of the import system while the script runs (the MLflow names an MLflow script
uses) and a finder that refuses other names with a clear error.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import Any

from satchel.errors import ModelFormatError, SatchelError

# One slot per loading context (thread), so concurrent loads do not see each other's model.
_SLOT: ContextVar[list[Any] | None] = ContextVar("satchel_model_slot", default=None)


def set_model(model: Any) -> None:
    """Register the model a models-from-code script builds (call it once, at the end).

    Outside a load (running the script by hand) it does nothing.

    Args:
        model: a ``satchel.PythonModel`` instance or a callable ``fn(model_input)``.
    """
    slot = _SLOT.get()
    if slot is not None:
        slot.append(model)


@contextmanager
def _modules(stand_ins: Mapping[str, ModuleType], finder: Any) -> Iterator[None]:
    """Put ``stand_ins`` into ``sys.modules`` (and ``finder`` first on the meta path) for
    the duration, restoring exactly what was there before."""
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    if finder is not None:
        sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder is not None and finder in sys.meta_path:
            sys.meta_path.remove(finder)
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def run_model_script(
    file: Path,
    *,
    stand_ins: Mapping[str, ModuleType] | None = None,
    finder: importlib.abc.MetaPathFinder | None = None,
    registered: Any = None,
) -> Any:
    """Run a model script and return the model it registered with :func:`set_model`.

    Args:
        file: the ``.py`` file inside the model directory.
        stand_ins: modules to offer under their names while the script runs.
        finder: a meta path finder consulted first while the script runs (to refuse
            names the stand-ins do not cover, by name).
        registered: a callable returning a model registered some other way (e.g. the
            real ``mlflow.models.set_model``), tried when :func:`set_model` got nothing.

    Raises:
        ModelFormatError: the file is missing, raises, or registers no model.
    """
    if not file.is_file():
        raise ModelFormatError(f"model code {file.name} is missing", path=str(file))
    name = f"satchel_code_model_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ModelFormatError(f"model code {file.name} is not a Python file", path=str(file))
    module = importlib.util.module_from_spec(spec)
    token = _SLOT.set([])
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        with _modules(stand_ins or {}, finder):
            spec.loader.exec_module(module)
        models = list(_SLOT.get() or [])
    except SatchelError:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:
        sys.modules.pop(name, None)
        if not isinstance(exc, Exception):
            raise
        raise ModelFormatError(
            f"model code {file.name} raised {type(exc).__name__}: {exc}", path=str(file)
        ) from exc
    finally:
        _SLOT.reset(token)
    if not models and registered is not None:
        found = registered()
        if found is not None:
            models = [found]
    if not models:
        raise ModelFormatError(
            f"model code {file.name} ran but registered no model; end it with "
            "satchel.set_model(model) (or mlflow.models.set_model(model))",
            path=str(file),
        )
    return models[-1]
