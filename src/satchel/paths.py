"""Safe paths inside a model directory."""

from __future__ import annotations

from pathlib import Path

from satchel.errors import ModelFormatError


def inside(root: Path, relative: str, *, what: str = "file", must_exist: bool = True) -> Path:
    """``root / relative``, refusing paths that leave ``root`` and (by default) missing ones.

    Manifest values are data from the model's author: a ``../`` must never reach outside
    the directory that was verified.
    """
    root = root.resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise ModelFormatError(
            f"{what} path {relative!r} points outside the model directory", path=str(root)
        )
    if must_exist and not candidate.exists():
        raise ModelFormatError(f"{what} {relative!r} is missing from {root}", path=str(root))
    return candidate
