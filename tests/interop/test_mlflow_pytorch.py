"""PyTorch both ways with real MLflow 3.17 (side venv; mlflow is never imported here).

MLflow -> satchel: MLflow saves the same module as pickle, as pt2 and without a signature;
satchel loads each without mlflow and predicts exactly what MLflow's pyfunc predicts on the
same input (values, shape, DataFrame columns and index). satchel -> MLflow: MLflow loads
satchel's directories through pyfunc and ``mlflow.pytorch.load_model``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import CodeNotAllowedError, UnknownParamsWarning
from satchel.flavors import pytorch as pt_flavor

pytestmark = pytest.mark.interop
torch = pytest.importorskip("torch")

COMMON = """
import json, sys
from pathlib import Path
import numpy as np, pandas as pd, torch

result_path, work = sys.argv[1], Path(sys.argv[2])
x32 = np.load(work / "x32.npy")
cols = json.loads((work / "columns.json").read_text())

def net():
    m = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    m.load_state_dict(torch.load(work / "weights.pt", weights_only=True))
    return m.eval()

def enc(p):
    if isinstance(p, pd.DataFrame):
        return {"kind": "frame", "columns": [str(c) for c in p.columns],
                "index": [int(i) for i in p.index], "value": p.to_numpy().tolist()}
    return {"kind": "array", "shape": list(np.shape(p)), "value": np.asarray(p).tolist()}

def done(result):
    Path(result_path).write_text(json.dumps(result))
"""

MLFLOW_SAVES = (
    COMMON
    + """
import mlflow.pytorch, mlflow.pyfunc
reqs = json.loads(sys.argv[3])
out = {}
df = pd.DataFrame(x32, columns=cols, index=range(100, 100 + len(x32)))
for name, kw, data in [
    ("pickle", dict(serialization_format="pickle", input_example=x32[:5]), x32),
    ("pt2", dict(serialization_format="pt2", input_example=x32[:5]), x32),
    ("nosig", dict(serialization_format="pickle"), df),
]:
    path = work / "from_mlflow" / name
    mlflow.pytorch.save_model(net(), str(path), pip_requirements=reqs, **kw)
    model = mlflow.pyfunc.load_model(str(path))
    # MLflow 3's device option is a load-time model_config (not a predict param)
    on_cpu = mlflow.pyfunc.load_model(str(path), model_config={"device": "cpu"})
    out[name] = {"path": str(path), "pred": enc(model.predict(data)),
                 "pred_cpu": enc(on_cpu.predict(data))}
done(out)
"""
)

MLFLOW_LOADS = (
    COMMON
    + """
import mlflow.pytorch, mlflow.pyfunc
out = {}
df = pd.DataFrame(x32, columns=cols, index=range(100, 100 + len(x32)))
for name in ("pickle", "pt2", "nosig"):
    path = str(work / "from_satchel" / name)
    data = df if name == "nosig" else x32
    native = mlflow.pytorch.load_model(path)
    with torch.no_grad():
        raw = native(torch.from_numpy(x32)).numpy()
    out[name] = {"pyfunc": enc(mlflow.pyfunc.load_model(path).predict(data)),
                 "native": enc(raw), "native_type": type(native).__name__}
