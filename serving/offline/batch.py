"""The engine of ``satchel batch``: score a Parquet, CSV or JSONL file in constant memory.

Arrow record batches stream from the input, each goes through ``Model.predict_detailed``
(via ``satchel.serving.offline.tabular``, the same conversion the Spark UDF uses) and is written
at once to a hidden temporary file beside the output, renamed into place at the end. An
exception or interrupt removes the temporary file, so a run leaves a whole output or
none. :func:`score_on_spark` runs the same job through :func:`spark_udf`. See docs/batch.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from satchel import _json
from satchel.errors import DestinationExistsError, InputFormatError, OutputError
from satchel.model import Model
from satchel.schema import ColSpec, DataType, Schema
from satchel.serving.offline import tabular
from satchel.serving.offline.progress import Progress
from satchel.serving.protocols import tables

FORMATS = ("parquet", "csv", "jsonl")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
             ".ndjson": "jsonl", ".json": "jsonl"}
DEFAULT_BATCH_ROWS = 65_536
_BLOCK_BYTES = 8 << 20  # CSV/JSON read block: bounds memory, independent of file size


@dataclass(frozen=True)
class BatchResult:
    """What a run did: rows scored (None on Spark, which does not count them), wall
    seconds, where the output is."""

    rows: int | None
    seconds: float
    output: Path


def format_of(path: str | os.PathLike[str], given: str | None = None) -> str:
    """The file format: ``given``, else from the suffix; InputFormatError if neither says."""
    if given is not None:
        if given not in FORMATS:
            raise InputFormatError(f"format {given!r} is not one of {list(FORMATS)}")
        return given
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputFormatError(f"cannot tell the format of {Path(path).name} from its suffix; "
                               f"name it .parquet, .csv or .jsonl, or pass --format")
    return fmt


def score_file(model: Model, input_path: str | os.PathLike[str],
               output_path: str | os.PathLike[str], *, output_format: str | None = None,
               input_format: str | None = None, batch_rows: int = DEFAULT_BATCH_ROWS,
               keep: Sequence[str] = (), overwrite: bool = False,
               progress: Progress | None = None) -> BatchResult:
    """Score every row of ``input_path`` and write ``keep`` columns plus predictions.

    Raises:
        InputFormatError: unreadable input, unknown format, a ``keep`` column not in it.
        SignatureError: a batch does not fit the model's signature.
        OutputError: the output cannot be written in the chosen format.
        DestinationExistsError: the output exists and ``overwrite`` is false.
    """
    if batch_rows < 1:
        raise InputFormatError(f"batch rows must be at least 1, not {batch_rows}")
    src, dst = Path(input_path), Path(output_path)
    in_fmt, out_fmt = format_of(src, input_format), format_of(dst, output_format)
    if dst.is_dir():
        # Checked before anything is written: replacing a directory with a file would
        # fail only at the final rename, after all the scoring, leaving a temp file.
        raise OutputError(f"{dst} is a directory; the output is one file: name a file "
                          "such as scores.parquet (--overwrite replaces files only)")
    if dst.exists() and not overwrite:
        raise DestinationExistsError(f"{dst} already exists; pass --overwrite to replace it")
    if dst.exists() and dst.resolve() == src.resolve():
        raise DestinationExistsError(f"{dst} is the input file; write the output elsewhere")
    sig = model.signature
    schema = sig.inputs if sig is not None else None
    reader = _open(src, in_fmt, batch_rows, schema, keep)
    start = time.monotonic()
    rows = 0
    if progress is not None:
        progress.start(reader.total)
    with _atomic_file(dst) as tmp:
        writer = _Writer(tmp, out_fmt)
        try:
            for rb in reader.batches:
                writer.write(_score_batch(model, rb, reader.model_columns, schema, keep,
                                          text=in_fmt != "parquet"))
                rows += rb.num_rows
                if progress is not None:
                    progress.update(rows)
            if writer.schema is None:
                # no rows: a valid empty file holding the kept columns
                writer.write(_empty_batch(reader.schema, keep))
        finally:
            writer.close()
    if progress is not None:
        progress.finish(rows)
    return BatchResult(rows, time.monotonic() - start, dst)


def _empty_batch(schema: Any, keep: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.RecordBatch.from_pylist([], schema=pa.schema([schema.field(k) for k in keep]))


def _score_batch(model: Model, rb: Any, names: list[str], schema: Schema | None,
                 keep: Sequence[str], *, text: bool) -> Any:
    import pyarrow as pa

    data = tabular.model_input([rb.column(n) for n in names], names, schema)
    if text:
        # CSV and JSON carry binary columns as base64 text, as in REST requests
        data = tables.decode_binary(data, schema)
    result = model.predict_detailed(data)
    tabular.check_rows(result.output, rb.num_rows)
    # the same columns `satchel predict` writes: prediction, 0..k-1, or the output's names
    frame = tables.output_frame(result.output)
    frame.columns = [str(c) for c in frame.columns]
    clash = sorted(set(keep) & set(frame.columns))
    if clash:
        raise OutputError(f"kept column{'s' if len(clash) > 1 else ''} {clash} would clash with "
                          "prediction columns of the same name; keep other columns",
                          given=str(clash))
    try:
        preds = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise OutputError(f"the model's output holds values no file column can store: "
                          f"{str(exc).splitlines()[0]}") from None
    return pa.RecordBatch.from_arrays([rb.column(k) for k in keep] + preds.columns,
                                      names=[*keep, *preds.schema.names])


# --- reading --------------------------------------------------------------------------


@dataclass
class _Reader:
    batches: Iterator[Any]
    total: int | None
    model_columns: list[str]
    schema: Any  # the columns read, as Arrow types


def _open(path: Path, fmt: str, batch_rows: int, schema: Schema | None,
          keep: Sequence[str]) -> _Reader:
    if not path.is_file():
        raise InputFormatError(f"input {path} does not exist or is not a file")
    columns = _columns_of(path, fmt)
    missing = [k for k in keep if k not in columns]
    if missing:
        raise InputFormatError(f"--keep column{'s' if len(missing) > 1 else ''} {missing} "
                               f"not in {path.name} (it has {len(columns)} columns)")
    # Named inputs: read only those (plus kept ones); the policy reports missing ones.
    # No signature or unnamed tensors: the model gets every column of the file.
    if schema is not None and schema.has_names:
        inputs = set(schema.names())
        model_cols = [c for c in columns if c in inputs]
    else:
        model_cols = list(columns)
    wanted = [c for c in columns if c in set(model_cols) or c in keep]
    types = _arrow_types(schema, wanted)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            # unbuffered pre-reads would hold whole column chunks; stream pages instead
            pf = pq.ParquetFile(path, buffer_size=_BLOCK_BYTES, pre_buffer=False)
            return _Reader(_guard(pf.iter_batches(batch_size=batch_rows, columns=wanted), path),
                           pf.metadata.num_rows, model_cols, pf.schema_arrow)
        if fmt == "csv":
            import pyarrow.csv as pcsv

            # pandas' missing-value cells, as REST CSV bodies read them
            # (serving/protocols/tables.py)
            nulls = [*pcsv.ConvertOptions().null_values, "<NA>", "None"]
            stream = pcsv.open_csv(
                path, read_options=pcsv.ReadOptions(block_size=_BLOCK_BYTES),
                convert_options=pcsv.ConvertOptions(include_columns=wanted, column_types=types,
                                                    null_values=nulls))
        else:
            import pyarrow as pa
            import pyarrow.json as pjson

            stream = pjson.open_json(
                path, read_options=pjson.ReadOptions(block_size=_BLOCK_BYTES),
                parse_options=pjson.ParseOptions(
                    explicit_schema=pa.schema(list(types.items())) if types else None,
                    unexpected_field_behavior="infer"))
    except Exception as exc:
        raise _input_error(path, exc) from None
    # string, binary and datetime signature columns are read as text
    texts = [n for n, t in types.items() if str(t) == "string"] if fmt == "csv" else []
    return _Reader(_rechunk(_guard(stream, path), batch_rows, wanted, texts), None, model_cols,
                   stream.schema)


def _columns_of(path: Path, fmt: str) -> list[str]:
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if fmt == "csv":
            import csv

            with open(path, newline="", encoding="utf-8-sig") as f:
                return next(csv.reader(f), [])
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    first = json.loads(line)
                    if not isinstance(first, dict):
                        raise InputFormatError(f"{path.name}: each JSONL line must be an object")
                    return [str(k) for k in first]
        return []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, InputFormatError):
            raise
        raise _input_error(path, exc) from None
    except Exception as exc:  # pyarrow's own errors
        raise _input_error(path, exc) from None


def _arrow_types(schema: Schema | None, wanted: list[str]) -> dict[str, Any]:
    """Parse types for text formats: the text of a signature column is read as its type.

    Parsing only (``"1.5"`` -> 1.5); what the parsed values may become is the policy's call.
    """
    import pyarrow as pa

    if schema is None or schema.is_tensor:
        return {}
    parse = {DataType.double: pa.float64(), DataType.float: pa.float64(),
             DataType.long: pa.int64(), DataType.integer: pa.int64(),
             DataType.boolean: pa.bool_(), DataType.string: pa.string(),
             DataType.binary: pa.string(), DataType.datetime: pa.string()}
    return {s.name: parse[s.type] for s in schema.inputs
            if isinstance(s, ColSpec) and s.name in wanted and isinstance(s.type, DataType)
            and s.type in parse}


def _input_error(path: Path, exc: BaseException) -> InputFormatError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputFormatError(f"cannot read {path.name}: {reason[:300]}")


def _guard(batches: Any, path: Path) -> Iterator[Any]:
    """Re-raise pyarrow's parse errors mid-file as InputFormatError."""
    import pyarrow as pa

    it = iter(batches)
    while True:
        try:
            rb = next(it)
        except StopIteration:
            return
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
            raise _input_error(path, exc) from None
        yield rb


