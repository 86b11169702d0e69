"""A throwaway virtualenv with real MLflow, and a way to run scripts in it.

MLflow is never imported in the test process: satchel must work without it, and the
MLflow side must work without satchel. Scripts run in the side venv by subprocess and
exchange files (MLmodel directories, .npy arrays, JSON results).

The venv lives under ``$SATCHEL_MLFLOW_VENV`` (reused when its versions match, built or
updated otherwise) or in a session temp dir. scikit-learn, onnx, onnxruntime, skops,
cloudpickle, pandas, numpy, scipy, xgboost, lightgbm, catboost, statsmodels, torch,
keras, jax, transformers (with tokenizers and safetensors) are pinned to the versions of
this environment, so both sides read the same files with the same libraries. No skip: if
the venv cannot be built (no index reachable), the interop tests fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.source_tree import copy_source_tree

# 3.18.0 is MLflow's newest release, but its mlflow-skinny 3.18.0 is not on the index
# this project installs from; 3.17.2 is the newest installable 3.x. Override to test
# another release.
MLFLOW_VERSION = os.environ.get("SATCHEL_MLFLOW_VERSION", "3.17.2")
SAME_AS_HERE = (
    "scikit-learn",
    "onnx",
    "onnxruntime",
    "skops",
    "cloudpickle",
    "pandas",
    "numpy",
    "scipy",
    "xgboost",
    "lightgbm",
    "catboost",
    "statsmodels",
    # tensor flavors; torch is the machine's CPU build (2.13.0+cpu from pip's find-links)
    "torch",
    "keras",
    "jax",
    "jaxlib",
    "transformers",
    "tokenizers",
    "safetensors",
)
PIP_TIMEOUT = 1800

_PROBE = textwrap.dedent("""
    import json, importlib.util
    from importlib import metadata
    def v(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None
    names = json.loads(__import__("sys").argv[1])
    print(json.dumps({"versions": {n: v(n) for n in names},
                      "satchel": importlib.util.find_spec("satchel") is not None}))
""")


def wanted_versions() -> dict[str, str]:
    """``{distribution: version}`` the side venv must have."""
    return {"mlflow": MLFLOW_VERSION, **{p: metadata.version(p) for p in SAME_AS_HERE}}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("SATCHEL_")
    }
    # MLflow 3.17 refuses to deserialise any sklearn model (skops included) without the
    # first; 3.18 renamed it to the second.
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    env["MLFLOW_ALLOW_MODEL_CODE_EXECUTION"] = "true"
    env["PYTHONWARNINGS"] = "ignore"
    env.update(extra)
    return env


def _probe(python: Path, names: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [str(python), "-c", _PROBE, json.dumps(names)],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="session")
def mlflow_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a venv with mlflow and this env's library versions, no satchel."""
    root = os.environ.get("SATCHEL_MLFLOW_VENV")
    venv = Path(root) if root else tmp_path_factory.mktemp("mlflow-venv")
    python = venv / "bin" / "python"
    wanted = wanted_versions()
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    state = _probe(python, list(wanted))
    if state["versions"] != wanted:
        reqs = [f"{name}=={version}" for name, version in wanted.items()]
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *reqs],
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=PIP_TIMEOUT,
        )
        if done.returncode != 0:
            pytest.fail(f"cannot build the MLflow venv at {venv}: pip said\n{done.stderr[-3000:]}")
        state = _probe(python, list(wanted))
    if state["versions"] != wanted:
        pytest.fail(f"MLflow venv {venv} has {state['versions']}, wanted {wanted}")
    if state["satchel"]:
        pytest.fail(f"satchel is importable in the MLflow venv {venv}; it must not be")
    return python


# tensorflow-cpu for the one test of MLflow's ``tensorflow`` flavor (the newest on the
# index; TensorFlow 2.16+ writes tf.keras models as Keras 3 files)
TF_VERSION = os.environ.get("SATCHEL_TF_VERSION", "2.21.0")


