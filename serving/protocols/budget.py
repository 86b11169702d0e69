"""How much one request may decode to: rows and bytes, checked before the memory is spent.

The body limit bounds bytes on the wire, not what they become: a 0.5 MiB Parquet body
whose one column is run-length encoded decodes to 30 million rows. A Parquet body is
measured from its metadata (rows, column types) and refused before it is decoded; every
decoded input is measured again before it reaches the model. The budget in effect is a
context variable the data plane sets per request, so codecs need no extra argument.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from satchel import _normalize
from satchel.errors import LimitExceededError

# Bytes a decoded value costs in pandas when its type has no fixed width (a Python str
# object, or a nested value): a deliberately high estimate.
_OBJECT_BYTES = 64


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


@dataclass(frozen=True)
class DecodeBudget:
    """The most one request may decode to (None: unbounded)."""

    max_rows: int | None = None
    max_bytes: int | None = None

    def check(self, rows: int, nbytes: int, what: str) -> None:
        """Raise LimitExceededError (naming the limit) when ``rows`` or ``nbytes`` is over.

        Raises:
            LimitExceededError: over ``max_rows`` or ``max_bytes``.
        """
        if self.max_rows is not None and rows > self.max_rows:
            raise LimitExceededError(
                f"{what} has {rows} rows; the limit is {self.max_rows} rows per request "
                "(--max-rows)", limit="max_rows")
        if self.max_bytes is not None and nbytes > self.max_bytes:
            given, limit = _size(nbytes), _size(self.max_bytes)
            if given == limit:  # "about 15.6 KiB; the limit is 15.6 KiB" says nothing
                given, limit = f"{nbytes} bytes", f"{self.max_bytes} bytes"
            raise LimitExceededError(
                f"{what} decodes to about {given}; the limit is {limit} per request "
                "(--max-decoded-size, by default 8 x --max-body-size)",
                limit="max_decoded_bytes")

    def check_decoded(self, data: Any) -> None:
        """Check a decoded input (DataFrame, ndarray, dict of arrays)."""
        if self.max_rows is None and self.max_bytes is None:
            return
        self.check(_normalize.num_rows(data), decoded_bytes(data), "the input")


_UNBOUNDED = DecodeBudget()
_current: ContextVar[DecodeBudget | None] = ContextVar("satchel_decode_budget", default=None)


def current() -> DecodeBudget:
    """The budget of the request being decoded (unbounded outside a request)."""
    return _current.get() or _UNBOUNDED


@contextlib.contextmanager
def using(budget: DecodeBudget) -> Iterator[None]:
    """Make ``budget`` the current one for the code inside (and threads it starts)."""
    token = _current.set(budget)
    try:
        yield
    finally:
        _current.reset(token)


def _item_bytes(dtype: Any) -> int:
    return int(dtype.itemsize) if dtype.kind != "O" else _OBJECT_BYTES


def decoded_bytes(data: Any) -> int:
    """About how many bytes ``data`` holds in memory."""
    import numpy as np

    pd = _normalize.pandas()
    if isinstance(data, pd.DataFrame):
        # Per block of the block manager (one for a request of one dtype, however many
        # columns): ~1 us for 20 columns, against ~5 us listing each column's dtype and
        # ~15 us through DataFrame.dtypes, which builds a Series (a 1-row request's
        # whole decode is ~20 us)
        blocks = getattr(getattr(data, "_mgr", None), "blocks", None)
        if blocks is not None:
            return len(data) * sum(len(b.mgr_locs) * _item_bytes(b.dtype) for b in blocks)
        return len(data) * sum(_item_bytes(t) for t in data.dtypes)
    if isinstance(data, np.ndarray):
        return int(data.size) * _item_bytes(data.dtype)
    if isinstance(data, dict):
        return sum(decoded_bytes(v) for v in data.values())
    return 0


def check_parquet(body: bytes) -> None:
    """Refuse a Parquet body from its metadata alone when it decodes past the budget.

    Raises:
        LimitExceededError: too many rows or decoded bytes.
    """
    budget = current()
    if budget.max_rows is None and budget.max_bytes is None:
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(body)).metadata
        schema = meta.schema.to_arrow_schema()
    except Exception:  # noqa: BLE001 - a malformed file is reported by the reader itself
        return
    rows = int(meta.num_rows)
    width = 0
    for field in schema:
        try:
            width += max(1, field.type.bit_width // 8)
        except ValueError:  # no fixed width: strings, binary, nested
            width += _OBJECT_BYTES
        if pa.types.is_dictionary(field.type):
            width += _OBJECT_BYTES
    stored = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    budget.check(rows, max(stored, rows * width),
                 f"the Parquet body ({rows} rows x {meta.num_columns} columns)")
