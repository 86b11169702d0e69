"""MLflow 3.17.2 custom models and models from code, loaded by satchel WITHOUT mlflow.

The MLflow side venv saves each model and records what MLflow's own pyfunc predicts;
this process (no mlflow importable) loads the directory and must predict the same.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.errors import CodeNotAllowedError, FlavorLoadError, MlflowNameError

pytestmark = pytest.mark.interop

SAVES = r'''
import json, os, sys
from pathlib import Path
import numpy as np, pandas as pd
import mlflow, mlflow.pyfunc
from mlflow.pyfunc import PythonModel

result_path, work = sys.argv[1], Path(sys.argv[2])
df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})
(work / "k.txt").write_text("10")
(work / "helpers").mkdir(exist_ok=True)
(work / "helpers" / "shift.py").write_text("def shift(x):\n    return x - 7\n")
sys.path.insert(0, str(work / "helpers"))
import shift as _shift_module

out = {}

def enc(p):
    if isinstance(p, pd.DataFrame):
        return {"kind": "frame", "value": {str(c): p[c].tolist() for c in p.columns}}
    if isinstance(p, pd.Series):
        return {"kind": "array", "value": p.tolist()}
    return {"kind": "array", "value": np.asarray(p).tolist()}

def record(name, data, params=None):
    path = work / "models" / name
    model = mlflow.pyfunc.load_model(str(path))
    out[name] = {"path": str(path), "pred": enc(model.predict(data, params=params))}

class WithContext(PythonModel):
    def load_context(self, context):
        self.k = float(open(context.artifacts["k"]).read())
        self.z = context.model_config["z"]
    def predict(self, context, model_input, params=None):
        return model_input["a"] * self.k + self.z + (params or {}).get("p", 0)

class NoContext(PythonModel):
    def predict(self, model_input, params=None):
        return model_input[["a", "b"]] * 2

class Typed(PythonModel):
    def predict(self, model_input: list[str], params=None) -> list[str]:
        return [s.upper() for s in model_input]

class UsesCode(PythonModel):
    def predict(self, context, model_input, params=None):
        import shift
        return shift.shift(model_input["b"])

def fn(model_input):
    return model_input["a"] * 3

from mlflow.types.llm import ChatCompletionResponse

class Chat(mlflow.pyfunc.ChatModel):
    def predict(self, context, messages, params):
        return ChatCompletionResponse.from_dict({"choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "hi"}}]})

models = work / "models"
mlflow.pyfunc.save_model(str(models / "ctx"), python_model=WithContext(),
                         artifacts={"k": str(work / "k.txt")}, model_config={"z": 100},
                         input_example=(df, {"p": 1}))
record("ctx", df, {"p": 5})
mlflow.pyfunc.save_model(str(models / "noctx"), python_model=NoContext(), input_example=df)
record("noctx", df)
mlflow.pyfunc.save_model(str(models / "typed"), python_model=Typed(), input_example=["a", "b"])
record("typed", ["ab", "cd"])
out["typed_df"] = {"path": str(models / "typed"), "pred": enc(mlflow.pyfunc.load_model(
    str(models / "typed")).predict(pd.DataFrame(["ab", "cd"])))}
mlflow.pyfunc.save_model(str(models / "fn"), python_model=fn, input_example=df)
record("fn", df)
mlflow.pyfunc.save_model(str(models / "code_paths"), python_model=UsesCode(),
                         code_paths=[str(work / "helpers" / "shift.py")], input_example=df)
record("code_paths", df)
os.environ["MLFLOW_LOG_MODEL_COMPRESSION"] = "lzma"
mlflow.pyfunc.save_model(str(models / "lzma"), python_model=NoContext(), input_example=df)
del os.environ["MLFLOW_LOG_MODEL_COMPRESSION"]
record("lzma", df)
mlflow.pyfunc.save_model(str(models / "chat"), python_model=Chat())
out["chat"] = {"path": str(models / "chat")}

(work / "scaled.py").write_text("""
import mlflow
from mlflow.pyfunc import PythonModel
from mlflow.models import set_model

class Scaled(PythonModel):
    def load_context(self, context):
        self.factor = context.model_config["factor"]
    def predict(self, context, model_input, params=None):
        return model_input["a"] * self.factor

