"""A hostile client's requests against a real server: never a 500 for its mistakes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import satchel

from .conftest import Served, run_cli, serve


class Evil(satchel.PythonModel):
    """Doubles ``a``; a = -1 raises KeyboardInterrupt, a = -2 SystemExit."""

    row_independent = True

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        v = float(model_input["a"].iloc[0])
        if v == -1:
            raise KeyboardInterrupt
        if v == -2:
            raise SystemExit(3)
        return model_input[["a"]] * 2


@pytest.fixture(scope="module")
def evil_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        path = tmp_path_factory.mktemp("evil") / "evil"
        satchel.save_model(Evil(), path, input_example=pd.DataFrame({"a": [1.0]}))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    return path


@pytest.fixture(scope="module")
def srv(evil_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    token = tmp_path_factory.mktemp("tok") / "token"
    token.write_text("s3cret")
    with serve(f"evil={evil_dir}", tmp_path_factory.mktemp("logs"),
               "--auth-token-file", str(token)) as s:
        yield s


AUTH = [("Authorization", "Bearer s3cret")]


def _post(srv: Served, path: str, payload: Any) -> tuple[int, dict[str, str], bytes]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return srv.request("POST", path, body, [*AUTH, ("Content-Type", "application/json")])


def _v2(data: Any, datatype: Any = "FP64", **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "a", "shape": [1], "datatype": datatype, "data": data}],
            **extra}


@pytest.mark.parametrize(("label", "payload"), [
    ("datatype object", _v2([1], {})),
    ("datatype list", _v2([1], ["FP64"])),
    ("shape object", {"inputs": [{"name": "a", "shape": {}, "datatype": "FP64", "data": [1]}]}),
    ("name number", {"inputs": [{"name": 1, "shape": [1], "datatype": "FP64", "data": [1]}]}),
    ("data object", _v2({"x": 1})),
    ("parameters list", _v2([1], parameters=[1])),
    ("content_type object", _v2([1], parameters={"content_type": {}})),
    ("outputs object", _v2([1], outputs={"name": "a"})),
    ("id number", _v2([1], id=5)),
])
def test_v2_request_shape_is_validated(srv: Served, label: str, payload: Any) -> None:
    status, _, body = _post(srv, "/v2/models/evil/infer", payload)
    assert status == 400, (label, status, body)
    assert "error" in json.loads(body)


@pytest.mark.parametrize("path", ["/invocations", "/v2/models/evil/infer"])
def test_number_beyond_a_double_is_a_400(srv: Served, path: str) -> None:
    raw = (b'{"dataframe_split": {"columns": ["a"], "data": [[1e999]]}}' if path == "/invocations"
           else b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1e999]}]}')
    status, _, body = _post(srv, path, raw)
    assert status == 400, body
    assert "1e999" in body.decode() and "out of range" in body.decode()


@pytest.mark.parametrize("value", [-1, -2])
@pytest.mark.parametrize("path", ["/invocations", "/v2/models/evil/infer"])
def test_model_raising_keyboardinterrupt_or_systemexit_gets_json(
    srv: Served, path: str, value: int
) -> None:
    payload = ({"dataframe_split": {"columns": ["a"], "data": [[value]]}} if path == "/invocations"
               else _v2([value]))
    status, headers, body = _post(srv, path, payload)
    assert status == 422, body
    assert headers["content-type"] == "application/json"
    assert ("KeyboardInterrupt" if value == -1 else "SystemExit") in json.loads(body)[
        "message" if path == "/invocations" else "error"]
    assert srv.ping() == 200 or srv.request("GET", "/ping", headers=AUTH)[0] == 200


def test_dropped_columns_header_is_bounded(srv: Served) -> None:
    cols = ["a"] + [f"extra_column_{i:05d}_" + "x" * 40 for i in range(3000)]
    payload = {"dataframe_split": {"columns": cols, "data": [[1.0] + [0] * 3000]}}
    status, headers, body = _post(srv, "/invocations", payload)  # http.client: 64 KiB lines
    assert status == 200, body
    dropped = headers["x-satchel-dropped-columns"]
    assert len(dropped) <= 4096 and dropped.endswith(tuple(f";more={n}" for n in range(1, 3001)))


def test_two_authorization_headers_are_refused(srv: Served) -> None:
    for pair in ([("Authorization", "Bearer s3cret"), ("Authorization", "Bearer wrong")],
                 [("Authorization", "Bearer wrong"), ("Authorization", "Bearer s3cret")]):
        status, _, body = srv.request("GET", "/v2/health/ready", headers=pair)
        assert status == 400 and b"more than one Authorization" in body


def test_batch_output_directory_with_overwrite(tmp_path: Path, evil_dir: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n2\n")
    out = tmp_path / "outdir"
    out.mkdir()
    proc = run_cli("batch", "-m", str(evil_dir), "-i", str(src), "-o", str(out),
                   "--format", "csv", "--overwrite")
    assert proc.returncode != 0
    assert "is a directory" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "outdir"]
    assert not list(out.iterdir())
