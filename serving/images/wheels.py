"""The wheelhouse of a serving image: every wheel it installs, gathered on the host.

pip cannot reach an index inside ``docker build --network none``, so the wheels for the
image's platform and Python version are downloaded here, with the wheel of the satchel
doing the build (built from its source tree, or repacked from its installed files), so
the image runs the same satchel as the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform as _platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from itertools import chain
from pathlib import Path
from typing import Any

from satchel import env
from satchel._version import __version__
from satchel.errors import ImageBuildError, MissingWheelError

# Oldest glibc the downloaded wheels may need: Debian 10+, Ubuntu 20.04+, RHEL 8+ bases.
MANYLINUX = "manylinux_2_28"
_ARCHES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
# MLflow models list mlflow itself; satchel serves them without it (hundreds of MB).
_DROPPED = {"mlflow", "mlflow-skinny"}
_KEEP_WHEELS = 8
_SOURCE_IGNORE = {".git", ".hg", ".venv", "venv", "build", "dist", "__pycache__", ".tox",
                  ".nox", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}


def resolve_platform(platform: str | None = None) -> tuple[str, str]:
    """``(docker platform, pip platform tag)``, e.g. ``("linux/amd64", "manylinux_2_28_x86_64")``.

    ``None`` means the host's architecture.
    """
    if platform is None:
        arch = _ARCHES.get(_platform.machine().lower())
        if arch is None:
            raise ImageBuildError(f"no default image platform for a {_platform.machine()} "
                                  "host: pass --platform linux/amd64 or linux/arm64")
    else:
        parts = platform.lower().split("/")
        arch = _ARCHES.get(parts[1]) if len(parts) in (2, 3) and parts[0] == "linux" else None
        if arch is None:
            raise ImageBuildError(f"unsupported image platform {platform!r}: use linux/amd64 "
                                  "or linux/arm64")
    return ("linux/amd64" if arch == "x86_64" else "linux/arm64"), f"{MANYLINUX}_{arch}"


def compatible_tags(pip_platform: str) -> list[str]:
    """Every manylinux platform tag a system of ``pip_platform``'s glibc runs, newest first
    (for ``pip download --platform``, which matches tags exactly: given only
    ``manylinux_2_28_x86_64`` it skips a wheel tagged ``manylinux_2_17_x86_64`` alone, as
    orjson's are, and falls back to an old release that carried the newer tag).

    Older glibc tags run on a newer glibc (PEP 600); the legacy aliases (manylinux2014,
    2010, 1) are listed too, for wheels tagged with them only.
    """
    m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", pip_platform)
    if m is None:
        return [pip_platform]
    glibc, arch = int(m.group(1)), m.group(2)
    oldest = 5 if arch == "x86_64" else 17  # manylinux1 / manylinux2014 (aarch64's first)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, oldest - 1, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{arch}" for minor, name in legacy.items() if oldest <= minor <= glibc]
    return tags


def image_requirements(lines: list[str], say: Callable[[str], None], *,
                       with_mlflow: bool = False) -> list[str]:
    """The model's requirement lines minus those the image satisfies otherwise.

    A ``satchel`` line must accept this satchel's version: its own wheel is the one
    installed, so the image runs exactly the satchel that built it. mlflow is dropped
    unless ``with_mlflow`` (the image loads the model through mlflow, ``--allow-mlflow``).
    """
    kept = []
    for line in lines:
        name = env.requirement_name(line)
        if name in _DROPPED and not with_mlflow:
            say(f"not installing {line!r}: satchel serves MLflow models without mlflow")
        elif name == "satchel":
            if not _accepts(line, __version__):
                raise ImageBuildError(
                    f"the model requires {line.strip()} but images run the building satchel "
                    f"({__version__}); build with a matching satchel or re-save the model")
        else:
            kept.append(line)
    return kept


def _accepts(line: str, version: str) -> bool:
    import importlib

    mod: Any = None
    # packaging itself when installed, else the copy pip always carries.
    for name in ("packaging.requirements", "pip._vendor.packaging.requirements"):
        try:
            mod = importlib.import_module(name)
            break
        except ImportError:
            continue
    if mod is None:
        raise ImageBuildError("checking the model's satchel requirement needs 'packaging'")
    try:
        return bool(mod.Requirement(line).specifier.contains(version, prereleases=True))
    except mod.InvalidRequirement:
        raise ImageBuildError(f"invalid requirement line {line.strip()!r}") from None


def download_wheels(requirements: list[str], satchel_whl: Path, dest: Path, *,
                    platform: str, python_version: str, parquet: bool = True) -> list[str]:
    """Download into ``dest`` every wheel of ``requirements`` + ``satchel[serve]``.

    ``satchel_whl`` is the satchel installed (pip takes it from its file, never from an
    index); ``parquet=False`` leaves pyarrow out of the serve extra. Returns
    ``name==version`` pins for the third-party wheels (satchel's own is not kept in
    ``dest``: it goes in a layer of its own).

    Raises:
        MissingWheelError: pip found no wheel of a requirement for this platform.
        ImageBuildError: pip failed otherwise (conflict, network); its reason is quoted.
    """
    pip_platform = resolve_platform(platform)[1]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="satchel-req-") as tmp:
        req_file = Path(tmp, "requirements.txt")
        lines = [*requirements, *_satchel_lines(satchel_whl, parquet)]
        req_file.write_text("".join(f"{ln}\n" for ln in lines), "utf-8")
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:",
               *chain.from_iterable(("--platform", tag) for tag in compatible_tags(pip_platform)),
               "--python-version", python_version,
               "--implementation", "cp", "--dest", str(dest), "--requirement", str(req_file),
               "--disable-pip-version-check", "--progress-bar", "off"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        target = f"{platform} ({pip_platform}), CPython {python_version}"
        raise _pip_error(proc.stdout + proc.stderr, target)
    pins = []
    for whl in sorted(dest.glob("*.whl")):
        name, version = whl.name.split("-")[:2]
        if env.requirement_name(name) == "satchel":
            whl.unlink()
        else:
            pins.append(f"{env.requirement_name(name)}=={version}")
    return pins


def _satchel_lines(wheel: Path, parquet: bool) -> list[str]:
    url = wheel.resolve().as_uri()
    if parquet:
        return [f"satchel[serve] @ {url}"]
    # The serve extra's requirements, read from the wheel's own metadata, minus pyarrow.
    import zipfile
    from email.parser import Parser

    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        requires = Parser().parsestr(zf.read(name).decode("utf-8")).get_all("Requires-Dist")
    serve = [r.split(";")[0].strip() for r in requires or ()
             if re.search(r"""extra\s*==\s*['"]serve['"]""", r)]
    return [f"satchel @ {url}", *(r for r in serve if env.requirement_name(r) != "pyarrow")]


