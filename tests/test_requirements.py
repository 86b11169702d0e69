"""requirements.txt lists what a python model's code imports when loaded and run on its
example (a subprocess, mapped to distributions, pinned); satchel info flags what is not
installed here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

import satchel
from satchel.cli.info import describe, requirement_status
from satchel.errors import RequirementsWarning
from satchel.flavors import python as py_flavor
from satchel.requirements import distributions

DF = pd.DataFrame({"x": [1.0, 2.0]})


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _reqs(model: Path) -> list[str]:
    return (model / "requirements.txt").read_text().split()



@pytest.fixture(autouse=True)
def _inference_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite turns inference off (tests/conftest.py); these tests are about it."""
    monkeypatch.setenv("SATCHEL_INFER_REQUIREMENTS", "1")

def test_a_model_that_calls_xgboost_gets_xgboost_pinned(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "m.py",
        """
        import satchel
        class M(satchel.PythonModel):
            def load_context(self, context):
                import xgboost
                self.booster = xgboost.Booster
            def predict(self, model_input, params=None):
                return model_input["x"] * 2
        satchel.set_model(M())
    """,
    )
    py_flavor.save_model(tmp_path / "m", python_model=str(script), input_example=DF)
    reqs = _reqs(tmp_path / "m")
    assert f"xgboost=={metadata.version('xgboost')}" in reqs
    # what xgboost imports for itself is not the model's requirement
    assert not [r for r in reqs if r.startswith(("scikit-learn", "scipy", "numpy", "pandas"))]
    assert reqs[0].startswith("satchel==")


