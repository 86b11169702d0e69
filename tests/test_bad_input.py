"""Core bad input: unknown save keywords, the allow_code switch, a newer sklearn."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import satchel
from satchel.errors import CodeNotAllowedError, LibraryVersionWarning, PickleNotAllowedError


def test_unknown_save_keyword_names_it_the_closest_and_the_accepted(
    tmp_path: Path, iris_logreg: Any
) -> None:
    with pytest.raises(TypeError) as err:
        satchel.save_model(iris_logreg, tmp_path / "m", serialisation_format="pickle")
    msg = str(err.value)
    assert "'serialisation_format'" in msg
    assert "did you mean 'serialization_format'" in msg
    assert "sklearn flavor accepts: serialization_format, predict_fn, skops_trusted_types" in msg
    assert "input_example" in msg  # save_model's own keywords are listed too
    assert not (tmp_path / "m").exists()


def test_unknown_keyword_through_a_flavor_module(tmp_path: Path) -> None:
    from satchel.flavors import python as py_flavor

    with pytest.raises(TypeError, match=r"'artefacts'.*did you mean 'artifacts'"):
        py_flavor.save_model(tmp_path / "m", lambda df: df, artefacts={"a": "x"})
    with pytest.raises(TypeError, match=r"'zzz_option'.*python flavor accepts: .*model_config"):
        satchel.save_model(lambda df: df, tmp_path / "m", zzz_option=1)
    assert not (tmp_path / "m").exists()


def test_several_unknown_keywords_are_all_named(tmp_path: Path, iris_logreg: Any) -> None:
    with pytest.raises(TypeError, match=r"arguments 'aaa', 'bbb'"):
        satchel.save_model(iris_logreg, tmp_path / "m", bbb=1, aaa=2)


def test_known_flavor_keywords_still_work(tmp_path: Path, iris_logreg: Any) -> None:
    satchel.save_model(iris_logreg, tmp_path / "m", serialization_format="pickle")
    section = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]["sklearn"]
    assert section["serialization_format"] == "pickle"


def test_a_flavor_taking_any_keyword_is_not_second_guessed(tmp_path: Path) -> None:
    from satchel.save import flavor_options

    class Open:
        name = "open"

        def save(self, obj: Any, path: Path, **options: Any) -> Any:
            return None

    class Declared(Open):
        save_options = ("alpha",)

    assert flavor_options(Open()) is None  # type: ignore[arg-type]
    assert flavor_options(Declared()) == ("alpha",)  # type: ignore[arg-type]


def test_allow_code_false_refuses_and_allow_pickle_is_a_deprecated_alias(
    iris_model_dir: Path,
) -> None:
    assert PickleNotAllowedError is CodeNotAllowedError
    with pytest.raises(CodeNotAllowedError, match="allow_code=False"):
        satchel.load_model(iris_model_dir, allow_code=False)
    with pytest.warns(DeprecationWarning, match="allow_code"):
        with pytest.raises(CodeNotAllowedError):
            satchel.load_model(iris_model_dir, allow_pickle=False)
    with pytest.warns(DeprecationWarning):
        assert satchel.load_model(iris_model_dir, allow_pickle=True).flavor.name == "sklearn"
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="contradict"):
        satchel.load_model(iris_model_dir, allow_code=False, allow_pickle=True)


def test_cli_no_code_refuses_with_either_spelling_and_from_the_environment(
    iris_model_dir: Path,
) -> None:
    cmd = [sys.executable, "-m", "satchel", "validate", str(iris_model_dir)]
    for extra, env in (([], {"SATCHEL_NO_CODE": "1"}), (["--no-code"], {}), (["--no-pickle"], {})):
        out = subprocess.run(
            [*cmd, *extra], capture_output=True, text=True, env={**_env(), **env}, timeout=120
        )
        assert out.returncode == 1, out.stderr
        assert "runs code when loaded" in out.stderr and "allow_code=False" in out.stderr
    ok = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    assert ok.returncode == 0, ok.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("SATCHEL_")}


def test_model_saved_with_newer_sklearn_warns_on_load(tmp_path: Path, iris_model_dir: Path) -> None:
    dest = tmp_path / "m"
    shutil.copytree(iris_model_dir, dest)
    mlmodel = dest / "MLmodel"
    data = yaml.safe_load(mlmodel.read_text())
    data["flavors"]["sklearn"]["sklearn_version"] = "99.0.0"
    mlmodel.write_text(yaml.safe_dump(data))
    with pytest.warns(
        LibraryVersionWarning, match=r"scikit-learn 99\.0\.0.*installed scikit-learn"
    ):
        satchel.load_model(dest)


def test_unknown_load_keyword_names_it_the_closest_and_the_accepted(
    iris_model_dir: Path,
) -> None:
    # a typo at load used to be ignored: the option was silently lost
    with pytest.raises(TypeError) as err:
        satchel.load_model(iris_model_dir, trusted_typs=["x"])
    msg = str(err.value)
    assert "'trusted_typs'" in msg and "did you mean 'trusted_types'" in msg
    assert "sklearn flavor takes: none of its own" in msg
    assert "load_model itself takes: allow_code" in msg
    with pytest.raises(TypeError, match=r"arguments 'aaa', 'zzz'"):
        satchel.load_model(iris_model_dir, zzz=1, aaa=2)
    # a flavor's own option on another flavor's model is unknown there too
    with pytest.raises(TypeError, match=r"'device'.*sklearn flavor"):
        satchel.load_model(iris_model_dir, device="cpu")


def test_known_load_keywords_still_work(iris_model_dir: Path) -> None:
    # options any flavor takes (the CLI passes them to whatever it loads)
    model = satchel.load_model(
        iris_model_dir, trusted_types=[], model_config={}, verify=True, require_digests=False
    )
    assert model.flavor.name == "sklearn"


def test_a_flavor_that_lists_no_load_options_is_not_second_guessed() -> None:
    from satchel import _loadopts

    class Legacy:
        name = "legacy"

    _loadopts.check(Legacy(), {"anything": 1})  # no load_options attribute: not checked

    class Strict:
        name = "strict"
        load_options = ("speed",)

    _loadopts.check(Strict(), {"speed": 2, "allow_mlflow": True})
    with pytest.raises(TypeError, match=r"'sped' \(did you mean 'speed'\?\).*strict flavor"):
        _loadopts.check(Strict(), {"sped": 2})
