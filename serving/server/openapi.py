"""``/openapi.json`` (OpenAPI 3.1) generated from the served models' signatures, and the
docs page that renders it (``static/docs.html``, shipped in the package: no CDN).

Every input format of ``/invocations`` (``dataframe_split``, ``dataframe_records``,
``instances``, ``inputs``, CSV, Parquet) and each model's V2 ``infer`` get a request
schema with the real column names and types, and examples from the model's saved input
example (or, lacking one, values made up from the signature). Error replies have their
schemas too: ``{"error_code", "message"}`` for MLflow's protocol, ``{"error"}`` for V2.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable
from typing import Any

import numpy as np

from satchel import _json
from satchel._version import __version__
from satchel.schema import (
    AnyType,
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    Schema,
    SparkVector,
    TensorSpec,
)
from satchel.serving.protocols import v2
from satchel.serving.server.openapi_examples import (
    csv_example,
    infer_example,
    invocation_examples,
)
from satchel.serving.server.repository import ServedModel

JSON = "application/json"
_INT_RANGE = {DataType.integer: (-(2**31), 2**31 - 1), DataType.long: (-(2**63), 2**63 - 1)}


# --- JSON Schema for signature types -----------------------------------------------------


def value_schema(t: Any) -> dict[str, Any]:
    """The JSON Schema of one value of a column, array item, map value or property type."""
    if isinstance(t, DataType):
        if t in _INT_RANGE:
            lo, hi = _INT_RANGE[t]
            return {"type": "integer", "minimum": lo, "maximum": hi}
        return {
            DataType.boolean: {"type": "boolean"},
            DataType.float: {"type": "number"},
            DataType.double: {"type": "number"},
            DataType.string: {"type": "string"},
            DataType.binary: {"type": "string", "contentEncoding": "base64"},
            DataType.datetime: {"type": "string", "format": "date-time"},
        }[t]
    if isinstance(t, Array):
        return {"type": "array", "items": value_schema(t.items)}
    if isinstance(t, Object):
        return {"type": "object",
                "properties": {p.name: value_schema(p.dtype) for p in t.properties},
                "required": [p.name for p in t.properties if p.required]}
    if isinstance(t, Map):
        return {"type": "object", "additionalProperties": value_schema(t.values)}
    if isinstance(t, SparkVector):
        return {"type": "array", "items": {"type": "number"}}
    assert isinstance(t, AnyType) or t is not None
    return {}


def column_schema(spec: ColSpec) -> dict[str, Any]:
    """A column's value; an optional column may also be null."""
    schema = value_schema(spec.type)
    return schema if spec.required else {"anyOf": [schema, {"type": "null"}]}


