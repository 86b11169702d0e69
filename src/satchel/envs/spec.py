"""What environment a model needs: its Python minor version and its requirement lines.

The cache key is a hash of exactly what decides the environment's contents, so models
with the same requirements share one environment (and one worker when served).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from satchel import env as _env
from satchel._version import __version__
from satchel.errors import EnvironmentBuildError, PythonMismatchError

# Lines the environment gets otherwise: satchel is the host's own wheel; MLflow models
# list mlflow, which satchel does not need to load them (hundreds of MB).
_PROVIDED = {"satchel"}
_DROPPED = {"mlflow", "mlflow-skinny"}
_PYTHON = re.compile(r"^\s*python\s*:\s*['\"]?([0-9]+(?:\.[0-9]+){0,2})", re.M)
_MAX_LINES = 1_000


@dataclass(frozen=True)
class EnvSpec:
    """The environment of one model.

    Attributes:
        python: the Python ``major.minor`` it must run under (always the host's).
        requirements: pip requirement lines, satchel and mlflow removed, order kept.
        key: a short hash naming the environment in the cache.
        source: the model directory the spec was read from (for messages).
    """

    python: str
    requirements: tuple[str, ...]
    key: str
    source: str

    @classmethod
    def from_model(cls, directory: str | Path) -> EnvSpec:
        """Read ``python_env.yaml`` and ``requirements.txt`` of a model directory.

        Raises:
            PythonMismatchError: the model wants another Python minor version.
            EnvironmentBuildError: a requirement line is unusable (a local path, an option).
        """
        root = Path(directory)
        host = f"{sys.version_info.major}.{sys.version_info.minor}"
        wanted = _model_python(root)
        if wanted is not None and _minor(wanted) != host:
            raise PythonMismatchError(
                f"model {root.name} was saved for Python {wanted} but this interpreter is "
                f"Python {platform.python_version()}; satchel does not download interpreters: "
                f"run it under Python {_minor(wanted)}", wanted=wanted,
                host=platform.python_version())
        lines = _env.read_requirements(root)
        if len(lines) > _MAX_LINES:
            raise EnvironmentBuildError(f"model {root.name} lists {len(lines)} requirements "
                                        f"(more than {_MAX_LINES})")
        kept = []
        for line in lines:
            if line.startswith("-") or line.startswith((".", "/", "file:")):
                # -r/-e/--index-url would let a model point pip anywhere on the host.
                raise EnvironmentBuildError(
                    f"model {root.name}: requirement line {line!r} is an option or a local "
                    "path; environments take plain requirements only")
            name = _env.requirement_name(line)
            if name in _PROVIDED or name in _DROPPED:
                continue
            kept.append(line)
        return cls(host, tuple(kept), _key(host, kept), str(root))


def _model_python(root: Path) -> str | None:
    path = root / _env.PYTHON_ENV
    if not path.is_file():
        return None
    m = _PYTHON.search(path.read_text("utf-8", errors="replace")[:65536])
    return m.group(1) if m else None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def satchel_fingerprint() -> str:
    """Which satchel runs here: its version and its files' sizes and times.

    An environment installs the running satchel, so a changed satchel (a new release, or
    an edited source tree at the same version) must not reuse an environment built with
    the old one.
    """
    import os

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(__version__.encode())
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _key(python: str, requirements: list[str]) -> str:
    # Order-insensitive and whitespace-insensitive: the same set is the same environment.
    norm = sorted(re.sub(r"\s+", "", r).lower() for r in requirements)
    blob = json.dumps({"python": python, "satchel": satchel_fingerprint(),
                       "platform": sys.platform, "machine": platform.machine(),
                       "requirements": norm})
    return hashlib.sha256(blob.encode()).hexdigest()[:20]
