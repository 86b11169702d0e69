"""Models whose environments differ from the test interpreter's, and a shared env cache.

Environments are real virtualenvs built by uv (or pip) from PyPI, as users get them; the
cache is shared by the session so each distinct set of requirements is built once.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from satchel.envs import EnvSpec

# A small pure-Python library the test environment does not have.
ABSENT = "tabulate"
ABSENT_PIN = "tabulate==0.9.0"


@pytest.fixture(scope="session")
def env_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envcache")


@pytest.fixture(autouse=True)
def _cache_env(env_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATCHEL_ENV_CACHE", str(env_cache_dir))


@pytest.fixture(scope="session")
def tabulate_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A python model whose predict imports a library missing from this interpreter."""
    import satchel
    from satchel.schema import ColSpec, DataType, Schema, Signature

    with pytest.raises(ImportError):
        __import__(ABSENT)
    root = tmp_path_factory.mktemp("tabmodel")
    code = root / "tabmodel.py"
    code.write_text(textwrap.dedent('''
        import satchel

        class Tabulated(satchel.PythonModel):
            def predict(self, model_input, params=None):
                import tabulate
                width = len(tabulate.tabulate([[1]]).splitlines()[0])
                return [f"{tabulate.__version__}:{width}:{x * 2}" for x in model_input["x"]]
    '''))
    import sys

    sys.path.insert(0, str(root))
    try:
        import tabmodel  # type: ignore[import-not-found]

        sig = Signature(Schema([ColSpec(DataType.long, "x")]),
                        Schema([ColSpec(DataType.string)]))
        path = root / "model"
        satchel.save_model(tabmodel.Tabulated(), path, signature=sig, code_paths=[code],
                           extra_pip_requirements=[ABSENT_PIN])
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("tabmodel", None)
    return path


def requirements_of(path: Path) -> list[str]:
    return [ln for ln in (path / "requirements.txt").read_text().splitlines() if ln]


def set_requirements(path: Path, lines: list[str]) -> None:
    """Rewrite a model's requirements.txt and its digest (a test's own model, re-sealed)."""
    from satchel._fs import sha256_file
    from satchel.manifest import Manifest

    (path / "requirements.txt").write_text("".join(f"{ln}\n" for ln in lines))
    manifest = Manifest.read(path)
    assert manifest.artifact_digests is not None
    manifest.artifact_digests["requirements.txt"] = sha256_file(path / "requirements.txt")
    manifest.write(path)


def copy_model(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest)
    return dest


# --- two scikit-learn versions (serve tests over HTTP and gRPC) ---------------------------

OLD_SKLEARN = "1.8.0"


def env_cache() -> Any:
    """The environment cache the servers use (``SATCHEL_ENV_CACHE``)."""
    from satchel.envs import EnvCache
    from satchel.serving.images.wheels import satchel_wheel

    return EnvCache(satchel_wheel=satchel_wheel)


@pytest.fixture(scope="session")
def old_sklearn_model(iris_model_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                      env_cache_dir: Path) -> tuple[Path, np.ndarray]:
    """A DecisionTree saved by scikit-learn 1.8 in its own environment, and what it
    predicts there."""
    os.environ["SATCHEL_ENV_CACHE"] = str(env_cache_dir)
    root = tmp_path_factory.mktemp("old")
    seed = copy_model(iris_model_dir, root / "seed")
    set_requirements(seed, [f"scikit-learn=={OLD_SKLEARN}"])
    env = env_cache().ensure(EnvSpec.from_model(seed))
    script = textwrap.dedent(f"""
        import sys, numpy as np, sklearn, satchel
        from sklearn.datasets import load_iris
        from sklearn.tree import DecisionTreeClassifier
        assert sklearn.__version__ == "{OLD_SKLEARN}", sklearn.__version__
        X, y = load_iris(return_X_y=True, as_frame=True)
        X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        m = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
        satchel.save_model(m, sys.argv[1], input_example=X.head(3))
        np.save(sys.argv[2], satchel.load_model(sys.argv[1]).predict(X))
    """)
    path, expected = root / "old", root / "expected.npy"
    env_vars = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(env.python), "-c", script, str(path), str(expected)], check=True,
                   env=env_vars)
    assert f"scikit-learn=={OLD_SKLEARN}" in (path / "requirements.txt").read_text()
    # The saved model pins what that environment had (numpy, scipy ...), not just the
    # seed's one line: build its own environment now, so the servers start warm.
    env_cache().ensure(EnvSpec.from_model(path))
    return path, np.load(expected)


def workers_of(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of each model worker a server process started."""
    out = []
    # children of every thread: a restarted worker is spawned by the watcher thread
    kids = {c for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()}
    for child in sorted(kids):
        cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "model_worker" in cmd:
            out.append((int(child), cmd))
    return out