@pytest.fixture(scope="session")
def mlflow_tf_python(mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a venv with the MLflow venv's packages plus tensorflow-cpu.

    tensorflow-cpu is 1.6 GB installed, and only the ``tensorflow`` flavor test needs it,
    so it does not go into the MLflow venv every interop test uses. This venv sees the
    MLflow venv's site-packages through a .pth file (mlflow, keras and numpy at the
    versions pinned there) and holds only what tensorflow adds, or the few packages it
    needs at other versions (h5py), ahead of them on the path. Built once per session
    (or kept under ``$SATCHEL_MLFLOW_TF_VENV``); pyc files are left for the first import
    to write, which saves most of the install's time.
    """
    root = os.environ.get("SATCHEL_MLFLOW_TF_VENV")
    venv = Path(root) if root else tmp_path_factory.mktemp("mlflow-tf-venv")
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    base = subprocess.run(
        [str(mlflow_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
        check=True,
    ).stdout.strip()
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
        check=True,
    ).stdout.strip()
    Path(own, "mlflow_venv.pth").write_text(base + "\n", "utf-8")
    wanted = {
        "mlflow": MLFLOW_VERSION,
        "keras": metadata.version("keras"),
        "numpy": metadata.version("numpy"),
        "tensorflow-cpu": TF_VERSION,
    }
    state = _probe(python, list(wanted))
    if state["versions"] != wanted:
        # keras and numpy pinned so that pip keeps the MLflow venv's (same as here)
        reqs = [f"{name}=={version}" for name, version in wanted.items()]
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-compile", *reqs],
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=PIP_TIMEOUT,
        )
        if done.returncode != 0:
            pytest.fail(
                f"cannot build the MLflow+tensorflow venv at {venv}: pip said\n"
                f"{done.stderr[-3000:]}"
            )
        state = _probe(python, list(wanted))
    if state["versions"] != wanted:
        pytest.fail(f"MLflow+tensorflow venv {venv} has {state['versions']}, wanted {wanted}")
    if state["satchel"]:
        pytest.fail(f"satchel is importable in the MLflow+tensorflow venv {venv}; it must not be")
    return python


RunScript = Callable[..., Any]


def _runner(python: Path, work: Path, **extra_env: str) -> RunScript:
    counter = iter(range(10**6))

    def run(source: str, *args: str, pythonpath: str | None = None) -> Any:
        n = next(counter)
        script = work / f"script_{n}.py"
        result = work / f"result_{n}.json"
        script.write_text(textwrap.dedent(source), "utf-8")
        env = _clean_env(MLFLOW_TRACKING_URI=(work / "mlruns").as_uri(), **extra_env)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        done = subprocess.run(
            [str(python), str(script), str(result), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            timeout=900,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"MLflow script failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        return json.loads(result.read_text("utf-8"))

    return run


@pytest.fixture(scope="session")
def run_mlflow(mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> RunScript:
    """``run_mlflow(source, *args, pythonpath=None) -> result``: run a script in the MLflow
    venv. The script gets its arguments in ``sys.argv[1:]`` and writes its result as JSON
    to the path in ``sys.argv[1]``; the parsed JSON is returned."""
    return _runner(mlflow_python, tmp_path_factory.mktemp("mlflow-scripts"))


@pytest.fixture(scope="session")
def run_mlflow_tf(mlflow_tf_python: Path, tmp_path_factory: pytest.TempPathFactory) -> RunScript:
    """As ``run_mlflow``, in the venv with tensorflow-cpu, Keras on its tensorflow backend."""
    return _runner(
        mlflow_tf_python, tmp_path_factory.mktemp("mlflow-tf-scripts"), KERAS_BACKEND="tensorflow"
    )


@pytest.fixture(scope="session")
def satchel_overlay(tmp_path_factory: pytest.TempPathFactory) -> str:
    """satchel installed into a plain directory (pip --target), to put on PYTHONPATH for
    the one test that needs satchel and mlflow in the same process. The MLflow venv
    itself never gets satchel."""
    target = tmp_path_factory.mktemp("satchel-overlay")
    # Build from a copy so the build leaves nothing in the working tree.
    source = copy_source_tree(tmp_path_factory.mktemp("satchel-source") / "satchel", tests=False)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot install satchel into {target}: {done.stderr[-3000:]}")
    return str(target)
