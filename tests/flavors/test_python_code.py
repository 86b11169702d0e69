"""Models from code: a .py file stored as source, run on load, registering its model."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import satchel
from satchel.cli.info import describe
from satchel.errors import CodeNotAllowedError, ModelFormatError
from satchel.flavors import python as py_flavor
from satchel.testing import check_flavor

SCRIPT = """
import json
from pathlib import Path
import satchel

class Scale(satchel.PythonModel):
    def load_context(self, context):
        self.k = json.loads(Path(context.artifacts["k"]).read_text())["k"]
        self.offset = context.model_config.get("offset", 0)

    def predict(self, model_input, params=None):
        return model_input["x"] * self.k + self.offset

satchel.set_model(Scale())
"""

DF = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"k": 4}))
    return path


def test_conformance_code_model(tmp_path: Path) -> None:
    script = _write(
        tmp_path,
        "double.py",
        """
        import satchel
        satchel.set_model(lambda df: df["x"] * 2)
    """,
    )
    check_flavor(
        "python", str(script), DF, native_predict=lambda _o, x: x["x"] * 2, native_type="function"
    )


def test_source_is_stored_not_pickled_and_runs_on_load(tmp_path: Path, artifact: Path) -> None:
    script = _write(tmp_path, "scale.py", SCRIPT)
    py_flavor.save_model(
        tmp_path / "m",
        python_model=str(script),
        artifacts={"k": str(artifact)},
        model_config={"offset": 1},
        input_example=DF,
    )
    script.unlink()  # the model runs its own copy
    saved = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert "scale.py" in saved and "python_model.pkl" not in saved
    section = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]["python"]
    assert section["model_code"] == "scale.py" and section["kind"] == "code"
    model = satchel.load_model(tmp_path / "m")
    np.testing.assert_allclose(model.predict(DF), [5.0, 9.0, 13.0])
    assert type(model.unwrap()).__name__ == "Scale"
    info = describe(tmp_path / "m")
    assert info["runs_code_on_load"] == "python source"
    assert not any(r.startswith("cloudpickle") for r in info["requirements"])


def test_auto_detected_from_a_py_path(tmp_path: Path) -> None:
    script = _write(tmp_path, "f.py", "import satchel\nsatchel.set_model(lambda df: df + 1)\n")
    satchel.save_model(script, tmp_path / "m", input_example=DF)
    assert satchel.load_model(tmp_path / "m").flavor.name == "python"


def test_allow_code_false_refuses_python_source(tmp_path: Path) -> None:
    script = _write(tmp_path, "f.py", "import satchel\nsatchel.set_model(lambda df: df)\n")
    py_flavor.save_model(tmp_path / "m", python_model=str(script), input_example=DF)
    with pytest.raises(CodeNotAllowedError, match="python source.*allow_code=False"):
        satchel.load_model(tmp_path / "m", allow_code=False)


def test_set_model_outside_a_load_does_nothing() -> None:
    satchel.set_model(object())  # running a model script by hand must not fail


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("x = 1\n", "registered no model"),
        ("raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
        ("import satchel\nsatchel.set_model(42)\n", "registered a int"),
        ("import no_such_module_xyz\n", "ModuleNotFoundError"),
        ("def broken(:\n", "SyntaxError"),
    ],
)
def test_bad_scripts_fail_on_save_naming_the_problem(
    tmp_path: Path, source: str, fragment: str
) -> None:
    script = _write(tmp_path, "bad.py", source)
    with pytest.raises(ModelFormatError, match=fragment):
        py_flavor.save_model(tmp_path / "m", python_model=str(script), input_example=DF)
    assert not (tmp_path / "m").exists()


def test_not_a_py_file_or_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="existing .py file"):
        py_flavor.save_model(tmp_path / "m", python_model=str(tmp_path / "absent.py"))
    assert not (tmp_path / "m").exists()


def test_tampered_source_is_refused_by_digest(tmp_path: Path) -> None:
    script = _write(tmp_path, "f.py", "import satchel\nsatchel.set_model(lambda df: df)\n")
    py_flavor.save_model(tmp_path / "m", python_model=str(script), input_example=DF)
    with open(tmp_path / "m" / "f.py", "a") as f:
        f.write("import os; os.system('echo pwned')\n")
    with pytest.raises(satchel.IntegrityError, match="f.py"):
        satchel.load_model(tmp_path / "m")


def test_model_code_path_traversal_refused(tmp_path: Path) -> None:
    script = _write(tmp_path, "f.py", "import satchel\nsatchel.set_model(lambda df: df)\n")
    py_flavor.save_model(tmp_path / "m", python_model=str(script))
    mlmodel = tmp_path / "m" / "MLmodel"
    data = yaml.safe_load(mlmodel.read_text())
    data["flavors"]["python"]["model_code"] = "../f.py"
    data.pop("artifact_digests")
    mlmodel.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelFormatError, match="outside the model directory"):
        satchel.load_model(tmp_path / "m")


def test_two_loads_do_not_share_module_state(tmp_path: Path) -> None:
    script = _write(
        tmp_path,
        "counter.py",
        """
        import satchel
        calls = []
        class Count(satchel.PythonModel):
            def predict(self, model_input, params=None):
                calls.append(1)
                return [len(calls)] * len(model_input)
        satchel.set_model(Count())
    """,
    )
    py_flavor.save_model(tmp_path / "m", python_model=str(script))
    a, b = satchel.load_model(tmp_path / "m"), satchel.load_model(tmp_path / "m")
    a.predict(DF)
    assert list(b.predict(DF)) == [1, 1, 1]
    assert not [m for m in sys.modules if m.startswith("counter")]
