"""Content-addressed artifact storage: blobs by sha256, version trees by tree digest.

A file is stored once under ``blobs/ab/<sha256>`` however many versions contain it; a
version's directory is materialised once under ``trees/<tree digest>/`` (hard links to
the blobs where the filesystem allows, copies otherwise) and never changes afterwards.
The same class backs a local registry's artifact root and a client's download cache:
a blob is only stored after its bytes hashed to the expected digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from satchel.errors import IntegrityError, ModelFormatError, RegistryInputError

_CHUNK = 1 << 20
MAX_FILES = 100_000


@dataclass(frozen=True)
class Tree:
    """A version's files: ``{relative POSIX path: (sha256, size)}`` and its digest."""

    files: dict[str, tuple[str, int]]

    @property
    def digest(self) -> str:
        """sha256 over the sorted ``path NUL sha256 LF`` lines: the tree's content address."""
        return tree_digest(self.files)

    @property
    def size_bytes(self) -> int:
        return sum(size for _, size in self.files.values())

    def to_json(self) -> str:
        return json.dumps({k: [v[0], v[1]] for k, v in sorted(self.files.items())})

    @classmethod
    def from_json(cls, text: str) -> Tree:
        data = json.loads(text)
        return cls({str(k): (str(v[0]), int(v[1])) for k, v in data.items()})


def tree_digest(files: dict[str, tuple[str, int]]) -> str:
    """The content address of a set of files (see :attr:`Tree.digest`)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel][0]}\n".encode())
    return h.hexdigest()


def check_relpath(rel: str) -> str:
    """Refuse a tree path that is absolute, climbs out, or is otherwise unsafe."""
    parts = rel.split("/")
    if (
        not rel
        or rel.startswith("/")
        or "\\" in rel
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 for c in rel)
        or len(rel) > 1024
    ):
        raise RegistryInputError(f"unsafe file path in a model tree: {rel[:60]!r}", field="path")
    return rel


def _is_hex_sha(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


class ArtifactStore:
    """Blobs and trees under one root directory (created on first use)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def blob_path(self, sha: str) -> Path:
        if not _is_hex_sha(sha):
            raise RegistryInputError("a blob digest is 64 lowercase hex characters", field="digest")
        return self.root / "blobs" / sha[:2] / sha

    def tree_path(self, digest: str) -> Path:
        if not _is_hex_sha(digest):
            raise RegistryInputError("a tree digest is 64 lowercase hex characters", field="digest")
        return self.root / "trees" / digest

    def has_blob(self, sha: str) -> bool:
        return self.blob_path(sha).is_file()

    def _tmpdir(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def put_blob(self, stream: BinaryIO, expected: str | None = None) -> tuple[str, int]:
        """Store a stream's bytes; returns (sha256, size). With ``expected``, bytes that
        hash differently are refused (IntegrityError) and nothing is stored."""
        if expected is not None:
            self.blob_path(expected)  # validates the digest's form before reading
        fd, tmp_name = tempfile.mkstemp(dir=self._tmpdir(), prefix="blob-")
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = h.hexdigest()
            if expected is not None and sha != expected:
                raise IntegrityError(
                    f"content does not match its digest (expected sha256 {expected[:12]}..., "
                    f"got {sha[:12]}...)",
                    file=expected,
                )
            dest = self.blob_path(sha)
            if dest.is_file():
                os.unlink(tmp_name)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_name, 0o444)
                os.replace(tmp_name, dest)
            return sha, size
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise

    def ingest(self, src: Path) -> Tree:
        """Copy every file of a model directory into blobs; returns its tree.

        Symlinks and special files are refused: a registered version must be exactly the
        bytes that were verified, not a pointer to something that can change later.
        """
        files: dict[str, tuple[str, int]] = {}
        for path, rel in _walk(src):
            with open(path, "rb") as f:
                files[rel] = self.put_blob(f)
        if not files:
            raise ModelFormatError(f"{src} holds no files", path=str(src))
        return Tree(files)

    def materialize(self, tree: Tree) -> Path:
        """The tree's directory, built from blobs on first use and verified once."""
        dest = self.tree_path(tree.digest)
        if dest.is_dir():
            return dest
        missing = [rel for rel, (sha, _) in tree.files.items() if not self.has_blob(sha)]
        if missing:
            raise IntegrityError(
                f"artifact store is missing the file {missing[0]} of tree {tree.digest[:12]}",
                file=missing[0],
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{tree.digest[:12]}-", dir=dest.parent))
        try:
            for rel, (sha, _) in tree.files.items():
                target = tmp / check_relpath(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                blob = self.blob_path(sha)
                try:
                    os.link(blob, target)
                except OSError:
                    shutil.copyfile(blob, target)
                    os.chmod(target, 0o444)
            verify_tree(tmp, tree)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.is_dir():  # another process won the race: keep theirs
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def blob_stream(self, sha: str) -> Iterator[bytes]:
        """A blob's bytes in chunks."""
        with open(self.blob_path(sha), "rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk


def verify_tree(root: Path, tree: Tree) -> None:
    """Every file hashes to its recorded digest and no file is missing or extra."""
    seen = set()
    for path, rel in _walk(root):
        seen.add(rel)
        want = tree.files.get(rel)
        if want is None:
            raise IntegrityError(f"{rel} is not part of version tree {tree.digest[:12]}", file=rel)
        if _sha256(path) != want[0]:
            raise IntegrityError(f"{rel} does not match its registered sha256", file=rel)
    for rel in tree.files:
        if rel not in seen:
            raise IntegrityError(f"{rel} is missing from the version's files", file=rel)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _walk(src: Path) -> Iterable[tuple[Path, str]]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        base = Path(dirpath)
        for d in list(dirnames):
            if d == "__pycache__":
                dirnames.remove(d)
            elif (base / d).is_symlink():
                raise ModelFormatError(
                    f"{(base / d).relative_to(src)} is a symlink; register real files only",
                    path=str(src),
                )
        dirnames.sort()
        for name in sorted(filenames):
            path = base / name
            rel = path.relative_to(src).as_posix()
            mode = os.lstat(path).st_mode
            if not stat.S_ISREG(mode):
                raise ModelFormatError(
                    f"{rel} is a symlink or special file; register real files only",
                    path=str(src),
                )
            count += 1
            if count > MAX_FILES:
                raise ModelFormatError(
                    f"{src} holds more than {MAX_FILES} files", path=str(src)
                )
            yield path, check_relpath(rel)

