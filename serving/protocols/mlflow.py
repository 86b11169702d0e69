"""MLflow's scoring protocol (``/invocations``): request and reply bodies, as a codec.

:data:`MLFLOW` is the protocol object the data plane uses; the functions under it are
shared with ``satchel predict``: bytes plus a content type in, the data and params a
model takes out; a prediction in, JSON bytes out. Nothing here knows HTTP. Values are
only *parsed* here (text into Python and pandas values); fitting them to the signature
is the core policy's job (``Model.predict_detailed``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from satchel import _json, _normalize
from satchel.errors import (
    InputFormatError,
    LimitExceededError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    PredictionError,
    SatchelError,
    ServerBusyError,
    SignatureError,
    UnsupportedMediaTypeError,
)
from satchel.model import Prediction
from satchel.schema import Schema
from satchel.serving.protocols import frames, tables
from satchel.serving.protocols.base import Decoded, Inbound, Protocol, Reply, reply_of
from satchel.serving.protocols.strict_json import json_type, loads

if TYPE_CHECKING:
    from satchel.serving.server.repository import ServedModel

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
# media type -> body kind
MEDIA_TYPES = {JSON: "json", CSV: "csv", "application/csv": "csv", PARQUET: "parquet"}
FORMAT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SUPPORTED = ", ".join(MEDIA_TYPES)


@dataclass(frozen=True)
class ParsedInput:
    """What a request body holds: the model input, its params, and which format it used."""

    data: Any
    params: dict[str, Any] | None
    format: str


# --- content types ---------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def body_kind(content_type: str | None) -> str:
    """``"json"``, ``"csv"`` or ``"parquet"`` for a Content-Type header value.

    Raises:
        UnsupportedMediaTypeError: no content type, another media type, a charset other
            than utf-8, or any other media-type parameter. The message lists what is read.
    """
    if not content_type or not content_type.strip():
        raise UnsupportedMediaTypeError(
            f"the request has no Content-Type; send one of: {_SUPPORTED}")
    media, *raw_params = content_type.split(";")
    media = media.strip().lower()
    kind = MEDIA_TYPES.get(media)
    if kind is None:
        raise UnsupportedMediaTypeError(
            f"content type '{media[:100]}' is not supported; send one of: {_SUPPORTED}")
    for raw in raw_params:
        key, _, value = raw.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if not key:
            continue
        if key == "charset":
            if value not in ("utf-8", "utf8"):
                raise UnsupportedMediaTypeError(
                    f"charset '{value[:40]}' is not supported; send charset=utf-8")
            continue
        raise UnsupportedMediaTypeError(
            f"content type parameter '{key[:40]}' is not supported (only charset=utf-8); the "
            "input format is named by a key of the JSON body (dataframe_split, "
            "dataframe_records, instances or inputs)")
    return kind


def parse_request(body: bytes, content_type: str | None,
                  schema: Schema | None = None) -> ParsedInput:
    """Parse a scoring request body of any supported content type.

    Args:
        body: the raw request body.
        content_type: the Content-Type header (``None`` when absent).
        schema: the model's input schema; column names and types guide CSV parsing and
            positional JSON rows. Values are not converted to it here.

    Raises:
        UnsupportedMediaTypeError: see :func:`body_kind`.
        InputFormatError: the body cannot be parsed; the message says where and why.
    """
    kind = body_kind(content_type)
    if kind == "json":
        return parse_json(body, schema)
    if kind == "csv":
        return ParsedInput(tables.parse_csv(body, schema), None, "csv")
    return ParsedInput(tables.parse_parquet(body), None, "parquet")


# --- JSON ------------------------------------------------------------------------------


def parse_json(body: bytes | str, schema: Schema | None = None) -> ParsedInput:
    """Parse a JSON body: exactly one of the format keys, plus optional ``params``."""
    obj = loads(body)
    if not isinstance(obj, dict):
        raise InputFormatError(f"the JSON body must be an object with exactly one of the keys "
                               f"{list(FORMAT_KEYS)}, not {json_type(obj)}")
    found = [k for k in FORMAT_KEYS if k in obj]
    unknown = sorted(str(k) for k in obj if k not in FORMAT_KEYS and k != "params")
    if len(found) != 1 or unknown:
        if not found:
            why = "has none of them"
        elif len(found) > 1:
            why = f"has several: {found}"
        else:
            why = f"has unknown keys {unknown[:10]}"
        raise InputFormatError(f"the JSON body must have exactly one of the keys "
                               f"{list(FORMAT_KEYS)} (plus optional 'params'); it {why}")
    params = obj.get("params")
    if params is not None and not isinstance(params, dict):
        raise InputFormatError(f"'params' must be an object, not {json_type(params)}")
    key = found[0]
    value = obj[key]
    if key == "dataframe_split":
        data = _from_split(value, schema)
    elif key == "dataframe_records":
        data = _from_records(value, schema, key)
    else:
        data = _from_tensor_or_columns(value, schema, key)
    return ParsedInput(data, params, key)


def _from_split(value: Any, schema: Schema | None) -> Any:
    if not isinstance(value, dict):
        raise InputFormatError(f"'dataframe_split' must be an object with 'columns' and "
                               f"'data', not {json_type(value)}")
    extra = sorted(str(k) for k in value if k not in ("columns", "data", "index"))
    if extra:
        raise InputFormatError(f"'dataframe_split' has unknown keys {extra[:10]}; it takes "
                               "'columns', 'data' and 'index'")
    if "data" not in value:
        raise InputFormatError("'dataframe_split' needs a 'data' key (a list of rows)")
    rows, columns, index = value["data"], value.get("columns"), value.get("index")
    if not isinstance(rows, list):
        raise InputFormatError(f"'dataframe_split.data' must be a list of rows, "
                               f"not {json_type(rows)}")
    if columns is not None and (not isinstance(columns, list)
                                or not all(isinstance(c, (str, int)) for c in columns)):
        raise InputFormatError("'dataframe_split.columns' must be a list of column names")
    if index is not None and (not isinstance(index, list) or len(index) != len(rows)):
        raise InputFormatError(f"'dataframe_split.index' must be a list of {len(rows)} labels")
    if columns is None:
        columns = _positional_names(rows, schema)
    return frame_from_rows(rows, [str(c) for c in columns], "dataframe_split", index)


def _positional_names(rows: list[Any], schema: Schema | None) -> list[Any]:
    """Names for rows sent without column names: the signature's when the width fits."""
    width = len(rows[0]) if rows and isinstance(rows[0], list) else 0
    if schema is not None and not schema.is_tensor and width == len(schema.inputs):
        return schema.names()
    return list(range(width))


