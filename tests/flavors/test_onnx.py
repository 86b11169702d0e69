"""The ONNX flavor against real onnxruntime: save, graph signature, routing, errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import satchel
from satchel.errors import IntegrityError, ModelFormatError, SignatureError
from satchel.flavors import onnx as onnx_flavor
from satchel.schema import ColSpec, DataType, Schema, Signature, TensorSpec
from satchel.testing import check_flavor

onnx = pytest.importorskip("onnx")  # the onnx extra is part of the test install
ort = pytest.importorskip("onnxruntime")


def _to_onnx(model: Any, n: int, zipmap: bool = False) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {"zipmap": zipmap} if hasattr(model, "predict_proba") else None
    return convert_sklearn(
        model, initial_types=[("input", FloatTensorType([None, n]))], options=options
    )


@pytest.fixture(scope="module")
def logreg_onnx(iris_logreg: Any) -> Any:
    return _to_onnx(iris_logreg, 4)


@pytest.fixture(scope="module")
def two_inputs() -> Any:
    """out = a * 2 + b, with a, b and out of shape [N, 1] (one input per column)."""
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 1])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["a", "two"], ["a2"]),
            helper.make_node("Add", ["a2", "b"], ["out"]),
        ],
        "two_inputs",
        [a, b],
        [out],
        initializer=[two],
    )
    model = _model(graph)
    onnx.checker.check_model(model)
    return model


def _model(graph: Any) -> Any:
    from onnx import helper

    # IR 10: what onnxruntime 1.31 reads (onnx's newest IR is ahead of it).
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def _raw(model: Any, feeds: dict[str, Any]) -> list[Any]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(sess.run(None, feeds))


def test_conformance(logreg_onnx: Any, iris: Any) -> None:
    x = iris[0].head(10).to_numpy(np.float32)
    passed = check_flavor(
        "onnx",
        logreg_onnx,
        x,
        native_predict=lambda m, s: dict(zip(["label", "probabilities"], _raw(m, {"input": s}))),
    )
    assert "predict_matches_native" in passed and "tamper_detected" in passed


def test_manifest_sections_match_mlflow(logreg_onnx: Any, tmp_path: Path) -> None:
    satchel.save_model(logreg_onnx, tmp_path / "m")  # flavor picked from the ModelProto
    doc = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())
    section = doc["flavors"]["onnx"]
    assert section == {
        "onnx_version": onnx.__version__,
        "data": "model.onnx",
        "code": None,
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "onnx_session_options": None,
    }
    pyfunc = doc["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.onnx" and pyfunc["data"] == "model.onnx"
    reqs = (tmp_path / "m" / "requirements.txt").read_text()
    assert f"onnx=={onnx.__version__}" in reqs and f"onnxruntime=={ort.__version__}" in reqs


def test_signature_inferred_from_graph(logreg_onnx: Any, two_inputs: Any, tmp_path: Path) -> None:
    satchel.save_model(logreg_onnx, tmp_path / "lr")
    sig = satchel.load_model(tmp_path / "lr").signature
    assert sig == Signature(
        Schema([TensorSpec("float32", (-1, 4), "input")]),
        Schema(
            [TensorSpec("int64", (-1,), "label"), TensorSpec("float32", (-1, 3), "probabilities")]
        ),
    )
    onnx_flavor.save_model(two_inputs, tmp_path / "two")
    sig2 = satchel.load_model(tmp_path / "two").signature
    assert sig2 is not None and sig2.inputs == Schema(
        [TensorSpec("float32", (-1, 1), "a"), TensorSpec("float32", (-1, 1), "b")]
    )


def test_given_signature_wins(logreg_onnx: Any, iris: Any, tmp_path: Path) -> None:
    given = satchel.infer_signature(iris[0].head())
    onnx_flavor.save_model(logreg_onnx, tmp_path / "m", signature=given)
    assert satchel.load_model(tmp_path / "m").signature == given


def test_save_from_path_and_load_native(logreg_onnx: Any, tmp_path: Path) -> None:
    src = tmp_path / "lr.onnx"
    src.write_bytes(logreg_onnx.SerializeToString())
    assert onnx_flavor.OnnxFlavor().can_save(str(src))
    satchel.save_model(str(src), tmp_path / "m")  # a .onnx path picks the onnx flavor
    native = onnx_flavor.load_model(tmp_path / "m")
    assert isinstance(native, onnx.ModelProto)
    assert native.SerializeToString() == logreg_onnx.SerializeToString()
    model = satchel.load_model(tmp_path / "m", allow_code=False)  # ONNX runs no code
    assert model.row_independent


# --- routing and outputs -------------------------------------------------------------


def test_float64_array_rounds_to_float32(logreg_onnx: Any, iris: Any, tmp_path: Path) -> None:
    onnx_flavor.save_model(logreg_onnx, tmp_path / "m")
    model = satchel.load_model(tmp_path / "m")
    x64 = iris[0].to_numpy()
    label, proba = _raw(logreg_onnx, {"input": x64.astype(np.float32)})
    for data in (x64, {"input": x64}, iris[0]):  # ndarray, dict, DataFrame (one 2-D tensor)
        out = model.predict(data)
        assert isinstance(out, dict) and list(out) == ["label", "probabilities"]
        np.testing.assert_array_equal(out["label"], label)
        np.testing.assert_array_equal(out["probabilities"], proba)


def test_float64_overflow_is_refused(logreg_onnx: Any, tmp_path: Path) -> None:
    onnx_flavor.save_model(logreg_onnx, tmp_path / "m")
    model = satchel.load_model(tmp_path / "m")
    with pytest.raises(SignatureError, match="overflow float32"):
        model.predict(np.array([[1e300, 1.0, 1.0, 1.0]]))


def test_dataframe_in_dataframe_out_with_column_signature(
    logreg_onnx: Any, iris: Any, tmp_path: Path
) -> None:
    X = iris[0]
    onnx_flavor.save_model(logreg_onnx, tmp_path / "m", signature=satchel.infer_signature(X))
    out = satchel.load_model(tmp_path / "m").predict(X.iloc[10:20])
    label, proba = _raw(logreg_onnx, {"input": X.iloc[10:20].to_numpy(np.float32)})
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["label", "probabilities"]
    assert list(out.index) == list(range(10, 20))
    np.testing.assert_array_equal(out["label"].to_numpy(), label)
    # [N, C] probabilities: one array per row, not flattened (MLflow fails here)
    assert out["probabilities"].iloc[0].shape == (3,)
    np.testing.assert_array_equal(np.stack(out["probabilities"].to_numpy()), proba)


def test_zipmap_output_is_a_column_of_dicts(iris: Any, iris_logreg: Any, tmp_path: Path) -> None:
    zipped = _to_onnx(iris_logreg, 4, zipmap=True)
    X = iris[0]
    onnx_flavor.save_model(zipped, tmp_path / "m", signature=satchel.infer_signature(X))
    model = satchel.load_model(tmp_path / "m")
    assert model.signature is not None and model.signature.outputs is None  # seq(map): no spec
    out = model.predict(X.head(3))
    assert list(out.columns) == ["output_label", "output_probability"]
    cell = out["output_probability"].iloc[0]
    assert isinstance(cell, dict) and sorted(cell) == [0, 1, 2]
    assert abs(sum(cell.values()) - 1) < 1e-5


def test_one_input_per_column(two_inputs: Any, tmp_path: Path) -> None:
    onnx_flavor.save_model(two_inputs, tmp_path / "m")
    model = satchel.load_model(tmp_path / "m")
    df = pd.DataFrame({"b": [1.0, 2.0], "a": [10.0, 20.0]})
    got = model.predict(df)  # tensor signature: the core feeds a dict, output is a dict
    np.testing.assert_array_equal(got["out"], np.array([[21.0], [42.0]], np.float32))
    got = model.predict({"a": np.array([[1.0]], np.float32), "b": np.array([[0.5]], np.float32)})
    assert got["out"].tolist() == [[2.5]]
    # with a column signature the predictor sees the frame: fed by name, a frame back
    onnx_flavor.save_model(two_inputs, tmp_path / "cols", signature=satchel.infer_signature(df))
    out = satchel.load_model(tmp_path / "cols").predict(df)
    assert isinstance(out, pd.DataFrame) and out["out"].tolist() == [21.0, 42.0]


def test_ndarray_needs_a_single_input_graph(two_inputs: Any, tmp_path: Path) -> None:
    onnx_flavor.save_model(two_inputs, tmp_path / "m")
    predictor = satchel.load_model(tmp_path / "m")._predictor
    with pytest.raises(SignatureError, match=r"single-input graph.*\['a', 'b'\]"):
        predictor.predict(np.ones((2, 2), np.float32))


def test_columns_not_matching_graph_inputs_name_both(two_inputs: Any, tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0], "y": [2.0]})
    onnx_flavor.save_model(two_inputs, tmp_path / "m", signature=satchel.infer_signature(df))
    with pytest.raises(SignatureError) as err:
        satchel.load_model(tmp_path / "m").predict(df)
    assert "['a', 'b']" in str(err.value) and "['x', 'y']" in str(err.value)
    # with the graph's own signature, the core names both sets too
    onnx_flavor.save_model(two_inputs, tmp_path / "g")
    with pytest.raises(SignatureError) as err:
        satchel.load_model(tmp_path / "g").predict(df)
    assert "['a', 'b']" in str(err.value) and "['x', 'y']" in str(err.value)


def test_wrong_rank_and_dimension(logreg_onnx: Any, iris: Any, tmp_path: Path) -> None:
    onnx_flavor.save_model(logreg_onnx, tmp_path / "m")
    model = satchel.load_model(tmp_path / "m")
    with pytest.raises(
        SignatureError,
        match=r"input 'input': expected shape \[-1, 4\], given "
        r"shape \[3, 5\]",
    ) as err:
        model.predict(np.ones((3, 5), np.float32))
    assert err.value.column == "input"
    with pytest.raises(SignatureError, match=r"given shape \[4\] \(rank 2 vs 1\)"):
        model.predict(np.ones(4, np.float32))
    # the predictor checks too, for a column signature that does not fit the graph
    wide = iris[0].assign(extra=1.0)
    onnx_flavor.save_model(logreg_onnx, tmp_path / "wide", signature=satchel.infer_signature(wide))
    with pytest.raises(SignatureError, match=r"expected shape \[-1, 4\], given shape \[2, 5\]"):
        satchel.load_model(tmp_path / "wide").predict(wide.head(2))


def test_output_without_a_row_per_input_is_a_dict(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    total = helper.make_tensor_value_info("total", TensorProto.FLOAT, [])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)], "sum", [x], [total]
    )
    model = _model(graph)
    df = pd.DataFrame({"p": [1.0, 2.0], "q": [3.0, 4.0]})
    onnx_flavor.save_model(
        model, tmp_path / "m", signature=Signature(satchel.infer_signature(df).inputs)
    )
    out = satchel.load_model(tmp_path / "m").predict(df)
    assert isinstance(out, dict) and float(out["total"]) == 10.0


# --- storage, options and bad files --------------------------------------------------


@pytest.fixture(scope="module")
def matmul() -> Any:
    """y = x @ W with a 64x64 weight (16 KiB, stored as raw bytes)."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 64])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    return _model(graph)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_external_data(matmul: Any, tmp_path: Path) -> None:
    before = matmul.SerializeToString()
    onnx_flavor.save_model(matmul, tmp_path / "ext", save_as_external_data=True)
    assert matmul.SerializeToString() == before  # the caller's model is untouched
    data = tmp_path / "ext" / "model.onnx.data"
    assert data.stat().st_size == 64 * 64 * 4
    assert (tmp_path / "ext" / "model.onnx").stat().st_size < 1024
    model = satchel.load_model(tmp_path / "ext")
    assert "model.onnx.data" in (model.manifest.artifact_digests or {})
    x = np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x)["y"], _raw(matmul, {"x": x})[0])
    from onnx import numpy_helper

    native = model.unwrap()  # the weights are read back in
    np.testing.assert_array_equal(
        numpy_helper.to_array(native.graph.initializer[0]),
        numpy_helper.to_array(matmul.graph.initializer[0]),
    )
    # skl2onnx writes weights as typed float lists, which onnx alone never moves out
    from sklearn.neural_network import MLPRegressor

    X = np.random.default_rng(1).normal(size=(40, 4))
    mlp = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20).fit(X, X.sum(axis=1))
    mlp_onnx = _to_onnx(mlp, 4)
    assert not any(t.HasField("raw_data") for t in mlp_onnx.graph.initializer)
    onnx_flavor.save_model(
        mlp_onnx, tmp_path / "mlp", save_as_external_data=True, external_data_size_threshold=64
    )
    assert (tmp_path / "mlp" / "model.onnx.data").stat().st_size >= 4 * 8 * 4
    x32 = X.astype(np.float32)
    np.testing.assert_array_equal(
        satchel.load_model(tmp_path / "mlp").predict(x32)["variable"],
        _raw(mlp_onnx, {"input": x32})[0],
    )
    # small models stay in one file by default
    onnx_flavor.save_model(matmul, tmp_path / "one")
    assert not (tmp_path / "one" / "model.onnx.data").exists()


