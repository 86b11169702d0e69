"""The PyTorch flavor against real torch: both formats, MLflow's layout, hostile files."""

from __future__ import annotations

import io
import pickle
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import satchel
from satchel.errors import (
    CodeNotAllowedError,
    LibraryVersionWarning,
    ModelFormatError,
    SignatureError,
)
from satchel.flavors import pytorch as pt_flavor
from satchel.schema import Schema, TensorSpec
from satchel.testing import check_flavor

torch = pytest.importorskip("torch")  # the pytorch extra is part of the test install


@pytest.fixture(scope="module")
def net(iris: Any) -> Any:
    """A small classifier trained on iris (a few steps: the weights only need to differ)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = torch.from_numpy(iris[0].to_numpy(np.float32))
    y = torch.from_numpy(iris[1].to_numpy())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


class Scaled(torch.nn.Module):
    """forward takes a keyword, the way MLflow passes params."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x: Any, scale: float = 1.0) -> Any:
        return self.lin(x) * scale


def _native(m: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return m(torch.from_numpy(x)).numpy()  # type: ignore[no-any-return]


@pytest.fixture
def x(iris: Any) -> np.ndarray:
    return iris[0].head(10).to_numpy(np.float32)


def test_conformance_pickle(net: Any, x: np.ndarray) -> None:
    passed = check_flavor("pytorch", net, x, native_predict=_native)
    assert {"predict_matches_native", "allow_code_false_refuses", "tamper_detected"} <= set(passed)


def test_conformance_pt2(net: Any, x: np.ndarray) -> None:
    passed = check_flavor(
        "pytorch",
        net,
        x,
        native_predict=_native,
        save_options={"serialization_format": "pt2"},
        load_options={"allow_code": False},  # the exported program runs no code
        native_type="GraphModule",
    )
    assert "predict_matches_native" in passed and "unwrap_type" in passed


def test_manifest_matches_mlflow_layout(net: Any, x: np.ndarray, tmp_path: Path) -> None:
    satchel.save_model(net, tmp_path / "m", input_example=x)  # picked from the type
    doc = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())
    assert doc["flavors"]["pytorch"] == {
        "model_data": "data",
        "pytorch_version": torch.__version__,
        "code": None,
        "serialization_format": "pickle",
    }
    pyfunc = doc["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pytorch" and pyfunc["data"] == "data"
    assert pyfunc["pickle_module_name"] == "mlflow.pytorch.pickle_module"
    assert (tmp_path / "m/data/pickle_module_info.txt").read_text() == pyfunc["pickle_module_name"]
    assert (tmp_path / "m/data/model.pth").is_file()
    reqs = (tmp_path / "m/requirements.txt").read_text()
    assert f"torch=={torch.__version__}" in reqs and "cloudpickle==" in reqs
    sig = satchel.load_model(tmp_path / "m").signature
    assert sig is not None
    assert sig.inputs == Schema([TensorSpec("float32", (-1, 4))])
    assert sig.outputs == Schema([TensorSpec("float32", (-1, 3))])


def test_pt2_from_the_generic_save_and_a_one_row_example(
    net: Any, iris: Any, tmp_path: Path
) -> None:
    one = iris[0].head(1).to_numpy(np.float32)
    satchel.save_model(net, tmp_path / "m", input_example=one, serialization_format="pt2")
    assert (tmp_path / "m/data/model.pt2").is_file()
    assert not (tmp_path / "m/data/model.pth").exists()
    m = satchel.load_model(tmp_path / "m", allow_code=False)
    many = iris[0].to_numpy(np.float32)
    # the batch dimension stays free although the example had one row
    np.testing.assert_allclose(m.predict(many), _native(net, many), rtol=1e-5, atol=1e-6)


def test_pt2_needs_an_example(net: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="input_example"):
        pt_flavor.save_model(net, tmp_path / "m", serialization_format="pt2")
    assert not (tmp_path / "m").exists()


def test_tensor_example_and_unknown_format(net: Any, x: np.ndarray, tmp_path: Path) -> None:
    pt_flavor.save_model(net, tmp_path / "m", input_example=torch.from_numpy(x))
    assert satchel.load_model(tmp_path / "m").signature is not None
    with pytest.raises(ValueError, match="serialization_format"):
        pt_flavor.save_model(net, tmp_path / "n", serialization_format="pt3")
    with pytest.raises(TypeError, match="serialisation_format"):
        pt_flavor.save_model(net, tmp_path / "n", serialisation_format="pt2")


def test_dataframe_in_dataframe_out_without_signature(net: Any, iris: Any, tmp_path: Path) -> None:
    """MLflow's wrapper: a DataFrame goes in as float32 and comes back on its index."""
    pt_flavor.save_model(net, tmp_path / "m")
    df = iris[0].iloc[5:9]
    out = satchel.load_model(tmp_path / "m").predict(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [0, 1, 2] and list(out.index) == list(df.index)
    np.testing.assert_allclose(out.to_numpy(), _native(net, df.to_numpy(np.float32)), rtol=1e-6)


def test_params_are_forward_keywords_and_device_is_not(iris: Any, tmp_path: Path) -> None:
    model = Scaled().eval()
    x = iris[0].head(3).to_numpy(np.float32)
    pt_flavor.save_model(model, tmp_path / "m", input_example=(x, {"scale": 1.0}))
    m = satchel.load_model(tmp_path / "m")
    base = m.predict(x)
    np.testing.assert_allclose(m.predict(x, {"scale": 2.0}), base * 2, rtol=1e-6)
    with pytest.raises(SignatureError, match="device"):
        m._predictor.predict(x, {"device": "cuda"})


def test_import_satchel_and_can_save_do_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys, satchel\n"
        "from satchel import plugins\n"
        "f = plugins.get('pytorch')\n"
        "assert not f.can_save(object()) and not f.can_save([1])\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_torch_names_the_extra(net: Any, x: np.ndarray, tmp_path: Path) -> None:
    pt_flavor.save_model(net, tmp_path / "m", input_example=x)
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import satchel\n"
        "try:\n"
        f"    satchel.load_model({str(tmp_path / 'm')!r})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingLibraryError")
    assert "pip install 'satchel[pytorch]'" in out.stdout


def test_newer_torch_warns_naming_both(net: Any, x: np.ndarray, tmp_path: Path) -> None:
    pt_flavor.save_model(net, tmp_path / "m", input_example=x)
    mlmodel = tmp_path / "m/MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    doc["flavors"]["pytorch"]["pytorch_version"] = "99.1.0"
    mlmodel.write_text(yaml.safe_dump(doc))
    with pytest.warns(LibraryVersionWarning) as rec:
        satchel.load_model(tmp_path / "m")
    msg = str(rec[0].message)
    assert "99.1.0" in msg and torch.__version__ in msg


@pytest.mark.parametrize("fmt", ["pickle", "pt2"])
def test_corrupt_file_is_a_one_line_error_naming_it(
    fmt: str, net: Any, x: np.ndarray, tmp_path: Path
) -> None:
    pt_flavor.save_model(net, tmp_path / "m", input_example=x, serialization_format=fmt)
    name = "model.pth" if fmt == "pickle" else "model.pt2"
    (tmp_path / "m/data" / name).write_bytes(b"not a torch file at all")
    with pytest.raises(ModelFormatError) as info:
        satchel.load_model(tmp_path / "m", verify=False)
    assert name in str(info.value) and "\n" not in str(info.value)


def _rewrite_record(src: Path, record_suffix: str, content: bytes) -> None:
    tmp = src.with_suffix(".tmp")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w") as zout:
        for info in zin.infolist():
            data = content if info.filename.endswith(record_suffix) else zin.read(info)
            zout.writestr(info, data)
    tmp.replace(src)


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("pwned",))


