"""Requirements that match the model: what its code imports when loaded and run.

For models whose code satchel cannot see from the flavor alone (python models, models
from code, code paths), the model directory is loaded in another process, run on its
input example, and the third-party top-level modules it imported are mapped to
distributions by the rule of :func:`importlib.metadata.packages_distributions`.
Distributions that another one in the list (or satchel itself) already requires are
pruned, so a model that calls xgboost gets ``xgboost``, not also numpy and scipy. The
caller pins them at installed versions.

That process is a fork of one warm interpreter kept for the life of this one (satchel
and pandas already imported), so only the first save in a process pays for starting
Python and importing pandas; each save still runs in a fresh fork, never in this process.
"""

from __future__ import annotations

import atexit
import csv
import importlib.machinery
import json
import os
import select
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from satchel.env import requirement_name

# Never listed: satchel pins itself, and these are tooling, not runtime dependencies.
_NEVER = {"satchel", "pip", "setuptools", "wheel", "pkg-resources", "distribute"}
TIMEOUT_S = 300.0


def imported_modules(model_dir: Path, *, timeout: float = TIMEOUT_S) -> set[str] | None:
    """Top-level modules imported while ``model_dir`` loads and predicts on its input
    example, in another process with this one's ``sys.path``, directory and environment;
    None if that failed (a :class:`~satchel.errors.RequirementsWarning` says why)."""
    from satchel.errors import RequirementsWarning

    job = {
        "dir": str(model_dir),
        # The same import path as here, so classes pickled by reference import there too.
        "path": [p or os.getcwd() for p in sys.path],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
    }
    try:
        answer = _SERVER.ask(job, timeout) if hasattr(os, "fork") else _one_shot(job, timeout)
    except TimeoutError:
        warnings.warn(
            RequirementsWarning(
                f"inferring requirements took over {timeout:.0f}s; only the flavor's are listed"
            ),
            stacklevel=3,
        )
        return None
    except OSError as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    if "error" in answer:
        warnings.warn(
            RequirementsWarning(
                f"could not load the model in a subprocess to infer its requirements "
                f"({str(answer['error'])[:300]}); only the flavor's are listed (pass "
                "extra_pip_requirements)"
            ),
            stacklevel=3,
        )
        return None
    return set(answer["modules"])


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME",)}
    paths = [p or os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if os.path.isdir(p))
    env["PYTHONWARNINGS"] = "ignore"
    # Capturing imports needs no thread pools, and fewer threads make forking safer.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


class _CaptureServer:
    """One warm ``python -m satchel._capture_imports --serve`` per process, started on the
    first save that infers requirements and reused by the next ones; each job runs in a
    fresh fork of it (see :func:`satchel._capture_imports.serve`). It exits when this
    process does (its stdin closes)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0
        self._lock = threading.Lock()

    def ask(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        with self._lock:
            proc = self._running()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps(job).encode() + b"\n")
                proc.stdin.flush()
            except OSError:
                self._stop()
                raise
            if not select.select([proc.stdout], [], [], timeout)[0]:
                self._stop()  # the model hangs: kill it and its server; the next save restarts
                raise TimeoutError
            line = proc.stdout.readline()
            if not line:
                self._stop()
                raise OSError("the capture process exited")
            return dict(json.loads(line))

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and (self._owner != os.getpid() or self._proc.poll() is not None):
            # A forked copy of this process must not share its parent's server.
            self._proc = None
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "satchel._capture_imports", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_server_env(),
                start_new_session=True,  # one process group: a timeout kills the job too
            )
            self._owner = os.getpid()
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()

    def close(self) -> None:
        """Stop the server (at exit)."""
        with self._lock:
            proc = self._proc
            if proc is None or self._owner != os.getpid():
                return
            self._proc = None
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_SERVER = _CaptureServer()
atexit.register(_SERVER.close)


def _one_shot(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    # Where there is no fork: a fresh interpreter per save.
    try:
        done = subprocess.run(
            [sys.executable, "-m", "satchel._capture_imports", job["dir"]],
            capture_output=True,
            text=True,
            env=_server_env(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return {"modules": json.loads(lines[-1])}


def distributions(modules: Iterable[str]) -> list[str]:
    """The distributions that provide ``modules``, minus the standard library, satchel,
    tooling, and any distribution another one in the list (or satchel) requires."""
    stdlib = set(sys.stdlib_module_names)
    wanted = {m for m in modules if m not in stdlib and not m.startswith("_")}
    found = {str(d.metadata["Name"]) for d in _providers(wanted)}
    names = {requirement_name(d): d for d in found}
    names = {k: v for k, v in names.items() if k not in _NEVER}
    required: set[str] = set()
    for owner in [*names.values(), "satchel"]:
        required |= _requires(owner)
    kept = [d for k, d in names.items() if k not in required]
    return sorted(kept, key=str.lower)


def _providers(modules: set[str]) -> list[metadata.Distribution]:
    """The installed distributions whose top-level modules include one of ``modules``.

    The rule of :func:`importlib.metadata.packages_distributions` (``top_level.txt``, else
    the modules the file list holds), but reading ``RECORD`` as text and parsing only the
    matching distributions' metadata: packages_distributions builds a path object per
    installed file and parses every distribution's metadata, 1-3 s in an environment
    with torch, tensorflow and scipy.
    """
    if not modules:
        return []
    out = []
    for dist in metadata.distributions():
        if _top_level(dist) & modules:
            out.append(dist)
    return out


_SUFFIXES = tuple(importlib.machinery.all_suffixes())


def _top_level(dist: metadata.Distribution) -> set[str]:
    declared = (dist.read_text("top_level.txt") or "").split()
    if declared:
        return set(declared)
    record = dist.read_text("RECORD")
    if record is not None:
        paths = [_record_path(line) for line in record.splitlines() if line]
    else:  # an egg-info or other installer: the slower generic file list
        paths = [str(f.as_posix()) for f in dist.files or ()]
    tops: set[str] = set()
    for path in paths:
        if not path.endswith(_SUFFIXES):
            continue
        head, sep, _ = path.partition("/")
        top = head if sep else path.split(".", 1)[0]
        # not __pycache__, numpy.libs, ../../bin: only names an import statement can use
        if top.isidentifier() and top != "__pycache__":
            tops.add(top)
    return tops


def _record_path(line: str) -> str:
    # RECORD is CSV (path,hash,size); only a path with a comma or quote is quoted.
    if line.startswith('"'):
        return next(csv.reader([line]))[0]
    return line.split(",", 1)[0]


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
