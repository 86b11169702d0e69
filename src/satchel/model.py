"""The generic model: load any model directory and predict through its signature."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel import _codepath, _fits, _loadopts, _normalize, plugins
from satchel._checks import check_directory, import_libraries
from satchel.code_policy import code_allowed, code_format, refuse_code
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
from satchel.paths import member
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
        # predict's fast path: a column schema's plan, and the params a call without
        # params gets (enforce_params(None, ...) is the same every call)
        inputs = self._inputs
        self._plan = (
            _fits.plan(inputs)
            if inputs is not None and inputs.inputs and not inputs.is_tensor
            else None
        )
        self._param_defaults = enforce_params(None, self._params)[0] if sig is not None else None
        # A model of one string column whose predictor takes the texts themselves
        # (predict_texts): a list of texts needs no DataFrame built and taken apart again.
        self._texts = (
            getattr(predictor, "predict_texts", None)
            if self._plan is not None and len(self._plan.specs) == 1 and self._plan.text[0]
            else None
        )
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

    @property
    def out_of_process(self) -> bool:
        """True when predictions run in another process (the model worker of
        ``env_manager="venv"``): the caller's time in them is spent waiting, so a server
        waits for them off its event loop, however quick they are."""
        return bool(getattr(self._predictor, "out_of_process", False))

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
        texts = self._texts
        if texts is not None and params is None:
            # What enforce_input gives a list of texts (or one text) for a one-string-
            # column signature is a frame of those same texts, which the predictor would
            # turn back into this list: hand it the list (docs/coercion.md; the policy is
            # unchanged).
            # one text is one row
            given = [data] if type(data) is str else data if type(data) is list else None
            if given is not None and _plain_texts(given):
                defaults = self._param_defaults
                return self._predict_with(
                    texts, given, None if defaults is None else dict(defaults)
                )
        plan = self._plan
        if (
            plan is not None
            and params is None
            and _normalize.pandas_kind(data) == "frame"
            and _fits.same_columns(data.columns, plan)
            and _fits.fits(data, plan)
        ):
            # What enforce_input and enforce_params return for a frame that already fits
            # and no params (the frame itself, the defaults, nothing dropped), without
            # building either answer: at a fast model's budget (a 1,000-row OLS predicts
            # in ~40 us) each microsecond of satchel's own work shows.
            defaults = self._param_defaults
            return self.predict_prepared(data, None if defaults is None else dict(defaults))
        enforced, checked, unknown = self._enforce(data, params)  # no Prediction per call
        output = self.predict_prepared(enforced.data, checked)
        if enforced.dropped:
            warnings.warn(
                ExtraColumnsWarning(
                    f"ignored input columns not in the signature: {list(enforced.dropped)}"
                ),
                stacklevel=2,
            )
        if unknown:
            warnings.warn(
                UnknownParamsWarning(f"ignored params not in the param schema: {list(unknown)}"),
                stacklevel=2,
            )
        return output

    def predict_detailed(self, data: Any, params: dict[str, Any] | None = None) -> Prediction:
        """Like :meth:`predict`, but return dropped columns and unknown params, not warn."""
        enforced, checked, unknown = self._enforce(data, params)
        return Prediction(
            self.predict_prepared(enforced.data, checked),
            enforced.dropped,
            tuple(unknown),
            _normalize.num_rows(enforced.data),
        )

    async def predict_detailed_async(self, data: Any, params: dict[str, Any] | None = None
                                     ) -> Prediction:
        """:meth:`predict_detailed` for an event loop: a model that predicts in another
        process (:attr:`out_of_process`) is awaited there, no thread blocks on it; any
        other model predicts in the caller's thread, as :meth:`predict_detailed` does."""
        call = getattr(self._predictor, "predict_async", None)
        if call is None:
            return self.predict_detailed(data, params)
        enforced, checked, unknown = self._enforce(data, params)
        return Prediction(
            _normalize.output(await call(enforced.data, checked)),
            enforced.dropped,
            tuple(unknown),
            _normalize.num_rows(enforced.data),
        )

    def _enforce(self, data: Any, params: dict[str, Any] | None) -> tuple[Any, Any, list[str]]:
        enforced = enforce_input(data, self._inputs)
        if self._has_signature:
            checked, unknown = enforce_params(params, self._params)
        else:
            checked, unknown = (params or None), []
        return enforced, checked, list(unknown)

    def predict_prepared(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict on input another satchel already fitted to this model's signature.

        For a caller that ran the coercion policy itself on the same signature (the
        serving front process does, before it hands the input to a model worker in the
        model's own environment): no second pass. ``data`` must be what
        :func:`satchel.coercion.enforce_input` returned and ``params`` what
        :func:`satchel.coercion.enforce_params` returned; anything else reaches the
        model unchecked. Use :meth:`predict` otherwise.

        Raises:
            PredictionError: the model itself raised.
        """
        return self._predict_with(self._predictor.predict, data, params)

    def _predict_with(self, call: Any, data: Any, params: dict[str, Any] | None) -> Any:
        try:
            out = call(data, params)
        except (SatchelError, MemoryError, RecursionError):
            raise
        except Exception as exc:
            raise PredictionError(
                f"the model raised {type(exc).__name__}: {exc}", error_class=type(exc).__name__
            ) from exc
        return _normalize.output(out)

    def unwrap(self) -> Any:
        """The native object (the estimator, ONNX model or PythonModel)."""
        if self._native is None:
            self._native = self.flavor.load(self.path, self._config)
        return self._native

    def input_example(self) -> Example | None:
        """The saved input example (data and params), or None."""
        return load_example(self.path, self.manifest.saved_input_example_info)

    def close(self) -> None:
        """Release what the model holds outside this process: the worker of a model
        loaded with ``env_manager="venv"`` stops. A no-op for an in-process model."""
        close = getattr(self._predictor, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<satchel.Model flavor={self.flavor.name!r} path={str(self.path)!r}>"


def load_model(
    path: str | os.PathLike[str],
    *,
    allow_code: bool = True,
    verify: bool = True,
    require_digests: bool = False,
    allow_pickle: bool | None = None,
    env_manager: str = "local",
    wheelhouse: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Model:
    """Load a model directory (saved by satchel or by MLflow).

    The path is resolved once, so a load reads one whole version of a model that another
    process overwrites meanwhile (docs/format.md); if that version is removed under it,
    the load starts again from the new one.

    Args:
        path: the model directory, or a registry URI: ``models:/NAME/VERSION``,
            ``models:/NAME@ALIAS``, ``models:/NAME/STAGE`` or ``models:/NAME/latest``
            (resolved through ``$SATCHEL_REGISTRY_URI``; see :mod:`satchel.registry`).
        allow_code: False refuses every format that runs code when loaded: pickle,
            cloudpickle, a Python source file (models from code), ``torch.load`` ...
            and a model with code paths (``code/``) (README, "runs code on load").
        verify: check ``artifact_digests`` when the manifest has them.
        require_digests: refuse a directory whose manifest records no digests.
        allow_pickle: deprecated name of ``allow_code``.
        env_manager: ``"local"`` (default) loads the model into this interpreter;
            ``"venv"`` builds (or reuses) the model's own environment from its
            requirements (:mod:`satchel.envs`) and loads it in a worker process there:
            ``predict`` fits the input to the signature here and runs the model there.
            Call ``close()`` (or use the model as a context manager) to stop the
            worker; it also stops when this process exits.
        wheelhouse: with ``env_manager="venv"``, install offline from this directory.
        **options: flavor-specific load options (e.g. ``trusted_types`` for skops,
            ``allow_mlflow`` to load an MLflow custom model through mlflow itself).

    Raises:
        ModelFormatError: no or unreadable MLmodel, a missing data file, a manifest path
            outside the directory.
        IntegrityError: a file changed, went missing, was added or is a symlink.
        UnverifiedModelError: ``require_digests`` and the manifest has no digests.
        FlavorNotFoundError: no installed plugin loads this model.
        CodeNotAllowedError: ``allow_code=False`` and the model runs code on load.
        RegistryError: a ``models:/`` URI names no model, version or alias (subclasses
            say which and list what exists).
        EnvironmentBuildError: ``env_manager="venv"`` and the environment cannot be built
            (the requirement and the installer's reason named), or an unknown manager.
    """
    allow_code = code_allowed(allow_code, allow_pickle, stacklevel=3)
    registry_version = None
    if isinstance(path, str) and path.startswith("models:"):
        from satchel.registry.api import fetch

        registry_version, path = fetch(path)
    if env_manager != "local" or wheelhouse is not None:
        model = _load_in_env(Path(path).expanduser().resolve(), env_manager, wheelhouse, {
            "allow_code": allow_code, "verify": verify, "require_digests": require_digests,
            **options})
        model.registry_version = registry_version
        return model
    given = Path(path).expanduser()
    for attempt in range(_LOAD_ATTEMPTS):
        root = given.resolve()
        # A plain directory (never overwritten yet) is read through the path itself, and
        # the first overwrite turns that path into a symlink to the new version: files
        # read after the swap come from the new version, those before from the old one.
        # A version directory (the symlink's target) never changes while it exists.
        direct = root == given.parent.resolve() / given.name
        try:
            model = _load(root, allow_code, verify, require_digests, options)
        except Exception:
            # A concurrent overwrite swapped the version this load was reading: retry on
            # the new one. Anything else is the model's own fault: raise it.
            if attempt + 1 < _LOAD_ATTEMPTS and _moved(given, root):
                continue
            raise
        if direct and attempt + 1 < _LOAD_ATTEMPTS and _moved(given, root):
            continue  # swapped during the read: it may mix two versions; read the new one
        model.registry_version = registry_version
        return model
    raise AssertionError("unreachable")  # pragma: no cover


_LOAD_ATTEMPTS = 5
ENV_MANAGER_GROUP = "satchel.env_managers"


def _load_in_env(root: Path, env_manager: str, wheelhouse: str | os.PathLike[str] | None,
                 options: dict[str, Any]) -> Model:
    """Load through the env manager registered under ``env_manager`` (entry points, group
    ``satchel.env_managers``: core reaches the worker processes, which belong to the
    serving layer, by name, as it reaches flavors)."""
    from importlib import metadata

    from satchel.envs import ENV_MANAGERS
    from satchel.errors import EnvironmentBuildError

    if env_manager not in ENV_MANAGERS:
        raise EnvironmentBuildError(f"env_manager {env_manager!r} is not supported; use one "
                                    f"of {', '.join(ENV_MANAGERS)}")
    if env_manager == "local":
        raise EnvironmentBuildError("wheelhouse is only used with env_manager='venv'")
    found = [ep for ep in metadata.entry_points(group=ENV_MANAGER_GROUP)
             if ep.name == env_manager]
    if not found:
        raise EnvironmentBuildError(f"env_manager {env_manager!r} is not installed: it comes "
                                    "with satchel's serving parts (pip install 'satchel[serve]')")
    load = found[0].load()
    model: Model = load(root, options, wheelhouse=wheelhouse)
    return model


def _moved(given: Path, root: Path) -> bool:
    try:
        return given.resolve() != root
    except OSError:
        return False


def _load(
    root: Path, allow_code: bool, verify: bool, require_digests: bool, options: dict[str, Any]
) -> Model:
    manifest = Manifest.read(root)
    check_directory(root, manifest, verify=verify, require_digests=require_digests)
    flavor = plugins.for_manifest(manifest, source=str(root / "MLmodel"))
    _loadopts.check(flavor, options)
    pyfunc = manifest.pyfunc or {}
    config = LoadConfig(
        section=dict(manifest.flavors.get(flavor.name) or {}),
        pyfunc=dict(pyfunc),
        # allow_pickle is still passed for flavors written against the old name.
        options={"allow_code": allow_code, "allow_pickle": allow_code, **options},
        inputs=manifest.signature.inputs if manifest.signature is not None else None,
    )
    _warn_python_version(manifest)
    refuse_code(root, code_format(flavor, config), allow_code)
    code = pyfunc.get("code")
    if code and not allow_code:
        raise CodeNotAllowedError(
            f"{root.name} has code paths ({code}/), Python that runs when the model loads; "
            "it was refused because allow_code=False"
        )
    if code:
        # The flavor's libraries first, the model's code last on sys.path: a file in
        # code/ can never stand in for an installed module.
        import_libraries(flavor)
        _codepath.add(member(root, code, what="code directory"))
    predictor = flavor.load_predictor(root, config)
    return Model(root, manifest, flavor, config, predictor)


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


def _plain_texts(data: list[Any]) -> bool:
    """True for a non-empty list of ``str`` that the coercion policy passes unchanged into
    a one-string-column frame, under pandas 2 and 3 alike. pandas 3 stores text as UTF-8,
    so it refuses a lone surrogate: such texts take the frame path, with its error."""
    return bool(data) and all(type(x) is str and (x.isascii() or _utf8(x)) for x in data)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
