"""Value-level casts shared by column and tensor enforcement: the rules of docs/coercion.md.

Every cast here either preserves every value exactly or raises ``SignatureError``.
The one documented exception is float64 -> float32, which rounds to float32 precision
(JSON, CSV and Spark doubles carry no width, and a float32 model computes at float32
anyway) but refuses values that would overflow to infinity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from satchel.errors import SignatureError

_INT_LIMITS = {
    np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max)
    for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
}


def describe(arr: np.ndarray) -> str:
    """Name the type of ``arr`` for an error message: its dtype, or the Python types it holds."""
    if arr.dtype != object:
        return str(arr.dtype)
    kinds = sorted({type(v).__name__ for v in arr.ravel()[:1000] if v is not None})
    return f"object ({', '.join(kinds) or 'None'})"


def _fail(label: str, expected: str, given: str, why: str = "") -> SignatureError:
    tail = f": {why}" if why else ""
    return SignatureError(
        f"{label}: expected {expected}, given {given}{tail}",
        column=label.split("'")[1] if "'" in label else None,
        expected=expected,
        given=given,
    )


def cast_numeric(arr: np.ndarray, target: np.dtype[Any], label: str, expected: str) -> np.ndarray:
    """Cast ``arr`` to a numeric or bool ``target`` dtype losslessly, or raise.

    ``label`` names the column or tensor (``"column 'x'"``), ``expected`` the signature type.
    """
    src = arr.dtype
    if src == target:
        return arr
    given = describe(arr)
    tk, sk = target.kind, src.kind
    if sk in "OUS" or sk == "T":
        return cast_numeric(
            _from_objects(arr, target, label, expected, given), target, label, expected
        )
    if tk == "b" or sk == "b":
        raise _fail(label, expected, given, "booleans and numbers do not convert")
    if sk in "mMc" or tk not in "iuf":
        raise _fail(label, expected, given)
    if tk in "iu":
        if sk == "f":
            finite = np.isfinite(arr)
            if not finite.all():
                raise _fail(
                    label, expected, given, f"{int((~finite).sum())} values are NaN or infinite"
                )
            if arr.size and not (np.mod(arr, 1) == 0).all():
                raise _fail(
                    label, expected, given, "values with a fractional part would be truncated"
                )
        lo, hi = _INT_LIMITS[target]
        if arr.size and not np.can_cast(src, target, "safe"):
            amin, amax = arr.min(), arr.max()
            if amin < lo or amax > hi:
                raise _fail(label, expected, given, f"values outside [{lo}, {hi}]")
        return arr.astype(target)
    # target is floating
    if sk == "f":
        if target.itemsize < src.itemsize and arr.size:
            with np.errstate(over="ignore"):
                out = arr.astype(target)
            overflow = np.isinf(out) & np.isfinite(arr)
            if overflow.any():
                raise _fail(
                    label, expected, given, f"{int(overflow.sum())} values overflow {target}"
                )
            return out
        return arr.astype(target)
    out = arr.astype(target)
    if arr.size and not np.array_equal(out.astype(src), arr):
        raise _fail(
            label, expected, given, f"some integers are not exactly representable as {target}"
        )
    return out


def _from_objects(
    arr: np.ndarray, target: np.dtype[Any], label: str, expected: str, given: str
) -> np.ndarray:
    """Objects (Python numbers, or numeric strings) to a plain numpy array, or raise."""
    values = arr.ravel().tolist()
    if any(v is None for v in values):
        raise _fail(label, expected, given, f"{sum(v is None for v in values)} null values")
    if target.kind == "b":
        if all(isinstance(v, (bool, np.bool_)) for v in values):
            return np.asarray(values, dtype=bool).reshape(arr.shape)
        raise _fail(label, expected, given)
    if all(isinstance(v, str) for v in values):
        return _parse_numeric_strings(values, target, label, expected, given).reshape(arr.shape)
    if any(isinstance(v, (bool, np.bool_, bytes)) for v in values):
        raise _fail(label, expected, given)
    strings = [v for v in values if isinstance(v, str)]
    if strings:
        # Numbers mixed with numeric strings (a JSON client quoting some values): parse
        # the strings by the same exact rules, keep the numbers.
        parsed_strings = iter(
            _parse_numeric_strings(strings, target, label, expected, given).tolist())
        values = [next(parsed_strings) if isinstance(v, str) else v for v in values]
    try:
        parsed = np.asarray(values)
    except (TypeError, ValueError):
        raise _fail(label, expected, given) from None
    if parsed.dtype.kind not in "iuf":
        raise _fail(label, expected, given)
    return parsed.reshape(arr.shape)


def _parse_numeric_strings(
    values: list[str], target: np.dtype[Any], label: str, expected: str, given: str
) -> np.ndarray:
    # Numeric strings are accepted for numeric columns: CSV cells and some JSON clients
    # send numbers as text. The parse must be exact: "1.5" is not an integer.
    try:
        if target.kind in "iu":
            return np.asarray([int(v.strip()) for v in values], dtype=np.int64)
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except ValueError:
        bad = sum(1 for v in values if not _is_number(v, target.kind in "iu"))
        raise _fail(label, expected, given, f"{bad} values are not numbers") from None


def _is_number(s: str, integral: bool) -> bool:
    try:
        int(s.strip()) if integral else float(s)
        return True
    except ValueError:
        return False
