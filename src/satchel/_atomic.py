"""Publishing a directory atomically, when several processes save and load one path.

The guarantee (docs/format.md, "Saving and concurrent readers"):

- A save writes into a temporary sibling (``.NAME.tmp-PID-HOST-*``) and publishes it with one
  rename at the end, so a failed or killed save never changes the path.
- ``overwrite=False`` is decided by that rename: it refuses to replace anything (Linux
  ``renameat2(RENAME_NOREPLACE)``; elsewhere ``rename``, which refuses a non-empty
  directory). Of N processes saving to one new path exactly one wins; the others get
  :class:`~satchel.errors.ModelExistsError`.
- ``overwrite=True`` of an existing model publishes the new files as a versioned sibling
  ``.NAME.v-PID-HOST-*`` and makes the path a symlink to it, swapped in one step
  (``renameat2(RENAME_EXCHANGE)``, which also turns a plain directory into the symlink
  atomically). A loader resolves the path once, so it reads one whole version; if that
  version is removed under it, it resolves again. Without ``renameat2`` (not Linux, or a
  filesystem without it) a symlink is replaced by ``rename`` (still atomic) and a plain
  directory is moved aside first: the path is missing for the instant between two
  renames, and a save killed in that instant leaves the old model at ``.NAME.old-PID-HOST-*``,
  which the next save to that parent puts back.
- Every save first removes what killed saves left in the same parent directory:
  temporary and unlinked version directories whose process is gone (saves from another
  host name only after a day).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from satchel.errors import ModelExistsError

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
# .NAME.KIND-PID-HOST-RANDOM, the names this module gives its siblings. HOST tells this
# machine's (or container's) saves from others sharing the parent directory, whose PIDs
# mean nothing here.
_SIBLING = re.compile(
    r"^\.(?P<name>.+)\.(?P<kind>tmp|v|lnk|old)-(?P<pid>\d+)-(?P<host>[0-9a-f]{6})-[0-9a-f]{8}$"
)
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
# Leftovers of another host's saves are removed only once this old.
_FOREIGN_AGE_S = 24 * 3600.0
# An unlinked version directory whose saver is still alive is removed once this old
# (only on the fallback path, where the replaced version is not known exactly).
_ORPHAN_AGE_S = 3600.0


def _renameat2_fn() -> object | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2_fn()


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False when the OS or filesystem lacks it."""
    if _RENAMEAT2 is None:
        return False
    rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)  # type: ignore[operator]
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _sibling(parent: Path, name: str, kind: str) -> Path:
    return parent / f".{name}.{kind}-{os.getpid()}-{_HOST}-{secrets.token_hex(4)}"


def _exists_error(target: Path) -> ModelExistsError:
    return ModelExistsError(
        f"{target} already exists and is not empty; pass overwrite=True to replace it"
    )


def _occupied(target: Path) -> bool:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        return True
    return target.is_dir() and any(target.iterdir())


@contextlib.contextmanager
def atomic_directory(
    dest: str | os.PathLike[str], *, overwrite: bool = False, versioned: bool = True
) -> Iterator[Path]:
    """Yield a temporary sibling of ``dest``; on success publish it at ``dest`` atomically.

    Args:
        dest: the directory to create or replace.
        overwrite: replace what is at ``dest``; otherwise the final rename refuses to.
        versioned: on overwrite, publish as a versioned sibling behind a symlink (for
            paths that readers load concurrently); False swaps plain directories.

    Raises:
        ModelExistsError: ``overwrite`` is false and ``dest`` exists and is not an empty
            directory (checked early, and decided again by the final rename).
    """
    target = Path(dest).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    collect_garbage(target.parent)
    if not overwrite and _occupied(target):
        raise _exists_error(target)
    tmp = _sibling(target.parent, target.name, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        if overwrite:
            _replace(tmp, target, versioned=versioned)
        else:
            _publish_new(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish_new(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target`` only if nothing (but an empty directory) is there."""
    if not target.is_symlink() and target.is_dir():
        with contextlib.suppress(OSError):
            os.rmdir(target)  # only ever removes an empty directory
    try:
        if _renameat2(tmp, target, _RENAME_NOREPLACE):
            return
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise _exists_error(target)
        os.rename(tmp, target)  # refuses a non-empty directory
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise _exists_error(target) from None
        raise


def _replace(tmp: Path, target: Path, *, versioned: bool) -> None:
    parent, name = target.parent, target.name
    if not os.path.lexists(target):
        try:
            _publish_new(tmp, target)
            return
        except ModelExistsError:
            pass  # another save got there first: replace what it published
    if target.exists() and not target.is_dir():
        os.unlink(target)
        _publish_new(tmp, target)
        return
    if not versioned and not target.is_symlink():
        _swap_plain(tmp, target)
        return
    version = _sibling(parent, name, "v")
    os.rename(tmp, version)
    link = _sibling(parent, name, "lnk")
    os.symlink(version.name, link)  # relative: the pair can move together
    try:
        if _renameat2(link, target, _RENAME_EXCHANGE):
            _discard_old(parent, link)
            return
        if target.is_symlink():
            os.rename(link, target)
            return
        old = _sibling(parent, name, "old")
        os.rename(target, old)
        os.rename(link, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if os.path.lexists(link) and link.is_symlink():
            os.unlink(link)
        raise


def _discard_old(parent: Path, old: Path) -> None:
    """Remove what an exchange moved to ``old``: a plain directory, or a symlink and the
    version directory it pointed to (when that is one of ours)."""
    if old.is_symlink():
        dest = os.readlink(old)
        os.unlink(old)
        if "/" not in dest and _SIBLING.match(dest):
            shutil.rmtree(parent / dest, ignore_errors=True)
    else:
        shutil.rmtree(old, ignore_errors=True)


def _swap_plain(tmp: Path, target: Path) -> None:
    if _renameat2(tmp, target, _RENAME_EXCHANGE):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old directory
        return
    old = _sibling(target.parent, target.name, "old")
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect_garbage(parent: Path) -> list[str]:
    """Remove what killed saves left in ``parent``; return the names removed.

    Temporary directories and unlinked version directories whose process is gone are
    removed; an old model moved aside by an interrupted fallback overwrite is put back
    when nothing replaced it.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    linked = set()
    for e in entries:
        if e.is_symlink():
            with contextlib.suppress(OSError):
                linked.add(os.readlink(e.path))
    now = time.time()
    for e in entries:
        m = _SIBLING.match(e.name)
        if m is None or e.name in linked:
            continue
        kind = m["kind"]
        if m["host"] != _HOST:
            with contextlib.suppress(OSError):
                if now - e.stat(follow_symlinks=False).st_mtime > _FOREIGN_AGE_S:
                    _remove(e.path)
                    removed.append(e.name)
            continue
        pid_alive = _alive(int(m["pid"]))
        if kind == "v" and pid_alive:
            with contextlib.suppress(OSError):
                if now - e.stat(follow_symlinks=False).st_mtime > _ORPHAN_AGE_S:
                    _remove(e.path)
                    removed.append(e.name)
            continue
        if pid_alive:
            continue
        original = parent / m["name"]
        if kind == "old" and not os.path.lexists(original):
            with contextlib.suppress(OSError):
                os.rename(e.path, original)
                continue
        _remove(e.path)
        removed.append(e.name)
    return removed


def _remove(path: str) -> None:
    if os.path.islink(path) or not os.path.isdir(path):
        with contextlib.suppress(OSError):
            os.unlink(path)
    else:
        shutil.rmtree(path, ignore_errors=True)
