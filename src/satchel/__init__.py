"""satchel: package a trained model into MLflow's model directory format and serve it.

The public API is re-exported here and imported on first use, so ``import satchel``
costs milliseconds and never imports numpy, pandas or any ML library by itself.
"""

from __future__ import annotations

from satchel._version import __version__

# Not `from typing import TYPE_CHECKING`: typing (with re, collections, functools) is
# most of what `import satchel` would cost (~5-10 ms of a bare interpreter's ~15); mypy
# treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from satchel.code_model import set_model
    from satchel.convert import convert
    from satchel.errors import (
        FlavorNotFoundError,
        IntegrityError,
        ModelFormatError,
        PredictionError,
        SatchelError,
        SignatureError,
    )
    from satchel.evaluate import evaluate
    from satchel.model import Model, Prediction, load_model
    from satchel.pyfunc import PythonModel, PythonModelContext
    from satchel.save import save_model
    from satchel.schema import (
        Array,
        ColSpec,
        DataType,
        Map,
        Object,
        ParamSchema,
        ParamSpec,
        Property,
        Schema,
        Signature,
        TensorSpec,
    )
    from satchel.signature import infer_signature

_EXPORTS = {
    "save_model": "satchel.save",
    "load_model": "satchel.model",
    "Model": "satchel.model",
    "Prediction": "satchel.model",
    "PythonModel": "satchel.pyfunc",
    "PythonModelContext": "satchel.pyfunc",
    "infer_signature": "satchel.signature",
    "convert": "satchel.convert",
    "evaluate": "satchel.evaluate",
    "set_model": "satchel.code_model",
    **{
        name: "satchel.schema"
        for name in (
            "Signature",
            "Schema",
            "ColSpec",
            "TensorSpec",
            "ParamSchema",
            "ParamSpec",
            "DataType",
            "Array",
            "Object",
            "Property",
            "Map",
        )
    },
    **{
        name: "satchel.errors"
        for name in (
            "SatchelError",
            "SignatureError",
            "ModelFormatError",
            "IntegrityError",
            "FlavorNotFoundError",
            "PredictionError",
        )
    },
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    import importlib

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'satchel' has no attribute {name!r}")
    if name == "evaluate":
        # the subpackage module is itself callable (see satchel/evaluate/__init__.py)
        value = importlib.import_module(module)
        globals()[name] = value
        return value
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
