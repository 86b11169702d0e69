"""satchel's own wheel for an image, whatever way satchel was installed: from a source
directory into a venv whose setuptools is older than the build requirement (repacked,
no build), editable there (built in an isolated environment), and the error a failed
build reports (the backend's cause, not pip's "See above for details")."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from satchel.serving.images.wheels import build_failure
from tests.source_tree import copy_source_tree

OLD_SETUPTOOLS = "setuptools<70"


def _venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", OLD_SETUPTOOLS],
                   check=True, capture_output=True, timeout=300)
    # satchel's own dependencies come from the running environment (no download)
    # (after the venv's own site-packages, so its old setuptools is the one found first)
    site = next((path / "lib").glob("python3.*/site-packages"))
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    deps |= {p for p in sys.path if p.endswith("site-packages")}
    (site / "zz-deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    return python


def _own_wheel(python: Path, dest: Path) -> Path:
    code = ("import sys; from pathlib import Path; "
            "from satchel.serving.images.wheels import satchel_wheel; "
            "print(satchel_wheel(Path(sys.argv[1])))")
    out = subprocess.run([str(python), "-c", code, str(dest)], capture_output=True, text=True,
                         timeout=600, cwd=dest.parent, env={"PATH": "/usr/bin:/bin",
                                                           "HOME": str(dest.parent)})
    assert out.returncode == 0, out.stderr[-3000:]
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["dir-install", "editable"])
def test_own_wheel_with_an_old_setuptools(tmp_path: Path, editable: bool) -> None:
    python = _venv(tmp_path / "venv")
    version = subprocess.run([str(python), "-c", "import setuptools; print(setuptools."
                              "__version__)"], capture_output=True, text=True, check=True)
    assert int(version.stdout.split(".")[0]) < 77  # older than pyproject's build requirement
    src = tmp_path / "src"
    # a copy of the tree as a user would have it (no venvs, no build output)
    copy_source_tree(src)
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps"]
    if editable:
        install += ["-e"]
    subprocess.run([*install, str(src)], check=True, capture_output=True, timeout=600)
    dest = tmp_path / "out"
    wheel = _own_wheel(python, dest)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "satchel/serving/images/docker.py" in names
    assert "satchel/serving/server/dataplane.py" in names


def test_a_failed_build_quotes_the_backend_cause() -> None:
    pip_output = """
  error: subprocess-exited-with-error

  × Getting requirements to build wheel did not run successfully.
  │ exit code: 1
  ╰─> [14 lines of output]
      configuration error: `project.license` must be valid exactly by one definition
      GIVEN VALUE:
          "Apache-2.0"
      ValueError: invalid pyproject.toml config: `project.license`.
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
error: subprocess-exited-with-error

× Getting requirements to build wheel did not run successfully.
│ exit code: 1
╰─> See above for output.

note: This error originates from a subprocess, and is likely not a problem with pip.
hint: See above for details.
"""
    message = build_failure(pip_output)
    assert "project.license" in message and "must be valid" in message
    assert "See above" not in message and "hint" not in message
