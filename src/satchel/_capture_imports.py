"""``python -m satchel._capture_imports DIR``: load a model, predict on its input example,
and print the top-level modules the model's own code imported (JSON, last line).

An import counts when no other import is running and the first caller outside the
standard library is the model's code (its script, its code paths, classes it defined) or
satchel loading it (a flavor's lazy import, the unpickler resolving a class): what a
library imports for itself (xgboost trying scikit-learn) is that library's business,
not the model's requirement.
Run by :mod:`satchel.requirements` in a fresh interpreter, never in the caller's.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import sysconfig
from typing import Any

_STDLIB = tuple(
    os.path.realpath(p) + os.sep
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_SITE = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
_SATCHEL = os.sep + "satchel" + os.sep


def _counts(frame: Any) -> bool:
    """True when the import at ``frame`` was asked for by the model or satchel."""
    while frame is not None:
        name = frame.f_code.co_filename
        path = os.path.realpath(name)
        if name.startswith("<frozen") or (
            path.startswith(_STDLIB) and not any(s in path for s in _SITE)
        ):
            frame = frame.f_back  # importlib, pickle ...: ask who called them
            continue
        if any(s in path for s in _SITE):
            return _SATCHEL in path
        return True  # model code, a model script, satchel from a source checkout
    return False


def main(argv: list[str]) -> int:
    """Load, predict, print; a failure exits non-zero with its message on stderr."""
    from satchel.model import load_model

    seen: set[str] = set()
    real = builtins.__import__
    depth = [0]

    def recording(name: str, globals: Any = None, locals: Any = None,
                  fromlist: Any = (), level: int = 0) -> Any:
        # Imports made while another import runs belong to that module, not the model.
        if depth[0] == 0 and level == 0 and _counts(sys._getframe(1)):
            seen.add(name.split(".")[0])
        depth[0] += 1
        try:
            return real(name, globals, locals, fromlist, level)
        finally:
            depth[0] -= 1

    builtins.__import__ = recording
    try:
        model = load_model(argv[0], verify=False)
        example = model.input_example()
        if example is not None:
            model.predict(example.data, example.params)
    finally:
        builtins.__import__ = real
    print(json.dumps(sorted(seen)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as exc:  # reported to the parent as one line
        print(f"{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        sys.exit(1)
