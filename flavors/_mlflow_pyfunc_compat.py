"""The few MLflow names a custom model refers to, as satchel equivalents, without mlflow.

An MLflow custom model is a cloudpickled subclass of ``mlflow.pyfunc.PythonModel``; a
models-from-code script subclasses it and calls ``mlflow.models.set_model``. Both refer to
a handful of MLflow names. This module provides exactly those (listed in :data:`CLASSES`
and :data:`MODULE_NAMES`), a :class:`RestrictedUnpickler` that hands them out in place of
MLflow's, and module stand-ins for ``mlflow``, ``mlflow.pyfunc`` and ``mlflow.models``.
Any other MLflow name is a :class:`~satchel.errors.MlflowNameError` naming it: satchel
never imports mlflow here and never guesses what an unknown MLflow name did.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import inspect
import os
import pickle
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from satchel.code_model import run_model_script, set_model
from satchel.errors import MlflowNameError
from satchel.paths import inside
from satchel.pyfunc import PythonModel as _SatchelPythonModel

HINT = "install mlflow and load the model with allow_mlflow=True (CLI: --allow-mlflow)"


class MlflowException(Exception):
    """Stands in for ``mlflow.exceptions.MlflowException``, which a model's code may raise."""

    def __init__(self, message: Any = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(str(message))

    @classmethod
    def invalid_parameter_value(cls, message: Any, **kwargs: Any) -> MlflowException:
        """MLflow's constructor for bad-input errors."""
        return cls(message)


class PythonModelContext:
    """MLflow's ``PythonModelContext``: ``artifacts`` (name -> absolute path) and
    ``model_config``, read-only, as ``load_context`` and ``predict`` receive them."""

    def __init__(
        self, artifacts: dict[str, str] | None = None, model_config: dict[str, Any] | None = None
    ) -> None:
        self._artifacts = dict(artifacts or {})
        self._model_config = dict(model_config or {})

    @property
    def artifacts(self) -> dict[str, str]:
        """Artifact name -> absolute path inside the loaded model directory."""
        return self._artifacts

    @property
    def model_config(self) -> dict[str, Any]:
        """The model's ``config`` from MLmodel (or empty)."""
        return self._model_config


class PythonModel(_SatchelPythonModel):
    """Stands in for ``mlflow.pyfunc.PythonModel`` as the base of an MLflow custom model.

    MLflow's ``predict(context, model_input, params)`` form and the newer
    ``predict(model_input, params)`` form are both called as MLflow calls them (see
    :class:`CompatPredictor`). MLflow's class wraps ``predict`` for type-hint validation
    when a subclass is defined; a cloudpickled subclass carries that wrapper with it, so
    nothing is wrapped here.
    """

    def load_context(self, context: Any) -> None:
        """Called once after loading, as MLflow does."""

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement predict()")

    def predict_stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} does not implement predict_stream()")


class FunctionPythonModel(PythonModel):
    """Stands in for MLflow's ``_FunctionPythonModel``: a plain function saved as a model."""

    def __init__(self, func: Callable[[Any], Any], signature: Any = None) -> None:
        self.func = func
        self.signature = signature

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self.func(model_input)


class TypeHints:
    """Stands in for ``mlflow.models.signature._TypeHints`` (cached on pickled models)."""

    def __init__(self, input_: Any = None, output: Any = None) -> None:
        self.input = input_
        self.output = output


class FuncInfo(NamedTuple):
    """Stands in for ``mlflow.pyfunc.utils.data_validation.FuncInfo``."""

    input_type_hint: Any
    input_param_name: str


def to_type_hint(data: Any, hint: Any) -> Any:
    """Fit a DataFrame to a ``list[...]`` type hint as MLflow does: one column becomes a
    list of its values; ``list[dict]`` takes the rows as records. Anything else is left."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame) or hint is None or hint is pd.DataFrame:
        return data
    if typing.get_origin(hint) is not list:
        raise MlflowException(f"only a list[...] type hint takes a DataFrame input, not {hint!r}")
    (element,) = typing.get_args(hint) or (Any,)
    if element is dict or typing.get_origin(element) is dict:
        if list(data.columns) == [0]:
            return data.iloc[:, 0].tolist()
        return data.to_dict(orient="records")
    return data.iloc[:, 0].tolist()


def validate_model_input(
    args: tuple[Any, ...], kwargs: dict[str, Any], index: int, hint: Any, name: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Stands in for MLflow's ``_validate_model_input``, which the type-hint wrapper of a
    pickled ``predict`` calls: fit the input to the hint, leave the rest of the call."""
    if name in kwargs:
        kwargs[name] = to_type_hint(kwargs[name], hint)
    elif len(args) > index:
        args = (*args[:index], to_type_hint(args[index], hint), *args[index + 1 :])
    return args, kwargs


