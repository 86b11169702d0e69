"""The captured environment: requirements.txt, python_env.yaml and conda.yaml."""

from __future__ import annotations

import platform
import re
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from satchel._version import __version__

REQUIREMENTS = "requirements.txt"
PYTHON_ENV = "python_env.yaml"
CONDA_ENV = "conda.yaml"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def python_version() -> str:
    """The running interpreter's full version, e.g. ``3.11.7``."""
    return platform.python_version()


def installed_version(package: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def pin(package: str) -> str:
    """``name==installed`` for a bare name; a requirement with a specifier is kept as is."""
    m = _NAME.match(package)
    if m is None or m.group(0).strip() != package.strip():
        return package.strip()
    v = installed_version(package)
    return f"{package}=={v}" if v else package


def requirement_name(req: str) -> str:
    """The normalised distribution name of a requirement line."""
    m = _NAME.match(req)
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() if m else req.strip().lower()


def build_requirements(
    defaults: Iterable[str],
    pip_requirements: Sequence[str] | None = None,
    extra_pip_requirements: Sequence[str] | None = None,
) -> list[str]:
    """The requirement lines of a model.

    ``pip_requirements`` replaces the defaults (satchel's own pin plus the flavor's pinned
    libraries); ``extra_pip_requirements`` is added to whichever list is used. Later
    lines win over earlier ones for the same package.
    """
    if pip_requirements is not None:
        base = [r.strip() for r in pip_requirements if r.strip()]
    else:
        base = [f"satchel=={__version__}", *(pin(p) for p in defaults)]
    merged: dict[str, str] = {}
    for req in [*base, *(r.strip() for r in extra_pip_requirements or () if r.strip())]:
        merged[requirement_name(req)] = req
    return list(merged.values())


def write_environment(directory: Path, requirements: Sequence[str]) -> None:
    """Write requirements.txt, python_env.yaml and conda.yaml into ``directory``."""
    py = python_version()
    (directory / REQUIREMENTS).write_text("".join(f"{r}\n" for r in requirements), "utf-8")
    build = [pin(p) for p in ("pip", "setuptools", "wheel")]
    lines = [
        f"python: {py}",
        "build_dependencies:",
        *(f"- {b}" for b in build),
        "dependencies:",
        f"- -r {REQUIREMENTS}",
    ]
    (directory / PYTHON_ENV).write_text("\n".join(lines) + "\n", "utf-8")
    pip_v = installed_version("pip")
    conda = [
        "name: satchel-env",
        "channels:",
        "- conda-forge",
        "dependencies:",
        f"- python={py}",
        f"- pip<={pip_v}" if pip_v else "- pip",
        "- pip:",
        *(f"  - {_yaml_quote(r)}" for r in requirements),
    ]
    (directory / CONDA_ENV).write_text("\n".join(conda) + "\n", "utf-8")


def _yaml_quote(s: str) -> str:
    return f"'{s}'" if any(c in s for c in ":#{}[],&*!|>'\"%@`") else s


def read_requirements(directory: Path) -> list[str]:
    """The requirement lines of a saved model (empty when it has no requirements.txt)."""
    path = directory / REQUIREMENTS
    if not path.is_file():
        return []
    return [
        ln.strip()
        for ln in path.read_text("utf-8").splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
