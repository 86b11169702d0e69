"""MLflow custom models (``loader_module: mlflow.pyfunc.model``), loaded through MLflow.

Such a model is a cloudpickled ``mlflow.pyfunc.PythonModel``: unpickling it needs mlflow
itself and runs the author's code. satchel therefore loads it only when mlflow is
installed *and* the caller opts in with ``load_model(path, allow_mlflow=True)``; it
never saves one (save a ``satchel.PythonModel`` with the ``python`` flavor instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satchel.errors import FlavorLoadError
from satchel.flavor import LoadConfig

OPT_IN = "allow_mlflow"


class MlflowPyfuncFlavor:
    """The ``mlflow_pyfunc`` flavor: load-only, through ``mlflow.pyfunc.load_model``."""

    name = "mlflow_pyfunc"
    loader_module = "mlflow.pyfunc.model"
    # Custom code may look across rows of a call: never batch requests together.
    row_independent = False

    def can_save(self, obj: Any) -> bool:
        return False

    def save(self, obj: Any, path: Path, **options: Any) -> Any:
        raise TypeError(
            "satchel does not save MLflow custom models; subclass "
            "satchel.PythonModel and save it with the python flavor"
        )

    def default_requirements(self) -> list[str]:
        return ["mlflow"]

    def unsafe_format(self, config: LoadConfig) -> str | None:
        return "cloudpickle"  # python_model.pkl

    def _mlflow_model(self, path: Path, config: LoadConfig) -> Any:
        if not config.options.get(OPT_IN):
            raise FlavorLoadError(
                f"{path.name} is an MLflow custom PythonModel (loader_module "
                "mlflow.pyfunc.model): it loads only through mlflow, which unpickles and runs "
                f"its code; install mlflow and pass {OPT_IN}=True to load_model to allow it",
                flavor=self.name,
            )
        try:
            import mlflow.pyfunc
        except ImportError as exc:
            raise FlavorLoadError(
                f"{path.name} is an MLflow custom PythonModel and needs mlflow to load, but "
                f"mlflow cannot be imported ({exc}); install mlflow (pip install mlflow) in "
                f"this environment and pass {OPT_IN}=True",
                flavor=self.name,
            ) from None
        return mlflow.pyfunc.load_model(str(path))

    def load(self, path: Path, config: LoadConfig) -> Any:
        """The unpickled ``mlflow.pyfunc.PythonModel``."""
        return self._mlflow_model(path, config).unwrap_python_model()

    def load_predictor(self, path: Path, config: LoadConfig) -> MlflowPredictor:
        return MlflowPredictor(self._mlflow_model(path, config))


class MlflowPredictor:
    """Calls MLflow's ``PyFuncModel.predict`` (after satchel's own coercion)."""

    row_independent = False

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if params:
            return self.model.predict(data, params=params)
        return self.model.predict(data)
