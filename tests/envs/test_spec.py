"""EnvSpec: the key, the lines kept, and hostile requirement files."""

from __future__ import annotations

from pathlib import Path

import pytest

from satchel.envs import EnvSpec
from satchel.errors import EnvironmentBuildError, PythonMismatchError

from .conftest import copy_model, set_requirements


def test_key_ignores_order_whitespace_satchel_and_mlflow(iris_model_dir: Path,
                                                         tmp_path: Path) -> None:
    a = copy_model(iris_model_dir, tmp_path / "a")
    b = copy_model(iris_model_dir, tmp_path / "b")
    set_requirements(a, ["scikit-learn==1.9.1", "cloudpickle==3.1.3", "satchel==0.1.0"])
    set_requirements(b, ["cloudpickle == 3.1.3", "mlflow==3.17.2", "scikit-learn==1.9.1"])
    sa, sb = EnvSpec.from_model(a), EnvSpec.from_model(b)
    assert sa.key == sb.key
    assert sa.requirements == ("scikit-learn==1.9.1", "cloudpickle==3.1.3")
    set_requirements(b, ["scikit-learn==1.8.0", "cloudpickle==3.1.3"])
    assert EnvSpec.from_model(b).key != sa.key


def test_another_python_minor_is_a_clear_error(iris_model_dir: Path, tmp_path: Path) -> None:
    m = copy_model(iris_model_dir, tmp_path / "m")
    text = (m / "python_env.yaml").read_text()
    (m / "python_env.yaml").write_text(text.replace("python: 3.11", "python: 3.9", 1))
    with pytest.raises(PythonMismatchError, match=r"saved for Python 3\.9.* this interpreter "
                       r"is Python 3\.11"):
        EnvSpec.from_model(m)


@pytest.mark.parametrize("line", [
    "--index-url http://evil.example/simple",
    "-e /etc",
    "-r /etc/passwd",
    "/tmp/evil.whl",
    "./local-package",
    "file:///etc/evil.whl",
])
def test_options_and_local_paths_are_refused(iris_model_dir: Path, tmp_path: Path,
                                             line: str) -> None:
    m = copy_model(iris_model_dir, tmp_path / "m")
    set_requirements(m, ["scikit-learn==1.9.1", line])
    with pytest.raises(EnvironmentBuildError, match="option or a local path"):
        EnvSpec.from_model(m)
