"""``satchel serve -m fraud=models:/fraud@champion --registry-poll``: the served version
follows the alias, swaps under load with no failed or mixed reply, and a version that
fails to verify leaves the old one serving."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tests.registry.conftest import free_port

BODY = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[i] for i in range(5)]}})


def _constant_model(path: Path, value: float) -> Path:
    from sklearn.dummy import DummyRegressor

    import satchel

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    model = DummyRegressor(strategy="constant", constant=value).fit(X, [value] * 3)
    satchel.save_model(model, path, input_example=X.head(2))
    return path


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _served_version(port: int) -> list[str]:
    status, body = _get(port, "/v2/models/fraud")
    assert status == 200, body
    return list(json.loads(body)["versions"])


def test_serving_follows_the_alias_under_load(tmp_path: Path) -> None:
    from satchel.registry import Registry

    db = f"sqlite:///{tmp_path / 'reg.db'}"
    reg = Registry(db, actor="ops", artifact_root=tmp_path / "art")
    for value in (1.0, 2.0, 3.0):
        reg.register(_constant_model(tmp_path / f"m{int(value)}", value), "fraud")
    reg.set_alias("fraud", "champion", 1)
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    env = {**os.environ, "SATCHEL_REGISTRY_URI": db, "SATCHEL_CACHE_DIR": str(tmp_path / "c")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "satchel", "serve", "-m", "fraud=models:/fraud@champion",
         "--registry-poll", "0.2", "--port", str(port), "--no-batching"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/ping")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        assert _served_version(port) == ["1"]
        metrics = _get(port, "/metrics")[1].decode()
        assert 'satchel_model_version{model="fraud"} 1' in metrics

        replies: list[tuple[int, Any]] = []
        stop = threading.Event()

        def hammer() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            while not stop.is_set():
                conn.request("POST", "/invocations", BODY,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
                replies.append((resp.status, json.loads(payload).get("predictions")))
            conn.close()

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        reg.set_alias("fraud", "champion", 2)
        deadline = time.monotonic() + 30
        while _served_version(port) != ["2"]:
            assert time.monotonic() < deadline, "the new version was never swapped in"
            time.sleep(0.05)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        assert replies and all(status == 200 for status, _ in replies), \
            {s for s, _ in replies}
        seen = [set(p) for _, p in replies]
        assert all(len(s) == 1 for s in seen), "a reply mixed two versions"
        values = [next(iter(s)) for s in seen]
        assert {1.0, 2.0} <= set(values)
        first_two = values.index(2.0)
        assert all(v == 2.0 for v in values[first_two + 4:]), "an old reply after the swap"
        assert 'satchel_model_version{model="fraud"} 2' in _get(port, "/metrics")[1].decode()

        # Version 3's files are damaged in the artifact store: it fails verification,
        # is logged, and version 2 keeps serving.
        v3 = reg.get_version("fraud", 3)
        damaged = reg.local_path(v3) / "model.pkl"
        damaged.chmod(0o644)
        damaged.write_bytes(b"not a model")
        reg.set_alias("fraud", "champion", 3)
        time.sleep(1.5)
        assert _served_version(port) == ["2"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/invocations", BODY, {"Content-Type": "application/json"})
        assert json.loads(conn.getresponse().read())["predictions"] == [2.0] * 5
        conn.close()
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "now serves version 2 (was 1)" in text
    assert "version 3 from models:/fraud@champion failed to load or verify" in text
    assert "still serving version 2" in text


def test_serving_keeps_its_model_while_the_registry_server_is_down(tmp_path: Path) -> None:
    """A server following ``models:/`` on a registry *server* that stops: every request
    is still answered by the current version, the failed polls are logged, and once the
    registry is back the moved alias is followed."""
    from satchel.registry import Registry
    from tests.registry.conftest import RegistryServer

    db = f"sqlite:///{tmp_path / 'reg.db'}"
    reg = Registry(db, actor="ops", artifact_root=tmp_path / "art")
    for value in (1.0, 2.0):
        reg.register(_constant_model(tmp_path / f"m{int(value)}", value), "fraud")
    reg.set_alias("fraud", "champion", 1)
    registry = RegistryServer(db, tmp_path / "art", None).start()
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    env = {**os.environ, "SATCHEL_REGISTRY_URI": registry.url,
           "SATCHEL_CACHE_DIR": str(tmp_path / "c")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "satchel", "serve", "-m", "fraud=models:/fraud@champion",
         "--registry-poll", "0.2", "--port", str(port), "--no-batching"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/ping")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        assert _served_version(port) == ["1"]
        registry.stop()
        reg.set_alias("fraud", "champion", 2)  # moved while the server cannot see it
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        end = time.monotonic() + 3
        answers = []
        while time.monotonic() < end:
            conn.request("POST", "/invocations", BODY, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            answers.append((resp.status, json.loads(resp.read())["predictions"]))
        conn.close()
        assert answers and all(a == (200, [1.0] * 5) for a in answers)
        assert _served_version(port) == ["1"]
        registry.start()  # the same port: the poller reaches it again
        deadline = time.monotonic() + 60
        while _served_version(port) != ["2"]:
            assert time.monotonic() < deadline, "the alias was not followed after the restart"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(20)
        registry.stop()
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "cannot resolve models:/fraud@champion" in text
    assert "still serving the current version" in text
    assert "now serves version 2 (was 1)" in text
    assert "Traceback" not in text
