"""Models whose environments differ from the test interpreter's, and a shared env cache.

Environments are real virtualenvs built by uv (or pip) from PyPI, as users get them; the
cache is shared by the session so each distinct set of requirements is built once.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

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


