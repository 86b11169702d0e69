"""Strict JSON: numbers beyond a double, NaN/Infinity literals and duplicate keys are
refused whichever decoder reads the body (the fast one skips its per-number check only
when no number in the body can be too large)."""

from __future__ import annotations

import pytest

from satchel.errors import InputFormatError
from satchel.serving.protocols.strict_json import _may_overflow, loads

TOO_LARGE = ["1e999", "1E+400", "1.8e308", "-2e308", "17976931348623159e292",
             "1" + "0" * 400 + ".5", "1" + "0" * 300 + "e20", "0.5e0309"]


@pytest.mark.parametrize("number", TOO_LARGE)
def test_numbers_beyond_a_double_are_refused(number: str) -> None:
    body = f'{{"inputs": [[1.0, {number}, 2.5]]}}'.encode()
    assert _may_overflow(body)
    with pytest.raises(InputFormatError, match="out of range for a 64-bit float"):
        loads(body)


def test_large_and_tiny_doubles_still_parse() -> None:
    assert loads(b"[1.7e308, -1.7E+308, 1e-400, 123.25e10]") == [1.7e308, -1.7e308, 0.0,
                                                                 123.25e10]
    rows = [[float(i) / 7 for i in range(20)] for _ in range(100)]
    body = repr({"data": rows}).replace("'", '"').encode()
    assert not _may_overflow(body)  # the fast decoder reads it
    assert loads(body) == {"data": rows}


def test_a_false_alarm_reads_the_same() -> None:
    body = b'{"e+300": "E000", "v": [1.5, 2.0]}'
    assert _may_overflow(body)  # looks like an exponent: the strict decoder decides
    assert loads(body) == {"e+300": "E000", "v": [1.5, 2.0]}


@pytest.mark.parametrize("body, message", [
    (b'{"a": [1.0, NaN]}', "NaN"), (b'{"a": Infinity}', "Infinity"),
    (b'{"a": 1, "a": 2}', "duplicate key 'a'"), (b"", "empty"),
    (b'{"a": [1.0, 2.0}', "malformed JSON")])
def test_other_refusals_hold_on_the_fast_path(body: bytes, message: str) -> None:
    with pytest.raises(InputFormatError, match=message):
        loads(body)


@pytest.mark.parametrize("body", [
    b'{"a": {"b": 1, "b": 2}}', b'[{"x": 1}, {"y": [1, {"z": 0, "z": 1}]}]',
    b'{"k:1": 1, "k": 2, "k": 3}'])  # a ':' in a string must not hide a duplicate
def test_duplicate_keys_are_refused_at_any_depth(body: bytes) -> None:
    with pytest.raises(InputFormatError, match="duplicate key"):
        loads(body)


@pytest.mark.parametrize("body, value", [
    (b'{"a:b": [1, 2.5], "c": {"d": null}}', {"a:b": [1, 2.5], "c": {"d": None}}),
    (b"[" + b"1" * 30 + b"]", [int("1" * 30)]),  # past 64 bits: the json module reads it
    (b'{"a": -9223372036854775809}', {"a": -9223372036854775809}),
    (b"18446744073709551616", 18446744073709551616),
    (b"[0.00012345678901234568, 7]", [0.00012345678901234568, 7]),
    (b'["\\ud800"]', ["\ud800"]),  # a lone surrogate, as the json module reads it
    ('{"é": 1}'.encode("utf-16"), {"é": 1}),  # not UTF-8
])
def test_what_orjson_refuses_or_misreads_reads_as_before(body: bytes, value: object) -> None:
    assert loads(body) == value


def test_orjson_reads_a_body_of_floats_exactly() -> None:
    from satchel.serving.protocols import strict_json

    rows = [[i / 7, -i * 1e-300, i * 1.5e300] for i in range(50)]
    body = json_bytes({"dataframe_split": {"columns": ["a", "b", "c"], "data": rows}})
    if strict_json._ORJSON is not None:
        assert strict_json._read_fast(body) is not strict_json._UNREAD
    assert loads(body) == {"dataframe_split": {"columns": ["a", "b", "c"], "data": rows}}


def json_bytes(value: object) -> bytes:
    import json

    return json.dumps(value).encode()


def _nested(depth: int, inner: bytes) -> bytes:
    return b'{"a":' * depth + inner + b"}" * depth


@pytest.mark.parametrize("body", [
    b'{"a": ":", "a": 1}',  # the lost value held a ':'
    b'{"x": "\\u003a", "a": 1, "a": 2}',  # an escaped ':' would make up for the lost key
    b'{"x": "\\u003A\\u003a", "k": {"a": 1, "a": 2}}',
    _nested(300, b'{"b": 1, "b": 2}'),  # deeper than orjson writes back
    b'{"big": [' + b",".join([b"1.5"] * 5000) + b'], "k": 1, "k": 2}',  # past 16 KiB
    # past 16 KiB, the key walk stops once it has found as many objects as the body has
    # '{': a duplicate in the last object found, after long lists, in a list of rows
    b'{"a": {"rows": [' + b",".join([b"[1.5, 2.5]"] * 3000) + b'], "b": {"c": 1, "c": 2}}}',
    b'{"rows": [' + b",".join([b"[1.5]"] * 3000) + b'], "tail": [[[{"d": 1, "d": 1}]]]}',
    # a '{' inside a string: more '{' than objects, so the walk goes through everything
    b'{"s": "{{{", "rows": [' + b",".join([b"[1.5]"] * 4000) + b'], "r": [{"e": 1, "e": 2}]}',
])
def test_duplicates_are_refused_whichever_way_keys_are_counted(body: bytes) -> None:
    with pytest.raises(InputFormatError, match="duplicate key"):
        loads(body)


@pytest.mark.parametrize("body", [
    b'{"inputs": [{"name": "a:b", "shape": [1], "datatype": "FP64", "data": [1.5]}]}',
    b'{"x": "\\u003a", "y": {"z": [1, 2]}}',
    _nested(300, b"1"),
    b'{"dataframe_split": {"columns": ["a"], "data": [' + b",".join([b"[0.25]"] * 4000)
    + b"]}}",
    b'{"s": "{", "rows": [' + b",".join([b'[{"k": 1.5}]'] * 2000) + b"]}",
])
def test_bodies_without_duplicates_read_the_same_on_every_path(body: bytes) -> None:
    import json

    from satchel.serving.protocols import strict_json

    if strict_json._ORJSON is not None and b"\\u" not in body and len(body) < 1000:
        assert strict_json._read_fast(body) is not strict_json._UNREAD  # orjson's answer
    assert loads(body) == json.loads(body)


def test_the_key_walk_stops_once_every_object_is_found() -> None:
    from satchel.serving.protocols import strict_json

    rows = [[1.5, [2.5]]] * 1000
    value = {"a": {"b": 1, "rows": rows}, "c": 2}
    assert strict_json._key_count(value) == 4 == strict_json._key_count(value, 2)
    # told of fewer objects than there are, it stops early and undercounts: the count of
    # '{' in the body is what makes the early stop exact
    assert strict_json._key_count(value, 1) == 2
    assert strict_json._key_count([{"x": [{"y": 1}]}], 5) == 2  # more told: walks it all
