"""Which models may run code when loaded: the ``allow_code`` switch (and its deprecated
alias ``allow_pickle``), and the refusal every entry point gives before any work when a
model stored as code (cloudpickle, Python source) is not allowed to run it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from satchel import plugins
from satchel.errors import CodeNotAllowedError
from satchel.flavor import Flavor, LoadConfig
from satchel.manifest import Manifest


def code_format(flavor: Flavor, config: LoadConfig) -> str | None:
    """The format of a model that runs code when loaded (``"cloudpickle"``, ``"python
    source"``), or None, as its flavor reports it."""
    unsafe = getattr(flavor, "unsafe_format", None)
    return unsafe(config) if unsafe is not None else None


def refuse_code(root: Path, fmt: str | None, allow_code: bool) -> None:
    """Raise :class:`CodeNotAllowedError` when ``fmt`` runs code and it is not allowed.

    Entry points that load a model later or elsewhere (a Spark executor, an image) call
    this first, so the refusal comes before any work, from the caller's process.
    """
    if fmt and not allow_code:
        raise CodeNotAllowedError(
            f"{root.name} is stored as {fmt}, which runs code when loaded; it was refused "
            "because allow_code=False"
        )


def check_load_options(path: str | os.PathLike[str], **options: Any) -> None:
    """Check, without loading, that ``load_model(path, **options)`` would not be refused for
    running code (``allow_code=False``) and that a flavor loads it.

    Raises:
        CodeNotAllowedError, FlavorNotFoundError, ModelFormatError: as ``load_model``.
    """
    allow = code_allowed(
        bool(options.get("allow_code", True)), options.get("allow_pickle"), stacklevel=3
    )
    root = Path(path).expanduser().resolve()
    manifest = Manifest.read(root)
    flavor = plugins.for_manifest(manifest, source=str(root / "MLmodel"))
    config = LoadConfig(
        section=dict(manifest.flavors.get(flavor.name) or {}),
        pyfunc=dict(manifest.pyfunc or {}),
        options=dict(options),
    )
    refuse_code(root, code_format(flavor, config), allow)


def code_allowed(allow_code: bool, allow_pickle: bool | None, *, stacklevel: int = 2) -> bool:
    """Resolve ``allow_code`` and its deprecated alias ``allow_pickle`` into one switch.

    Raises:
        TypeError: both are given and disagree.
    """
    if allow_pickle is None:
        return bool(allow_code)
    warnings.warn(
        "allow_pickle is deprecated; use allow_code (it covers every format that runs code "
        "on load, not only pickle)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
    if not allow_code and allow_pickle:
        raise TypeError("allow_code=False and allow_pickle=True contradict each other")
    return bool(allow_pickle) and bool(allow_code)
