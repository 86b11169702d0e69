"""Column, tensor and param specs, and their JSON form.

The JSON written here is MLflow's, key for key and in the same order, so a signature
saved by either tool reads back identically in the other. This module imports only
the standard library: numpy is needed only where values are checked (``coercion``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from satchel.errors import ModelFormatError


class DataType(str, Enum):
    """A scalar type of a column, an array item, a map value or a param."""

    boolean = "boolean"
    integer = "integer"
    long = "long"
    float = "float"
    double = "double"
    string = "string"
    binary = "binary"
    datetime = "datetime"

    @property
    def numpy_dtype(self) -> str:
        """The numpy dtype name values of this type are stored as."""
        return _NUMPY_DTYPES[self]

    def to_json_type(self) -> dict[str, Any]:
        return {"type": self.value}


_NUMPY_DTYPES = {
    DataType.boolean: "bool",
    DataType.integer: "int32",
    DataType.long: "int64",
    DataType.float: "float32",
    DataType.double: "float64",
    DataType.string: "object",
    DataType.binary: "object",
    DataType.datetime: "datetime64[ns]",
}


@dataclass(frozen=True)
class AnyType:
    """MLflow's ``any`` type (2.19+): accepted as is, never checked."""

    def to_json_type(self) -> dict[str, Any]:
        return {"type": "any"}

    def __str__(self) -> str:
        return "any"


@dataclass(frozen=True)
class SparkVector:
    """MLflow's ``sparkml_vector`` type: read and written, passed through unchecked."""

    def to_json_type(self) -> dict[str, Any]:
        return {"type": "sparkml_vector"}

    def __str__(self) -> str:
        return "sparkml_vector"


@dataclass(frozen=True)
class Array:
    """A list whose items all have one type."""

    items: ValueType

    def to_json_type(self) -> dict[str, Any]:
        return {"type": "array", "items": self.items.to_json_type()}

    def __str__(self) -> str:
        return f"array<{_type_str(self.items)}>"


@dataclass(frozen=True)
class Property:
    """One named field of an :class:`Object`."""

    name: str
    dtype: ValueType
    required: bool = True

    def to_json_type(self) -> dict[str, Any]:
        return {**self.dtype.to_json_type(), "required": self.required}


@dataclass(frozen=True)
class Object:
    """A dict with named, typed properties (kept sorted by name, as MLflow writes them)."""

    properties: tuple[Property, ...]

    def __post_init__(self) -> None:
        if not self.properties:
            raise ValueError("an object type needs at least one property")
        ordered = tuple(sorted(self.properties, key=lambda p: p.name))
        object.__setattr__(self, "properties", ordered)

    def to_json_type(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {p.name: p.to_json_type() for p in self.properties},
        }

    def __str__(self) -> str:
        inner = ", ".join(f"{p.name}: {_type_str(p.dtype)}" for p in self.properties)
        return f"object<{inner}>"


@dataclass(frozen=True)
class Map:
    """A dict from string keys to values of one type."""

    values: ValueType

    def to_json_type(self) -> dict[str, Any]:
        return {"type": "map", "values": self.values.to_json_type()}

    def __str__(self) -> str:
        return f"map<string, {_type_str(self.values)}>"


ValueType = Union[DataType, Array, Object, Map, AnyType, SparkVector]


def _type_str(t: ValueType) -> str:
    return t.value if isinstance(t, DataType) else str(t)


@dataclass(frozen=True)
class ColSpec:
    """One column of a tabular input or output."""

    type: ValueType
    name: str | None = None
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = self.type.to_json_type()
        if self.name is not None:
            d["name"] = self.name
        d["required"] = self.required
        return d

    @property
    def type_name(self) -> str:
        """The type as one short string, for messages and tables."""
        return _type_str(self.type)


