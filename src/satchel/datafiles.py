"""Read a data file (Parquet, CSV, JSON Lines) as a stream of DataFrames.

Offline commands (``satchel monitor``, ``satchel profile``) read files far larger than
memory, so a file is read in Arrow record batches of bounded size and each is handed on
as a small DataFrame. pyarrow is imported on first use (the ``serve`` extra has it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from satchel.errors import InputFormatError, MissingDependencyError

FORMATS = ("parquet", "csv", "jsonl")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
             ".ndjson": "jsonl", ".json": "jsonl"}
DEFAULT_BATCH_ROWS = 65_536


def format_of(path: str | os.PathLike[str], given: str | None = None) -> str:
    """The file's format: ``given`` when set, else from its suffix."""
    if given is not None:
        if given not in FORMATS:
            raise InputFormatError(f"unknown data format {given!r}; use one of {list(FORMATS)}")
        return given
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputFormatError(
            f"cannot tell the format of {Path(path).name} from its suffix; "
            f"name it .parquet, .csv or .jsonl")
    return fmt


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise MissingDependencyError(
            "reading data files needs pyarrow: pip install 'satchel[serve]'") from None
    return pyarrow


def iter_frames(path: str | os.PathLike[str], *, fmt: str | None = None,
                columns: Sequence[str] | None = None,
                batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[Any]:
    """Yield the file's rows as DataFrames of at most ``batch_rows`` rows each.

    Raises:
        InputFormatError: the file is unreadable in its format (named, with the reason).
    """
    fmt = format_of(path, fmt)
    p = Path(path)
    if not p.is_file():
        raise InputFormatError(f"data file {p} does not exist or is not a file")
    pa = _pyarrow()
    try:
        for batch in _batches(pa, p, fmt, columns, batch_rows):
            yield batch.to_pandas()
    except pa.ArrowException as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFormatError(f"cannot read {p.name} as {fmt}: {first}") from None


def _batches(pa: Any, path: Path, fmt: str, columns: Sequence[str] | None,
             batch_rows: int) -> Iterator[Any]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # buffered, no pre-buffering: stream pages instead of holding whole column chunks
        # of a row group (a 1M-row group of 20 doubles would otherwise be ~160 MB at once);
        # the buffer is per column, so it stays small
        pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        yield from pf.iter_batches(batch_size=batch_rows,
                                   columns=list(columns) if columns else None)
        return
    if fmt == "csv":
        import pyarrow.csv as pcsv

        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 22))
        yield from _rechunk(reader, columns, batch_rows)
        return
    import pyarrow.json as pjson

    # pyarrow's JSON reader is not streaming; read blocks of lines instead.
    yield from _jsonl_batches(pa, pjson, path, columns, batch_rows)


def _rechunk(batches: Any, columns: Sequence[str] | None, rows: int) -> Iterator[Any]:
    for rb in batches:
        if columns:
            rb = rb.select([c for c in columns if c in rb.schema.names])
        for start in range(0, rb.num_rows, rows):
            yield rb.slice(start, rows)


def _jsonl_batches(pa: Any, pjson: Any, path: Path, columns: Sequence[str] | None,
                   rows: int) -> Iterator[Any]:
    import io

    def flush(lines: list[bytes]) -> Iterator[Any]:
        table = pjson.read_json(io.BytesIO(b"".join(lines)))
        yield from _rechunk(table.to_batches(), columns, rows)

    buf: list[bytes] = []
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                buf.append(line if line.endswith(b"\n") else line + b"\n")
            if len(buf) >= rows:
                yield from flush(buf)
                buf = []
    if buf:
        yield from flush(buf)


def read_frame(path: str | os.PathLike[str], *, fmt: str | None = None,
               max_rows: int | None = None) -> Any:
    """The whole file (or its first ``max_rows`` rows) as one DataFrame."""
    import pandas as pd

    frames = []
    rows = 0
    for frame in iter_frames(path, fmt=fmt):
        frames.append(frame)
        rows += len(frame)
        if max_rows is not None and rows >= max_rows:
            break
    if not frames:
        raise InputFormatError(f"data file {Path(path).name} has no rows")
    out = pd.concat(frames, ignore_index=True)
    return out if max_rows is None else out.iloc[:max_rows]
