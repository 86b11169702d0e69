"""Profile a model's reference data: at save time, or afterwards into an existing directory."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from satchel.errors import ProfileError, SatchelWarning
from satchel.monitoring.profile import MIN_ROWS, NUMERIC, Profile, as_frame, build_profile
from satchel.schema import ColSpec, DataType, Schema, Signature

_NUMERIC_TYPES = {DataType.integer, DataType.long, DataType.float, DataType.double,
                  DataType.datetime}


class SmallReferenceWarning(SatchelWarning):
    """The reference data has too few rows for stable drift figures."""


def profile_model(model: Any, reference_data: Any, **options: Any) -> Profile:
    """Profile ``reference_data`` and the model's predictions on it.

    Args:
        model: a loaded :class:`satchel.Model`.
        reference_data: the training or validation inputs (DataFrame, array, dict).
        **options: passed to :func:`build_profile` (``bins``, ``top_k``, ``categorical``).

    Raises:
        ProfileError: the data does not fit the model's signature.
    """
    from satchel.errors import SignatureError

    frame = _input_frame(reference_data, model.signature)
    if len(frame) < MIN_ROWS:
        warnings.warn(SmallReferenceWarning(
            f"the reference data has {len(frame)} rows; drift figures need at least "
            f"{MIN_ROWS} (pass the training or validation data, not the input example)"),
            stacklevel=3)
    try:
        outputs = model.predict_detailed(reference_data).output
    except SignatureError as exc:
        raise ProfileError(f"the reference data does not fit the signature: {exc}") from None
    profile = build_profile(frame, outputs, **options)
    check_against_signature(profile, model.signature)
    return profile


def _input_frame(data: Any, signature: Signature | None) -> Any:
    frame = as_frame(data, "input")
    inputs = signature.inputs if signature is not None else None
    if inputs is not None and not inputs.is_tensor and inputs.has_names:
        # Profile the columns the model reads; extra columns would be dropped at predict.
        keep = [c for c in frame.columns if c in set(inputs.names())]
        frame = frame[keep]
    return frame


def check_against_signature(profile: Profile, signature: Signature | None) -> None:
    """Refuse a profile whose input columns the signature does not have, or types it contradicts.

    Raises:
        ProfileError: naming the column, what the signature expects and what was profiled.
    """
    inputs: Schema | None = signature.inputs if signature is not None else None
    if inputs is None or inputs.is_tensor or not inputs.has_names:
        return
    specs = {s.name: s for s in inputs.inputs if isinstance(s, ColSpec) and s.name is not None}
    for col in profile.inputs:
        spec = specs.get(col.name)
        if spec is None:
            raise ProfileError(
                f"reference profile column {col.name!r} is not an input of the signature "
                f"(inputs: {sorted(specs)})")
        expected_numeric = isinstance(spec.type, DataType) and spec.type in _NUMERIC_TYPES
        if col.kind == NUMERIC and not expected_numeric and spec.type is not DataType.boolean:
            raise ProfileError(
                f"reference profile column {col.name!r} is numeric but the signature "
                f"expects {spec.type_name}")


def write_profile(directory: str | os.PathLike[str], profile: Profile) -> None:
    """Add or replace the reference profile of a saved model, atomically.

    The directory is copied beside itself, the profile written, digests recomputed, and
    the copy swapped into place, so a reader sees the old model or the new one.
    """
    from satchel._fs import atomic_directory, compute_digests, directory_size
    from satchel.manifest import Manifest

    root = Path(directory).resolve()
    manifest = Manifest.read(root)
    check_against_signature(profile, manifest.signature)
    with atomic_directory(root, overwrite=True) as tmp:
        shutil.copytree(root, tmp, symlinks=True, dirs_exist_ok=True)
        profile.write(tmp)
        if manifest.artifact_digests is not None:
            manifest.artifact_digests = compute_digests(tmp)
        manifest.model_size_bytes = directory_size(tmp)
        manifest.write(tmp)
