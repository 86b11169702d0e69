"""Keras 3 flavor: a ``keras.Model`` stored as a ``.keras`` file, in MLflow's layout.

The MLmodel sections match ``mlflow.keras`` (``data/model.keras``, ``keras_version``,
``keras_backend``, ``loader_module: mlflow.keras``), so MLflow loads what satchel saves
and the other way round. A ``.keras`` file is a zip of JSON config and weights; Keras
loads it with ``safe_mode=True``, which refuses the one part that would run code (a
``Lambda`` layer's pickled bytecode), so loading runs no code.

Backend: Keras runs on jax, torch or tensorflow. satchel's extra installs jax (CPU),
the lightest of the three (tensorflow is several times larger). The backend must be
chosen before ``keras`` is first imported: when it is not yet imported and
``KERAS_BACKEND`` is unset, the backend recorded in the model is used if it is
installed, else the first installed of jax, torch, tensorflow. ``.keras`` files of
standard layers load on any backend.

Also here: the ``tensorflow`` flavor (``loader_module: mlflow.tensorflow``) for loading a
tf.keras model that MLflow saved as ``data/model.keras`` or ``.h5`` (TensorFlow 2.16+
writes Keras 3 files), through Keras 3 without tensorflow. A TF2 SavedModel
(``model_type: tf2-module``) needs tensorflow itself.

Prediction follows MLflow's pyfunc wrapper: a DataFrame is fed as its values and the
output is a DataFrame on the input's index; an array, list or dict of arrays gives an
array.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from satchel import libs
from satchel.errors import CodeNotAllowedError, FlavorLoadError, ModelFormatError, SignatureError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.manifest import Manifest
from satchel.paths import inside

DATA_DIR = "data"
MODEL_NAME = "model"
MODULE_FILE = "keras_module.txt"
BACKENDS = ("jax", "torch", "tensorflow")
# what mlflow.tensorflow pickles beside a tf.keras model when its caller passes
# custom_objects (or Keras' global ones are set); never read here
CUSTOM_OBJECT_FILES = ("custom_objects.cloudpickle", "global_custom_objects.cloudpickle")
# Up to this many rows go through predict_on_batch (one compiled call, ~10x cheaper than
# predict() for small inputs); more through predict() in chunks of this size. Values
# are the same either way: each row is computed alone.
ONE_CALL_ROWS = 8192


def _is_keras_type(obj: Any) -> bool:
    return any(c.__module__.split(".")[0] in ("keras", "tf_keras") for c in type(obj).__mro__)


def choose_backend(recorded: str | None) -> str | None:
    """Set ``KERAS_BACKEND`` for a model saved on ``recorded``, before keras is imported.

    Returns the backend set, or None when keras is already imported or the caller's
    environment already chose one.
    """
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return None
    installed = [b for b in BACKENDS if importlib.util.find_spec(b) is not None]
    if recorded in installed:
        chosen = str(recorded)
    elif installed:
        chosen = installed[0]
    else:
        return None  # importing keras then fails and require() names the extra
    os.environ["KERAS_BACKEND"] = chosen
    return chosen


def _keras(recorded_backend: str | None = None) -> Any:
    choose_backend(recorded_backend)
    return libs.require("keras", flavor="keras")


class KerasFlavor:
    """The ``keras`` flavor (Keras 3)."""

    name = "keras"
    loader_module = "mlflow.keras"
    # Inference-mode layers (dropout off, batch norm on moving statistics) treat rows
    # independently.
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ("safe_mode",)

    def can_save(self, obj: Any) -> bool:
        if "keras" not in sys.modules or not _is_keras_type(obj):
            return False
        import keras

        return isinstance(obj, keras.Model)

    def save(
        self, obj: Any, path: Path, *, save_model_kwargs: dict[str, Any] | None = None
    ) -> FlavorConfig:
        """Write ``data/model.keras`` (``model.save``) and ``data/keras_module.txt``."""
        keras = _keras()
        if not isinstance(obj, keras.Model):
            raise TypeError(f"the keras flavor saves a keras.Model, not {type(obj).__name__}")
        data = path / DATA_DIR
        data.mkdir()
        (data / MODULE_FILE).write_text("keras")
        obj.save(str(data / f"{MODEL_NAME}.keras"), **(save_model_kwargs or {}))
        return FlavorConfig(
            section={
                "data": DATA_DIR,
                "keras_version": keras.__version__,
                "keras_backend": keras.backend.backend(),
                "save_exported_model": False,
                "code": None,
            },
            requirements=(_backend_requirement(keras.backend.backend()),),
        )

    def default_requirements(self) -> list[str]:
        return ["keras"]

    def load(self, path: Path, config: LoadConfig) -> Any:
        section = config.section
        keras = _keras(section.get("keras_backend"))
        libs.warn_if_newer(
            "keras", section.get("keras_version"), what=f"the Keras model {path.name}"
        )
        if section.get("save_exported_model"):
            raise FlavorLoadError(
                f"{path.name} is a Keras model exported as a TensorFlow SavedModel "
                "(save_exported_model: true); loading it needs tensorflow (pip install "
                "tensorflow), which satchel's keras flavor does not use",
                flavor="keras",
            )
        data = inside(path, str(section.get("data") or DATA_DIR), what="Keras model data")
        file = data / f"{MODEL_NAME}.keras" if data.is_dir() else data
        return _load_file(keras, file, config)

    def load_predictor(self, path: Path, config: LoadConfig) -> KerasPredictor:
        return KerasPredictor(self.load(path, config))


def _backend_requirement(backend: str) -> str:
    return {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}.get(backend, backend)


def _load_file(keras: Any, file: Path, config: LoadConfig) -> Any:
    if not file.is_file():
        raise ModelFormatError(f"the Keras model file {file.name} is missing", path=str(file))
    safe = bool(config.options.get("safe_mode", True))
    if not safe and not config.options.get("allow_code", True):
        raise CodeNotAllowedError(
            "safe_mode=False lets Keras run a Lambda layer's stored bytecode; refused "
            "because allow_code=False"
        )
    try:
        return keras.saving.load_model(str(file), safe_mode=safe, compile=False)
    except Exception as exc:  # third-party readers raise any type
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else type(exc).__name__
        raise ModelFormatError(
            f"{file.name} is not a readable Keras model: {first}", path=str(file)
        ) from None


class KerasPredictor:
    """Calls the model as MLflow's pyfunc wrapper does, through its compiled predict."""

    row_independent = True

    def __init__(self, model: Any) -> None:
        self.model = model

    def _run(self, x: Any) -> Any:
        rows = _rows(x)
        if rows is not None and rows <= ONE_CALL_ROWS:
            out = self.model.predict_on_batch(x)
        else:
            out = self.model.predict(x, batch_size=ONE_CALL_ROWS, verbose=0)
        if isinstance(out, dict):
            return {str(k): np.asarray(v) for k, v in out.items()}
        if isinstance(out, (list, tuple)):
            return {f"output_{i}": np.asarray(v) for i, v in enumerate(out)}
        return np.asarray(out)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict; see the module docstring for shapes."""
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(data, pd.DataFrame):
            values = data.to_numpy()
            if values.dtype == object:
                raise SignatureError(
                    "a Keras model takes numeric columns; the DataFrame has non-numeric ones",
                    expected="numeric",
                    given="object",
                )
            return pd.DataFrame(self._run(values), index=data.index)
        if isinstance(data, (np.ndarray, list, tuple, dict)):
            return self._run(data)
        raise SignatureError(
            f"a Keras model takes a DataFrame, an ndarray, a list or a dict of arrays, not "
            f"{type(data).__name__}",
            given=type(data).__name__,
        )


def _rows(x: Any) -> int | None:
    if isinstance(x, np.ndarray):
        return int(x.shape[0]) if x.ndim else None
    if isinstance(x, dict) and x:
        return _rows(np.asarray(next(iter(x.values()))))
    if isinstance(x, (list, tuple)) and x:
        return _rows(np.asarray(x[0])) if isinstance(x[0], np.ndarray) else len(x)
    return None


class TensorflowFlavor:
    """The ``tensorflow`` flavor, load only: MLflow's tf.keras models through Keras 3."""

    name = "tensorflow"
    loader_module = "mlflow.tensorflow"
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ("safe_mode",)

    def can_save(self, obj: Any) -> bool:
        return False  # satchel saves Keras models with the keras flavor

    def save(self, obj: Any, path: Path) -> FlavorConfig:
        raise TypeError("satchel saves Keras models with the keras flavor, not tensorflow")

    def default_requirements(self) -> list[str]:
        return ["keras"]

    def load(self, path: Path, config: LoadConfig) -> Any:
        section = config.section
        model_type = section.get("model_type") or "keras"
        if model_type != "keras":
            raise FlavorLoadError(
                f"{path.name} is a TensorFlow {model_type} model (a SavedModel); satchel loads "
                "only tf.keras models saved as .keras or .h5 files, through Keras 3 (loading "
                "a SavedModel needs tensorflow: pip install tensorflow)",
                flavor="tensorflow",
            )
        keras = _keras()
        libs.warn_if_newer(
            "tensorflow", section.get("keras_version"), what=f"the tf.keras model {path.name}"
        )
        data = inside(path, str(section.get("data") or DATA_DIR), what="Keras model data")
        base = data / MODEL_NAME if data.is_dir() else data
        for suffix in (".keras", ".h5"):
            if base.with_name(base.name + suffix).is_file():
                try:
                    return _load_file(keras, base.with_name(base.name + suffix), config)
                except ModelFormatError as exc:
                    pickled = [f for f in CUSTOM_OBJECT_FILES if (data / f).is_file()]
                    if not pickled:
                        raise
                    # MLflow pickles the custom_objects its caller passed; satchel never
                    # unpickles them (they are code), so a model that needs them cannot
                    # load here: say which file holds them and what loads it.
                    raise ModelFormatError(
                        f"{exc.args[0]}; the model's custom objects are in {data.name}/"
                        f"{pickled[0]}, a cloudpickle file satchel does not read (it runs "
                        "code): register the classes with keras.saving before loading, or "
                        "load it with mlflow",
                        path=str(data / pickled[0]),
                    ) from None
        if base.is_dir():
            raise FlavorLoadError(
                f"{path.name} holds a TensorFlow SavedModel directory ({base.name}/), written "
                "by TensorFlow before 2.16; loading it needs tensorflow (pip install tensorflow)",
                flavor="tensorflow",
            )
        raise ModelFormatError(
            f"{path.name}: no {MODEL_NAME}.keras or {MODEL_NAME}.h5 under {data.name}/",
            path=str(data),
        )

    def load_predictor(self, path: Path, config: LoadConfig) -> KerasPredictor:
        return KerasPredictor(self.load(path, config))


def save_model(keras_model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save a Keras 3 model; keyword arguments as :func:`satchel.save_model`, plus
    ``save_model_kwargs`` (passed to ``model.save``)."""
    from satchel.save import save_model as _save

    return _save(keras_model, path, flavor="keras", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the ``keras.Model`` of a saved Keras (or MLflow tf.keras) model."""
    from satchel.model import load_model as _load

    model = _load(path, **kwargs)
    if model.flavor.name not in ("keras", "tensorflow"):
        raise ModelFormatError(f"{path} is a {model.flavor.name} model, not keras")
    return model.unwrap()
