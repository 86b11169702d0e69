"""Helpers for the bad-input cases every native-format flavor shares."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


def _set_flavor_key(path: Path, flavor: str, key: str, value: Any) -> None:
    """Change one key of a flavor's MLmodel section (MLmodel itself is not digested)."""
    mlmodel = path / "MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    doc["flavors"][flavor][key] = value
    mlmodel.write_text(yaml.safe_dump(doc))


@pytest.fixture
def set_flavor_key() -> Callable[[Path, str, str, Any], None]:
    """``set_flavor_key(model_dir, flavor, key, value)``."""
    return _set_flavor_key


def _load_without(path: Path, *modules: str) -> dict[str, str]:
    """Load ``path`` in a fresh interpreter where ``modules`` cannot be imported.

    ``sys.modules[name] = None`` is how Python itself marks a module as unimportable, so
    the flavor meets the same ImportError a machine without the library gives.
    """
    code = textwrap.dedent(f"""
        import json, sys
        for name in {list(modules)!r}:
            sys.modules[name] = None
        import satchel
        try:
            satchel.load_model({str(path)!r})
            print(json.dumps({{"error": None}}))
        except Exception as exc:
            print(json.dumps({{"error": type(exc).__name__, "message": str(exc),
                              "import_error": isinstance(exc, ImportError)}}))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture
def load_without() -> Callable[..., dict[str, str]]:
    """``load_without(model_dir, *modules) -> {"error", "message"}`` (subprocess)."""
    return _load_without
