"""Worker processes and several models, on real servers stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import satchel
from satchel.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, Signature

SIGNATURE = Signature(inputs=Schema([ColSpec(DataType.double, "x")]),
                      params=ParamSchema([ParamSpec("sleep", DataType.double, 0.0)]))


class WhoAmI(satchel.PythonModel):
    """Returns the pid of the process that scored; records each load in a marker file."""

    row_independent = True

    def load_context(self, context: Any) -> None:
        with open(context.model_config["marker"], "a") as f:
            f.write(f"{os.getpid()}\n")

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        time.sleep((params or {}).get("sleep", 0.0))
        return pd.DataFrame({"pid": [os.getpid()] * len(model_input),
                             "y": model_input["x"] * 10})


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return sorted(out)


def score(server: Any, x: float = 1.0, sleep: float = 0.0, path: str = "/invocations") -> Any:
    return server.request("POST", path, json.dumps(
        {"dataframe_split": {"columns": ["x"], "data": [[x]]}, "params": {"sleep": sleep}}),
        "application/json")


def wait_for(predicate: Any, timeout: float) -> float:
    """Seconds until ``predicate()`` is true; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def who(tmp_path: Path, save_python_model: Any) -> tuple[Path, Path]:
    marker = tmp_path / "loads.txt"
    model = save_python_model(WhoAmI(), tmp_path / "who", signature=SIGNATURE,
                              model_config={"marker": str(marker)})
    # Saving loads the model once in a child process (requirements inference runs it to
    # see what it imports); only the server's loads are counted.
    marker.unlink(missing_ok=True)
    return model, marker


def test_model_loaded_once_and_shared_by_workers(who: tuple[Path, Path],
                                                  start_server: Any) -> None:
    model, marker = who
    with start_server(model, "--workers", "2") as server:
        kids = children(server.proc.pid)
        assert len(kids) == 2
        # new connections are spread over both workers
        pids: set[int] = set()
        for _ in range(64):
            pids.add(score(server).json()["predictions"][0]["pid"])
            if len(pids) == 2:
                break
        assert pids == set(kids)
        assert marker.read_text().split() == [str(server.proc.pid)]  # loaded once, in the parent


def test_killed_worker_is_replaced_while_the_other_serves(who: tuple[Path, Path],
                                                          start_server: Any) -> None:
    model, _ = who
    with start_server(model, "--workers", "2") as server:
        before = children(server.proc.pid)
        outcomes: list[tuple[float, bool]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    ok = score(server).status == 200
                except OSError:  # in flight on the killed worker
                    ok = False
                outcomes.append((time.monotonic(), ok))

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        killed_at = time.monotonic()
        os.kill(before[0], signal.SIGKILL)
        took = wait_for(lambda: len(children(server.proc.pid)) == 2
                        and before[0] not in children(server.proc.pid), 2.0)
        replaced_at = time.monotonic()
        replacement = (set(children(server.proc.pid)) - set(before)).pop()
        # the new worker answers requests (each on a new connection, so spread over both)
        wait_for(lambda: any(score(server, sleep=0.05).json()["predictions"][0]["pid"]
                             == replacement for _ in range(4)), 3.0)
        stop.set()
        for t in threads:
            t.join()
        assert took < 2.0
        after_kill = [ok for at, ok in outcomes if at > killed_at]
        # at most the requests in flight on the killed worker fail; the other keeps serving
        assert after_kill.count(False) <= len(threads)
        assert any(ok for at, ok in outcomes if killed_at < at <= replaced_at + 0.05) or \
            replaced_at - killed_at < 0.05


def test_sigterm_drains_in_flight_requests(who: tuple[Path, Path], start_server: Any) -> None:
    model, _ = who
    with start_server(model, "--workers", "2", "--drain-timeout", "10") as server:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(score, server, float(i), 1.5) for i in range(4)]
            time.sleep(0.5)  # all four are being scored
            start = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            refused = False
            try:
                score(server)
            except OSError:
                refused = True
            replies = [f.result() for f in futures]
        assert [r.status for r in replies] == [200] * 4  # none lost
        assert [r.json()["predictions"][0]["y"] for r in replies] == [0.0, 10.0, 20.0, 30.0]
        assert refused  # no longer accepting
        assert server.proc.wait(10) == 0
        assert time.monotonic() - start < 5.0


# --- several models ----------------------------------------------------------------------


def test_several_models_each_loaded_once(tmp_path: Path, save_python_model: Any,
                                         iris_model_dir: Path, start_server: Any,
                                         iris: Any) -> None:
    marker = tmp_path / "loads.txt"
    who_dir = save_python_model(WhoAmI(), tmp_path / "who", signature=SIGNATURE,
                                model_config={"marker": str(marker)})
    # Saving loads the model once in a child process (requirements inference): not a
    # serve load, so it is not counted.
    marker.unlink(missing_ok=True)
    with start_server(f"fraud={iris_model_dir}", "-m", f"churn={who_dir}", "--default",
                      "churn", "--workers", "2") as server:
        # /invocations scores the default model
        assert score(server, 2.0).json()["predictions"][0]["y"] == 20.0
        X, _ = iris
        infer = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64",
                             "data": [float(X[c].iloc[0])]} for c in X.columns]}
        reply = server.post_json("/v2/models/fraud/infer", infer)
        assert reply.status == 200 and reply.json()["model_name"] == "fraud"
        assert score(server, 3.0, path="/v2/models/churn/infer").status == 400  # V2 body needed
        index = server.request("POST", "/v2/repository/index", "{}", "application/json")
        assert index.status == 200
        assert sorted((m["name"], m["state"]) for m in index.json()) == [
            ("churn", "READY"), ("fraud", "READY")]
        assert server.get("/v2/models/nope").status == 404
        assert marker.read_text().split() == [str(server.proc.pid)]


def test_unknown_default_and_duplicate_names_are_refused(iris_model_dir: Path,
                                                         tmp_path: Path) -> None:
    import subprocess
    import sys

    for args in (["-m", f"a={iris_model_dir}", "--default", "b"],
                 ["-m", f"a={iris_model_dir}", "-m", f"a={iris_model_dir}"]):
        out = subprocess.run([sys.executable, "-m", "satchel", "serve", *args, "--port", "0"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        assert "Traceback" not in out.stderr
        assert "'b'" in out.stderr or "'a'" in out.stderr
