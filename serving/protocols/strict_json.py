"""Strict JSON (RFC 8259) for request bodies, shared by every JSON protocol.

Python's json module reads NaN/Infinity literals (and numbers beyond a double, such as
1e999) as floats and keeps the last of duplicate keys silently; all are client mistakes
answered with a clear error here, as are an empty body, bad UTF-8 and nesting too deep.
"""

from __future__ import annotations

import json
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


def loads(body: bytes | str) -> Any:
    """Strict ``json.loads`` with errors as :class:`InputFormatError` naming line, column
    and char; NaN/Infinity literals, duplicate keys and an empty body are errors too."""
    if not body.strip():
        raise InputFormatError("malformed JSON: the request body is empty; send a JSON object")
    try:
        text = body if isinstance(body, str) else body.decode(json.detect_encoding(body))
        return _DECODER.decode(text)
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
