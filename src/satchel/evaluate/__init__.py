"""Evaluate a model on a table: metrics with bootstrap intervals, a paired comparison with a
baseline, slices and bias figures, and a self-contained HTML report.

``satchel.evaluate(...)`` is the function :func:`satchel.evaluate.engine.evaluate`: this
package module is itself callable, so ``satchel.evaluate`` works whether or not the
package was imported first. numpy, pandas, pyarrow and scikit-learn load on first use.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from satchel.evaluate.engine import evaluate as evaluate
    from satchel.evaluate.gates import Thresholds as Thresholds
    from satchel.evaluate.result import BiasFigure as BiasFigure
    from satchel.evaluate.result import Comparison as Comparison
    from satchel.evaluate.result import EvaluationResult as EvaluationResult
    from satchel.evaluate.result import Metric as Metric
    from satchel.evaluate.result import SliceResult as SliceResult

_EXPORTS = {
    "evaluate": "satchel.evaluate.engine",
    "EvaluationResult": "satchel.evaluate.result",
    "Metric": "satchel.evaluate.result",
    "Comparison": "satchel.evaluate.result",
    "SliceResult": "satchel.evaluate.result",
    "BiasFigure": "satchel.evaluate.result",
    "Thresholds": "satchel.evaluate.gates",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'satchel.evaluate' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _CallableModule(types.ModuleType):
    # Importing the subpackage binds ``satchel.evaluate`` to this module, replacing the
    # lazily exported function; calling the module keeps ``satchel.evaluate(...)`` working.
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from satchel.evaluate.engine import evaluate as fn

        return fn(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