def frame_from_rows(rows: list[Any], columns: list[str], where: str,
                    index: list[Any] | None = None) -> Any:
    """A DataFrame from row lists, inferring each column's dtype the way pandas does.

    Faster than ``pd.DataFrame(rows)`` for the small bodies a server sees: rows of only
    floats become one float64 block at once; otherwise each column of plain floats, ints,
    bools or strings becomes a numpy array at once, and anything else is left to
    pandas' own inference.
    """
    import pandas as pd

    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise InputFormatError(f"{where}: duplicate column names {dup[:10]}")
    width = len(columns)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            given = f"{len(row)} values" if isinstance(row, list) else json_type(row)
            raise InputFormatError(f"{where}: row {i} has {given}, but {width} columns are named")
    if not rows:
        return pd.DataFrame({c: np.array([], dtype=object) for c in columns}, index=index)
    if set(map(type, chain.from_iterable(rows))) == {float}:
        # The common numeric body: one float64 block, built in one call.
        block = np.array(rows, dtype=np.float64)
        if index is None:
            return frames.frame(block, columns, owned=True)
        return pd.DataFrame(block, columns=columns, index=index)
    cols = zip(*rows)
    return pd.DataFrame({name: column(list(vals)) for name, vals in zip(columns, cols)},
                        index=index)


def column(values: list[Any]) -> Any:
    """One column of parsed JSON values as an ndarray (or a pandas Series for mixed ones)."""
    types = set(map(type, values))
    if len(types) == 1:
        t = next(iter(types))
        if t is float:
            return np.array(values, dtype=np.float64)
        if t is int:
            try:
                return np.array(values, dtype=np.int64)
            except OverflowError:
                return np.array(values, dtype=object)
        if t is bool:
            return np.array(values, dtype=bool)
        if t is str:
            return np.array(values, dtype=object)
    elif types == {int, float}:
        return np.array(values, dtype=np.float64)  # pandas does the same for a mixed column
    import pandas as pd

    if types & {list, dict}:
        out = np.empty(len(values), dtype=object)
        out[:] = values  # nested values stay Python objects, one per row
        return out
    return pd.Series(values)


def _from_records(value: Any, schema: Schema | None, key: str) -> Any:
    if not isinstance(value, list):
        raise InputFormatError(f"'{key}' must be a list of records, not {json_type(value)}")
    if not value:
        return frame_from_rows([], schema.names() if schema is not None else [], key)
    if all(isinstance(r, dict) for r in value):
        names: list[str] = []
        seen: set[str] = set()
        for r in value:
            for k in r:
                if k not in seen:
                    seen.add(k)
                    names.append(k)
        rows = [[r.get(n) for n in names] for r in value]
        return frame_from_rows(rows, names, key)
    if all(isinstance(r, list) for r in value):
        return frame_from_rows(value, [str(c) for c in _positional_names(value, schema)], key)
    raise InputFormatError(f"'{key}' must be a list of records (objects), not of mixed values")


