"""The decode budget's size estimate of a decoded input (what --max-body-size bounds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from satchel.errors import LimitExceededError
from satchel.serving.protocols import budget


def _mixed() -> pd.DataFrame:
    frame = pd.DataFrame({
        "i": [1, 2], "s": ["x", "y"], "f": [1.0, 2.0],
        "ni": pd.array([1, None], dtype="Int64"), "c": pd.Categorical(["a", "b"]),
        "t": pd.to_datetime(["2020-01-01", "2020-01-02"]).tz_localize("UTC"),
        "b": [True, False], "raw": [b"a", b"b"], "f32": pd.array([1.5, None], dtype="Float32"),
    })
    frame["i2"] = frame["i"]  # a second block of a dtype already seen
    return frame


def test_every_column_of_every_block_is_counted() -> None:
    # 8 (int64) + 64 (text) + 8 + 8 (Int64) + 64 (category) + 8 (datetime) + 1 (bool)
    # + 64 (bytes objects) + 4 (Float32) + 8 (the second int64 block), per row
    assert budget.decoded_bytes(_mixed()) == 2 * 237


def test_one_block_of_many_columns() -> None:
    frame = pd.DataFrame(np.zeros((3, 20)), columns=[f"c{i}" for i in range(20)])
    assert budget.decoded_bytes(frame) == 3 * 20 * 8
    assert budget.decoded_bytes(frame.astype(np.float32)) == 3 * 20 * 4


def test_empty_frames_weigh_nothing() -> None:
    assert budget.decoded_bytes(pd.DataFrame()) == 0
    assert budget.decoded_bytes(pd.DataFrame({"a": []})) == 0


def test_arrays_and_dicts_of_arrays() -> None:
    assert budget.decoded_bytes(np.zeros((4, 5))) == 160
    assert budget.decoded_bytes({"a": np.zeros(3, np.int32), "b": np.array(["x"], object)}) \
        == 12 + 64


def test_the_budget_refuses_a_frame_over_its_bytes() -> None:
    frame = pd.DataFrame(np.zeros((100, 20)))  # 16,000 bytes
    budget.DecodeBudget(None, 16_000).check_decoded(frame)
    # sizes that round alike are given in bytes, so the message shows which is larger
    with pytest.raises(LimitExceededError, match="about 16000 bytes; the limit is 15999 bytes"):
        budget.DecodeBudget(None, 15_999).check_decoded(frame)
    with pytest.raises(LimitExceededError, match="about 15.6 KiB; the limit is 9.8 KiB"):
        budget.DecodeBudget(None, 10_000).check_decoded(frame)
