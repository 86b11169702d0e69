"""A server whose interpreter cannot import orjson (the serve extra installs it, a user may
not have it) reads and writes the same JSON: the same statuses, the same values and the
same error messages as a server with orjson, request for request.

The blocked server runs with a ``sitecustomize`` on its PYTHONPATH that refuses the
import of orjson and notes each refusal in a file, so the test knows the fallback was
taken, not merely available.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Reply, Server, run_server

_BLOCKER = '''\
import os, sys

class _NoOrjson:
    """Refuses `import orjson` as if it were not installed; notes each refusal."""

    def find_spec(self, name, path=None, target=None):
        if name == "orjson" or name.startswith("orjson."):
            with open(os.environ["SATCHEL_TEST_ORJSON_REFUSED"], "a") as f:
                f.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoOrjson())
'''


@pytest.fixture(scope="module")
def servers(iris_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Server, Server, Path]]:
    """(a server with orjson, one without, the file the blocker notes refusals in)."""
    import orjson  # noqa: F401 - the comparison needs one server that has it

    tmp = tmp_path_factory.mktemp("no-orjson")
    (tmp / "site").mkdir()
    (tmp / "site" / "sitecustomize.py").write_text(_BLOCKER, "utf-8")
    refused = tmp / "refused.txt"
    path = os.pathsep.join(p for p in (str(tmp / "site"), os.environ.get("PYTHONPATH"))
                           if p)
    # no batching: each request is decoded and encoded by itself, the path compared
    with run_server(f"m={iris_model_dir}", tmp, "--batching", "off") as fast, \
            run_server(f"m={iris_model_dir}", tmp, "--batching", "off",
                       env={"PYTHONPATH": path,
                            "SATCHEL_TEST_ORJSON_REFUSED": str(refused)}) as plain:
        yield fast, plain, refused


COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]  # tests/conftest.py
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _v2(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {"id": "r-1", "inputs": [
        {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": [r[i] for r in rows]}
        for i, c in enumerate(COLUMNS)], **extra}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


# (path, body): well-formed requests of every JSON shape, and the strict-JSON refusals
# orjson and the json module must word alike
INV, V2 = "/invocations", "/v2/models/m/infer"
REQUESTS: list[tuple[str, bytes]] = [
    (INV, _json({"dataframe_split": {"columns": COLUMNS, "data": ROWS}})),
    (INV, _json({"dataframe_records": [dict(zip(COLUMNS, r)) for r in ROWS]})),
    (INV, _json({"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)}})),
    (INV, _json({"instances": ROWS})),
    (INV, b'{"dataframe_split": {"columns": ["a"], "data": [[NaN]]}}'),
    (INV, b'{"dataframe_split": {"columns": ["a"], "data": [[1e999]]}}'),
    (INV, b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "data": [[2]]}}'),
    (INV, b'{"dataframe_split": {"columns": ["a"], "data": [[123456789012345678901234]]}}'),
    (INV, b'{"dataframe_split": {"columns": ["\\ud800"], "data": [[1.0]]}}'),
    (INV, b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, "\\udfff"]]}}'),
    (INV, b'{"dataframe_split": '),
    (INV, b"[" * 5000 + b"]" * 5000),
    (INV, b"\xff\xfe{}"),
    (V2, _json(_v2(ROWS))),
    (V2, _json(_v2(ROWS[:1]))),
    (V2, _json(_v2(ROWS, outputs=[{"name": "output-0"}]))),
    (V2, _json({"id": "r-2", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                                         "data": ROWS[0]}]})),
    (V2, _json({"id": "r-3", "inputs": [{"name": c, "shape": [1], "datatype": "FP32",
                                         "data": [ROWS[0][i]]}
                                        for i, c in enumerate(COLUMNS)]})),
    (V2, b'{"id": "r-4", "id": "r-5", "inputs": []}'),
    (V2, b'{"id": "r-6", "inputs": [{"name": "a", "shape": [1], "datatype": "FP64", '
         b'"data": [Infinity]}]}'),
    (V2, _json({"id": "r-8", "inputs": [{"name": "\ud800", "shape": [1], "datatype": "FP64",
                                         "data": [1.0]}, {"name": "b", "shape": [1],
                                                          "datatype": "FP64", "data": [2.0]}]})),
    (V2, _json({"id": "r-7", "inputs": [{"name": c, "shape": [1], "datatype": "INT64",
                                         "data": [2**63]} for c in COLUMNS]})),
]


def _post(server: Server, path: str, body: bytes) -> Reply:
    return server.request("POST", path, body, "application/json")


def _value(reply: Reply) -> Any:
    # Numbers are compared as values: orjson writes 0.00001 where the json module writes
    # 1e-05, the same double.
    return json.loads(reply.body, parse_constant=lambda c: math.nan)


@pytest.mark.parametrize("path,body", REQUESTS,
                         ids=[f"{i}-{p.rsplit('/', 1)[-1]}" for i, (p, _) in
                              enumerate(REQUESTS)])
def test_same_replies_without_orjson(servers: tuple[Server, Server, Path], path: str,
                                     body: bytes) -> None:
    fast, plain, refused = servers
    with_orjson, without = _post(fast, path, body), _post(plain, path, body)
    assert refused.read_text().split() and set(refused.read_text().split()) == {"orjson"}
    assert with_orjson.status == without.status, (with_orjson.body[:300], without.body[:300])
    assert _value(with_orjson) == _value(without)
    assert with_orjson.headers["content-type"] == without.headers["content-type"]
    if path == INV:  # the json module writes /invocations replies in both
        assert with_orjson.body == without.body


def test_the_requests_cover_answers_and_refusals(servers: tuple[Server, Server, Path]
                                                 ) -> None:
    """The comparison above is not vacuous: both servers answer some requests and refuse
    others as client mistakes (never a 500)."""
    fast, plain, _ = servers
    for server in (fast, plain):
        statuses = [_post(server, p, b).status for p, b in REQUESTS]
        assert statuses.count(200) >= 8 and 400 in statuses and 500 not in statuses, statuses
    # what the servers predicted is what the model predicts
    got = _value(_post(plain, V2, _json(_v2(ROWS))))
    assert got["id"] == "r-1" and got["outputs"][0]["data"] == [0, 2, 1]


@pytest.mark.parametrize("path,body", [r for r in REQUESTS if b"\\ud800" in r[1]
                                       or b"\\udfff" in r[1]])
def test_a_lone_surrogate_is_a_client_mistake(servers: tuple[Server, Server, Path], path: str,
                                              body: bytes) -> None:
    """JSON can spell a lone surrogate; pandas 3 keeps text as UTF-8 (Arrow) and cannot hold
    it. Before this was handled, a column named so answered 500."""
    for server in servers[:2]:
        reply = _post(server, path, body)
        assert reply.status == 400, reply.body[:300]
        message = _value(reply).get("message") or _value(reply).get("error")
        assert "not valid Unicode" in message and "\\ud" not in message