def _from_tensor_or_columns(value: Any, schema: Schema | None, key: str) -> Any:
    columnar = schema is not None and not schema.is_tensor
    if isinstance(value, dict):
        if columnar:
            return _frame_from_columns(value, key)
        return {str(k): _array(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(r, dict) for r in value):
            frame = _from_records(value, schema, key)
            if columnar or schema is None:
                return frame
            return {str(c): _array(frame[c].tolist(), f"{key}.{c}") for c in frame.columns}
        if columnar and value and all(isinstance(r, list) for r in value):
            assert schema is not None
            if len(value[0]) == len(schema.inputs):
                return frame_from_rows(value, schema.names(), key)
    return _array(value, key)


def _frame_from_columns(value: dict[str, Any], key: str) -> Any:
    import pandas as pd

    if value and all(not isinstance(v, list) for v in value.values()):
        value = {k: [v] for k, v in value.items()}  # one row of scalars
    lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
    if len(lengths) > 1:
        raise InputFormatError(f"'{key}': columns must be lists of one length, given lengths "
                               f"{sorted(lengths)[:10]}")
    names = [str(k) for k in value]
    if value and set(map(type, chain.from_iterable(value.values()))) == {float}:
        # all floats: one (columns x rows) array is exactly pandas' block layout
        return frames.frame(np.array(list(value.values()), dtype=np.float64).T, names)
    return pd.DataFrame({n: column(v) for n, v in zip(names, value.values())})


def _array(value: Any, where: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0][:200]
        raise InputFormatError(f"'{where}' is not a rectangular array: {first}") from None


# --- replies ---------------------------------------------------------------------------


def format_predictions(output: Any) -> bytes:
    """The reply body ``{"predictions": ...}`` as UTF-8 JSON bytes.

    A DataFrame is written as records, a Series as records of one column (as MLflow
    does), an ndarray as nested lists, a dict as a dict; NaN becomes null, datetimes ISO
    strings, bytes base64.
    """
    try:
        return json.dumps({"predictions": predictions_jsonable(output)},
                          allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise SatchelError(f"the model's output cannot be written as JSON: {exc}") from None


def predictions_jsonable(output: Any) -> Any:
    """The value of ``"predictions"``: plain Python lists, dicts and scalars."""
    if isinstance(output, np.ndarray):
        return _json.array_jsonable(output)
    kind = _normalize.pandas_kind(output)
    if kind == "frame":
        return frame_records(output)
    if kind == "series":
        return frame_records(output.to_frame(name=0 if output.name is None else output.name))
    if isinstance(output, dict):
        return {str(k): predictions_jsonable(v) for k, v in output.items()}
    return _json.jsonable(output)


def frame_records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame as a list of ``{column: value}`` dicts of JSON-ready values."""
    names = [str(c) for c in frame.columns]
    columns = [_json.array_jsonable(frame.iloc[:, i].to_numpy()) for i in range(len(names))]
    return [dict(zip(names, row)) for row in zip(*columns)]


# --- the codec ---------------------------------------------------------------------------

# error class -> MLflow's error code; the first match in this order wins
ERROR_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (ModelNotFoundError, "RESOURCE_DOES_NOT_EXIST"),
    (ModelNotReadyError, "TEMPORARILY_UNAVAILABLE"),
    (ServerBusyError, "TEMPORARILY_UNAVAILABLE"),
    (UnsupportedMediaTypeError, "BAD_REQUEST"),
    (LimitExceededError, "REQUEST_LIMIT_EXCEEDED"),
    (InputFormatError, "BAD_REQUEST"),
    (SignatureError, "INVALID_PARAMETER_VALUE"),
    (PredictionError, "BAD_REQUEST"),
    (ModelLoadError, "INVALID_STATE"),
    (SatchelError, "INTERNAL_ERROR"),
)


def error_code(exc: BaseException) -> str:
    """MLflow's error code for an error raised while serving (``INTERNAL_ERROR`` for
    anything not satchel's)."""
    for cls, code in ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return "INTERNAL_ERROR"


def error_details(exc: BaseException) -> dict[str, Any]:
    """The structured fields of an error that MLflow-style error bodies carry."""
    extra: dict[str, Any] = {}
    if isinstance(exc, PredictionError):
        extra["error_class"] = exc.error_class
    if isinstance(exc, SignatureError):
        extra.update({k: v for k, v in (("column", exc.column), ("expected", exc.expected),
                                        ("given", exc.given)) if v is not None})
    return extra


class MlflowProtocol(Protocol):
    """``POST /invocations``: JSON, CSV or Parquet in, ``{"predictions": ...}`` out."""

    name = "mlflow"

    def decode(self, served: ServedModel, message: Any, inbound: Inbound) -> Decoded:
        sig = served.require().signature
        parsed = parse_request(message, inbound.content_type,
                               sig.inputs if sig is not None else None)
        return Decoded(parsed.data, parsed.params, parsed.format)

    def encode(self, served: ServedModel, decoded: Decoded, prediction: Prediction) -> Reply:
        return reply_of(prediction, format_predictions(prediction.output))

    def error_body(self, message: str, code: str, extra: Mapping[str, Any] | None = None
                   ) -> bytes:
        return json.dumps({"error_code": code, "message": message, **(extra or {})},
                          default=str, ensure_ascii=False, separators=(",", ":")).encode()


MLFLOW = MlflowProtocol()
