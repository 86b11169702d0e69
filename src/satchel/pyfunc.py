"""Custom models: subclass :class:`PythonModel` to package arbitrary Python code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PythonModelContext:
    """What ``PythonModel.load_context`` receives.

    Attributes:
        artifacts: artifact name -> absolute local path inside the loaded model directory.
        model_config: the ``model_config`` dict given at save time (or empty).
    """

    artifacts: dict[str, str] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)


class PythonModel:
    """Base class of custom models saved with the ``python`` flavor.

    Override :meth:`predict`; override :meth:`load_context` to open artifacts once,
    when the model is loaded. Set ``row_independent = False`` on the class when a row's
    prediction depends on other rows of the same call. Unless a subclass sets
    ``row_independent = True``, servers never merge its requests into one batch: custom
    code may look across rows, and only its author knows.
    """

    row_independent: bool | None = None

    def load_context(self, context: PythonModelContext) -> None:
        """Called once after loading, before the first ``predict``."""

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """Return predictions for ``model_input`` (already fitted to the signature)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement predict()")
