"""The one way to turn a path named by a manifest into a file inside the model directory.

Every value an MLmodel names (flavor data, ``code``, the input example, artifacts,
environment files) is data written by the model's author, so it is resolved here and
nowhere else: absolute paths, ``..`` components and symlinks that leave the directory
are refused, whether or not the target exists.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from satchel.errors import ModelFormatError


def member(
    root: Path, relative: Any, *, what: str = "file", must_exist: bool = True
) -> Path:
    """The path of ``relative`` inside the model directory ``root``.

    Args:
        root: the model directory (already resolved by the loader, so one version of it).
        relative: the manifest's value: a relative POSIX path.
        what: names the entry in errors ("ONNX model file", "artifact 'vocab'").
        must_exist: also refuse a path that does not exist.

    Returns:
        The absolute path, with every symlink on the way resolved.

    Raises:
        ModelFormatError: the value is not a non-empty string, is absolute, has a ``..``
            component, resolves outside ``root`` through a symlink, or is missing.
    """
    base = root.resolve()
    if not isinstance(relative, str) or not relative.strip():
        raise ModelFormatError(
            f"{what} path must be a non-empty relative path, not {_short(relative)}",
            path=str(base),
        )
    if "\x00" in relative:
        raise ModelFormatError(
            f"{what} path {_short(relative)} contains a NUL byte", path=str(base)
        )
    posix, win = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or win.is_absolute() or win.drive or relative.startswith("~"):
        raise ModelFormatError(
            f"{what} path {_short(relative)} is absolute: it points outside the model "
            "directory, and a manifest may only name files inside it",
            path=str(base),
        )
    if ".." in posix.parts or ".." in win.parts:
        raise ModelFormatError(
            f"{what} path {_short(relative)} contains '..', which may point outside the "
            "model directory; a manifest may only name files inside it",
            path=str(base),
        )
    candidate = (base / relative).resolve()
    if candidate != base and base not in candidate.parents:
        raise ModelFormatError(
            f"{what} path {_short(relative)} leads outside the model directory through a "
            "symlink",
            path=str(base),
        )
    if must_exist and not candidate.exists():
        raise ModelFormatError(
            f"{what} {_short(relative)} is missing from {base}", path=str(base)
        )
    return candidate


def inside(root: Path, relative: str, *, what: str = "file", must_exist: bool = True) -> Path:
    """Alias of :func:`member`, kept for callers written before it."""
    return member(root, relative, what=what, must_exist=must_exist)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