def _pip_error(output: str, target: str) -> ImageBuildError:
    m = re.search(r"No matching distribution found for (\S+)", output)
    if m:
        req = m.group(1)
        return MissingWheelError(
            f"no wheel of {req} for {target}: the image installs wheels only (no compilers); "
            "pin a version that publishes one, or change --platform/--base-image",
            package=env.requirement_name(req))
    m = re.search(r"The conflict is caused by:\s*\n(.+?)(?:\n\s*\n|\Z)", output, re.S)
    if m:
        why = "; ".join(ln.strip() for ln in m.group(1).splitlines() if ln.strip())
        return ImageBuildError(f"the model's requirements conflict for {target}: {why}")
    errors = [ln.strip() for ln in output.splitlines() if ln.startswith("ERROR:")]
    last = errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1]
    return ImageBuildError(f"pip download failed for {target}: {last}")


# --- satchel's own wheel ---------------------------------------------------------------

def satchel_wheel(dest: Path) -> Path:
    """A wheel of the running satchel, copied into ``dest``.

    An editable or directory install is built from its source tree (a copy, so the tree
    is untouched), cached by the tree's file sizes and times; any other install is
    repacked from its installed files, so the wheel matches what runs here.
    """
    dest.mkdir(parents=True, exist_ok=True)
    dist = _installed_dist()
    root = _source_root(dist)
    if root is None or not _editable(dist):
        # A non-editable install from a source directory runs its installed files, not
        # the tree (which may have changed since): repack those, no build (and no build
        # backend of the right version) needed.
        return repack_installed(dist, dest)
    cache = _cache_dir() / "satchel-wheel" / _tree_fingerprint(root)
    cached = sorted(cache.glob("satchel-*.whl")) if cache.is_dir() else []
    if not cached:
        cached = [_build_wheel(root, cache)]
        # Keep the few newest source states only: every edit makes a new one.
        olds = sorted(cache.parent.iterdir(), key=lambda p: p.stat().st_mtime)[:-_KEEP_WHEELS]
        for old in olds:
            shutil.rmtree(old, ignore_errors=True)
    return Path(shutil.copy2(cached[0], dest / cached[0].name))


def _installed_dist() -> metadata.Distribution:
    # Not metadata.distribution(): from a source checkout it may return the checkout's
    # satchel.egg-info (the current directory is on sys.path), which lists no wheel files.
    found = list(metadata.distributions(name="satchel"))
    for key in ("direct_url.json", "RECORD"):
        for dist in found:
            if dist.read_text(key):
                return dist
    raise ImageBuildError("satchel is not installed (no dist-info found): install it with pip "
                          "to build images")


