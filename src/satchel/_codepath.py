"""Import a model's code paths from source only, after everything else on ``sys.path``.

A model's ``code/`` directory is code that runs on load, so it must never decide which
module an installed name means: it is appended to ``sys.path`` (never inserted ahead),
after the flavor's own libraries are imported. Its modules are compiled from the
digested source every time: no ``__pycache__`` file is read (an unchecked-hash .pyc
would run instead of the source the digests cover) and none is written into the model.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import threading
from pathlib import Path
from types import CodeType
from typing import Any

_roots: set[str] = set()
_lock = threading.Lock()


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the .py file itself; never reads or writes bytecode caches."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)

    def set_data(self, path: str, data: Any, *, _mode: int = 0o666) -> None:
        return None


def _finder(path: str) -> importlib.machinery.FileFinder:
    return importlib.machinery.FileFinder(
        path,
        (_SourceOnlyLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )


def _hook(path: str) -> importlib.machinery.FileFinder:
    """sys.path hook: packages under a code path get the source-only finder too."""
    for root in _roots:
        if path == root or path.startswith(root + os.sep):
            return _finder(path)
    raise ImportError("not a model code path")


def add(directory: Path) -> None:
    """Make ``directory`` importable, last on ``sys.path``, source-only."""
    key = str(directory)
    with _lock:
        if _hook not in sys.path_hooks:
            sys.path_hooks.insert(0, _hook)
        _roots.add(key)
        sys.path_importer_cache[key] = _finder(key)
        if key not in sys.path:
            sys.path.append(key)
