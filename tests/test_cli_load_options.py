"""The load opt-ins (--no-code, --trust, --allow-mlflow) on every command that loads a
model, on spark_udf and on images: each refuses a model that runs code when asked to,
before doing any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import satchel
from satchel.cli import main
from satchel.errors import CodeNotAllowedError, ImageBuildError
from tests.conftest import free_port


@pytest.fixture
def inputs(tmp_path: Path, iris: Any) -> tuple[Path, Path]:
    X, _ = iris
    json_in = tmp_path / "in.json"
    json_in.write_text(
        json.dumps({"dataframe_split": json.loads(X.head(3).to_json(orient="split", index=False))})
    )
    csv_in = tmp_path / "in.csv"
    X.head(3).to_csv(csv_in, index=False)
    return json_in, csv_in


@pytest.mark.parametrize("flag", ["--no-code", "--no-pickle"])
def test_predict_and_batch_refuse_code_when_asked(
    iris_model_dir: Path,
    inputs: tuple[Path, Path],
    tmp_path: Path,
    flag: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SATCHEL_NO_CODE", raising=False)
    json_in, csv_in = inputs
    out = tmp_path / "out.json"
    assert (
        main(["predict", "-m", str(iris_model_dir), "-i", str(json_in), "-o", str(out), flag]) == 1
    )
    assert "allow_code=False" in capsys.readouterr().err and not out.exists()
    batch_out = tmp_path / "out.csv"
    assert (
        main(
            [
                "batch",
                "-m",
                str(iris_model_dir),
                "-i",
                str(csv_in),
                "-o",
                str(batch_out),
                "-q",
                flag,
            ]
        )
        == 1
    )
    assert "runs code when loaded" in capsys.readouterr().err and not batch_out.exists()
    # without the flag the same commands score
    assert main(["predict", "-m", str(iris_model_dir), "-i", str(json_in), "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["predictions"]) == 3


def test_environment_variable_and_flag(
    iris_model_dir: Path,
    inputs: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SATCHEL_NO_CODE", "true")
    assert main(["predict", "-m", str(iris_model_dir), "-i", str(inputs[0])]) == 1
    assert "allow_code=False" in capsys.readouterr().err


def test_allow_mlflow_flag_reaches_the_flavor(
    tmp_path: Path,
    inputs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SATCHEL_ALLOW_MLFLOW", raising=False)
    script = tmp_path / "m.py"
    script.write_text("import mlflow\nmlflow.models.set_model(lambda d: d.iloc[:, 0])\n")
    model = tmp_path / "code"
    model.mkdir()
    (model / "m.py").write_text(script.read_text())
    (model / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.loaders.code_model\n"
        "    model_code_path: m.py\n"
    )
    assert main(["predict", "-m", str(model), "-i", str(inputs[0])]) == 0
    capsys.readouterr()
    # --allow-mlflow asks for mlflow itself, which is not installed here: named
    assert main(["predict", "-m", str(model), "-i", str(inputs[0]), "--allow-mlflow"]) == 1
    assert "pip install mlflow" in capsys.readouterr().err


def test_spark_udf_refuses_on_the_driver_before_touching_spark(iris_model_dir: Path) -> None:
    from satchel.serving.spark import spark_udf

    # spark=None: the refusal must come before any Spark call
    with pytest.raises(CodeNotAllowedError, match="allow_code=False"):
        spark_udf(None, iris_model_dir, allow_code=False)


def test_image_context_refuses_before_any_download(iris_model_dir: Path, tmp_path: Path) -> None:
    from satchel.serving.images.docker import generate_dockerfile

    with pytest.raises(CodeNotAllowedError):
        generate_dockerfile(iris_model_dir, tmp_path / "ctx", load_options={"allow_code": False})
    assert not (tmp_path / "ctx").exists()


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"trusted_types": ["ok.Type", "evil\nRUN rm -rf /"]}, "not a dotted Python name"),
        ({"trusted_types": ["a b"]}, "not a dotted Python name"),
        ({"trusted_types": ["x$(id)"]}, "not a dotted Python name"),
        ({"verify": False}, "images take the load options"),
    ],
)
def test_image_load_options_hostile(
    tmp_path: Path, iris: Any, options: dict[str, Any], fragment: str
) -> None:
    from satchel.serving.images.docker import generate_dockerfile

    def fn(df: Any) -> Any:
        return df.sum(axis=1)

    satchel.save_model(fn, tmp_path / "m", input_example=pd.DataFrame({"a": [1.0]}))
    with pytest.raises(ImageBuildError, match=fragment):
        generate_dockerfile(tmp_path / "m", tmp_path / "ctx", load_options=options)
    assert not (tmp_path / "ctx").exists()


def test_image_env_lines_render() -> None:
    from satchel.serving.images import docker

    values = {
        "BASE_IMAGE": "python:3.11-slim",
        "PYTHON_VERSION": "3.11",
        "PLATFORM": "linux/amd64",
        "SATCHEL_VERSION": "0",
        "SATCHEL_WHEEL": "s.whl",
        "MODEL_UUID": "u",
        "FLAVOR": "f",
        "SIGNATURE_DIGEST": "d",
    }
    text = docker.render_dockerfile(
        {
            **values,
            **docker._load_env({"allow_code": False, "trusted_types": ["sklearn.tree._tree.Tree"]}),
        }
    )
    assert "SATCHEL_NO_CODE=1" in text and "SATCHEL_ALLOW_MLFLOW=0" in text
    assert "SATCHEL_TRUSTED_TYPES=sklearn.tree._tree.Tree" in text
    text = docker.render_dockerfile({**values, **docker._load_env({})})
    assert "SATCHEL_NO_CODE=0" in text and "SATCHEL_TRUSTED_TYPES=,\n" in text


def test_an_empty_trust_list_in_the_image_reads_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from satchel.cli._load_options import add_load_options, load_options

    p = argparse.ArgumentParser()
    add_load_options(p)
    monkeypatch.setenv("SATCHEL_TRUSTED_TYPES", ",")
    monkeypatch.setenv("SATCHEL_NO_CODE", "0")
    monkeypatch.setenv("SATCHEL_ALLOW_MLFLOW", "0")
    assert load_options(p.parse_args([])) == {"allow_code": True}
    monkeypatch.setenv("SATCHEL_TRUSTED_TYPES", "a.B, c.D")
    assert load_options(p.parse_args(["--no-code"]))["trusted_types"] == ["a.B", "c.D"]


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    # A subprocess with a time limit: a server that failed to refuse would start and
    # block; the limit turns that into a failure instead of a hung test.
    env = {**os.environ, "SATCHEL_ALLOW_MLFLOW": ""}
    return subprocess.run(
        [sys.executable, "-m", "satchel", "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize("flag", ["--no-code", "--no-pickle"])
def test_serve_refuses_code_before_it_listens(iris_model_dir: Path, flag: str) -> None:
    done = _serve("-m", str(iris_model_dir), flag)
    assert done.returncode != 0
    assert "cloudpickle" in done.stderr and "allow_code" in done.stderr
    assert "Uvicorn running" not in done.stderr + done.stdout


def test_serve_takes_allow_mlflow(tmp_path: Path) -> None:
    model = tmp_path / "code"
    model.mkdir()
    (model / "m.py").write_text("import mlflow\nmlflow.models.set_model(lambda d: d.iloc[:, 0])\n")
    (model / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.loaders.code_model\n"
        "    model_code_path: m.py\n"
    )
    # --allow-mlflow asks for mlflow itself, which is not installed here: named, not served
    done = _serve("-m", str(model), "--allow-mlflow")
    assert done.returncode != 0 and "pip install mlflow" in done.stderr
    # --no-code refuses the model's source before running it
    done = _serve("-m", str(model), "--no-code")
    assert done.returncode != 0 and "python source" in done.stderr
