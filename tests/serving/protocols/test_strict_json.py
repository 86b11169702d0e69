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
