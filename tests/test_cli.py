"""The satchel command: info, validate, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SATCHEL = [sys.executable, "-m", "satchel.cli"]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SATCHEL, *args], capture_output=True, text=True, input=input, timeout=120
    )


def test_info_describes_the_model(iris_model_dir: Path) -> None:
    r = run("info", str(iris_model_dir))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "python_function, sklearn (loaded by: sklearn)" in out
    assert "runs code on load: cloudpickle" in out
    assert "digests    ok (6 files)" in out
    assert "sepal_length" in out and "double" in out and "scikit-learn==" in out


def test_info_json(iris_model_dir: Path) -> None:
    info = json.loads(run("info", "--json", str(iris_model_dir)).stdout)
    assert info["inputs"][0] == ["sepal_length", "double", "required"]
    assert info["loader_module"] == "mlflow.sklearn"


def test_info_reports_tampering_without_failing(tmp_path: Path, iris_model_dir: Path) -> None:
    shutil.copytree(iris_model_dir, tmp_path / "m")
    (tmp_path / "m/requirements.txt").write_text("evil\n")
    r = run("info", str(tmp_path / "m"))
    assert r.returncode == 0 and "FAILED: requirements.txt was modified" in r.stdout


def test_validate_ok_and_tampered(tmp_path: Path, iris_model_dir: Path) -> None:
    r = run("validate", str(iris_model_dir))
    assert r.returncode == 0 and "predicted 5 rows" in r.stdout
    shutil.copytree(iris_model_dir, tmp_path / "m")
    with open(tmp_path / "m/model.pkl", "ab") as f:
        f.write(b"x")
    r = run("validate", str(tmp_path / "m"))
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "satchel: error: model.pkl was modified after the model was "
        "saved (sha256 does not match MLmodel's artifact_digests)"
    )
    assert "Traceback" not in r.stderr


def test_debug_prints_traceback(tmp_path: Path) -> None:
    r = run("--debug", "info", str(tmp_path))
    assert r.returncode == 1 and "Traceback" in r.stderr and "has no MLmodel file" in r.stderr


@pytest.mark.parametrize("args", [(), ("info",), ("frobnicate",), ("info", "--bogus", "x")])
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    assert run(*args).returncode == 2


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("satchel ")
