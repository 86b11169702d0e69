"""Filesystem helpers: atomic directory writes, digests, sizes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from satchel.errors import DestinationExistsError, IntegrityError

MANIFEST_NAME = "MLmodel"

# Files other tools add beside a saved model that do not change what it computes.
_IGNORED_EXTRA = {"registered_model_meta"}


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``dest``; on success rename it into place.

    On any exception the temporary directory is removed and ``dest`` is untouched, so
    a failed save leaves nothing behind. An existing non-empty ``dest`` is refused
    unless ``overwrite`` is true.
    """
    target = Path(dest).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise DestinationExistsError(
            f"{target} already exists and is not empty; pass overwrite=True to replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        old: Path | None = None
        if target.exists():
            # Move the old directory aside first so the swap is two renames, not a copy.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rmdir(old)
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            yield Path(dirpath, name)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def compute_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` except MLmodel, keyed by relative POSIX path."""
    out = {}
    for p in _files(root):
        rel = p.relative_to(root).as_posix()
        if rel != MANIFEST_NAME:
            out[rel] = sha256_file(p)
    return out


def verify_digests(root: Path, digests: dict[str, str]) -> None:
    """Raise IntegrityError naming the first file that is missing, changed or unexpected."""
    for rel, want in digests.items():
        p = root / rel
        if not p.is_file():
            raise IntegrityError(
                f"{rel} is missing from the model directory {root}", file=rel, path=str(root)
            )
        if sha256_file(p) != want:
            raise IntegrityError(
                f"{rel} was modified after the model was saved "
                "(sha256 does not match MLmodel's artifact_digests)",
                file=rel,
                path=str(root),
            )
    for p in _files(root):
        rel = p.relative_to(root).as_posix()
        if (
            rel == MANIFEST_NAME
            or rel in digests
            or rel in _IGNORED_EXTRA
            or p.name.startswith(".")
        ):
            continue
        # An added file could be code (code/ is on sys.path at load): refuse it.
        raise IntegrityError(
            f"{rel} was added to the model directory after it was saved", file=rel, path=str(root)
        )


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