def test_session_options_and_providers(logreg_onnx: Any, tmp_path: Path) -> None:
    options = {
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization_level": 99,
        "extra_session_config": {"session.use_env_allocators": "0"},
    }
    onnx_flavor.save_model(
        logreg_onnx,
        tmp_path / "m",
        onnx_session_options=options,
        providers=["CPUExecutionProvider"],
    )
    section = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]["onnx"]
    assert section["onnx_session_options"] == options
    assert section["providers"] == ["CPUExecutionProvider"]
    session = satchel.load_model(tmp_path / "m")._predictor.session
    assert session.get_session_options().intra_op_num_threads == 1
    assert session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown onnx_session_options"):
        onnx_flavor.save_model(logreg_onnx, tmp_path / "bad", onnx_session_options={"x": 1})
    with pytest.raises(ValueError, match="execution_mode"):
        onnx_flavor.save_model(
            logreg_onnx, tmp_path / "bad", onnx_session_options={"execution_mode": "fast"}
        )
    assert not (tmp_path / "bad").exists()


def test_provider_resolution() -> None:
    available = ort.get_available_providers()
    assert onnx_flavor.resolve_providers(None)[-1] == "CPUExecutionProvider"
    assert "AzureExecutionProvider" not in onnx_flavor.resolve_providers(None)
    # MLflow's default names CUDA; a CPU-only onnxruntime keeps what it has
    got = onnx_flavor.resolve_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert got == [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    assert onnx_flavor.resolve_providers(["NoSuchExecutionProvider"]) == ["CPUExecutionProvider"]


def test_corrupt_onnx_file_at_save(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a protobuf")
    with pytest.raises(ModelFormatError, match="broken.onnx"):
        onnx_flavor.save_model(str(bad), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_invalid_graph_fails_checker(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["missing"], ["y"])], "g", [x], [y])
    model = _model(graph)
    with pytest.raises(ModelFormatError, match="onnx.checker"):
        onnx_flavor.save_model(model, tmp_path / "m")
    assert not (tmp_path / "m").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary directory left


def test_corrupt_model_file_in_directory(logreg_onnx: Any, tmp_path: Path) -> None:
    onnx_flavor.save_model(logreg_onnx, tmp_path / "m")
    (tmp_path / "m" / "model.onnx").write_bytes(b"not onnx at all")
    with pytest.raises(IntegrityError, match="model.onnx"):
        satchel.load_model(tmp_path / "m")
    # a directory without digests (as MLflow writes) reaches onnxruntime, named the same way
    shutil.copytree(tmp_path / "m", tmp_path / "plain")
    with pytest.raises(ModelFormatError, match="model.onnx cannot be loaded by onnxruntime"):
        satchel.load_model(tmp_path / "plain", verify=False)


def test_string_input_graph(tmp_path: Path) -> None:
    """tensor(string) inputs take object arrays; numbers are refused by name."""
    from onnx import TensorProto, helper

    s = helper.make_tensor_value_info("s", TensorProto.STRING, [None, 1])
    out = helper.make_tensor_value_info("out", TensorProto.STRING, [None, 1])
    graph = helper.make_graph([helper.make_node("Identity", ["s"], ["out"])], "id", [s], [out])
    model = _model(graph)
    df = pd.DataFrame({"s": ["a", "b"]})
    onnx_flavor.save_model(
        model, tmp_path / "m", signature=Signature(Schema([ColSpec(DataType.string, "s")]))
    )
    loaded = satchel.load_model(tmp_path / "m")
    assert loaded.predict(df)["out"].tolist() == ["a", "b"]
    with pytest.raises(SignatureError, match="input 's': expected tensor\\(string\\)"):
        loaded._predictor.predict({"s": np.ones((2, 1))})


def test_input_fitted_by_the_coercion_policy_is_not_fitted_again(
        logreg_onnx: Any, iris: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: the predictor trusts input that the one coercion function has already
    fitted to a signature that says what the graph says (no second cast and check)."""
    onnx_flavor.save_model(logreg_onnx, tmp_path / "m")
    model = satchel.load_model(tmp_path / "m")
    x64 = iris[0].to_numpy()
    expected = model.predict(x64)
    fitted: list[str] = []
    cls = onnx_flavor.OnnxPredictor
    real_fit = cls._fit

    def spy(self: Any, spec: Any, arr: Any) -> Any:  # counts, then does the real work
        fitted.append(spec.name)
        return real_fit(self, spec, arr)

    monkeypatch.setattr(cls, "_fit", spy)
    for data in (x64, {"input": x64}):  # float64: the policy rounds it to float32 first
        out = model.predict(data)
        np.testing.assert_array_equal(out["label"], expected["label"])
    assert fitted == []
    # a frame, which the predictor routes itself, is still fitted there (the spy works)
    model.predict_prepared(iris[0])
    assert fitted == ["input"]
