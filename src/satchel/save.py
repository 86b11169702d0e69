"""Save any supported object as a model directory, atomically."""

from __future__ import annotations

import datetime as _dt
import difflib
import inspect
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from satchel import _normalize, plugins
from satchel import example as _example
from satchel._fs import atomic_directory, compute_digests, directory_size
from satchel._version import __version__
from satchel.coercion import enforce_input
from satchel.env import CONDA_ENV, PYTHON_ENV, build_requirements, python_version, write_environment
from satchel.errors import ExampleError, SatchelError
from satchel.flavor import Flavor, FlavorConfig, LoadConfig
from satchel.manifest import PYFUNC, Manifest
from satchel.schema import Signature
from satchel.signature import infer_signature

CODE_DIR = "code"


def save_model(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    flavor: str | None = None,
    signature: Signature | None = None,
    input_example: Any = None,
    pip_requirements: Sequence[str] | None = None,
    extra_pip_requirements: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    code_paths: Sequence[str | os.PathLike[str]] | None = None,
    overwrite: bool = False,
    reference_data: Any = None,
    **flavor_options: Any,
) -> Manifest:
    """Save ``obj`` as a model directory at ``path``.

    The flavor is the one whose ``can_save`` accepts ``obj`` unless ``flavor`` names one.
    The directory is written beside ``path`` and renamed into place, so a failed save
    leaves nothing behind.

    Args:
        obj: the model (an estimator, an ONNX model, a PythonModel or a callable ...).
        path: destination directory; must not exist or be empty unless ``overwrite``.
        flavor: a flavor name, to skip detection.
        signature: inputs/outputs/params; inferred from ``input_example`` when omitted.
        input_example: data, or ``(data, params)``, saved beside the model.
        pip_requirements: replaces the inferred requirements.
        extra_pip_requirements: added to the requirements.
        metadata: free-form dict stored in MLmodel.
        code_paths: files or directories copied under ``code/`` and importable at load.
        overwrite: replace an existing non-empty directory.
        reference_data: training or validation inputs; their profile and the model's
            predictions on them are saved as ``reference_profile.json`` for drift
            monitoring (docs/format.md).
        **flavor_options: passed to the flavor's ``save`` (e.g. ``serialization_format``).

    Returns:
        The manifest that was written.
    """
    chosen = plugins.get(flavor) if flavor else plugins.for_object(obj)
    check_options(chosen, flavor_options)
    example = _example.split(input_example) if input_example is not None else None
    traced = getattr(chosen, "input_example_option", None)
    if traced and example is not None and traced not in flavor_options:
        # A flavor that traces the model (torch.export) saves from the example's data.
        flavor_options = {**flavor_options, traced: example.data}
    with atomic_directory(path, overwrite=overwrite) as tmp:
        config = chosen.save(obj, tmp, **flavor_options)
        pyfunc = _pyfunc_section(chosen, config)
        if code_paths:
            _copy_code(tmp, code_paths)
            pyfunc["code"] = CODE_DIR
        sig = signature if signature is not None else config.signature
        info = None
        if example is not None:
            info = _example.save(tmp, example)
            sig = _check_or_infer(chosen, tmp, config, pyfunc, example, sig, flavor_options)
        inferred: list[str] = []
        if pip_requirements is None and (
            code_paths or getattr(chosen, "infer_requirements", False)
        ):
            inferred = _infer_requirements(tmp, pyfunc, chosen, config, sig, info)
        requirements = build_requirements(
            [*chosen.default_requirements(), *config.requirements, *inferred],
            pip_requirements,
            extra_pip_requirements,
        )
        write_environment(tmp, requirements)
        manifest = Manifest(
            flavors={PYFUNC: pyfunc, chosen.name: config.section},
            model_uuid=uuid.uuid4().hex,
            utc_time_created=str(_dt.datetime.now(_dt.UTC).replace(tzinfo=None)),
            signature=sig,
            saved_input_example_info=info,
            metadata=dict(metadata) if metadata else None,
            satchel_version=__version__,
        )
        if reference_data is not None:
            _save_profile(chosen, tmp, manifest, reference_data, flavor_options)
        manifest.artifact_digests = compute_digests(tmp)
        manifest.model_size_bytes = directory_size(tmp)
        manifest.write(tmp)
    return manifest


