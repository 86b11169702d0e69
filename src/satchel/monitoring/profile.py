"""The reference profile: what each input and output column looked like at training time.

A profile is small, fixed-size JSON (``reference_profile.json`` in the model directory):
per column a count, a null rate, and either numeric bins cut at the reference's
quantiles or the most frequent categories. Serving and ``satchel monitor`` count new
data into exactly these bins, so drift is a comparison of two histograms over the same
edges, computed in constant memory whatever the traffic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satchel.errors import ProfileError

PROFILE_FILE = "reference_profile.json"
FORMAT_VERSION = 1
NUMERIC, CATEGORICAL = "numeric", "categorical"
# Quantile cut points: deciles give ten bins, the usual resolution for PSI.
DEFAULT_BINS = 10
DEFAULT_TOP_K = 20
# A reference this small gives bins too noisy to compare against (PSI's usual advice).
MIN_ROWS = 100
_MAX_COLUMNS = 2_000
_MAX_CATEGORY_LEN = 200


@dataclass
class ColumnProfile:
    """One column of reference data.

    Attributes:
        name: the column name.
        kind: ``"numeric"`` (bins over ``edges``) or ``"categorical"`` (``categories``).
        count: rows seen, nulls included.
        null_rate: fraction of rows that were null.
        edges: interior bin edges (numeric); bin i holds values in ``(edges[i-1], edges[i]]``.
        frequencies: fraction of non-null values per bin (numeric: ``len(edges) + 1``
            bins) or per category with the last entry for "other" (categorical).
        minimum, maximum: the reference's range (numeric); outside it is "out of range".
        categories: the top-K categories as strings (categorical).
        truncated: more categories existed than were kept, so "other" is not "unseen".
        length_edges, length_frequencies: string lengths, binned like a numeric column.
    """

    name: str
    kind: str
    count: int
    null_rate: float
    frequencies: list[float]
    edges: list[float] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] = field(default_factory=list)
    truncated: bool = False
    length_edges: list[float] = field(default_factory=list)
    length_frequencies: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "count": self.count,
                               "null_rate": self.null_rate, "frequencies": self.frequencies}
        if self.kind == NUMERIC:
            out.update(edges=self.edges, minimum=self.minimum, maximum=self.maximum)
        else:
            out.update(categories=self.categories, truncated=self.truncated)
            if self.length_edges or self.length_frequencies:
                out.update(length_edges=self.length_edges,
                           length_frequencies=self.length_frequencies)
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> ColumnProfile:
        """Parse and check one column; a malformed entry is a ProfileError naming it."""
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ProfileError("reference profile: a column entry has no name")
        name = raw["name"]
        try:
            col = cls(
                name=name,
                kind=str(raw["kind"]),
                count=int(raw["count"]),
                null_rate=float(raw["null_rate"]),
                frequencies=[float(f) for f in raw["frequencies"]],
                edges=[float(e) for e in raw.get("edges", [])],
                minimum=_opt_float(raw.get("minimum")),
                maximum=_opt_float(raw.get("maximum")),
                categories=[str(c) for c in raw.get("categories", [])],
                truncated=bool(raw.get("truncated", False)),
                length_edges=[float(e) for e in raw.get("length_edges", [])],
                length_frequencies=[float(f) for f in raw.get("length_frequencies", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"reference profile: column {name!r} is malformed ({exc})") from None
        col._check()
        return col

    def _check(self) -> None:
        where = f"reference profile: column {self.name!r}"
        if self.kind not in (NUMERIC, CATEGORICAL):
            raise ProfileError(f"{where} has unknown kind {self.kind!r}")
        want = len(self.edges) + 1 if self.kind == NUMERIC else len(self.categories) + 1
        if len(self.frequencies) != want:
            raise ProfileError(f"{where} has {len(self.frequencies)} frequencies, expected {want}")
        if list(self.edges) != sorted(self.edges) or not all(map(math.isfinite, self.edges)):
            raise ProfileError(f"{where} has bin edges that are not finite and increasing")
        if any(not (0.0 <= f <= 1.0) for f in self.frequencies) or not 0 <= self.null_rate <= 1:
            raise ProfileError(f"{where} has a frequency outside [0, 1]")

    @property
    def bins(self) -> int:
        """How many histogram cells new data is counted into."""
        return len(self.frequencies)


@dataclass
class Profile:
    """The reference profile of a model: its input columns and its output columns."""

    inputs: list[ColumnProfile]
    outputs: list[ColumnProfile]
    rows: int

    def column(self, name: str, *, output: bool = False) -> ColumnProfile | None:
        """The profile of one column, or None."""
        for c in self.outputs if output else self.inputs:
            if c.name == name:
                return c
        return None

    def to_json(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, "rows": self.rows,
                           "inputs": [c.to_dict() for c in self.inputs],
                           "outputs": [c.to_dict() for c in self.outputs]},
                          indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Profile:
        """Parse a profile; anything malformed is a ProfileError."""
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ProfileError(f"reference profile is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ProfileError("reference profile must be a JSON object")
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise ProfileError(f"reference profile format_version {version!r} is not "
                               f"supported (this satchel reads {FORMAT_VERSION})")
        ins, outs = raw.get("inputs"), raw.get("outputs", [])
        if not isinstance(ins, list) or not isinstance(outs, list):
            raise ProfileError("reference profile: 'inputs' and 'outputs' must be lists")
        if len(ins) + len(outs) > _MAX_COLUMNS:
            raise ProfileError(f"reference profile has more than {_MAX_COLUMNS} columns")
        return cls([ColumnProfile.from_dict(c) for c in ins],
                   [ColumnProfile.from_dict(c) for c in outs], int(raw.get("rows", 0)))

    def write(self, directory: Path) -> None:
        (directory / PROFILE_FILE).write_text(self.to_json() + "\n", "utf-8")

    @classmethod
    def read(cls, directory: Path) -> Profile | None:
        """The profile saved in a model directory, or None when it has none."""
        path = directory / PROFILE_FILE
        if not path.is_file():
            return None
        return cls.from_json(path.read_text("utf-8"))


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def profile_column(name: str, values: Any, *, categorical: bool | None = None,
                   bins: int = DEFAULT_BINS, top_k: int = DEFAULT_TOP_K) -> ColumnProfile:
    """Profile one column of reference data (a pandas Series or 1-D array).

    Args:
        name: the column's name.
        values: the reference values.
        categorical: force the kind; by default numbers (not booleans) are numeric.
        bins: how many quantile bins a numeric column gets (at most).
        top_k: how many categories a categorical column keeps.
    """
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    count = len(series)
    nulls = series.isna()
    present = series[~nulls]
    null_rate = float(nulls.mean()) if count else 0.0
    if categorical is None:
        # Integers with few distinct values are labels or codes (a classifier's output,
        # a rating): their categories say more than quantile bins would.
        categorical = not is_numeric(present) or (
            np.dtype(getattr(present.dtype, "numpy_dtype", present.dtype)).kind in "iu"
            and present.nunique() <= top_k)
    if not categorical:
        arr = numeric_values(present)
        edges = quantile_edges(arr, bins)
        return ColumnProfile(
            name, NUMERIC, count, null_rate, _fractions(bin_counts(arr, edges)), edges,
            float(arr.min()) if arr.size else None, float(arr.max()) if arr.size else None)
    text = present.map(_category)
    freq = text.value_counts()
    kept = [str(c) for c in freq.index[:top_k]]
    counts = [int(freq.iloc[i]) for i in range(len(kept))]
    counts.append(int(freq.iloc[len(kept):].sum()))
    col = ColumnProfile(name, CATEGORICAL, count, null_rate, _fractions(np.array(counts)),
                        categories=kept, truncated=len(freq) > top_k)
    if present.map(lambda v: isinstance(v, str)).all() and len(present):
        lengths = present.str.len().to_numpy(dtype=np.float64)
        col.length_edges = quantile_edges(lengths, bins)
        col.length_frequencies = _fractions(bin_counts(lengths, col.length_edges))
    return col


def build_profile(inputs: Any, outputs: Any = None, *, bins: int = DEFAULT_BINS,
                  top_k: int = DEFAULT_TOP_K,
                  categorical: Iterable[str] = ()) -> Profile:
    """Profile reference inputs (a DataFrame) and the model's outputs on them.

    Args:
        inputs: the reference data, one column per model input.
        outputs: what the model predicted for ``inputs`` (DataFrame, Series, array, dict).
        bins: quantile bins per numeric column.
        top_k: categories kept per categorical column.
        categorical: column names to treat as categories even when numeric.

    Raises:
        ProfileError: the data is empty or too wide.
    """
    frame = as_frame(inputs, "input")
    if len(frame) == 0:
        raise ProfileError("the reference data has no rows")
    forced = set(categorical)
    cols = [profile_column(str(c), frame[c], categorical=True if str(c) in forced else None,
                           bins=bins, top_k=top_k) for c in frame.columns]
    outs: list[ColumnProfile] = []
    if outputs is not None:
        out_frame = as_frame(outputs, "prediction")
        outs = [profile_column(str(c), out_frame[c], bins=bins, top_k=top_k)
                for c in out_frame.columns]
    return Profile(cols, outs, len(frame))


def as_frame(data: Any, default_name: str) -> Any:
    """Data as a DataFrame with string column names (1-D -> one column, 2-D -> ``name_i``)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if all(isinstance(c, str) for c in data.columns):
            return data  # rename would copy the frame for nothing
        return data.rename(columns=str)
    if isinstance(data, pd.Series):
        return data.to_frame(str(data.name) if data.name is not None else default_name)
    if isinstance(data, Mapping):
        return pd.DataFrame({str(k): _flat(v) for k, v in data.items()})
    arr = np.asarray(data)
    if arr.ndim <= 1:
        return pd.DataFrame({default_name: arr.reshape(-1)})
    flat = arr.reshape(arr.shape[0], -1)
    return pd.DataFrame({f"{default_name}_{i}": flat[:, i] for i in range(flat.shape[1])})


