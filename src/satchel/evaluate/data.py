"""Evaluation data in batches: a Parquet, CSV or JSONL file streamed by
:mod:`satchel.datafiles` (Arrow record batches of bounded size, constant memory, as
``satchel batch`` and ``satchel monitor`` read), or a DataFrame cut into slices."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel import datafiles
from satchel.errors import EvaluationError, InputFormatError


@dataclass
class Source:
    """Batches of a table as DataFrames, its column names, and a description for results."""

    frames: Iterator[Any]
    columns: list[str]
    description: str


def open_source(data: Any, *, batch_rows: int = datafiles.DEFAULT_BATCH_ROWS,
                fmt: str | None = None) -> Source:
    """``data`` is a DataFrame or the path of a Parquet, CSV or JSONL file.

    Raises:
        InputFormatError: no such file, an unknown format, or a file pyarrow cannot read.
        EvaluationError: a file with no rows.
    """
    if batch_rows < 1:
        raise InputFormatError(f"batch rows must be at least 1, not {batch_rows}")
    if not isinstance(data, (str, os.PathLike)):
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            raise InputFormatError(f"evaluation data must be a DataFrame or a file path, not "
                                   f"{type(data).__name__}")
        frame = data
        return Source((frame.iloc[i:i + batch_rows] for i in range(0, len(frame), batch_rows)),
                      [str(c) for c in frame.columns], "DataFrame")
    path = Path(data)
    frames = datafiles.iter_frames(path, fmt=fmt, batch_rows=batch_rows)
    # the first batch tells the columns (read before the models run, so a missing target
    # fails in a second, not after an hour of predictions)
    first = next(frames, None)
    if first is None:
        raise EvaluationError(f"{path.name} has no rows to evaluate")
    return Source(itertools.chain([first], frames), [str(c) for c in first.columns], path.name)
