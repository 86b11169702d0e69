"""A model directory is untrusted input: nothing outside it, nothing undigested, no code
unless allowed. Each test tampers with a real saved model the way an attacker would."""

from __future__ import annotations

import json
import pickle
import py_compile
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel.errors import (
    CodeNotAllowedError,
    IntegrityError,
    ModelFormatError,
    UnverifiedModelError,
)

from .conftest import edit_manifest, run_cli, run_python


class _Marker:
    """Unpickling this writes a file: proof that code from the model ran."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self) -> Any:
        return (Path.write_text, (Path(self.target), "pwned"))


def _shadow_code(tmp_path: Path, module: str, marker: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{module}.py").write_text(
        f"open({str(marker)!r}, 'w').write('shadowed')\nraise ImportError('shadow')\n"
    )
    return src / f"{module}.py"


def test_code_dir_cannot_shadow_onnxruntime(tmp_path: Path, onnx_model: Any) -> None:
    """code/onnxruntime.py must not run while an ONNX model loads."""
    marker = tmp_path / "ran"
    evil = _shadow_code(tmp_path, "onnxruntime", marker)
    model = tmp_path / "m"
    satchel.save_model(onnx_model, model, code_paths=[evil])
    # allow_code=False: code paths are code that runs on load -> refused.
    proc = run_python(
        "import satchel, sys\n"
        "from satchel.errors import CodeNotAllowedError\n"
        f"try:\n    satchel.load_model({str(model)!r}, allow_code=False)\n"
        "except CodeNotAllowedError as e:\n    print('REFUSED', e); sys.exit(0)\n"
        "print('LOADED')\n"
    )
    assert "REFUSED" in proc.stdout and "code paths" in proc.stdout, proc.stdout + proc.stderr
    assert not marker.exists()
    # Allowed: the code path goes on sys.path after onnxruntime, never ahead of it.
    proc = run_python(
        "import satchel, numpy as np\n"
        f"m = satchel.load_model({str(model)!r})\n"
        "print(m.predict(np.array([[1.0]], dtype=np.float32))['y'].ravel().tolist())\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "[2.0]" in proc.stdout
    assert not marker.exists()


def test_info_names_code_paths(tmp_path: Path, onnx_model: Any) -> None:
    src = tmp_path / "helper.py"
    src.write_text("X = 1\n")
    model = tmp_path / "m"
    satchel.save_model(onnx_model, model, code_paths=[src])
    proc = run_cli("info", str(model))
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("format"))
    assert "code paths in code/" in line


def test_example_path_cannot_name_a_host_file(tmp_path: Path, iris_model_dir: Path) -> None:
    host = tmp_path / "host-secret.json"
    host.write_text(json.dumps({"columns": ["secret"], "data": [["hunter2"]]}))
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)

    def point(d: dict[str, Any]) -> None:
        d["saved_input_example_info"]["artifact_path"] = str(host)

    edit_manifest(model, point)
    with pytest.raises(ModelFormatError, match="absolute"):
        satchel.load_model(model)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("env", {"conda": "/etc/passwd", "virtualenv": "python_env.yaml"}, "absolute"),
        ("model_path", "sub/../../outside.pkl", r"'\.\.'"),
        ("code", "../code", r"'\.\.'"),
    ],
)
def test_every_manifest_path_stays_inside(
    tmp_path: Path, iris_model_dir: Path, key: str, value: Any, match: str
) -> None:
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)
    edit_manifest(model, lambda d: d["flavors"]["python_function"].__setitem__(key, value))
    with pytest.raises(ModelFormatError, match=match):
        satchel.load_model(model)


def test_symlink_out_of_an_undigested_model_refused(tmp_path: Path, iris_model_dir: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)
    edit_manifest(model, lambda d: d.pop("artifact_digests"))
    shutil.move(str(model / "model.pkl"), outside / "model.pkl")
    (model / "model.pkl").symlink_to(outside / "model.pkl")
    with pytest.raises(ModelFormatError, match="symlink"):
        satchel.load_model(model)


def test_hidden_file_named_by_manifest_is_not_loaded(tmp_path: Path, iris_model_dir: Path) -> None:
    marker = tmp_path / "ran"
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)
    (model / ".evil.pkl").write_bytes(pickle.dumps(_Marker(marker)))
    edit_manifest(
        model, lambda d: d["flavors"]["python_function"].__setitem__("model_path", ".evil.pkl")
    )
    with pytest.raises(IntegrityError, match=r"\.evil\.pkl"):
        satchel.load_model(model)
    assert not marker.exists()


def _code_model(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "helper.py").write_text("def value():\n    return 1\n")

    def predict(df: Any) -> Any:
        import helper  # resolved from the model's code/ at predict time

        return df.assign(out=helper.value())[["out"]]

    model = tmp_path / "m"
    satchel.save_model(predict, model, code_paths=[src / "helper.py"])
    return model


def test_unchecked_pyc_does_not_replace_digested_source(tmp_path: Path) -> None:
    model = _code_model(tmp_path)
    fake = tmp_path / "fake" / "helper.py"
    fake.parent.mkdir()
    fake.write_text("def value():\n    return 666\n")
    cache = model / "code" / "__pycache__"
    cache.mkdir()
    tag = __import__("sys").implementation.cache_tag
    py_compile.compile(
        str(fake),
        cfile=str(cache / f"helper.{tag}.pyc"),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    proc = run_python(
        "import satchel, pandas as pd\n"
        f"m = satchel.load_model({str(model)!r})\n"
        "print('OUT', m.predict(pd.DataFrame({'a': [1.0]}))['out'].tolist())\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "OUT [1]" in proc.stdout


def test_loading_code_writes_no_bytecode_into_the_model(tmp_path: Path) -> None:
    model = _code_model(tmp_path)
    proc = run_python(
        "import satchel, pandas as pd\n"
        f"m = satchel.load_model({str(model)!r})\n"
        "print('OUT', m.predict(pd.DataFrame({'a': [1.0]}))['out'].tolist())\n",
        env={"PYTHONDONTWRITEBYTECODE": ""},  # as a user's shell has it: writing allowed
    )
    assert "OUT [1]" in proc.stdout, proc.stderr
    assert not (model / "code" / "__pycache__").exists()
    satchel.load_model(model)  # and the directory still verifies


def test_symlinked_folder_is_not_loaded_undigested(tmp_path: Path) -> None:
    model = _code_model(tmp_path)
    planted = tmp_path / "planted" / "extra"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("raise SystemExit('planted code ran')\n")
    (model / "code" / "extra").symlink_to(planted, target_is_directory=True)
    with pytest.raises(IntegrityError, match="code/extra is a symlink"):
        satchel.load_model(model)


def test_require_digests(tmp_path: Path, iris_model_dir: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)
    edit_manifest(model, lambda d: d.pop("artifact_digests"))
    satchel.load_model(model)  # MLflow-saved directories still load by default
    with pytest.raises(UnverifiedModelError, match="no artifact_digests"):
        satchel.load_model(model, require_digests=True)
    proc = run_cli("validate", str(model))
    assert proc.returncode == 0, proc.stderr
    assert "digests verified" not in proc.stdout and "NO digests" in proc.stdout
    assert "digests verified (" in run_cli("validate", str(iris_model_dir)).stdout
    # The server refuses it before it listens.
    from tests.conftest import free_port

    proc = run_cli("serve", "--require-digests", "-m", str(model), "--port", str(free_port()),
                   timeout=60)
    assert proc.returncode != 0 and "no artifact_digests" in proc.stderr, proc.stderr[-500:]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    return "\n".join(lines)


@pytest.mark.parametrize("command", [["info", "--json"], ["info"], ["validate"]])
def test_yaml_alias_bomb_refused_before_expansion(
    tmp_path: Path, iris_model_dir: Path, command: list[str]
) -> None:
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)
    text = (model / "MLmodel").read_text()
    (model / "MLmodel").write_text(text + "metadata:\n" + "\n".join(
        "  " + ln for ln in _bomb().splitlines()
    ) + "\n")
    t0 = time.monotonic()
    proc = run_cli(*command, str(model), timeout=60, preexec=_limit_memory)
    assert proc.returncode != 0
    assert "YAML nodes" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 30


def test_huge_manifest_refused_before_reading(tmp_path: Path, iris_model_dir: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)
    with open(model / "MLmodel", "a") as f:
        chunk = "# " + "x" * (1 << 20) + "\n"
        for _ in range(200):
            f.write(chunk)
    with pytest.raises(ModelFormatError, match="at most"):
        satchel.load_model(model)
    proc = run_cli("info", "--json", str(model), preexec=_limit_memory)
    assert proc.returncode != 0 and "at most" in proc.stderr


def test_recursive_alias_refused(tmp_path: Path, iris_model_dir: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)
    with open(model / "MLmodel", "a") as f:
        f.write("metadata: &loop\n  self: *loop\n")
    with pytest.raises(ModelFormatError, match="recursive"):
        satchel.load_model(model)


def test_pickle_refusal_message_unchanged_for_plain_models(iris_model_dir: Path) -> None:
    with pytest.raises(CodeNotAllowedError, match="cloudpickle"):
        satchel.load_model(iris_model_dir, allow_code=False)
