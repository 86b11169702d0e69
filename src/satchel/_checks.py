"""What a loader checks about a model directory before any flavor reads a byte of it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from satchel._fs import check_symlinks, verify_digests
from satchel.errors import UnverifiedModelError
from satchel.manifest import Manifest
from satchel.paths import member


def check_directory(
    root: Path, manifest: Manifest, *, verify: bool = True, require_digests: bool = False
) -> None:
    """Digests (or, without them, no symlink leaving the directory) and every path the
    manifest names inside the directory.

    Raises:
        UnverifiedModelError: ``require_digests`` and the manifest records none.
        IntegrityError: a file changed, went missing, was added, or is a symlink.
        ModelFormatError: a manifest path is absolute, has ``..`` or leaves through a
            symlink; a symlink in an undigested directory leaves it.
    """
    if require_digests and not manifest.artifact_digests:
        raise UnverifiedModelError(
            f"{root} records no artifact_digests (was it saved by another tool?); it was "
            "refused because digests are required",
            path=str(root),
        )
    if verify and manifest.artifact_digests:
        verify_digests(root, manifest.artifact_digests)
    else:
        check_symlinks(root)
    for what, value, required in manifest.named_paths():
        member(root, value, what=what, must_exist=required)


def import_libraries(flavor: Any) -> None:
    """Import the flavor's own libraries (its ``libraries`` attribute) before a model's
    code paths become importable; a missing one is left for the flavor to report."""
    for name in getattr(flavor, "libraries", ()):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
