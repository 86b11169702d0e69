"""The generic model: load any model directory and predict through its signature."""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel import _normalize, plugins
from satchel._fs import verify_digests
from satchel.coercion import enforce_input, enforce_params
from satchel.env import python_version
from satchel.errors import (
    CodeNotAllowedError,
    ExtraColumnsWarning,
    PredictionError,
    PythonVersionWarning,
    SatchelError,
    UnknownParamsWarning,
)
from satchel.example import Example
from satchel.example import load as load_example
from satchel.flavor import Flavor, LoadConfig, Predictor
from satchel.manifest import Manifest
from satchel.paths import inside
from satchel.schema import Signature


@dataclass(frozen=True)
class Prediction:
    """A prediction with what the policy did on the way.

    Attributes:
        output: DataFrame, Series, ndarray or dict of ndarrays.
        dropped_columns: input columns the signature does not name (ignored).
        unknown_params: params the param schema does not declare (ignored).
        rows: rows in the input.
    """

    output: Any
    dropped_columns: tuple[str, ...] = ()
    unknown_params: tuple[str, ...] = ()
    rows: int = 0


class Model:
    """A loaded model directory behind one ``predict`` interface."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        flavor: Flavor,
        config: LoadConfig,
        predictor: Predictor,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.flavor = flavor
        self._config = config
        self._predictor = predictor
        self._native: Any = None
        sig = manifest.signature
        self._inputs = sig.inputs if sig is not None else None
        self._params = sig.params if sig is not None else None
        self._has_signature = sig is not None
        #: The registry version this model was loaded from (``models:/`` URIs), else None.
        self.registry_version: Any = None

    @property
    def signature(self) -> Signature | None:
        """The model's signature, or None when it was saved without one."""
        return self.manifest.signature

    @property
    def metadata(self) -> dict[str, Any]:
        """The free-form ``metadata`` dict saved with the model."""
        return dict(self.manifest.metadata or {})

    @property
    def flavor_name(self) -> str:
        return self.flavor.name

    @property
    def row_independent(self) -> bool:
        """True when each row's prediction depends only on that row (so batching is safe)."""
        own = getattr(self._predictor, "row_independent", None)
        if own is not None:
            return bool(own)
        return bool(getattr(self.flavor, "row_independent", True))

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict on ``data`` after fitting it to the signature (docs/coercion.md).

        Args:
            data: DataFrame, Series, ndarray, dict of arrays or list of records.
            params: inference params; checked against the param schema, defaults filled.

        Returns:
            DataFrame, Series, ndarray or dict of ndarrays.

        Raises:
            SignatureError: the input or params do not fit the signature.
            PredictionError: the model itself raised.
        """
        result = self.predict_detailed(data, params)
        if result.dropped_columns:
            warnings.warn(
                ExtraColumnsWarning(
                    f"ignored input columns not in the signature: {list(result.dropped_columns)}"
                ),
                stacklevel=2,
            )
        if result.unknown_params:
            warnings.warn(
                UnknownParamsWarning(
                    f"ignored params not in the param schema: {list(result.unknown_params)}"
                ),
                stacklevel=2,
            )
        return result.output

    def predict_detailed(self, data: Any, params: dict[str, Any] | None = None) -> Prediction:
        """Like :meth:`predict`, but return dropped columns and unknown params, not warn."""
        enforced = enforce_input(data, self._inputs)
        if self._has_signature:
            checked, unknown = enforce_params(params, self._params)
        else:
            checked, unknown = (params or None), []
        try:
            out = self._predictor.predict(enforced.data, checked)
        except (SatchelError, MemoryError, RecursionError):
            raise
        except Exception as exc:
            raise PredictionError(
                f"the model raised {type(exc).__name__}: {exc}", error_class=type(exc).__name__
            ) from exc
        return Prediction(
            _normalize.output(out),
            enforced.dropped,
            tuple(unknown),
            _normalize.num_rows(enforced.data),
        )

    def unwrap(self) -> Any:
        """The native object (the estimator, ONNX model or PythonModel)."""
        if self._native is None:
            self._native = self.flavor.load(self.path, self._config)
        return self._native

    def input_example(self) -> Example | None:
        """The saved input example (data and params), or None."""
        return load_example(self.path, self.manifest.saved_input_example_info)

    def __repr__(self) -> str:
        return f"<satchel.Model flavor={self.flavor.name!r} path={str(self.path)!r}>"


def load_model(
    path: str | os.PathLike[str],
    *,
    allow_code: bool = True,
    verify: bool = True,
    allow_pickle: bool | None = None,
    **options: Any,
) -> Model:
    """Load a model directory (saved by satchel or by MLflow).

    Args:
        path: the model directory, or a registry URI: ``models:/NAME/VERSION``,
            ``models:/NAME@ALIAS``, ``models:/NAME/STAGE`` or ``models:/NAME/latest``
            (resolved through ``$SATCHEL_REGISTRY_URI``; see :mod:`satchel.registry`).
        allow_code: False refuses every format that runs code when loaded: pickle,
            cloudpickle, a Python source file (models from code), ``torch.load`` ...
            (README, "runs code on load").
        verify: check ``artifact_digests`` when the manifest has them.
        allow_pickle: deprecated name of ``allow_code``.
        **options: flavor-specific load options (e.g. ``trusted_types`` for skops,
            ``allow_mlflow`` to load an MLflow custom model through mlflow itself).

    Raises:
        ModelFormatError: no or unreadable MLmodel, a missing data file.
        IntegrityError: a file changed, went missing or was added after saving.
        FlavorNotFoundError: no installed plugin loads this model.
        CodeNotAllowedError: ``allow_code=False`` and the format runs code on load.
        RegistryError: a ``models:/`` URI names no model, version or alias (subclasses
            say which and list what exists).
    """
    allow_code = code_allowed(allow_code, allow_pickle, stacklevel=3)
    registry_version = None
    if isinstance(path, str) and path.startswith("models:"):
        from satchel.registry.api import fetch

        registry_version, path = fetch(path)
    root = Path(path).expanduser().resolve()
    manifest = Manifest.read(root)
    if verify and manifest.artifact_digests:
        verify_digests(root, manifest.artifact_digests)
    flavor = plugins.for_manifest(manifest, source=str(root / "MLmodel"))
    pyfunc = manifest.pyfunc or {}
    config = LoadConfig(
        section=dict(manifest.flavors.get(flavor.name) or {}),
        pyfunc=dict(pyfunc),
        # allow_pickle is still passed for flavors written against the old name.
        options={"allow_code": allow_code, "allow_pickle": allow_code, **options},
        inputs=manifest.signature.inputs if manifest.signature is not None else None,
    )
    _warn_python_version(manifest)
    unsafe = getattr(flavor, "unsafe_format", None)
    fmt = unsafe(config) if unsafe is not None else None
    if fmt and not allow_code:
        raise CodeNotAllowedError(
            f"{root.name} is stored as {fmt}, which runs code when loaded; it was refused "
            "because allow_code=False"
        )
    code = pyfunc.get("code")
    if code:
        code_dir = str(inside(root, str(code), what="code directory"))
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
    predictor = flavor.load_predictor(root, config)
    model = Model(root, manifest, flavor, config, predictor)
    model.registry_version = registry_version
    return model


def code_allowed(allow_code: bool, allow_pickle: bool | None, *, stacklevel: int = 2) -> bool:
    """Resolve ``allow_code`` and its deprecated alias ``allow_pickle`` into one switch.

    Raises:
        TypeError: both are given and disagree.
    """
    if allow_pickle is None:
        return bool(allow_code)
    warnings.warn(
        "allow_pickle is deprecated; use allow_code (it covers every format that runs code "
        "on load, not only pickle)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
    if not allow_code and allow_pickle:
        raise TypeError("allow_code=False and allow_pickle=True contradict each other")
    return bool(allow_pickle) and bool(allow_code)


def _warn_python_version(manifest: Manifest) -> None:
    saved = manifest.python_version
    if not saved:
        return
    running = python_version()
    if saved.split(".")[:2] != running.split(".")[:2]:
        warnings.warn(
            PythonVersionWarning(f"model was saved with Python {saved}; running Python {running}"),
            stacklevel=3,
        )
