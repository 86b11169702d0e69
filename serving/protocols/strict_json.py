"""Strict JSON (RFC 8259) for request bodies, shared by every JSON protocol.

Python's json module reads NaN/Infinity literals (and numbers beyond a double, such as
1e999) as floats and keeps the last of duplicate keys silently; all are client mistakes
answered with a clear error here, as are an empty body, bad UTF-8 and nesting too deep.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from typing import Any

from satchel.errors import InputFormatError


class _Refused(ValueError):
    """Strict JSON: raised from the decoder's hooks, turned into InputFormatError."""


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not valid JSON: NaN, Infinity and -Infinity are not JSON "
                   "numbers (send null for a missing value)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key '{key[:100]}' in a JSON object: each key may "
                               "appear once")
            seen.add(key)
    return obj


def _float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        # 1e999 is valid JSON syntax but no double holds it: float() would make it
        # Infinity, a value the client never sent.
        raise _Refused(f"the number {text[:40]} is out of range for a 64-bit float "
                       "(largest about 1.8e308)")
    return value


_INF = float("inf")
# Strict RFC 8259 JSON: Python's json module would read NaN/Infinity literals as floats
# and keep the last of duplicate keys silently; both are answered with a 400 here.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant,
                            parse_float=_float)
# The same without the per-number Python call that refuses numbers beyond a double (a
# third of the parse time of a body of floats): for bodies that cannot hold one.
_FAST_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)
_ZERO_DIGITS = bytes.maketrans(b"123456789E", b"000000000e")
# Beyond a double (~1.8e308) takes a 3-digit exponent or a 200+ digit run (199 digits
# and a 2-digit exponent stay under 1e299).
_LONG_RUN = b"0" * 200


def _may_overflow(body: bytes) -> bool:
    """False when no number in UTF-8 ``body`` can be too large for a double: no exponent
    of three digits or more, and no run of 200 digits. (True may be a false alarm: a
    string that looks like one; the strict decoder then decides.)"""
    flat = body.translate(_ZERO_DIGITS, b"+")
    return b"e000" in flat or _LONG_RUN in flat


def _orjson() -> Any:
    try:
        import orjson
    except ImportError:  # optional (pip install orjson): the json module reads alike
        return None
    return orjson


_ORJSON = _orjson()


def _key_count(value: Any, objects: int = -1) -> int:
    """Keys of every object in a parsed JSON value.

    ``objects``, when given, is how many ``{`` the body holds: at least as many as it has
    objects, so once the walk has found that many no other is left and it stops. The walk
    is breadth first, so it finds the objects of a body such as ``dataframe_split`` or
    V2 tensors before it would look into the long lists of numbers beside them (a 100-row
    ``dataframe_split`` body: ~20 us with counting its ``{``, against 65-90 us going
    through every row).
    """
    count = found = 0
    queue: deque[Any] = deque([value])
    while queue:
        node = queue.popleft()
        items: Iterable[Any]
        if type(node) is dict:
            count += len(node)
            found += 1
            if found == objects:
                return count
            items = node.values()
        elif type(node) is list:
            items = node
        else:
            continue
        types = set(map(type, items))  # one C pass; a list of numbers ends here
        if dict in types or list in types:
            queue.extend(v for v in items if type(v) is dict or type(v) is list)
    return count


def _read_fast(body: bytes) -> Any:
    """``body`` read by orjson (a fifth of the json module's time for a body of floats)
    when it reads it the way the strict rules do, else ``_UNREAD``.

    orjson refuses NaN/Infinity literals and numbers beyond a double, as these rules do;
    anything it refuses goes to the json module, which refuses it with the message (or
    reads what orjson does not: lone surrogates; integers of 19 digits or more, which
    orjson would read as floats, never reach it). Duplicate keys
    it keeps silently, so its answer stands only when its value accounts for every ``:``
    in the body (:func:`_keys_in`); when it cannot tell, the json module decides.
    """
    flat = body.translate(_INTEGER_STARTS)
    if flat.startswith(_LONG_INT[1:]) or _LONG_INT in flat:
        return _UNREAD  # orjson reads an integer past 64 bits as a float; json exactly
    try:
        value = _ORJSON.loads(body)
    except _ORJSON.JSONDecodeError:
        return _UNREAD
    return value if _keys_in(value, body) == body.count(b":") else _UNREAD


# Up to this size a body's keys are counted by writing it back with orjson (2 us for a
# 1-row V2 request of 20 tensors, against 30-45 us walking it in Python); past it, writing
# the numbers back costs more than the walk.
_WRITE_BACK_BYTES = 16 * 1024


def _keys_in(value: Any, body: bytes) -> int:
    """The ``:`` that ``value`` (read from ``body``) accounts for: equal to
    ``body.count(b":")`` only when no key was given twice.

    Written back by orjson, every kept key is one structural ``:`` and every ``:`` in a
    kept string is one ``:``; a key given twice loses at least its own. Without a ``\\u``
    escape in the body (which could spell a ``:`` the raw count misses) no other ``:``
    appears, so the count is exact. Otherwise, or when orjson cannot write the value
    back (nesting past its depth limit), only keys are counted: a ``:`` inside a string
    then makes the counts differ, and the json module decides.
    """
    if len(body) <= _WRITE_BACK_BYTES and b"\\u" not in body:
        try:
            return int(_ORJSON.dumps(value).count(b":"))
        except _ORJSON.JSONEncodeError:
            pass
    return _key_count(value, body.count(b"{"))


_UNREAD = object()
# Digits as 0, and what may come before a number's first digit as |: a run of 19 digits
# after a | is an integer of 19 digits or more (a fraction's digits follow a '.').
_INTEGER_STARTS = bytes.maketrans(b"123456789[,: \t\n\r-", b"000000000||||||||")
_LONG_INT = b"|" + b"0" * 19


def loads(body: bytes | str) -> Any:
    """Strict ``json.loads`` with errors as :class:`InputFormatError` naming line, column
    and char; NaN/Infinity literals, duplicate keys and an empty body are errors too."""
    if not body.strip():
        raise InputFormatError("malformed JSON: the request body is empty; send a JSON object")
    if _ORJSON is not None and isinstance(body, bytes):
        value = _read_fast(body)
        if value is not _UNREAD:
            return value
    try:
        if isinstance(body, str):
            return _DECODER.decode(body)
        encoding = json.detect_encoding(body)
        decoder = (_FAST_DECODER if encoding == "utf-8" and not _may_overflow(body)
                   else _DECODER)
        return decoder.decode(body.decode(encoding))
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"malformed JSON: {exc.msg} at line {exc.lineno}, column "
                               f"{exc.colno} (char {exc.pos})") from None
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"the body is not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise InputFormatError("malformed JSON: nested too deeply") from None
    except _Refused as exc:
        raise InputFormatError(str(exc)) from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise InputFormatError(f"malformed JSON: {str(exc)[:200]}") from None


def json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"