def _source_root(dist: metadata.Distribution) -> Path | None:
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    info = json.loads(raw)
    url = str(info.get("url", ""))
    if "dir_info" not in info or not url.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    root = Path(unquote(urlparse(url).path))
    return root if (root / "pyproject.toml").is_file() else None


def _editable(dist: metadata.Distribution) -> bool:
    raw = dist.read_text("direct_url.json") or "{}"
    try:
        return bool(json.loads(raw).get("dir_info", {}).get("editable", False))
    except (ValueError, AttributeError):
        return False


def _cache_dir() -> Path:
    if os.environ.get("SATCHEL_CACHE_DIR"):
        return Path(os.environ["SATCHEL_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "satchel")


def _source_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SOURCE_IGNORE and not d.endswith(
            ".egg-info") and not (Path(dirpath, d, "pyvenv.cfg")).exists())
        out.extend(Path(dirpath, f) for f in sorted(files) if not f.endswith(".pyc"))
    return out


def _tree_fingerprint(root: Path) -> str:
    h = hashlib.sha256(__version__.encode())
    for p in _source_files(root):
        st = p.lstat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _build_wheel(root: Path, cache: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="satchel-src-") as tmp:
        tree = Path(tmp, "src")
        for p in _source_files(root):
            target = tree / p.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            if p.is_symlink():
                os.symlink(os.readlink(p), target)
            else:
                shutil.copy2(p, target)
        out = Path(tmp, "out")
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
               "--disable-pip-version-check", "--wheel-dir", str(out), str(tree)]
        if _build_requires_installed(root):
            cmd.insert(4, "--no-build-isolation")
        # A fixed timestamp makes the wheel byte-identical for identical sources.
        run_env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=run_env)
        wheels = sorted(out.glob("satchel-*.whl"))
        if proc.returncode != 0 or not wheels:
            isolated = "--no-build-isolation" not in cmd
            raise ImageBuildError(
                f"could not build satchel's wheel from {root} "
                f"({'in an isolated build environment' if isolated else 'with this environment'}"
                f"'s build backend): {build_failure(proc.stderr + proc.stdout)}")
        cache.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], cache / wheels[0].name))


def _build_requires_installed(root: Path) -> bool:
    """True when every build requirement is installed here at a version it accepts (an
    older setuptools than ``setuptools>=77`` is not good enough: then pip builds in an
    isolated environment with the right one)."""
    import tomllib

    try:
        build = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))["build-system"]
        return all(_satisfied(r) for r in build["requires"])
    except (KeyError, OSError, tomllib.TOMLDecodeError):
        return False


def _satisfied(requirement: str) -> bool:
    version = env.installed_version(env.requirement_name(requirement))
    if version is None:
        return False
    try:
        return _accepts(requirement, version)
    except ImageBuildError:  # unreadable: let pip decide in an isolated build
        return False


_NOISE = re.compile(r"^\s*(hint|note|╰─>|\[end of output\]|See above|×)", re.IGNORECASE)
_CAUSE = re.compile(r"(error|exception|invalid|must be|requires|not found|no module)",
                    re.IGNORECASE)


def build_failure(output: str) -> str:
    """The lines of a failed pip build that say why (not pip's "See above for details").

    pip wraps the backend's own error in boxes and hints; the cause is the backend's
    last error-like lines, quoted here (at most three).
    """
    lines = [ln.strip(" |│") for ln in output.splitlines()]
    lines = [ln.strip() for ln in lines if ln.strip() and not _NOISE.match(ln.strip())]
    causes = [ln for ln in lines if _CAUSE.search(ln)
              and "subprocess-exited-with-error" not in ln
              and "metadata-generation-failed" not in ln]
    picked = causes[-3:] or lines[-3:] or ["pip printed nothing"]
    return " / ".join(ln[:300] for ln in picked)


def repack_installed(dist: metadata.Distribution, dest: Path) -> Path:
    """Zip an installed (non-editable) distribution back into a wheel."""
    import base64
    import zipfile

    name = env.requirement_name(dist.metadata["Name"]).replace("-", "_")
    info = f"{name}-{dist.version}.dist-info"
    skip = {f"{info}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    files = [f for f in dist.files or () if f.parts[0] != ".." and "__pycache__" not in f.parts
             and str(f.as_posix()) not in skip]
    path = dest / f"{name}-{dist.version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(files, key=lambda f: f.as_posix()):
            data = Path(str(dist.locate_file(f))).read_bytes()
            zf.writestr(zipfile.ZipInfo(f.as_posix(), (1980, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{f.as_posix()},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", (1980, 1, 1, 0, 0, 0)),
                    "\n".join(record) + "\n")
    return path