done(out)
"""
)


def enc(p: Any) -> dict[str, Any]:
    if isinstance(p, pd.DataFrame):
        return {
            "kind": "frame",
            "columns": [str(c) for c in p.columns],
            "index": [int(i) for i in p.index],
            "value": p.to_numpy().tolist(),
        }
    return {"kind": "array", "shape": list(np.shape(p)), "value": np.asarray(p).tolist()}


@pytest.fixture(scope="module")
def net(iris: Any) -> Any:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    ).eval()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, iris: Any, net: Any) -> Path:
    d = tmp_path_factory.mktemp("interop-torch")
    np.save(d / "x32.npy", iris[0].to_numpy(np.float32))
    (d / "columns.json").write_text(json.dumps(list(iris[0].columns)))
    torch.save(net.state_dict(), d / "weights.pt")
    return d


def _data(work: Path, name: str) -> Any:
    x32 = np.load(work / "x32.npy")
    if name != "nosig":
        return x32
    cols = json.loads((work / "columns.json").read_text())
    return pd.DataFrame(x32, columns=cols, index=range(100, 100 + len(x32)))


@pytest.fixture(scope="module")
def from_mlflow(run_mlflow: Any, work: Path) -> dict[str, Any]:
    from satchel.env import pin

    return dict(run_mlflow(MLFLOW_SAVES, str(work), json.dumps([pin("torch")])))


@pytest.mark.parametrize("name", ["pickle", "pt2", "nosig"])
def test_satchel_loads_what_mlflow_saved(
    from_mlflow: dict[str, Any], work: Path, name: str
) -> None:
    entry = from_mlflow[name]
    model = satchel.load_model(entry["path"])
    assert model.flavor_name == "pytorch"
    got = enc(model.predict(_data(work, name)))
    want = entry["pred"]
    assert {k: v for k, v in got.items() if k != "value"} == {
        k: v for k, v in want.items() if k != "value"
    }
    np.testing.assert_allclose(np.asarray(got["value"]), np.asarray(want["value"]), rtol=1e-6)


@pytest.mark.parametrize("name", ["pickle", "pt2"])
def test_device_cpu_as_mlflow_takes_it(from_mlflow: dict[str, Any], work: Path, name: str) -> None:
    entry = from_mlflow[name]
    want = entry["pred_cpu"]
    for options in ({"device": "cpu"}, {"model_config": {"device": "cpu"}}):
        model = satchel.load_model(entry["path"], **options)
        got = enc(model.predict(_data(work, name)))
        assert got["shape"] == want["shape"]
        np.testing.assert_allclose(np.asarray(got["value"]), np.asarray(want["value"]), rtol=1e-6)
    # a device given at predict time to a model whose signature has no params: ignored
    # with a warning naming it (MLflow ignores params its signature lacks, too)
    model = satchel.load_model(entry["path"])
    with pytest.warns(UnknownParamsWarning, match="device"):
        got = enc(model.predict(_data(work, name), params={"device": "cpu"}))
    np.testing.assert_allclose(np.asarray(got["value"]), np.asarray(want["value"]), rtol=1e-6)


def test_mlflow_pickle_refused_and_pt2_accepted_without_code(from_mlflow: dict[str, Any]) -> None:
    with pytest.raises(CodeNotAllowedError, match="model.pth"):
        satchel.load_model(from_mlflow["pickle"]["path"], allow_code=False)
    # MLflow's pt2 archive holds tensors and JSON only
    m = satchel.load_model(from_mlflow["pt2"]["path"], allow_code=False)
    assert m.predict(np.zeros((2, 4), np.float32)).shape == (2, 3)


def test_mlflow_loads_what_satchel_saved(run_mlflow: Any, work: Path, net: Any, iris: Any) -> None:
    x5 = iris[0].head(5).to_numpy(np.float32)
    base = work / "from_satchel"
    pt_flavor.save_model(net, base / "pickle", input_example=x5)
    pt_flavor.save_model(net, base / "pt2", input_example=x5, serialization_format="pt2")
    pt_flavor.save_model(net, base / "nosig")
    result = run_mlflow(MLFLOW_LOADS, str(work))
    for name in ("pickle", "pt2", "nosig"):
        ours = enc(satchel.load_model(base / name).predict(_data(work, name)))
        theirs = result[name]["pyfunc"]
        assert {k: v for k, v in ours.items() if k != "value"} == {
            k: v for k, v in theirs.items() if k != "value"
        }, name
        np.testing.assert_allclose(
            np.asarray(ours["value"]), np.asarray(theirs["value"]), rtol=1e-6
        )
        np.testing.assert_allclose(
            np.asarray(result[name]["native"]["value"]), np.asarray(ours["value"]), rtol=1e-6
        )
    assert result["pickle"]["native_type"] == "Sequential"