def _flat(v: Any) -> Any:
    arr = np.asarray(v)
    return arr if arr.ndim <= 1 else list(arr.reshape(arr.shape[0], -1))


def is_numeric(values: Any) -> bool:
    """Numbers and datetimes are binned; booleans and everything else are categories."""
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        return False
    # numpy and pandas extension dtypes both have .kind (pandas 3's "str" dtype: "O")
    kind = getattr(dtype, "kind", None) or np.dtype(dtype).kind
    return kind in "iufmM"


def numeric_values(values: Any) -> np.ndarray:
    """Non-null values as float64 (datetimes as seconds since the epoch)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "mM":
        arr = arr.astype("datetime64[ns]").astype(np.int64) / 1e9
    out = np.asarray(arr, dtype=np.float64)
    return out[np.isfinite(out)]


def quantile_edges(arr: np.ndarray, bins: int) -> list[float]:
    """Interior edges at the reference's quantiles, deduplicated (ties collapse bins)."""
    if arr.size == 0 or bins < 2:
        return []
    qs = np.quantile(arr, np.linspace(0, 1, bins + 1)[1:-1])
    return [float(e) for e in np.unique(qs)]


def bin_counts(arr: np.ndarray, edges: list[float]) -> np.ndarray:
    """How many values fall in each bin ``(edges[i-1], edges[i]]``; ``len(edges)+1`` cells."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), arr, side="left")
    return np.bincount(idx, minlength=len(edges) + 1)


def _fractions(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    if total == 0:
        return [0.0] * len(counts)
    return [float(c) / float(total) for c in counts]


def _category(v: Any) -> str:
    text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return text[:_MAX_CATEGORY_LEN]