# (module, qualified name) as a pickle names them -> the satchel equivalent.
CLASSES: dict[tuple[str, str], Any] = {
    ("mlflow.pyfunc.model", "PythonModel"): PythonModel,
    ("mlflow.pyfunc", "PythonModel"): PythonModel,
    ("mlflow.pyfunc.model", "PythonModelContext"): PythonModelContext,
    ("mlflow.pyfunc", "PythonModelContext"): PythonModelContext,
    ("mlflow.pyfunc.model", "_FunctionPythonModel"): FunctionPythonModel,
    ("mlflow.models.signature", "_TypeHints"): TypeHints,
    ("mlflow.pyfunc.utils.data_validation", "FuncInfo"): FuncInfo,
    ("mlflow.pyfunc.utils.data_validation", "_validate_model_input"): validate_model_input,
    ("mlflow.exceptions", "MlflowException"): MlflowException,
}

_CLOUDPICKLE_SUBIMPORT = {
    ("cloudpickle.cloudpickle", "subimport"),
    ("cloudpickle.cloudpickle_fast", "subimport"),
}
# cloudpickle reuses a class it rebuilt before (same tracker id) in the same process: a
# class rebuilt on satchel's stand-in base must not be handed to mlflow's own loader
# later, nor the reverse, so satchel's rebuilds are not tracked.
_CLOUDPICKLE_SKELETONS = {
    ("cloudpickle.cloudpickle", "_make_skeleton_class"): 4,
    ("cloudpickle.cloudpickle_fast", "_make_skeleton_class"): 4,
    ("cloudpickle.cloudpickle", "_make_skeleton_enum"): 5,
    ("cloudpickle.cloudpickle_fast", "_make_skeleton_enum"): 5,
}


def provided() -> list[str]:
    """The MLflow names satchel provides, for error messages."""
    return sorted({f"{m}.{n}" for (m, n) in CLASSES if not n.startswith("_")})


def refuse(name: str, where: str) -> MlflowNameError:
    """The error for an MLflow name outside the mapping."""
    return MlflowNameError(
        f"{where} uses {name}, which satchel does not provide without mlflow (it provides "
        f"{', '.join(provided())}, mlflow.models.set_model); {HINT}",
        mlflow_name=name,
    )


def _is_mlflow(module: str) -> bool:
    return module == "mlflow" or module.startswith("mlflow.")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickle an MLflow custom model with satchel's equivalents of MLflow's names.

    Everything that is not MLflow resolves as ``pickle`` does (this is still pickle: it
    runs whatever the file says, so callers gate it behind ``allow_code``). A module
    reference cloudpickle stores for a function's globals (``subimport('mlflow')``) gets
    a stand-in module; an MLflow class or function outside :data:`CLASSES` is refused by
    name when the file is read.
    """

    def __init__(self, file: Any, *, where: str) -> None:
        super().__init__(file)
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in CLASSES:
            return CLASSES[(module, name)]
        if _is_mlflow(module):
            raise refuse(f"{module}.{name}", self._where)
        if (module, name) in _CLOUDPICKLE_SUBIMPORT:
            real = super().find_class(module, name)
            return lambda mod: stand_in(mod, self._where) if _is_mlflow(mod) else real(mod)
        if (module, name) in _CLOUDPICKLE_SKELETONS:
            index = _CLOUDPICKLE_SKELETONS[(module, name)]
            return _untracked(super().find_class(module, name), index)
        return super().find_class(module, name)


def _untracked(make: Callable[..., Any], tracker_index: int) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        if len(args) > tracker_index:
            args = (*args[:tracker_index], None, *args[tracker_index + 1 :])
        return make(*args)

    return build


class _StandIn(types.ModuleType):
    """A module that offers only the names satchel provides and names any other."""

    def __init__(self, name: str, where: str, attrs: dict[str, Any]) -> None:
        super().__init__(name)
        self.__dict__.update(attrs)
        self._satchel_where = where

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise refuse(f"{self.__name__}.{attr}", self.__dict__.get("_satchel_where", "the model"))


def stand_ins(where: str, set_model: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Module stand-ins for ``mlflow``, ``mlflow.pyfunc``, ``mlflow.pyfunc.model``,
    ``mlflow.models`` (with ``set_model`` when given) and ``mlflow.exceptions``."""
    pyfunc_model = _StandIn(
        "mlflow.pyfunc.model",
        where,
        {"PythonModel": PythonModel, "PythonModelContext": PythonModelContext},
    )
    pyfunc = _StandIn(
        "mlflow.pyfunc",
        where,
        {
            "PythonModel": PythonModel,
            "PythonModelContext": PythonModelContext,
            "model": pyfunc_model,
        },
    )
    models_attrs: dict[str, Any] = {}
    if set_model is not None:
        models_attrs["set_model"] = set_model
    models = _StandIn("mlflow.models", where, models_attrs)
    exceptions = _StandIn("mlflow.exceptions", where, {"MlflowException": MlflowException})
    root = _StandIn(
        "mlflow",
        where,
        {
            "pyfunc": pyfunc,
            "models": models,
            "exceptions": exceptions,
            "MlflowException": MlflowException,
        },
    )
    for mod in (root, pyfunc, pyfunc_model, models, exceptions):
        mod.__path__ = []  # a package: submodules import
    return {m.__name__: m for m in (root, pyfunc, pyfunc_model, models, exceptions)}


