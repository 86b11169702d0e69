"""Signature JSON is MLflow's, byte for byte, in both directions."""

from __future__ import annotations

import datetime as dt

import pytest

from satchel.errors import ModelFormatError
from satchel.schema import (
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    Signature,
    TensorSpec,
)

# Literal strings as MLflow 3.18 writes them (json.dumps default separators).
MLFLOW_SCHEMAS = [
    '[{"type": "double", "name": "x", "required": true}]',
    '[{"type": "long", "required": true}]',
    '[{"type": "array", "items": {"type": "long"}, "name": "ids", "required": false}]',
    '[{"type": "object", "properties": {"a": {"type": "string", "required": true}}, '
    '"name": "o", "required": true}]',
    '[{"type": "map", "values": {"type": "double"}, "name": "m", "required": true}]',
    '[{"type": "any", "name": "z", "required": true}]',
    '[{"type": "sparkml_vector", "name": "v", "required": true}]',
    '[{"name": "img", "type": "tensor", "tensor-spec": {"dtype": "float32", '
    '"shape": [-1, 28, 28, 1]}}]',
    '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]',
    '[{"type": "array", "items": {"type": "object", "properties": {"k": {"type": "array", '
    '"items": {"type": "double"}, "required": false}}}, "name": "nested", "required": true}]',
]

MLFLOW_PARAMS = [
    '[{"name": "k", "default": 1, "shape": null, "type": "long"}]',
    '[{"name": "words", "default": ["a", "b"], "shape": [-1], "type": "string"}]',
    '[{"name": "when", "default": "2024-01-02T03:04:05", "shape": null, "type": "datetime"}]',
]


@pytest.mark.parametrize("text", MLFLOW_SCHEMAS)
def test_schema_json_round_trips_byte_for_byte(text: str) -> None:
    assert Schema.from_json(text).to_json() == text


@pytest.mark.parametrize("text", MLFLOW_PARAMS)
def test_param_schema_json_round_trips_byte_for_byte(text: str) -> None:
    assert ParamSchema.from_json(text).to_json() == text


def test_param_reader_accepts_dtype_key() -> None:
    ps = ParamSchema.from_json('[{"name": "k", "dtype": "double", "default": 0.5, "shape": null}]')
    assert ps.params[0].dtype is DataType.double


def test_object_properties_are_sorted_by_name() -> None:
    obj = Object((Property("b", DataType.long), Property("a", DataType.string)))
    assert [p.name for p in obj.properties] == ["a", "b"]


def test_datetime_param_default_written_as_iso() -> None:
    ps = ParamSchema([ParamSpec("when", DataType.datetime, dt.datetime(2024, 1, 2, 3, 4, 5))])
    assert ps.to_json() == MLFLOW_PARAMS[2]


@pytest.mark.parametrize(
    "specs, message",
    [
        ([], "at least one"),
        ([ColSpec(DataType.long, "a"), TensorSpec("float32", (-1,), "t")], "mix"),
        ([ColSpec(DataType.long, "a"), ColSpec(DataType.long)], "all named or all unnamed"),
        ([TensorSpec("float32", (-1,)), TensorSpec("float32", (-1,))], "must all be named"),
        ([ColSpec(DataType.long, required=False)], "cannot be optional"),
        ([ColSpec(DataType.long, "a"), ColSpec(DataType.double, "a")], "duplicate"),
    ],
)
def test_schema_rules(specs: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schema(specs)


def test_sized_string_tensor_dtype_rejected() -> None:
    with pytest.raises(ValueError, match="sized string"):
        TensorSpec("<U10", (-1,))


def test_param_binary_and_bad_shape_rejected() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        ParamSpec("b", DataType.binary, b"")
    with pytest.raises(ValueError, match="shape"):
        ParamSpec("b", DataType.long, [1], (2,))


def test_signature_dict_form_has_json_strings_and_nulls() -> None:
    sig = Signature(Schema([ColSpec(DataType.double, "x")]), Schema([ColSpec(DataType.long)]))
    d = sig.to_dict()
    assert d == {"inputs": MLFLOW_SCHEMAS[0], "outputs": MLFLOW_SCHEMAS[1], "params": None}
    assert Signature.from_dict(d) == sig


def test_broken_signature_names_the_part() -> None:
    with pytest.raises(ModelFormatError, match="signature inputs"):
        Signature.from_dict({"inputs": '[{"type": "quaternion", "name": "q"}]'})


def test_type_names_for_messages() -> None:
    assert ColSpec(Array(Map(DataType.double)), "a").type_name == "array<map<string, double>>"
