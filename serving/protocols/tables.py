"""CSV and Parquet bodies: read them into DataFrames, and write predictions as tables.

Used by the REST server (request bodies) and ``satchel predict`` (files in and out).
pandas and pyarrow are imported on first use.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

from satchel.errors import InputFormatError, SatchelError
from satchel.schema import ColSpec, DataType, Schema
from satchel.serving.protocols import budget

# --- CSV and Parquet -------------------------------------------------------------------

# Cells pandas reads as missing in non-string columns (its defaults); string columns
# treat only an empty cell as missing, so "NA" or "null" stay text.
_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
       "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


def parse_csv(body: bytes, schema: Schema | None = None) -> Any:
    """A DataFrame from CSV text with a header row; string columns of the signature stay text."""
    import pandas as pd

    kw: dict[str, Any] = {}
    texts = _columns_of(schema, (DataType.string, DataType.binary, DataType.datetime))
    if texts:
        named = schema.names() if schema is not None else []
        kw["dtype"] = {n: object for n in texts}
        kw["keep_default_na"] = False
        kw["na_values"] = {n: ([""] if n in texts else _NA) for n in named}
    try:
        frame = pd.read_csv(io.BytesIO(body), encoding="utf-8", **kw)
    except pd.errors.EmptyDataError:
        raise InputFormatError("the CSV body is empty; send a header row and data rows") from None
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"the CSV body is not valid UTF-8 (byte {exc.start})") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputFormatError(f"malformed CSV: {_first_line(exc)}") from None
    return decode_binary(frame, schema)


def parse_parquet(body: bytes) -> Any:
    """A DataFrame from a Parquet file's bytes (read with pyarrow)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SatchelError("reading Parquet needs pyarrow: pip install 'satchel[serve]'") from None
    budget.check_parquet(body)  # from the metadata, before any column is decoded
    try:
        table = pq.read_table(io.BytesIO(body))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise InputFormatError(f"malformed Parquet: {_first_line(exc)}") from None
    budget.current().check(table.num_rows, table.nbytes, "the Parquet body")
    return table.to_pandas()


def decode_binary(frame: Any, schema: Schema | None) -> Any:
    """Base64-decode text cells of the signature's binary columns (JSON and CSV carry text)."""
    for name in _columns_of(schema, (DataType.binary,)):
        if name in frame.columns and frame[name].dtype == object:
            values = frame[name].tolist()
            try:
                frame[name] = [base64.b64decode(v, validate=True) if isinstance(v, str) else v
                               for v in values]
            except (binascii.Error, ValueError):
                raise InputFormatError(f"column '{name}' is binary and must hold base64 "
                                       "text") from None
    return frame


def _columns_of(schema: Schema | None, types: tuple[DataType, ...]) -> list[str]:
    if schema is None or schema.is_tensor or not schema.has_names:
        return []
    return [s.name for s in schema.inputs
            if isinstance(s, ColSpec) and s.type in types and s.name is not None]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --- predictions as tables (satchel predict) ----------------------------------------


def output_frame(output: Any) -> Any:
    """A prediction as a DataFrame, to write as CSV or Parquet.

    A 1-D array becomes one column ``prediction``; a 2-D array columns ``0..n-1``; a dict
    of 1-D arrays one column per key.
    """
    import pandas as pd

    if isinstance(output, pd.DataFrame):
        return output
    if isinstance(output, pd.Series):
        return output.to_frame(name="prediction" if output.name is None else output.name)
    if isinstance(output, dict):
        return pd.DataFrame({str(k): _flat(v, str(k)) for k, v in output.items()})
    arr = np.asarray(output)
    if arr.ndim <= 1:
        return pd.DataFrame({"prediction": arr.reshape(-1)})
    if arr.ndim == 2:
        return pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])])
    return pd.DataFrame({"prediction": list(arr)})


def _flat(value: Any, name: str) -> Any:
    arr = np.asarray(value)
    return arr if arr.ndim <= 1 else list(arr)


def write_table(frame: Any, kind: str) -> bytes:
    """A DataFrame as CSV (``kind="csv"``) or Parquet (``kind="parquet"``) bytes."""
    if kind == "csv":
        return str(frame.to_csv(index=False)).encode()
    if kind == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    raise ValueError(f"unknown table format {kind!r}")