@dataclass(frozen=True)
class TensorSpec:
    """A numpy tensor: dtype name and shape, ``-1`` marking a free dimension."""

    dtype: str
    shape: tuple[int, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if any(c.isdigit() for c in self.dtype) and self.dtype.lstrip("<>|=")[:1] in ("U", "S"):
            # MLflow rejects sized flexible dtypes such as <U10: the size is data, not type.
            raise ValueError(
                f"tensor dtype {self.dtype!r} is a sized string; use 'object' or 'str'"
            )

    def to_dict(self) -> dict[str, Any]:
        spec = {"dtype": self.dtype, "shape": list(self.shape)}
        if self.name is None:
            return {"type": "tensor", "tensor-spec": spec}
        return {"name": self.name, "type": "tensor", "tensor-spec": spec}

    @property
    def type_name(self) -> str:
        return f"tensor<{self.dtype}>{list(self.shape)}"


Spec = Union[ColSpec, TensorSpec]


@dataclass(frozen=True)
class Schema:
    """An ordered list of column specs or of tensor specs (never mixed)."""

    inputs: tuple[Spec, ...]

    def __init__(self, inputs: Sequence[Spec]) -> None:
        object.__setattr__(self, "inputs", tuple(inputs))
        self._validate()

    def _validate(self) -> None:
        if not self.inputs:
            raise ValueError("a schema needs at least one column or tensor")
        kinds = {type(s) for s in self.inputs}
        if len(kinds) > 1:
            raise ValueError("a schema cannot mix column specs and tensor specs")
        named = [s.name is not None for s in self.inputs]
        if any(named) and not all(named):
            raise ValueError("schema inputs must be all named or all unnamed")
        if self.is_tensor and len(self.inputs) > 1 and not all(named):
            raise ValueError("several tensor specs must all be named")
        if not all(named):
            for s in self.inputs:
                if isinstance(s, ColSpec) and not s.required:
                    raise ValueError("unnamed columns cannot be optional")
        names = [s.name for s in self.inputs if s.name is not None]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate names in schema: {sorted(names)}")

    def __iter__(self) -> Iterator[Spec]:
        return iter(self.inputs)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def is_tensor(self) -> bool:
        """True for a tensor schema."""
        return isinstance(self.inputs[0], TensorSpec)

    @property
    def has_names(self) -> bool:
        """True when every input is named."""
        return self.inputs[0].name is not None

    def names(self) -> list[str]:
        """Input names, or ``"0", "1", ...`` for an unnamed schema."""
        return [s.name if s.name is not None else str(i) for i, s in enumerate(self.inputs)]

    def required_names(self) -> list[str]:
        return [n for n, s in zip(self.names(), self.inputs) if getattr(s, "required", True)]

    def to_json(self) -> str:
        return json.dumps([s.to_dict() for s in self.inputs])

    def to_list(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.inputs]

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls.from_list(json.loads(text))

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> Schema:
        return cls([_spec_from_dict(d) for d in items])


_SCALAR_PARAM_TYPES = {t for t in DataType if t is not DataType.binary}


@dataclass(frozen=True)
class ParamSpec:
    """One inference parameter: a scalar or a 1-D list (``shape == (-1,)``) with a default."""

    name: str
    dtype: DataType | Object
    default: Any
    shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.dtype, DataType) and self.dtype not in _SCALAR_PARAM_TYPES:
            raise ValueError(f"param {self.name!r}: type {self.dtype.value} is not allowed")
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))
            if self.shape != (-1,):
                raise ValueError(f"param {self.name!r}: shape must be None or (-1,)")

    def to_dict(self) -> dict[str, Any]:
        default = self.default
        if self.dtype is DataType.datetime and default is not None:
            default = _iso(default)
        # MLflow's key order: name, default, shape, then the type (an object's
        # "properties" sit beside "type", not inside it).
        type_ = ({"type": self.dtype.value} if isinstance(self.dtype, DataType)
                 else self.dtype.to_json_type())
        return {
            "name": self.name,
            "default": default,
            "shape": list(self.shape) if self.shape is not None else None,
            **type_,
        }

    @property
    def type_name(self) -> str:
        base = _type_str(self.dtype)
        return f"list<{base}>" if self.shape else base


def _iso(value: Any) -> Any:
    if isinstance(value, list):
        return [_iso(v) for v in value]
    iso = getattr(value, "isoformat", None)
    return iso() if iso is not None else value


@dataclass(frozen=True)
class ParamSchema:
    """The params a model accepts at predict time."""

    params: tuple[ParamSpec, ...]

    def __init__(self, params: Sequence[ParamSpec]) -> None:
        object.__setattr__(self, "params", tuple(params))
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate param names: {sorted(names)}")

    def __iter__(self) -> Iterator[ParamSpec]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def to_json(self) -> str:
        return json.dumps([p.to_dict() for p in self.params])

    @classmethod
    def from_json(cls, text: str) -> ParamSchema:
        return cls([_param_from_dict(d) for d in json.loads(text)])


@dataclass(frozen=True)
class Signature:
    """What a model takes (inputs, params) and what it returns (outputs)."""

    inputs: Schema | None = None
    outputs: Schema | None = None
    params: ParamSchema | None = field(default=None)

    def to_dict(self) -> dict[str, str | None]:
        """The MLmodel form: each part a JSON string, or None."""
        return {
            "inputs": self.inputs.to_json() if self.inputs is not None else None,
            "outputs": self.outputs.to_json() if self.outputs is not None else None,
            "params": self.params.to_json() if self.params else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        """Read the MLmodel form; raises ModelFormatError naming the broken part."""
        parts: dict[str, Any] = {}
        for key, parser in (
            ("inputs", Schema.from_json),
            ("outputs", Schema.from_json),
            ("params", ParamSchema.from_json),
        ):
            raw = d.get(key)
            if raw is None or raw == "":
                parts[key] = None
                continue
            try:
                parts[key] = parser(raw if isinstance(raw, str) else json.dumps(raw))
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelFormatError(f"signature {key} is not valid: {exc}") from None
        return cls(**parts)


def _value_type_from_dict(d: dict[str, Any]) -> ValueType:
    t = d.get("type")
    if t == "array":
        return Array(_value_type_from_dict(d["items"]))
    if t == "object":
        props = tuple(
            Property(name, _value_type_from_dict(p), bool(p.get("required", True)))
            for name, p in d["properties"].items()
        )
        return Object(props)
    if t == "map":
        return Map(_value_type_from_dict(d["values"]))
    if t == "any":
        return AnyType()
    if t == "sparkml_vector":
        return SparkVector()
    try:
        return DataType(t)
    except ValueError:
        raise ValueError(f"unknown type {t!r}") from None


def _spec_from_dict(d: dict[str, Any]) -> Spec:
    if d.get("type") == "tensor":
        ts = d["tensor-spec"]
        return TensorSpec(str(ts["dtype"]), tuple(ts["shape"]), d.get("name"))
    return ColSpec(_value_type_from_dict(d), d.get("name"), bool(d.get("required", True)))


def _param_from_dict(d: dict[str, Any]) -> ParamSpec:
    raw_type = d.get("type", d.get("dtype"))
    dtype: DataType | Object
    if raw_type == "object" and "properties" in d:
        raw_type = {"type": "object", "properties": d["properties"]}
    if isinstance(raw_type, dict):
        parsed = _value_type_from_dict(raw_type)
        if not isinstance(parsed, Object):
            raise ValueError(f"param {d.get('name')!r}: unsupported type {raw_type}")
        dtype = parsed
    else:
        dtype = DataType(raw_type)
    shape = d.get("shape")
    return ParamSpec(d["name"], dtype, d.get("default"), tuple(shape) if shape else None)
