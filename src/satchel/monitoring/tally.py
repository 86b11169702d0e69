"""A tally of new data for a whole model: counts per input and output column.

Columns the reference profile names are counted into its bins. A model with no profile
(or a column the profile lacks) gets raw figures only: count, nulls, min, max and mean,
since without a reference there is nothing to measure drift against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from satchel.monitoring.drift import ColumnCounts, DriftFigures, figures
from satchel.monitoring.profile import Profile, as_frame, is_numeric, numeric_values


@dataclass
class RawCounts:
    """What can be said of a column with no reference: count, nulls, range and mean."""

    total: float = 0.0
    nulls: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    sum: float = 0.0
    numeric: float = 0.0

    def add(self, values: Any) -> None:
        import pandas as pd

        series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
        nulls = series.isna()
        self.total += len(series)
        self.nulls += float(nulls.sum())
        present = series[~nulls]
        if len(present) and is_numeric(present):
            arr = numeric_values(present)
            if arr.size:
                self.minimum = min(self.minimum, float(arr.min()))
                self.maximum = max(self.maximum, float(arr.max()))
                self.sum += float(arr.sum())
                self.numeric += arr.size

    def merge(self, other: RawCounts) -> None:
        self.total += other.total
        self.nulls += other.nulls
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.sum += other.sum
        self.numeric += other.numeric

    def scaled(self, factor: float) -> RawCounts:
        return RawCounts(self.total * factor, self.nulls * factor, self.minimum, self.maximum,
                         self.sum * factor, self.numeric * factor)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "nulls": self.nulls,
                "minimum": self.minimum if math.isfinite(self.minimum) else None,
                "maximum": self.maximum if math.isfinite(self.maximum) else None,
                "sum": self.sum, "numeric": self.numeric}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RawCounts:
        lo, hi = raw.get("minimum"), raw.get("maximum")
        return cls(float(raw["total"]), float(raw["nulls"]),
                   math.inf if lo is None else float(lo), -math.inf if hi is None else float(hi),
                   float(raw["sum"]), float(raw["numeric"]))

    def summary(self, column: str) -> dict[str, Any]:
        return {"column": column, "count": self.total,
                "null_rate": self.nulls / self.total if self.total else None,
                "minimum": self.minimum if math.isfinite(self.minimum) else None,
                "maximum": self.maximum if math.isfinite(self.maximum) else None,
                "mean": self.sum / self.numeric if self.numeric else None}


# Raw columns tracked per side at most: a client cannot grow the server's memory by
# sending new column names (extra columns are dropped before predict anyway).
_MAX_RAW_COLUMNS = 256


@dataclass
class Tally:
    """Counts of inputs and outputs seen, against an optional reference profile."""

    profile: Profile | None
    inputs: dict[str, ColumnCounts] = field(default_factory=dict)
    outputs: dict[str, ColumnCounts] = field(default_factory=dict)
    raw_inputs: dict[str, RawCounts] = field(default_factory=dict)
    raw_outputs: dict[str, RawCounts] = field(default_factory=dict)
    requests: float = 0.0

    def add(self, inputs: Any, outputs: Any = None) -> None:
        """Count one batch of model inputs (and the predictions made for them)."""
        self.requests += 1
        if inputs is not None:
            self._add(as_frame(inputs, "input"), False)
        if outputs is not None:
            self._add(as_frame(outputs, "prediction"), True)

    def _add(self, frame: Any, output: bool) -> None:
        counts, raw = (self.outputs, self.raw_outputs) if output else (self.inputs, self.raw_inputs)
        for name in frame.columns:
            ref = self.profile.column(name, output=output) if self.profile else None
            if ref is not None:
                slot = counts.get(name)
                if slot is None:
                    slot = counts[name] = ColumnCounts.empty(ref)
                slot.add(ref, frame[name])
            else:
                r = raw.get(name)
                if r is None:
                    if len(raw) >= _MAX_RAW_COLUMNS:
                        continue
                    r = raw[name] = RawCounts()
                r.add(frame[name])

    def merge(self, other: Tally) -> None:
        """Add another tally of the same profile (a worker's, a window bucket's)."""
        self.requests += other.requests
        for mine, theirs in ((self.inputs, other.inputs), (self.outputs, other.outputs)):
            for name, c in theirs.items():
                if name in mine:
                    mine[name].merge(c)
                else:
                    mine[name] = c.scaled(1.0)
        for rmine, rtheirs in ((self.raw_inputs, other.raw_inputs),
                               (self.raw_outputs, other.raw_outputs)):
            for name, r in rtheirs.items():
                if name in rmine:
                    rmine[name].merge(r)
                elif len(rmine) < _MAX_RAW_COLUMNS:
                    rmine[name] = r.scaled(1.0)

    def scaled(self, factor: float) -> Tally:
        """A copy with every count multiplied by ``factor``."""
        return Tally(self.profile,
                     {k: v.scaled(factor) for k, v in self.inputs.items()},
                     {k: v.scaled(factor) for k, v in self.outputs.items()},
                     {k: v.scaled(factor) for k, v in self.raw_inputs.items()},
                     {k: v.scaled(factor) for k, v in self.raw_outputs.items()},
                     self.requests * factor)

    def figures(self) -> tuple[list[DriftFigures], list[DriftFigures]]:
        """Drift figures of every profiled input column and output column."""
        if self.profile is None:
            return [], []
        ins = [figures(c, self.inputs.get(c.name) or ColumnCounts.empty(c))
               for c in self.profile.inputs]
        outs = [figures(c, self.outputs.get(c.name) or ColumnCounts.empty(c))
                for c in self.profile.outputs]
        return ins, outs

    def report(self) -> dict[str, Any]:
        """Everything as JSON-ready data: drift figures, raw figures, counts."""
        ins, outs = self.figures()
        return {
            "has_reference": self.profile is not None,
            "requests": self.requests,
            "inputs": [f.to_dict() for f in ins],
            "outputs": [f.to_dict() for f in outs],
            "raw_inputs": [r.summary(n) for n, r in sorted(self.raw_inputs.items())],
            "raw_outputs": [r.summary(n) for n, r in sorted(self.raw_outputs.items())],
        }

    def to_dict(self) -> dict[str, Any]:
        """The counts only (the profile is shared), for shipping between processes."""
        return {"requests": self.requests,
                "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
                "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
                "raw_inputs": {k: v.to_dict() for k, v in self.raw_inputs.items()},
                "raw_outputs": {k: v.to_dict() for k, v in self.raw_outputs.items()}}

    @classmethod
    def from_dict(cls, profile: Profile | None, raw: dict[str, Any]) -> Tally:
        return cls(profile,
                   {k: ColumnCounts.from_dict(v) for k, v in raw.get("inputs", {}).items()},
                   {k: ColumnCounts.from_dict(v) for k, v in raw.get("outputs", {}).items()},
                   {k: RawCounts.from_dict(v) for k, v in raw.get("raw_inputs", {}).items()},
                   {k: RawCounts.from_dict(v) for k, v in raw.get("raw_outputs", {}).items()},
                   float(raw.get("requests", 0.0)))