def _rechunk(batches: Iterator[Any], rows: int, wanted: list[str],
             texts: Sequence[str]) -> Iterator[Any]:
    """Byte-sized text blocks cut to at most ``rows`` rows, columns in ``wanted`` order.

    An empty CSV cell in a text column (``texts``) is missing, as in REST CSV bodies.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for rb in batches:
        present = [c for c in wanted if c in rb.schema.names]
        rb = rb.select(present)
        for name in texts:
            i = rb.schema.get_field_index(name)
            col = rb.column(i)
            rb = rb.set_column(i, name, pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type),
                                                   col))
        for off in range(0, rb.num_rows, rows):
            yield rb.slice(off, rows)


# --- writing --------------------------------------------------------------------------


class _atomic_file:
    """A hidden temporary file beside ``dest``, renamed onto it only on success."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest

    def __enter__(self) -> Path:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".satchel-tmp",
                                    dir=self.dest.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        try:
            os.replace(self.tmp, self.dest)
        except OSError as err:
            # e.g. a directory appeared at the destination meanwhile: no temp file stays
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.dest}: {err.strerror or err}") from None


class _Writer:
    """Writes record batches as they come; the schema is fixed by the first batch."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self._w: Any = None
        self._f: TextIO | None = None
        self.schema: Any = None

    def write(self, rb: Any) -> None:
        import pyarrow as pa

        if self.schema is None:
            self._open(rb.schema)
        elif rb.schema != self.schema:
            try:
                rb = pa.Table.from_batches([rb]).cast(self.schema).to_batches()[0]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError,
                    ValueError, IndexError):
                raise OutputError(f"a batch's columns {rb.schema.names} ({rb.schema.types}) "
                                  f"differ from the first batch's {self.schema.names}",
                                  given=str(rb.schema.types)) from None
        if self.fmt == "jsonl":
            assert self._f is not None
            self._f.write(_jsonl(rb))
        elif rb.num_rows:
            self._w.write_batch(rb)

    def _open(self, schema: Any) -> None:
        import pyarrow as pa

        self.schema = schema
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            self._w = pq.ParquetWriter(self.path, schema)
        elif self.fmt == "csv":
            import pyarrow.csv as pcsv

            nested = [f.name for f in schema if pa.types.is_nested(f.type)]
            if nested:
                raise OutputError(f"columns {nested} hold lists or structs, which CSV cannot "
                                  "store; write parquet or jsonl", given=str(nested))
            self._w = pcsv.CSVWriter(self.path, schema)
        else:
            self._f = open(self.path, "w", encoding="utf-8")

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
        if self._f is not None:
            self._f.close()


def _jsonl(rb: Any) -> str:
    """A record batch as JSON lines, encoded column by column (MLflow's JSON encoding:
    NaN as null, bytes as base64, dates as ISO text)."""
    keys = [json.dumps(str(n)) + ": " for n in rb.schema.names]
    cols = [_json_values(rb.column(i)) for i in range(rb.num_columns)]
    return "".join("{" + ", ".join(k + v for k, v in zip(keys, row)) + "}\n"
                   for row in zip(*cols))


def _json_values(arr: Any) -> list[str]:
    import pyarrow as pa

    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t):
        # numbers never contain ", ": one C-level dumps per column, then split
        values = (_json.array_jsonable(arr.to_numpy(zero_copy_only=False))
                  if pa.types.is_floating(t) else arr.to_pylist())
        return json.dumps(values, allow_nan=False)[1:-1].split(", ") if values else []
    return [json.dumps(_json.jsonable(v), allow_nan=False) for v in arr.to_pylist()]


# --- on Spark -------------------------------------------------------------------------


def score_on_spark(model_path: str | os.PathLike[str], input_path: str, output_path: str,
                   master: str, *, output_format: str | None = None,
                   input_format: str | None = None, keep: Sequence[str] = (),
                   overwrite: bool = False, **load_options: Any) -> BatchResult:
    """The same job on Spark (``satchel.serving.offline.spark_batch.run_batch``; pyspark is
    imported there): Spark reads, :func:`spark_udf` scores, Spark writes a directory of
    part files that is renamed onto ``output_path`` when complete."""
    from satchel.serving.offline import spark_batch

    in_fmt, out_fmt = format_of(input_path, input_format), format_of(output_path, output_format)
    start = time.monotonic()
    spark_batch.run_batch(model_path, input_path, output_path, master, in_fmt, out_fmt,
                          keep, overwrite, load_options)
    return BatchResult(None, time.monotonic() - start, Path(output_path))