def dtype_schema(dtype: str) -> dict[str, Any]:
    """One element of a tensor of numpy ``dtype``."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return {"type": "boolean"}
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    if dt.kind == "f":
        return {"type": "number"}
    return {"type": "string"}


def tensor_schema(spec: TensorSpec, leading: bool = True) -> dict[str, Any]:
    """A tensor as nested lists; fixed dimensions fix the list lengths."""
    schema = dtype_schema(spec.dtype)
    dims = spec.shape if leading else spec.shape[1:]
    for dim in reversed(dims):
        schema = {"type": "array", "items": schema}
        if dim >= 0:
            schema["minItems"] = schema["maxItems"] = dim
    return schema


def params_schema(params: ParamSchema | None) -> dict[str, Any]:
    """``params``: declared ones typed with their defaults; others are accepted and ignored."""
    if params is None:
        return {"type": "object", "description": "this model declares no params"}
    props: dict[str, Any] = {}
    for p in params:
        item = value_schema(p.dtype)
        if p.shape is not None:
            item = {"type": "array", "items": item}
        default = _json.jsonable(p.default)
        if default is not None:
            item["default"] = default
        props[p.name] = item
    return {"type": "object", "properties": props}


def _columns(schema: Schema) -> tuple[list[str], dict[str, Any], list[str]]:
    names = schema.names()
    props = {n: column_schema(s) for n, s in zip(names, schema.inputs)
             if isinstance(s, ColSpec)}
    required = [n for n, s in zip(names, schema.inputs) if isinstance(s, ColSpec) and s.required]
    return names, props, required


def _wrapped(key: str, value: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "additionalProperties": False,
            "properties": {key: value, "params": params}}


def invocation_schemas(schema: Schema | None, params: ParamSchema | None
                       ) -> dict[str, dict[str, Any]]:
    """The JSON body of ``/invocations`` in each of its four formats."""
    p = params_schema(params)
    if schema is None:
        free = {"description": "the model has no signature: any value"}
        return {k: _wrapped(k, free, p) for k in
                ("dataframe_split", "dataframe_records", "instances", "inputs")}
    if not schema.is_tensor:
        names, props, required = _columns(schema)
        row = {"type": "array", "prefixItems": [props[n] for n in names],
               "minItems": len(names), "maxItems": len(names)}
        record = {"type": "object", "properties": props, "required": required}
        split = {"type": "object", "required": ["data"], "additionalProperties": False,
                 "properties": {"columns": {"const": names,
                                            "description": "the signature's columns, in "
                                            "order; leave out for positional rows"},
                                "data": {"type": "array", "items": row},
                                "index": {"type": "array"}}}
        columnar = {"type": "object", "required": required,
                    "properties": {n: {"type": "array", "items": s} for n, s in props.items()}}
        return {"dataframe_split": _wrapped("dataframe_split", split, p),
                "dataframe_records": _wrapped("dataframe_records",
                                              {"type": "array", "items": record}, p),
                "instances": _wrapped("instances", {"type": "array", "items": record}, p),
                "inputs": _wrapped("inputs", columnar, p)}
    specs = [s for s in schema.inputs if isinstance(s, TensorSpec)]
    if len(specs) == 1 and specs[0].name is None:
        tensor = tensor_schema(specs[0])
        return {"instances": _wrapped("instances", tensor, p),
                "inputs": _wrapped("inputs", tensor, p)}
    named = {"type": "object", "required": [str(s.name) for s in specs],
             "properties": {str(s.name): tensor_schema(s) for s in specs}}
    row = {"type": "object", "required": [str(s.name) for s in specs],
           "properties": {str(s.name): tensor_schema(s, leading=False) for s in specs}}
    return {"instances": _wrapped("instances", {"type": "array", "items": row}, p),
            "inputs": _wrapped("inputs", named, p)}


def infer_schema(schema: Schema | None) -> dict[str, Any]:
    """The V2 inference request, one tensor schema per input the signature names."""
    tensors = []
    for meta in v2.tensor_metadata(schema, "input"):
        element = dtype_schema(v2.DATATYPES[meta["datatype"]]) \
            if meta["datatype"] != "BYTES" else {"type": "string"}
        tensors.append({"type": "object", "required": ["name", "shape", "datatype", "data"],
                        "properties": {
                            "name": {"const": meta["name"]},
                            "shape": {"type": "array", "items": {"type": "integer",
                                                                 "minimum": 0}},
                            "datatype": {"const": meta["datatype"]},
                            "data": {"type": "array", "items": element},
                            "parameters": {"type": "object"}}})
    item: dict[str, Any] = {"oneOf": tensors} if tensors else {
        "type": "object", "required": ["name", "shape", "datatype", "data"]}
    return {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "minItems": 1, "items": item},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                "properties": {"name": {"type": "string"}}}}}}


# --- the document ------------------------------------------------------------------------

_ERROR = {"type": "object", "required": ["error_code", "message"], "properties": {
    "error_code": {"type": "string"}, "message": {"type": "string"},
    "error_class": {"type": "string"}, "column": {"type": "string"},
    "expected": {"type": "string"}, "given": {"type": "string"},
    "stack_trace": {"type": "string"}}}
_V2_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_V2_TENSOR = {"type": "object", "required": ["name", "datatype", "shape", "data"], "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer"}}, "data": {"type": "array"},
    "parameters": {"type": "object"}}}
_V2_RESPONSE = {"type": "object", "required": ["model_name", "outputs"], "properties": {
    "model_name": {"type": "string"}, "model_version": {"type": ["string", "null"]},
    "id": {"type": "string"}, "parameters": {"type": "object"},
    "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2Tensor"}}}}
_V2_METADATA = {"type": "object", "required": ["name", "versions", "platform", "inputs",
                                               "outputs"], "properties": {
    "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
    "platform": {"type": "string"}, "inputs": {"type": "array"}, "outputs": {"type": "array"},
    "parameters": {"type": "object"}}}
_INDEX = {"type": "array", "items": {"type": "object", "required": ["name", "state"],
                                      "properties": {"name": {"type": "string"},
                                                     "version": {"type": ["string", "null"]},
                                                     "state": {"type": "string"},
                                                     "reason": {"type": "string"}}}}
_HEADERS = {"X-Request-ID": {"description": "the request's id (echoed or generated)",
                             "schema": {"type": "string"}}}
_STATUS_TEXT = {200: "OK", 400: "the input cannot be read, or does not fit the signature",
                401: "a bearer token is needed", 404: "no such model",
                408: "the request body did not arrive in time",
                413: "the request body is over the size limit",
                415: "unsupported content type or charset",
                422: "the model raised on input that passed the signature",
                503: "not ready, or too many requests waiting (see Retry-After)",
                504: "the request took longer than the time limit"}


def _errors(statuses: Iterable[int], v2_style: bool) -> dict[str, Any]:
    ref = "#/components/schemas/" + ("V2Error" if v2_style else "Error")
    out: dict[str, Any] = {}
    for status in statuses:
        headers = dict(_HEADERS)
        if status == 503:
            headers["Retry-After"] = {"description": "seconds to wait before retrying",
                                      "schema": {"type": "string"}}
        out[str(status)] = {"description": _STATUS_TEXT[status], "headers": headers,
                            "content": {JSON: {"schema": {"$ref": ref}}}}
    return out


def _ok(schema: dict[str, Any], description: str = "OK", media: str = JSON) -> dict[str, Any]:
    return {"200": {"description": description, "headers": _HEADERS,
                    "content": {media: {"schema": schema}}}}


def build_spec(models: Iterable[ServedModel], default: str | None, *,
               auth: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server serving ``models`` (``default`` at /invocations)."""
    models = list(models)
    auth_only = [401] if auth else []
    base_errors = [400, *auth_only, 408, 413, 503, 504]
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": _ERROR, "V2Error": _V2_ERROR, "V2Tensor": _V2_TENSOR,
                               "V2InferenceResponse": _V2_RESPONSE}
    for served in models:
        if served.name != default:
            continue
        sig = served.model.signature if served.model is not None else None
        formats = invocation_schemas(sig.inputs if sig else None, sig.params if sig else None)
        for fmt, schema in formats.items():
            schemas[f"{fmt}_{served.name}"] = schema
        json_media: dict[str, Any] = {"schema": {"oneOf": [
            {"$ref": f"#/components/schemas/{fmt}_{served.name}"} for fmt in formats]}}
        examples = invocation_examples(served)
        if examples:
            json_media["examples"] = examples
        csv: dict[str, Any] = {"schema": {"type": "string"}}
        text = csv_example(served)
        if text is not None:
            csv["example"] = text
        ok_headers = {**_HEADERS,
                      "X-Satchel-Dropped-Columns": {"description": "input columns the "
                                                    "signature does not name (ignored)",
                                                    "schema": {"type": "string"}}}
        paths["/invocations"] = {"post": {
            "summary": f"Score with the default model '{served.name}' (MLflow's protocol)",
            "operationId": "invocations",
            "requestBody": {"required": True, "content": {
                JSON: json_media, "text/csv": csv,
                "application/vnd.apache.parquet": {"schema": {"type": "string",
                                                              "format": "binary"}}}},
            "responses": {"200": {"description": "the predictions", "headers": ok_headers,
                                  "content": {JSON: {"schema": {
                                      "type": "object", "required": ["predictions"],
                                      "properties": {"predictions": {}}}}}},
                          **_errors([*base_errors, 415, 422], False)}}}
    health = {"get": {"summary": "Liveness: 200 once the default model is loaded",
                      "security": [], "responses": {
                          "200": {"description": "alive (the body is a newline, as "
                                  "MLflow's)", "headers": _HEADERS},
                          **_errors([503], False)}}}
    paths["/ping"] = health
    paths["/health"] = health
    paths["/version"] = {"get": {"summary": "satchel's version", "responses": {
        **_ok({"type": "string"}, media="text/plain"), **_errors(auth_only, False)}}}
    paths["/v2"] = {"get": {"summary": "V2 server metadata", "responses": {
        **_ok({"type": "object", "required": ["name", "version", "extensions"]}),
        **_errors(auth_only, True)}}}
    paths["/v2/health/live"] = {"get": {"summary": "V2 liveness", "security": [],
                                        "responses": {"200": {"description": "alive"}}}}
    paths["/v2/health/ready"] = {"get": {"summary": "V2 readiness (every model loaded)",
                                         "responses": {"200": {"description": "ready"},
                                                       "503": {"description": "not ready"},
                                                       **_errors(auth_only, True)}}}
    paths["/v2/repository/index"] = {"post": {
        "summary": "The served models and their state",
        "requestBody": {"required": False, "content": {JSON: {"schema": {
            "type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
        "responses": {**_ok(_INDEX), **_errors([400, 401] if auth else [400], True)}}}
    v2_errors = [s for s in base_errors if s != 400]
    for served in models:
        sig = served.model.signature if served.model is not None else None
        schemas[f"V2InferenceRequest_{served.name}"] = infer_schema(sig.inputs if sig else None)
        infer_media: dict[str, Any] = {
            "schema": {"$ref": f"#/components/schemas/V2InferenceRequest_{served.name}"}}
        example = infer_example(served)
        if example is not None:
            infer_media["example"] = example
        bases = [f"/v2/models/{served.name}"]
        if served.version:
            bases.append(f"/v2/models/{served.name}/versions/{served.version}")
        for base in bases:
            paths[base] = {"get": {"summary": f"V2 metadata of model '{served.name}'",
                                   "responses": {**_ok({"$ref": "#/components/schemas/"
                                                                "V2ModelMetadata"}),
                                                 **_errors([*auth_only, 503], True)}}}
            paths[base + "/ready"] = {"get": {"summary": f"Is '{served.name}' ready",
                                              "responses": {"200": {"description": "ready"},
                                                            "503": {"description": "loading"},
                                                            **_errors(auth_only, True)}}}
            paths[base + "/infer"] = {"post": {
                "summary": f"Score with model '{served.name}' (Open Inference Protocol)",
                "requestBody": {"required": True, "content": {JSON: infer_media}},
                "responses": {**_ok({"$ref": "#/components/schemas/V2InferenceResponse"}),
                              **_errors([400, *v2_errors, 422], True)}}}
    schemas["V2ModelMetadata"] = _V2_METADATA
    paths["/metrics"] = {"get": {"summary": "Prometheus metrics", "responses": {
        **_ok({"type": "string"}, media="text/plain"), **_errors(auth_only, False)}}}
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "satchel model server", "version": __version__,
                 "description": "Models served: " + ", ".join(
                     f"'{m.name}'" for m in models) + f"; /invocations scores '{default}'."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http",
                                                            "scheme": "bearer"}}
        spec["security"] = [{"bearer": []}]
    return spec


def docs_page() -> bytes:
    """The self-contained HTML page that renders ``/openapi.json`` (no CDN, no network)."""
    return (importlib.resources.files("satchel.serving.server")
            .joinpath("static/docs.html").read_bytes())
