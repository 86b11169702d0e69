"""The environment cache: one virtualenv per :class:`EnvSpec` key, built once, reused.

A build happens under a per-key file lock into a temporary sibling and is renamed into
place only after it imports satchel, so a crash or a concurrent builder never leaves a
half-built environment under the key. A cached environment that no longer works (its
interpreter gone, a package removed) is detected on use and rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from satchel.envs.installer import find_uv, install
from satchel.envs.spec import EnvSpec
from satchel.errors import EnvironmentBuildError

MARKER = "satchel-env.json"
_LOCK_TIMEOUT = 1800.0


def default_cache_dir() -> Path:
    """``$SATCHEL_ENV_CACHE``, else ``$XDG_CACHE_HOME/satchel/envs`` (``~/.cache``)."""
    if os.environ.get("SATCHEL_ENV_CACHE"):
        return Path(os.environ["SATCHEL_ENV_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "satchel", "envs")


@dataclass(frozen=True)
class Environment:
    """A built environment.

    Attributes:
        root: its directory.
        python: its interpreter (run it with ``-m satchel ...``).
        spec: what it was built for.
        built: True when this call built it, False when it came from the cache.
        seconds: how long ``ensure`` took.
    """

    root: Path
    python: Path
    spec: EnvSpec
    built: bool
    seconds: float


class EnvCache:
    """Builds and reuses model environments under one cache directory.

    Args:
        root: the cache directory (default :func:`default_cache_dir`).
        satchel_wheel: returns a wheel of the running satchel, written into the directory
            it is given (the CLI passes the image builder's; satchel is installed from it so
            the environment runs exactly the host's satchel).
        wheelhouse: install offline from this directory of wheels only.
        use_uv: None picks uv when it is installed, False forces pip.
    """

    def __init__(self, root: Path | None = None, *,
                 satchel_wheel: Callable[[Path], Path] | None = None,
                 wheelhouse: Path | None = None, use_uv: bool | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.satchel_wheel = satchel_wheel
        self.wheelhouse = Path(wheelhouse).resolve() if wheelhouse is not None else None
        if self.wheelhouse is not None and not self.wheelhouse.is_dir():
            raise EnvironmentBuildError(f"wheelhouse {self.wheelhouse} is not a directory")
        self.uv = find_uv() if use_uv in (None, True) else None
        if use_uv and self.uv is None:
            raise EnvironmentBuildError("uv was asked for but is not installed")

    def path_of(self, spec: EnvSpec) -> Path:
        return self.root / spec.key

    def ensure(self, spec: EnvSpec) -> Environment:
        """The environment for ``spec``, built if missing or broken."""
        start = time.perf_counter()
        target = self.path_of(spec)
        if _healthy(target):
            return Environment(target, _python(target), spec, False,
                               time.perf_counter() - start)
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f"{spec.key}.lock"):
            # Another process may have built it while this one waited for the lock.
            if _healthy(target):
                return Environment(target, _python(target), spec, False,
                                   time.perf_counter() - start)
            if target.exists():
                # Broken (a half-deleted tree, a removed interpreter): rebuild from scratch.
                shutil.rmtree(target, ignore_errors=True)
            self._build(spec, target)
        return Environment(target, _python(target), spec, True, time.perf_counter() - start)

    def _build(self, spec: EnvSpec, target: Path) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key}.build-", dir=self.root))
        try:
            # A venv's interpreter finds its packages relative to itself (pyvenv.cfg), so
            # the tree works after the rename; nothing here runs console scripts.
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp)],
                           check=True, capture_output=True)
            args = list(spec.requirements)
            if self.satchel_wheel is not None:
                wheel = self.satchel_wheel(tmp / ".satchel-wheel")
                # The serve extra: the commands that run inside (predict, batch, a model
                # worker) decode requests and tables as the host does.
                args.insert(0, f"satchel[serve] @ {wheel.resolve().as_uri()}")
            else:
                raise EnvironmentBuildError("no satchel wheel provider: environments install "
                                            "the running satchel's wheel")
            model = Path(spec.source).name
            install(_python(tmp), args, model=model, wheelhouse=self.wheelhouse, uv=self.uv)
            shutil.rmtree(tmp / ".satchel-wheel", ignore_errors=True)
            probe = subprocess.run([str(_python(tmp)), "-c", "import satchel, sys; "
                                    "print(satchel.__version__)"],
                                   capture_output=True, text=True, check=False,
                                   env=_clean_env())
            if probe.returncode != 0:
                raise EnvironmentBuildError(f"model {model}: the built environment cannot "
                                            f"import satchel: {probe.stderr.strip()[-300:]}")
            (tmp / MARKER).write_text(json.dumps({
                "key": spec.key, "python": spec.python, "requirements": list(spec.requirements),
                "built_at": time.time(), "installer": "uv" if self.uv else "pip"}), "utf-8")
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._sweep()

    def _sweep(self) -> None:
        """Remove build directories that a killed build left behind (older than an hour)."""
        cutoff = time.time() - 3600
        for p in self.root.glob(".*.build-*"):
            with contextlib.suppress(OSError):
                if p.stat().st_mtime < cutoff:
                    shutil.rmtree(p, ignore_errors=True)


def _python(root: Path) -> Path:
    return root / "bin" / "python"


def _healthy(root: Path) -> bool:
    """Marker present and interpreter runnable (a cheap stat, then a real check once)."""
    marker = root / MARKER
    python = _python(root)
    if not marker.is_file() or not python.exists():
        return False
    try:
        json.loads(marker.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    site = list(root.glob("lib/python*/site-packages/satchel"))
    return bool(site)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as f:
        deadline = time.monotonic() + _LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EnvironmentBuildError(
                        f"timed out waiting for another build of {path.stem}") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
