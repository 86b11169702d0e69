"""Requirements that match the model: what its code imports when loaded and run.

For models whose code satchel cannot see from the flavor alone (python models, models
from code, code paths), the model directory is loaded in a subprocess, run on its input
example, and the third-party top-level modules it imported are mapped to distributions
with :func:`importlib.metadata.packages_distributions`. Distributions that another one in
the list (or satchel itself) already requires are pruned, so a model that calls xgboost
gets ``xgboost``, not also numpy and scipy. The caller pins them at installed versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from satchel.env import requirement_name

# Never listed: satchel pins itself, and these are tooling, not runtime dependencies.
_NEVER = {"satchel", "pip", "setuptools", "wheel", "pkg-resources", "distribute"}
TIMEOUT_S = 300.0


def imported_modules(model_dir: Path, *, timeout: float = TIMEOUT_S) -> set[str] | None:
    """Top-level modules imported while ``model_dir`` loads and predicts on its input
    example, in a fresh interpreter with this one's ``sys.path``; None if that failed
    (a :class:`~satchel.errors.RequirementsWarning` says why)."""
    from satchel.errors import RequirementsWarning

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME",)}
    # The same import path as here, so classes pickled by reference import there too.
    paths = [p or os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if os.path.isdir(p))
    env["PYTHONWARNINGS"] = "ignore"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "satchel._capture_imports", str(model_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        warnings.warn(
            RequirementsWarning(
                f"inferring requirements took over {timeout:.0f}s; only the flavor's are listed"
            ),
            stacklevel=3,
        )
        return None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        warnings.warn(
            RequirementsWarning(
                f"could not load the model in a subprocess to infer its requirements "
                f"({last[:300]}); only the flavor's are listed (pass extra_pip_requirements)"
            ),
            stacklevel=3,
        )
        return None
    return set(json.loads(lines[-1]))


def distributions(modules: Iterable[str]) -> list[str]:
    """The distributions that provide ``modules``, minus the standard library, satchel,
    tooling, and any distribution another one in the list (or satchel) requires."""
    stdlib = set(sys.stdlib_module_names)
    mapping = metadata.packages_distributions()
    found: set[str] = set()
    for mod in modules:
        if mod in stdlib or mod.startswith("_"):
            continue
        for dist in mapping.get(mod, ()):
            found.add(dist)
    names = {requirement_name(d): d for d in found}
    names = {k: v for k, v in names.items() if k not in _NEVER}
    required: set[str] = set()
    for owner in [*names.values(), "satchel"]:
        required |= _requires(owner)
    kept = [d for k, d in names.items() if k not in required]
    return sorted(kept, key=str.lower)


def _requires(dist: str) -> set[str]:
    try:
        reqs = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return set()
    # Unconditional requirements only: an extra's packages are not implied.
    return {requirement_name(r) for r in reqs if "extra ==" not in r.replace("extra==", "extra ==")}


ENV_SWITCH = "SATCHEL_INFER_REQUIREMENTS"


def infer(model_dir: Path) -> list[str]:
    """Distribution names the model at ``model_dir`` needs (empty when inference failed,
    or when ``SATCHEL_INFER_REQUIREMENTS=0`` turns it off)."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    modules = imported_modules(model_dir)
    return distributions(modules) if modules else []
