"""/openapi.json from the signature, and the docs page served from the package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis

import satchel
from satchel.serving.server.openapi import build_spec, docs_page
from satchel.serving.server.repository import ModelRepository

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def validator(spec: dict[str, Any], name: str) -> Any:
    """A JSON Schema validator for components/schemas/<name>, refs resolved in the spec."""
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]})


@pytest.fixture(scope="module")
def iris_spec(iris_model_dir: Path) -> dict[str, Any]:
    repository = ModelRepository()
    repository.add("iris", satchel.load_model(iris_model_dir))
    return build_spec(repository, "iris")


def test_request_schemas_name_the_real_columns_and_types(iris_spec: dict[str, Any]) -> None:
    schemas = iris_spec["components"]["schemas"]
    split = schemas["dataframe_split_iris"]["properties"]["dataframe_split"]
    assert split["properties"]["columns"]["const"] == COLUMNS
    row = split["properties"]["data"]["items"]
    assert row["prefixItems"] == [{"type": "number"}] * 4 and row["maxItems"] == 4
    record = schemas["dataframe_records_iris"]["properties"]["dataframe_records"]["items"]
    assert record["required"] == COLUMNS
    assert record["properties"]["petal_width"] == {"type": "number"}
    infer = schemas["V2InferenceRequest_iris"]["properties"]["inputs"]["items"]["oneOf"]
    assert [t["properties"]["name"]["const"] for t in infer] == COLUMNS
    assert {t["properties"]["datatype"]["const"] for t in infer} == {"FP64"}
    content = iris_spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv", "application/vnd.apache.parquet"} <= set(content)


def test_examples_come_from_the_saved_example_and_validate(iris_spec: dict[str, Any],
                                                          iris: Any) -> None:
    X, _ = iris
    media = iris_spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    examples = media["application/json"]["examples"]
    assert set(examples) == {"dataframe_split", "dataframe_records", "inputs"}
    split = examples["dataframe_split"]["value"]["dataframe_split"]
    assert split["data"] == X.head(5).to_numpy().tolist()
    assert "saved input example" in examples["dataframe_split"]["summary"]
    for fmt, example in examples.items():
        validator(iris_spec, f"{fmt}_iris").validate(example["value"])
    csv = media["text/csv"]["example"]
    assert csv.splitlines()[0] == ",".join(COLUMNS) and len(csv.splitlines()) == 6
    infer = iris_spec["paths"]["/v2/models/iris/infer"]["post"]["requestBody"]["content"]
    validator(iris_spec, "V2InferenceRequest_iris").validate(infer["application/json"]["example"])
    with pytest.raises(jsonschema_rs.ValidationError):  # the schemas do reject things
        validator(iris_spec, "dataframe_split_iris").validate(
            {"dataframe_split": {"columns": COLUMNS, "data": [["a", 1, 2, 3]]}})


def test_error_replies_have_schemas(iris_spec: dict[str, Any]) -> None:
    responses = iris_spec["paths"]["/invocations"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503", "504"} <= set(responses)
    assert responses["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert "Retry-After" in responses["503"]["headers"]
    v2 = iris_spec["paths"]["/v2/models/iris/infer"]["post"]["responses"]
    assert v2["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/V2Error")
    validator(iris_spec, "Error").validate({"error_code": "BAD_REQUEST", "message": "x"})


def test_the_spec_is_a_valid_openapi_document(iris_spec: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(iris_spec)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /invocations", "POST /v2/models/iris/infer", "GET /ping"}


def test_tensor_and_param_signatures(tmp_path: Path) -> None:
    from satchel.schema import (
        DataType,
        ParamSchema,
        ParamSpec,
        Schema,
        Signature,
        TensorSpec,
    )

    class Echo(satchel.PythonModel):
        def predict(self, model_input: Any, params: Any = None) -> Any:
            return model_input

    sig = Signature(inputs=Schema([TensorSpec("float32", (-1, 3))]),
                    params=ParamSchema([ParamSpec("k", DataType.long, 3)]))
    satchel.save_model(Echo(), tmp_path / "echo", flavor="python", signature=sig)
    repository = ModelRepository()
    repository.add("echo", satchel.load_model(tmp_path / "echo"))
    spec = build_spec(repository, "echo", auth=True)
    inputs = spec["components"]["schemas"]["inputs_echo"]["properties"]
    assert inputs["inputs"]["items"] == {"type": "array", "items": {"type": "number"},
                                         "minItems": 3, "maxItems": 3}
    assert inputs["params"]["properties"]["k"]["default"] == 3
    # no saved example: one is made up from the signature, and it validates
    example = spec["paths"]["/invocations"]["post"]["requestBody"]["content"][
        "application/json"]["examples"]["inputs"]
    assert "made up" in example["summary"]
    validator(spec, "inputs_echo").validate(example["value"])
    assert spec["security"] == [{"bearer": []}]
    assert spec["paths"]["/ping"]["get"]["security"] == []


def test_docs_page_is_self_contained() -> None:
    page = docs_page().decode()
    assert "openapi.json" in page and "<script>" in page
    assert "http://" not in page and "https://" not in page  # nothing from a CDN


# --- a real server -----------------------------------------------------------------------


def test_served_spec_and_its_examples_work(iris_model_dir: Path, start_server: Any) -> None:
    import json

    with start_server(iris_model_dir, "--name", "iris") as server:
        reply = server.get("/openapi.json")
        assert reply.status == 200 and reply.headers["content-type"] == "application/json"
        spec = reply.json()
        schemathesis.openapi.from_dict(spec)  # loads as a valid document
        content = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
        # every example in the spec is a request the server answers 200
        for example in content["application/json"]["examples"].values():
            ok = server.post_json("/invocations", example["value"])
            assert ok.status == 200, (example["summary"], ok.body)
            assert len(ok.json()["predictions"]) == 5
        csv = server.request("POST", "/invocations", content["text/csv"]["example"], "text/csv")
        assert csv.status == 200 and len(csv.json()["predictions"]) == 5
        infer = spec["paths"]["/v2/models/iris/infer"]["post"]["requestBody"]["content"]
        v2 = server.post_json("/v2/models/iris/infer", infer["application/json"]["example"])
        assert v2.status == 200 and v2.json()["outputs"][0]["shape"] == [5]
        assert json.loads(server.get("/openapi.json").body) == spec  # stable


def test_docs_page_is_served_from_the_package(iris_model_dir: Path, start_server: Any) -> None:
    with start_server(iris_model_dir) as server:
        page = server.get("/docs")
        assert page.status == 200 and page.headers["content-type"].startswith("text/html")
        assert page.body == docs_page()
        assert b"fetch(\"openapi.json\"" in page.body
