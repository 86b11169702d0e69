"""Decoded size is bounded, not only body size: a small Parquet body claiming millions of
rows is refused from its metadata, before it is decoded."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import satchel

from .conftest import Served, serve


def _double(df: pd.DataFrame) -> pd.DataFrame:
    return df[["a"]] * 2


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import cloudpickle

    path = tmp_path_factory.mktemp("m") / "double"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the server cannot import us
    try:
        satchel.save_model(_double, path, input_example=pd.DataFrame({"a": [1.0]}))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    with serve(path, tmp_path_factory.mktemp("logs"), "--max-body-size", "1MiB",
               "--max-rows", "100000") as s:
        yield s


def _parquet(rows: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    table = pa.table({"a": pa.array(np.zeros(rows))})
    pq.write_table(table, buf, compression="zstd", use_dictionary=True, row_group_size=1 << 22)
    return buf.getvalue()


def test_parquet_bomb_refused_from_metadata(srv: Served) -> None:
    body = _parquet(6_000_000)  # 48 MB of float64 once decoded
    assert len(body) < 1 << 20, len(body)  # within the body limit
    status, _, reply = srv.request("POST", "/invocations", body,
                                   [("Content-Type", "application/vnd.apache.parquet")])
    assert status == 413, reply[:300]
    message = json.loads(reply)["message"]
    assert "6000000 rows" in message and "--max-rows" in message
    assert srv.ping() == 200


def test_decoded_bytes_limit_derived_from_body_limit(
    tmp_path: Path, srv: Served
) -> None:
    # Under --max-rows, over 8 x 1 MiB once decoded: 90k rows x 20 float64 columns.
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({f"c{i}": np.zeros(90_000) for i in range(20)} | {
        "a": np.zeros(90_000)}), buf, compression="zstd")
    status, _, reply = srv.request("POST", "/invocations", buf.getvalue(),
                                   [("Content-Type", "application/vnd.apache.parquet")])
    assert status == 413, reply[:300]
    assert "--max-decoded-size" in json.loads(reply)["message"]


@pytest.mark.parametrize("path", ["/invocations", "/v2/models/double/infer"])
def test_max_rows_on_every_protocol(srv: Served, path: str) -> None:
    rows = 100_001
    payload = ({"dataframe_split": {"columns": ["a"], "data": [[0.0]] * rows}}
               if path == "/invocations" else
               {"inputs": [{"name": "a", "shape": [rows], "datatype": "FP64",
                            "data": [0.0] * rows}]})
    status, _, reply = srv.request("POST", path, json.dumps(payload).encode(),
                                   [("Content-Type", "application/json")])
    assert status == 413, reply[:300]
    assert b"100001 rows" in reply and b"--max-rows" in reply


def test_small_parquet_still_scores(srv: Served) -> None:
    status, _, reply = srv.request("POST", "/invocations", _parquet(10),
                                   [("Content-Type", "application/vnd.apache.parquet")])
    assert status == 200, reply[:300]
    assert json.loads(reply)["predictions"] == [{"a": 0.0}] * 10