def _save_profile(flavor: Flavor, root: Path, manifest: Manifest, reference_data: Any,
                  options: dict[str, Any]) -> None:
    """Profile the reference data through the model just written (reference_profile.json)."""
    from satchel.model import Model
    from satchel.monitoring.reference import profile_model

    config = LoadConfig(section=dict(manifest.flavors[flavor.name]),
                        pyfunc=dict(manifest.pyfunc or {}), options=dict(options))
    model = Model(root, manifest, flavor, config, flavor.load_predictor(root, config))
    profile_model(model, reference_data).write(root)


# save_model's own keywords, named in the error for an unknown one.
_OWN_OPTIONS = (
    "flavor",
    "signature",
    "input_example",
    "pip_requirements",
    "extra_pip_requirements",
    "metadata",
    "code_paths",
    "overwrite",
    "reference_data",
)


def flavor_options(flavor: Flavor) -> tuple[str, ...] | None:
    """The keywords ``flavor.save`` accepts, or None when it takes any (``**options``)."""
    declared = getattr(flavor, "save_options", None)
    if declared is not None:
        return tuple(declared)
    try:
        params = list(inspect.signature(flavor.save).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None  # a third-party flavor that takes anything checks for itself
    # The first two are the object and the directory.
    return tuple(
        p.name
        for p in params[2:]
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


def check_options(flavor: Flavor, options: dict[str, Any]) -> None:
    """Refuse keywords neither ``save_model`` nor the flavor knows (a typo would otherwise
    silently lose an option).

    Raises:
        TypeError: naming the unknown keyword, the closest known one and every accepted one.
    """
    accepted = flavor_options(flavor)
    if accepted is None:
        return
    unknown = sorted(set(options) - set(accepted))
    if not unknown:
        return
    known = sorted({*accepted, *_OWN_OPTIONS})
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    own = ", ".join(accepted) or "none"
    raise TypeError(
        f"save_model() got unknown keyword argument{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(hints)} for the {flavor.name} flavor; the {flavor.name} flavor accepts: "
        f"{own}; save_model itself accepts: {', '.join(_OWN_OPTIONS)}"
    )


def _infer_requirements(
    root: Path,
    pyfunc: dict[str, Any],
    flavor: Flavor,
    config: FlavorConfig,
    sig: Signature | None,
    info: dict[str, Any] | None,
) -> list[str]:
    """What the model's code imports when loaded and run on its example (a subprocess
    loads the directory as written so far, from a provisional manifest)."""
    from satchel import requirements

    provisional = Manifest(
        flavors={PYFUNC: pyfunc, flavor.name: config.section},
        signature=sig,
        saved_input_example_info=info,
    )
    provisional.write(root)
    try:
        return requirements.infer(root)
    finally:
        (root / "MLmodel").unlink(missing_ok=True)


def _pyfunc_section(flavor: Flavor, config: FlavorConfig) -> dict[str, Any]:
    return {
        "loader_module": plugins.loader_module(flavor),
        "python_version": python_version(),
        "env": {"conda": CONDA_ENV, "virtualenv": PYTHON_ENV},
        "satchel_flavor": flavor.name,
        **config.pyfunc,
    }


def _copy_code(root: Path, code_paths: Sequence[str | os.PathLike[str]]) -> None:
    dest = root / CODE_DIR
    dest.mkdir()
    for p in map(Path, code_paths):
        if not p.exists():
            raise FileNotFoundError(f"code path {p} does not exist")
        target = dest / p.name
        if p.is_dir():
            shutil.copytree(p, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, target)


def _check_or_infer(
    flavor: Flavor,
    root: Path,
    config: FlavorConfig,
    pyfunc: dict[str, Any],
    example: _example.Example,
    sig: Signature | None,
    options: dict[str, Any],
) -> Signature:
    """Infer a signature from the example, or check the example against the given one.

    The example goes through the predictor loaded back from the directory being written,
    which also proves the saved files load.
    """
    data = example.data
    if sig is not None and sig.inputs is not None:
        try:
            data = enforce_input(data, sig.inputs).data
        except SatchelError as exc:
            raise ExampleError(f"the input example does not fit the signature: {exc}") from None
        if sig.outputs is not None:
            return sig
    # The save's own options (e.g. the skops types this caller vouched for) apply to
    # loading back what it just wrote.
    predictor = flavor.load_predictor(
        root, LoadConfig(section=config.section, pyfunc=pyfunc, options=dict(options))
    )
    try:
        output = _normalize.output(predictor.predict(data, example.params))
    except Exception as exc:
        raise ExampleError(
            f"the model failed on its input example: {type(exc).__name__}: {exc}"
        ) from None
    inferred = infer_signature(data, output, example.params)
    if sig is None:
        return inferred
    return Signature(sig.inputs, inferred.outputs, sig.params or inferred.params)
