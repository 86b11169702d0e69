"""The load opt-ins every command that loads a model takes, as ``load_model`` does.

``--no-code`` (``allow_code=False``; ``--no-pickle`` is its old name), ``--trust TYPE``
(skops ``trusted_types``), ``--require-digests`` (refuse a model without digests) and
``--allow-mlflow`` (load an MLflow model through mlflow itself, where satchel's own
loader does not cover it). Each falls back to a
``SATCHEL_*`` environment variable so container entrypoints can set them.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

ENV_NO_CODE = "SATCHEL_NO_CODE"
ENV_ALLOW_MLFLOW = "SATCHEL_ALLOW_MLFLOW"
ENV_TRUST = "SATCHEL_TRUSTED_TYPES"
ENV_REQUIRE_DIGESTS = "SATCHEL_REQUIRE_DIGESTS"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def add_load_options(p: argparse.ArgumentParser) -> None:
    """Add ``--no-code``/``--no-pickle``, ``--trust`` and ``--allow-mlflow`` to ``p``."""
    p.add_argument(
        "--no-code",
        "--no-pickle",
        dest="no_code",
        action="store_true",
        default=None,
        help="refuse models stored in formats that run code on load: pickle, "
        f"cloudpickle, Python source, torch.load (env {ENV_NO_CODE}=1)",
    )
    p.add_argument(
        "--trust",
        action="append",
        default=None,
        metavar="TYPE",
        help=f"a type a skops model may contain (repeatable; env {ENV_TRUST}, comma-separated)",
    )
    p.add_argument(
        "--require-digests",
        dest="require_digests",
        action="store_true",
        default=None,
        help="refuse a model whose MLmodel records no artifact_digests (one saved by "
        f"another tool), so every file loaded is checked (env {ENV_REQUIRE_DIGESTS}=1)",
    )
    p.add_argument(
        "--allow-mlflow",
        dest="allow_mlflow",
        action="store_true",
        default=None,
        help="load MLflow models satchel cannot load by itself through mlflow, which must "
        f"be installed (env {ENV_ALLOW_MLFLOW}=1)",
    )


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments for ``load_model`` from parsed options and the environment."""
    no_code = args.no_code if args.no_code is not None else _flag(ENV_NO_CODE)
    options: dict[str, Any] = {"allow_code": not no_code}
    trust = args.trust
    if trust is None:
        trust = [t.strip() for t in os.environ.get(ENV_TRUST, "").split(",") if t.strip()]
    if trust:
        options["trusted_types"] = list(trust)
    require = args.require_digests
    if require if require is not None else _flag(ENV_REQUIRE_DIGESTS):
        options["require_digests"] = True
    allow = args.allow_mlflow if args.allow_mlflow is not None else _flag(ENV_ALLOW_MLFLOW)
    if allow:
        options["allow_mlflow"] = True
    return options
