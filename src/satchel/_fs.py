"""Filesystem helpers: the digest walk, digests, sizes.

What the digests cover is exactly what a loader may read: every regular file under the
model directory, dot-files included. Two things are never digested and never read:
``__pycache__`` directories (code paths are imported with bytecode off, see
``satchel._codepath``) and the manifest itself. A symlink is never digested: a directory
with digests that holds one is refused, and one without digests may only hold symlinks
that stay inside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from satchel._atomic import atomic_directory
from satchel.errors import IntegrityError, ModelFormatError

__all__ = [
    "MANIFEST_NAME",
    "atomic_directory",
    "compute_digests",
    "copy_model_tree",
    "directory_size",
    "sha256_file",
    "verify_digests",
]

MANIFEST_NAME = "MLmodel"
PYCACHE = "__pycache__"

# Files other tools add beside a saved model that do not change what it computes and
# that no loader reads.
_IGNORED_EXTRA = {"registered_model_meta"}


def _walk(root: Path) -> Iterator[tuple[Path, bool]]:
    """Every entry under ``root`` but ``__pycache__``: (path, is_symlink).

    Symlinked directories are yielded (as symlinks) and never descended into.
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        keep = []
        for d in sorted(dirnames):
            if d == PYCACHE:
                continue
            full = Path(dirpath, d)
            if full.is_symlink():
                yield full, True
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            full = Path(dirpath, name)
            yield full, full.is_symlink()


def _files(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` (the digest walk)."""
    for p, link in _walk(root):
        if not link:
            yield p


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def compute_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` except MLmodel, keyed by relative POSIX path.

    Raises:
        ModelFormatError: ``root`` holds a symlink (satchel saves regular files only).
    """
    out = {}
    for p, link in _walk(root):
        rel = p.relative_to(root).as_posix()
        if link:
            raise ModelFormatError(
                f"{rel} is a symlink; a model directory with digests holds regular files only",
                path=str(root),
            )
        if rel != MANIFEST_NAME:
            out[rel] = sha256_file(p)
    return out


def verify_digests(root: Path, digests: dict[str, str]) -> None:
    """Raise IntegrityError naming the first file that is missing, changed, unexpected or
    a symlink: after this, every loadable file under ``root`` is one the digests cover."""
    for rel, want in digests.items():
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or PYCACHE in parts:
            raise IntegrityError(
                f"artifact_digests names {rel!r}, which is not a file inside the model",
                file=rel,
                path=str(root),
            )
        p = root / rel
        if p.is_symlink() or not p.is_file():
            raise IntegrityError(
                f"{rel} is missing from the model directory {root}"
                if not p.is_symlink()
                else f"{rel} is a symlink; the digests cover regular files only",
                file=rel,
                path=str(root),
            )
        if sha256_file(p) != want:
            raise IntegrityError(
                f"{rel} was modified after the model was saved "
                "(sha256 does not match MLmodel's artifact_digests)",
                file=rel,
                path=str(root),
            )
    for p, link in _walk(root):
        rel = p.relative_to(root).as_posix()
        if link:
            raise IntegrityError(
                f"{rel} is a symlink, which the digests do not cover; a model directory "
                "with digests holds regular files only",
                file=rel,
                path=str(root),
            )
        if rel == MANIFEST_NAME or rel in digests or rel in _IGNORED_EXTRA:
            continue
        # An added file could be loaded (code/ is importable, a manifest may name it),
        # hidden or not: refuse it.
        raise IntegrityError(
            f"{rel} was added to the model directory after it was saved", file=rel, path=str(root)
        )


def check_symlinks(root: Path) -> None:
    """For a directory without digests: refuse any symlink that resolves outside it."""
    base = root.resolve()
    for p, link in _walk(base):
        if not link:
            continue
        target = p.resolve()
        if target != base and base not in target.parents:
            rel = p.relative_to(base).as_posix()
            raise ModelFormatError(
                f"{rel} is a symlink that leaves the model directory", path=str(base)
            )


def copy_model_tree(src: Path, dst: Path) -> None:
    """Copy a model directory without ever reading a file outside it.

    Symlinks that stay inside are copied as the files they point to; one that leads
    outside (a symlinked folder or a hidden symlink to a host file) is refused, checked
    again for every entry as it is copied. ``__pycache__`` is left behind.

    Raises:
        ModelFormatError: an entry leads outside ``src``.
    """
    base = src.resolve()

    def _inside(path: str) -> None:
        target = Path(path).resolve()
        if target != base and base not in target.parents:
            rel = os.path.relpath(path, base)
            raise ModelFormatError(
                f"{rel} is a symlink that leads outside the model directory; it is not "
                "copied",
                path=str(base),
            )

    def _ignore(directory: str, names: list[str]) -> set[str]:
        for name in names:
            _inside(os.path.join(directory, name))
        return {PYCACHE} & set(names)

    def _copy(s: str, d: str) -> object:
        _inside(s)
        return shutil.copy2(s, d)

    check_symlinks(base)
    shutil.copytree(base, dst, ignore=_ignore, copy_function=_copy)


def directory_size(root: Path) -> int:
    """Total bytes of every file under ``root``."""
    return sum(p.stat().st_size for p in _files(root))


def atomic_write_text(dest: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to a hidden temporary sibling, then rename it onto ``dest``: readers
    see the old file or the whole new one, and a failed write leaves nothing behind."""
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