def test_pt2_with_a_pickled_record_is_refused_without_code(
    net: Any, x: np.ndarray, tmp_path: Path
) -> None:
    pt_flavor.save_model(net, tmp_path / "m", input_example=x, serialization_format="pt2")
    archive = tmp_path / "m/data/model.pt2"
    buf = io.BytesIO()
    pickle.dump(_Boom(), buf)
    _rewrite_record(archive, "sample_inputs/model.pt", buf.getvalue())
    assert pt_flavor.pt2_pickled_record(archive) is not None
    with pytest.raises(CodeNotAllowedError, match="sample_inputs/model.pt"):
        satchel.load_model(tmp_path / "m", allow_code=False, verify=False)


def test_pt2_with_a_native_library_is_refused_without_code(
    net: Any, x: np.ndarray, tmp_path: Path
) -> None:
    pt_flavor.save_model(net, tmp_path / "m", input_example=x, serialization_format="pt2")
    archive = tmp_path / "m/data/model.pt2"
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("model/data/aotinductor/model/model.so", b"\x7fELF" + b"\0" * 64)
    assert pt_flavor.pt2_pickled_record(archive) == "model/data/aotinductor/model/model.so"


def test_pickle_refused_even_when_manifest_omits_the_format(
    net: Any, x: np.ndarray, tmp_path: Path
) -> None:
    """MLflow writes no serialization_format: the file decides."""
    pt_flavor.save_model(net, tmp_path / "m", input_example=x)
    mlmodel = tmp_path / "m/MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    del doc["flavors"]["pytorch"]["serialization_format"]
    mlmodel.write_text(yaml.safe_dump(doc))
    with pytest.raises(CodeNotAllowedError, match="model.pth"):
        satchel.load_model(tmp_path / "m", allow_code=False)


def test_input_that_is_not_numeric(net: Any, tmp_path: Path) -> None:
    pt_flavor.save_model(net, tmp_path / "m")
    m = satchel.load_model(tmp_path / "m")
    with pytest.raises(SignatureError, match="dtype"):
        m.predict(np.array([["a", "b", "c", "d"]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a read-only array is copied, not handed to torch (which would warn)
        ro = np.ones((2, 4), np.float32)
        ro.flags.writeable = False
        assert m.predict(ro).shape == (2, 3)


def test_data_dir_path_cannot_escape(net: Any, x: np.ndarray, tmp_path: Path) -> None:
    pt_flavor.save_model(net, tmp_path / "m", input_example=x)
    mlmodel = tmp_path / "m/MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    doc["flavors"]["pytorch"]["model_data"] = "../../etc"
    mlmodel.write_text(yaml.safe_dump(doc))
    with pytest.raises(ModelFormatError, match="outside"):
        satchel.load_model(tmp_path / "m")
    shutil.rmtree(tmp_path / "m")


def test_device_load_option_in_both_spellings(net: Any, x: np.ndarray, tmp_path: Path) -> None:
    pt_flavor.save_model(net, tmp_path / "m", input_example=x)
    for options in ({"device": "cpu"}, {"model_config": {"device": "cpu"}}):
        m = satchel.load_model(tmp_path / "m", **options)
        assert m._predictor.device == "cpu"
        assert next(m.unwrap().parameters()).device.type == "cpu"