def test_imports_at_predict_time_count_and_code_paths_are_followed(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helper.py").write_text("def score(x):\n    import sklearn\n    return x + 1\n")
    script = _script(
        tmp_path,
        "m.py",
        """
        import satchel
        def predict(model_input):
            import helper
            return helper.score(model_input["x"])
        satchel.set_model(predict)
    """,
    )
    sys.path.insert(0, str(lib))  # the save's own check imports helper here too
    try:
        py_flavor.save_model(
            tmp_path / "m",
            python_model=str(script),
            input_example=DF,
            code_paths=[str(lib / "helper.py")],
        )
    finally:
        sys.path.remove(str(lib))
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in _reqs(tmp_path / "m")


def test_a_pickled_model_wrapping_an_estimator(
    tmp_path: Path, iris_logreg: object, iris: tuple[pd.DataFrame, object]
) -> None:
    class Wrap(satchel.PythonModel):
        def __init__(self, est: object) -> None:
            self.est = est

        def predict(self, model_input: object, params: object = None) -> object:
            return self.est.predict(model_input)  # type: ignore[attr-defined]

    X = iris[0].head(3)
    satchel.save_model(Wrap(iris_logreg), tmp_path / "m", input_example=X)
    reqs = _reqs(tmp_path / "m")
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in reqs
    assert f"cloudpickle=={metadata.version('cloudpickle')}" in reqs


def test_pip_requirements_replace_inference(tmp_path: Path) -> None:
    script = _script(tmp_path, "m.py", "import satchel, xgboost\nsatchel.set_model(lambda d: d)\n")
    py_flavor.save_model(tmp_path / "m", python_model=str(script), pip_requirements=["pandas"])
    assert _reqs(tmp_path / "m") == ["pandas"]


def test_inference_that_fails_warns_and_keeps_the_flavor_defaults(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "m.py",
        """
        import sys
        import satchel
        if sys.argv[0].endswith("_capture_imports.py"):
            raise RuntimeError("only in the subprocess")
        satchel.set_model(lambda d: d)
    """,
    )
    with pytest.warns(RequirementsWarning, match="RuntimeError: only in the subprocess"):
        py_flavor.save_model(tmp_path / "m", python_model=str(script), input_example=DF)
    assert [r.split("==")[0] for r in _reqs(tmp_path / "m")] == ["satchel"]
    assert satchel.load_model(tmp_path / "m").predict(DF) is not None


def test_switch_off_with_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATCHEL_INFER_REQUIREMENTS", "0")
    script = _script(tmp_path, "m.py", "import satchel, xgboost\nsatchel.set_model(lambda d: d)\n")
    py_flavor.save_model(tmp_path / "m", python_model=str(script), input_example=DF)
    assert not [r for r in _reqs(tmp_path / "m") if r.startswith("xgboost")]


def test_distributions_prune_the_standard_library_satchel_and_implied_packages() -> None:
    got = distributions(
        [
            "os",
            "json",
            "_private",
            "satchel",
            "pandas",
            "numpy",
            "xgboost",
            "scipy",
            "no_such_module_xyz",
        ]
    )
    assert got == ["xgboost"]  # scipy: xgboost requires it; numpy/pandas: satchel does


def test_info_flags_requirements_not_installed(tmp_path: Path) -> None:
    satchel.save_model(
        lambda d: d,
        tmp_path / "m",
        pip_requirements=[
            "pandas",
            "no-such-dist-xyz==1.0",
            f"xgboost=={metadata.version('xgboost')}",
            "numpy==0.0.1",
            "-c constraints.txt",
        ],
    )
    status = describe(tmp_path / "m")["requirements_status"]
    assert status == {
        "no-such-dist-xyz==1.0": "not installed",
        "numpy==0.0.1": f"installed {metadata.version('numpy')}",
    }
    out = subprocess.run(
        [sys.executable, "-m", "satchel", "info", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "no-such-dist-xyz==1.0   <- not installed" in out
    assert requirement_status(["-r other.txt"]) == {}


def test_each_save_runs_in_a_fresh_process_with_the_callers_path_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first save starts the warm capture process; what comes after must still see
    # this process's sys.path and environment as they are now, and nothing of the
    # models before it.
    leaky = _script(
        tmp_path,
        "leaky.py",
        """
        import sys
        import satchel
        if sys.argv[0].endswith("_capture_imports.py"):  # only where requirements are inferred
            satchel.LEFT_BEHIND = True
            print("a model that prints to stdout")
            sys.stdin.read()  # and reads stdin: it must not take the next job
        satchel.set_model(lambda d: d)
    """,
    )
    py_flavor.save_model(tmp_path / "a", python_model=str(leaky), input_example=DF)
    lib = tmp_path / "later"
    lib.mkdir()
    (lib / "helper_later.py").write_text("def use():\n    import sklearn\n")
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.setenv("SATCHEL_TEST_SET_LATER", "yes")
    checker = _script(
        tmp_path,
        "checker.py",
        """
        import os
        import sys
        import satchel
        if getattr(satchel, "LEFT_BEHIND", False):
            raise RuntimeError("state of an earlier model leaked")
        inferring = sys.argv[0].endswith("_capture_imports.py")
        if inferring and os.environ.get("SATCHEL_TEST_SET_LATER") != "yes":
            raise RuntimeError("the caller's environment is missing")
        def predict(model_input):
            import helper_later
            helper_later.use()
            return model_input
        satchel.set_model(predict)
    """,
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RequirementsWarning)
        py_flavor.save_model(tmp_path / "b", python_model=str(checker), input_example=DF)
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in _reqs(tmp_path / "b")


def test_a_model_that_hangs_times_out_and_the_next_save_still_infers(tmp_path: Path) -> None:
    from satchel import requirements

    hangs = _script(
        tmp_path,
        "hangs.py",
        """
        import sys
        import time
        import satchel
        def predict(model_input):
            if sys.argv[0].endswith("_capture_imports.py"):  # hangs only there
                time.sleep(600)
            return model_input
        satchel.set_model(predict)
    """,
    )
    py_flavor.save_model(
        tmp_path / "h", python_model=str(hangs), input_example=DF, pip_requirements=[]
    )
    with pytest.warns(RequirementsWarning, match="took over 3s"):
        assert requirements.imported_modules(tmp_path / "h", timeout=3) is None
    script = _script(tmp_path, "m.py", "import satchel, xgboost\nsatchel.set_model(lambda d: d)\n")
    py_flavor.save_model(tmp_path / "m", python_model=str(script), input_example=DF)
    assert f"xgboost=={metadata.version('xgboost')}" in _reqs(tmp_path / "m")
