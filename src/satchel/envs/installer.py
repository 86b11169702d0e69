"""Install requirements into an environment with uv (when present, for speed) or pip, and
turn an installer's failure into an error that says which requirement and why."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from satchel.errors import EnvironmentBuildError, WheelhouseMissingError

_NETWORK = re.compile(
    r"(Failed to establish a new connection|Network is unreachable|Temporary failure in name "
    r"resolution|Name or service not known|Connection refused|Could not fetch URL|"
    r"Max retries exceeded|error sending request|dns error|tcp connect error)", re.I)
_PIP_MISSING = re.compile(r"(?:No matching distribution found for|Could not find a version "
                          r"that satisfies the requirement) (\S+)")
_UV_MISSING = re.compile(r"Because (?:there is no version of )?([A-Za-z0-9][A-Za-z0-9._-]*)"
                         r"(?:[=<>!~]=?\S*)?(?: was not found| has no|, we can| and you)")
_FETCH = re.compile(r"Failed to fetch:? `?\S*/simple/([^/`\s]+)/?`?")


def find_uv() -> str | None:
    """The uv executable next to this Python or on PATH, or None."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("uv")


def install(python: Path, args: Sequence[str], *, model: str, wheelhouse: Path | None,
            uv: str | None) -> None:
    """Run ``pip install``-style ``args`` for the interpreter ``python``.

    Raises:
        MissingWheelError: the wheelhouse lacks a wheel (named).
        EnvironmentBuildError: the resolver failed (its message quoted) or the network was
            needed and unreachable (the requirement named).
    """
    source = (["--no-index", "--find-links", str(wheelhouse)] if wheelhouse is not None
              else [])
    if uv is not None:
        # Precompiled bytecode: an environment is built once and started many times.
        cmd = [uv, "pip", "install", "--python", str(python), "--quiet", "--compile-bytecode",
               *source, *args]
        if wheelhouse is not None:
            cmd.insert(3, "--offline")
        run_env = {**os.environ, "UV_NO_PROGRESS": "1"}
    else:
        cmd = [sys.executable, "-m", "pip", "--python", str(python), "install",
               "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
               *source, *args]
        run_env = dict(os.environ)
    # The model's environment must not see the host's virtualenv or PYTHONPATH.
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        run_env.pop(var, None)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=run_env)
    if proc.returncode != 0:
        raise explain(proc.stdout + "\n" + proc.stderr, model=model, wheelhouse=wheelhouse)


def index_url() -> str:
    """The package index the installers use (their environment variables, else PyPI)."""
    for var in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var]
    return "https://pypi.org/simple"


def index_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the index's host opens (pip does not always say why
    a requirement was not found; a refused connection is the usual reason offline)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(index_url())
    if url.scheme == "file":
        return True
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def explain(output: str, *, model: str, wheelhouse: Path | None) -> EnvironmentBuildError:
    """The error for an installer's failed run (pip's or uv's output)."""
    missing = (_PIP_MISSING.search(output) or _UV_MISSING.search(output)
               or _FETCH.search(output))
    req = missing.group(1).strip("'\",") if missing else None
    if req and wheelhouse is not None:
        return WheelhouseMissingError(
            f"model {model}: the wheelhouse {wheelhouse} has no wheel for {req} (this Python, "
            "this platform); add it with `satchel env prepare` on a machine with an index",
            requirement=req)
    if _NETWORK.search(output) or (req and not index_reachable()):
        what = f"requirement {req}" if req else "installing the requirements"
        return EnvironmentBuildError(
            f"model {model}: {what} needed the network, which is unreachable, and no "
            "--wheelhouse was given (prepare one with `satchel env prepare --wheelhouse DIR`)",
            requirement=req)
    block = re.search(r"The conflict is caused by:\s*\n(.+?)(?:\n\s*\n|\Z)", output, re.S)
    if block:
        why = "; ".join(ln.strip() for ln in block.group(1).splitlines() if ln.strip())
        return EnvironmentBuildError(f"model {model}: its requirements conflict: {why}",
                                     requirement=req)
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines
              if ln.startswith(("ERROR:", "error:", "cause:", "×", "╰─▶", "hint:"))] or lines[-3:]
    reason = " ".join(errors)[:800] if errors else "no output"
    if req:
        return EnvironmentBuildError(
            f"model {model}: requirement {req} does not resolve: {reason}", requirement=req)
    return EnvironmentBuildError(f"model {model}: installing its requirements failed: {reason}")