set_model(Scaled())
""")
(work / "plain_fn.py").write_text(
    "import mlflow\n"
    "def f(model_input):\n"
    "    return model_input['a'] + 0.5\n"
    "mlflow.models.set_model(f)\n")
(work / "uses_config.py").write_text(
    "import mlflow\n"
    "from mlflow.models import ModelConfig\n"
    "cfg = ModelConfig()\n"
    "mlflow.models.set_model(lambda d: d * cfg.get('k'))\n")
mlflow.pyfunc.save_model(str(models / "code"), python_model=str(work / "scaled.py"),
                         model_config={"factor": 3}, input_example=df)
record("code", df)
mlflow.pyfunc.save_model(str(models / "code_fn"), python_model=str(work / "plain_fn.py"),
                         input_example=df)
record("code_fn", df)
mlflow.pyfunc.save_model(str(models / "code_config"), python_model=str(work / "uses_config.py"),
                         model_config={"k": 2}, pip_requirements=["pandas"])
out["code_config"] = {"path": str(models / "code_config")}
Path(result_path).write_text(json.dumps(out))
'''

DF = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})


def enc(p: Any) -> dict[str, Any]:
    if isinstance(p, pd.DataFrame):
        return {"kind": "frame", "value": {str(c): p[c].tolist() for c in p.columns}}
    if isinstance(p, pd.Series):
        return {"kind": "array", "value": p.tolist()}
    return {"kind": "array", "value": np.asarray(p).tolist()}


@pytest.fixture(scope="module")
def saved(run_mlflow: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("mlflow-custom")
    return dict(run_mlflow(SAVES, str(work)))


def test_mlflow_is_not_importable_here() -> None:
    assert importlib.util.find_spec("mlflow") is None


@pytest.mark.parametrize(
    "name, data, params",
    [
        ("ctx", DF, {"p": 5}),
        ("noctx", DF, None),
        ("typed", ["ab", "cd"], None),
        ("typed_df", pd.DataFrame(["ab", "cd"]), None),
        ("fn", DF, None),
        ("code_paths", DF, None),
        ("lzma", DF, None),
        ("code", DF, None),
        ("code_fn", DF, None),
    ],
)
def test_satchel_predicts_what_mlflow_predicts_without_mlflow(
    saved: dict[str, Any], name: str, data: Any, params: Any
) -> None:
    entry = saved[name]
    model = satchel.load_model(entry["path"])
    assert model.flavor.name == "mlflow_pyfunc"
    assert enc(model.predict(data, params=params)) == entry["pred"]
    assert importlib.util.find_spec("mlflow") is None


@pytest.mark.parametrize("name, fmt", [("ctx", "cloudpickle"), ("code", "python source")])
def test_still_code_so_allow_code_false_refuses(saved: dict[str, Any], name: str, fmt: str) -> None:
    with pytest.raises(CodeNotAllowedError, match=fmt):
        satchel.load_model(saved[name]["path"], allow_code=False)


def test_chat_model_is_refused_naming_the_class(saved: dict[str, Any]) -> None:
    with pytest.raises(MlflowNameError) as err:
        satchel.load_model(saved["chat"]["path"])
    assert err.value.mlflow_name == "mlflow.pyfunc.model.ChatModel"
    assert "allow_mlflow=True" in str(err.value)


def test_code_model_reaching_for_other_mlflow_names_is_refused(saved: dict[str, Any]) -> None:
    with pytest.raises(MlflowNameError) as err:
        satchel.load_model(saved["code_config"]["path"])
    assert err.value.mlflow_name == "mlflow.models.ModelConfig"


def test_allow_mlflow_here_names_mlflow_as_missing(saved: dict[str, Any]) -> None:
    with pytest.raises(FlavorLoadError, match="pip install mlflow"):
        satchel.load_model(saved["ctx"]["path"], allow_mlflow=True)


def test_satchel_info_says_what_runs(saved: dict[str, Any]) -> None:
    from satchel.cli.info import describe

    assert describe(Path(saved["ctx"]["path"]))["runs_code_on_load"] == "cloudpickle"
    assert describe(Path(saved["code"]["path"]))["runs_code_on_load"] == "python source"
    assert json.dumps(describe(Path(saved["code"]["path"])), default=str)