def stand_in(module: str, where: str) -> Any:
    """The stand-in for ``module`` (an ``mlflow.*`` name) a pickle refers to."""
    mods = stand_ins(where)
    if module in mods:
        return mods[module]
    raise refuse(module, where)


class _RefuseOtherMlflow(importlib.abc.MetaPathFinder):
    """While a script runs: importing an ``mlflow.*`` module without a stand-in is an
    error naming it (not a bare ModuleNotFoundError)."""

    def __init__(self, offered: Mapping[str, Any], where: str) -> None:
        self._offered = set(offered)
        self._where = where

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if _is_mlflow(fullname) and fullname not in self._offered:
            raise refuse(fullname, self._where)
        return None


def load_code_model(path: Path, pyfunc: dict[str, Any]) -> Any:
    """Run an MLflow models-from-code script (``model_code_path``) and return its model.

    MLflow records the script's path at save time and keeps the file, under its base
    name, in the model directory: that copy is the one run. With mlflow installed the
    script gets the real mlflow; otherwise the stand-ins, and any other MLflow name it
    reaches for is refused by name.
    """
    rel = os.path.basename(str(pyfunc["model_code_path"]).replace("\\", "/"))
    file = inside(path, rel, what="model code")
    if importlib.util.find_spec("mlflow") is not None:

        def registered() -> Any:
            import mlflow.models.model as mm

            return getattr(mm, "__mlflow_model__", None)

        model = run_model_script(file, registered=registered)
    else:
        offered = stand_ins(rel, set_model=set_model)
        model = run_model_script(file, stand_ins=offered, finder=_RefuseOtherMlflow(offered, rel))
    if callable(model) and not hasattr(model, "predict"):
        return FunctionPythonModel(model)
    return model


def takes_context(fn: Any) -> bool:
    """MLflow's rule: ``predict(context, model_input, ...)`` when a parameter is named
    ``context`` or there are two parameters besides ``params``."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return "context" in names or len([n for n in names if n not in ("self", "params")]) == 2


def takes_params(fn: Any) -> bool:
    """True when ``fn`` has a ``params`` parameter."""
    try:
        return "params" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class CompatPredictor:
    """Calls an MLflow-style ``PythonModel`` the way MLflow's pyfunc wrapper does."""

    row_independent = False

    def __init__(self, model: Any, context: PythonModelContext) -> None:
        self.model = model
        self.context = context
        fn = model.predict
        self._with_context = takes_context(fn)
        self._with_params = takes_params(fn)
        hints = getattr(model, "_predict_type_hints", None)
        self._hint = (
            getattr(hints, "input", None)
            if hints is not None
            else _input_hint(fn, 1 if self._with_context else 0)
        )

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {"params": params} if self._with_params else {}
        data = _convert_input(data, self._hint)
        if self._with_context:
            return self.model.predict(self.context, data, **kwargs)
        return self.model.predict(data, **kwargs)


def _input_hint(fn: Any, index: int) -> Any:
    try:
        target = inspect.unwrap(fn)
        hints = typing.get_type_hints(target)
        names = [n for n in inspect.signature(fn).parameters if n != "self"]
        return hints.get(names[index]) if len(names) > index else None
    except Exception:  # unresolvable annotations: MLflow then validates nothing either
        return None


def _convert_input(data: Any, hint: Any) -> Any:
    """MLflow's backward-compatible input conversion for ``list[str]`` and
    ``list[dict[str, ...]]`` hints: a DataFrame gives its first string column, or its rows."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame) or typing.get_origin(hint) is not list or data.empty:
        return data
    (element,) = typing.get_args(hint) or (Any,)
    if element is str:
        for col, value in data.iloc[0].items():
            if isinstance(value, str):
                return data[col].tolist()
        raise MlflowException("Expected model input to contain at least one string column")
    if typing.get_origin(element) is dict and typing.get_args(element)[:1] == (str,):
        return data.to_dict(orient="records")
    return data
