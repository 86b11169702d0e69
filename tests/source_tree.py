"""A copy of satchel's source tree as a user would have it: the files git knows (tracked,
or new and not ignored), never the virtualenvs, build output or caches beside them.

Copying the working directory wholesale copied CI's `.venv-test` (gigabytes) once per
test that builds satchel from source, and filled the disk."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Used only where git is missing (an unpacked sdist): everything a build would not read.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", ".mlflow-venv*", "build", "dist", "*.egg-info", "__pycache__",
    ".*_cache", "quickstart-out",
)


def source_files(repo: Path = REPO) -> list[Path] | None:
    """The repository's source files relative to it, or None when git cannot list them."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"],
            capture_output=True, timeout=60, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return [Path(name) for name in done.stdout.decode().split("\0") if name]


def copy_source_tree(dest: Path, *, tests: bool = True, repo: Path = REPO) -> Path:
    """Copy the source tree into `dest` (created) and return it; `tests=False` leaves the
    test suite out."""
    files = source_files(repo)
    if files is None:
        shutil.copytree(repo, dest, symlinks=True, ignore=_NOT_SOURCE)
        if not tests:
            shutil.rmtree(dest / "tests", ignore_errors=True)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for rel in files:
        if not tests and rel.parts[0] == "tests":
            continue
        src = repo / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree but not yet in the index
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dest
