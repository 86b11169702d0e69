"""Opt-in payload logging: a sample of requests and their predictions, as Parquet files.

Off by default (nobody's data is written unless the operator asks). When on, the data
plane's observer draws a sample on the event loop (one ``random()`` call) and queues the
request; a background writer appends rows to one open file per model and rotates it
every hour or N bytes. A file is written as ``.parquet.partial`` and renamed when
closed, so readers (``satchel monitor --data DIR``) only ever see complete files. When
the writer falls behind, requests are dropped and counted, never waited for.

Columns: the model's input columns (minus ``redact``), ``output.<name>`` per output
column, and ``_logged_at`` (UTC timestamp).
"""

from __future__ import annotations

import collections
import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel.errors import SatchelError
from satchel.monitoring.profile import as_frame
from satchel.serving.monitoring._loop import BackgroundLoop
from satchel.serving.monitoring.options import PayloadLogOptions

log = logging.getLogger("satchel.serving")

OUTPUT_PREFIX = "output."
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PayloadLogError(SatchelError):
    """The payload log directory cannot be used (named, with the reason)."""


def check_directory(directory: str | os.PathLike[str]) -> Path:
    """Create the directory if needed and prove it is writable, before serving starts.

    Raises:
        PayloadLogError: naming the directory and the operating system's reason.
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".satchel-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PayloadLogError(f"cannot write payload logs to {path}: "
                              f"{exc.strerror or exc}") from None
    return path


@dataclass
class _OpenFile:
    path: Path
    writer: Any
    schema: Any
    opened: float
    bytes: int = 0


class PayloadLogger:
    """Writes a sample of scored requests to rotating Parquet files (module docstring)."""

    def __init__(self, options: PayloadLogOptions) -> None:
        self.options = options
        self.root = check_directory(options.directory)
        self._pending: collections.deque[tuple[str, Any, Any, float]] = collections.deque()
        self._files: dict[str, _OpenFile] = {}
        self._loop = BackgroundLoop("satchel-payload-log", self._run)
        self._seq = 0
        self.written: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self._random = random.Random()

    def observe(self, name: str, data: Any, output: Any) -> None:
        """On the event loop: sample, then queue (or drop and count when behind)."""
        if self._random.random() >= self.options.sample:
            return
        if len(self._pending) >= self.options.max_pending:
            self.dropped[name] = self.dropped.get(name, 0) + 1
            return
        self._pending.append((name, data, output, time.time()))

    def counts(self) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        """This process's rows written and requests dropped, as metric labels and values
        (``satchel_payload_log_rows_total``, which the metrics sum over workers)."""
        # dict() copies in one step: the writer thread may add a model meanwhile.
        out: list[tuple[tuple[tuple[str, str], ...], float]] = []
        for outcome, counts in (("written", dict(self.written)),
                                ("dropped", dict(self.dropped))):
            out += [((("model", model), ("outcome", outcome)), float(n))
                    for model, n in counts.items()]
        return out

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop(timeout=30)
        self.flush()
        for name in list(self._files):
            self._close(name)

    def _run(self, stop: threading.Event, wake: threading.Event) -> None:
        while not stop.is_set():
            wake.wait(0.5)
            wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - logging payloads never stops serving
                log.exception("payload logging failed; the batch was dropped")

    def flush(self) -> int:
        """Write every queued request; returns how many rows were written."""
        import pandas as pd

        batches: dict[str, list[Any]] = {}
        while self._pending:
            name, data, output, when = self._pending.popleft()
            frame = self._rows(data, output, when)
            if frame is not None:
                batches.setdefault(name, []).append(frame)
        rows = 0
        for name, frames in batches.items():
            table = pd.concat(frames, ignore_index=True)
            self._write(name, table)
            self.written[name] = self.written.get(name, 0) + len(table)
            rows += len(table)
        now = time.time()
        for name, f in list(self._files.items()):
            if now - f.opened >= self.options.rotate_seconds:
                self._close(name)
        return rows

    def _rows(self, data: Any, output: Any, when: float) -> Any:
        import pandas as pd

        try:
            inputs = as_frame(data, "input")
        except (ValueError, TypeError):
            return None
        redact = set(self.options.redact)
        inputs = inputs[[c for c in inputs.columns if c not in redact]]
        parts = [inputs.reset_index(drop=True)]
        if output is not None:
            try:
                outs = as_frame(output, "prediction")
            except (ValueError, TypeError):
                outs = None
            if outs is not None and len(outs) == len(inputs):
                parts.append(outs.rename(columns=lambda c: f"{OUTPUT_PREFIX}{c}")
                             .reset_index(drop=True))
        frame = pd.concat(parts, axis=1)
        frame["_logged_at"] = pd.Timestamp(when, unit="s", tz="UTC")
        # Nested values (lists, dicts) are written as JSON text, so any input logs.
        for col in frame.columns:
            if frame[col].dtype == object and frame[col].map(
                    lambda v: isinstance(v, (list, dict, tuple))).any():
                import json

                frame[col] = frame[col].map(lambda v: json.dumps(v, default=str))
        return frame

    def _write(self, name: str, frame: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        f = self._files.get(name)
        if f is not None and not table.schema.equals(f.schema):
            self._close(name)  # a request of another shape starts a new file
            f = None
        if f is None:
            folder = self.root / _SAFE.sub("_", name)
            folder.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            path = folder / f"{stamp}-{os.getpid()}-{self._seq}.parquet.partial"
            f = _OpenFile(path, pq.ParquetWriter(path, table.schema), table.schema, time.time())
            self._files[name] = f
        f.writer.write_table(table)
        f.bytes += table.nbytes
        if f.bytes >= self.options.rotate_bytes:
            self._close(name)

    def _close(self, name: str) -> None:
        f = self._files.pop(name, None)
        if f is None:
            return
        try:
            f.writer.close()
            os.replace(f.path, f.path.with_suffix(""))  # drop ".partial": complete now
        except OSError:
            log.exception("cannot close payload log %s", f.path)
