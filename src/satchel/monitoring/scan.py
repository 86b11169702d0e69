"""Measure drift of a data file against a model's reference profile, in constant memory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from satchel.errors import InputFormatError
from satchel.monitoring.profile import Profile
from satchel.monitoring.tally import Tally

# Payload logs store predictions beside the inputs under this prefix (serving's logger).
OUTPUT_PREFIX = "output."


def scan(profile: Profile | None, frames: Iterable[Any], model: Any = None) -> Tally:
    """Count every batch into a tally against ``profile``.

    Columns named ``output.<name>`` are the model's outputs (as payload logs store
    them); otherwise, when ``model`` is given, each batch is scored to measure the drift
    of the predictions too.
    """
    tally = Tally(profile)
    for frame in frames:
        outs = [c for c in frame.columns if str(c).startswith(OUTPUT_PREFIX)]
        if outs:
            outputs = frame[outs].rename(columns=lambda c: str(c)[len(OUTPUT_PREFIX):])
            inputs = frame.drop(columns=outs)
        else:
            inputs = frame
            outputs = model.predict_detailed(frame).output if model is not None else None
        if profile is not None and profile.inputs:
            known = {c.name for c in profile.inputs}
            inputs = inputs[[c for c in inputs.columns if c in known]]
        tally.add(inputs, outputs)
    return tally


def data_frames(path: str | os.PathLike[str], *, fmt: str | None = None,
                batch_rows: int = 65_536) -> Iterator[Any]:
    """Frames of a data file, or of every data file in a directory (payload logs)."""
    from satchel.datafiles import FORMATS, format_of, iter_frames

    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")
                       and f.suffix.lower() in (".parquet", ".csv", ".jsonl"))
        if not files:
            raise InputFormatError(f"{p} holds no {', '.join(FORMATS)} files")
        for f in files:
            yield from iter_frames(f, fmt=fmt or format_of(f), batch_rows=batch_rows)
        return
    yield from iter_frames(p, fmt=fmt, batch_rows=batch_rows)
