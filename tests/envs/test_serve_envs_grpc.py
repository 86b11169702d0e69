"""``satchel serve --env-manager venv --grpc-port``: the real ``tritonclient.grpc`` client
against two scikit-learn versions in one server, each model in its own environment's
worker; a worker killed mid-run answers UNAVAILABLE (gRPC's 503) until it is restarted."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.envs import EnvSpec

from ..conftest import free_port
from ..serving.conftest import run_server
from .conftest import env_cache, workers_of

tg = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.slow


def _inputs(frame: pd.DataFrame) -> list[Any]:
    out = []
    for col in frame.columns:
        t = tg.InferInput(col, [len(frame)], "FP64")
        t.set_data_from_numpy(frame[col].to_numpy(np.float64))
        out.append(t)
    return out


def _label(result: Any) -> np.ndarray:
    [output] = result.get_response().outputs
    return np.asarray(result.as_numpy(output.name)).reshape(-1)


@pytest.fixture
def two_envs(old_sklearn_model: tuple[Path, np.ndarray], iris_model_dir: Path,
             tmp_path: Path) -> Iterator[tuple[Any, Any, str]]:
    """A server with ``old`` (scikit-learn 1.8, its own environment) and ``new`` (this
    interpreter's scikit-learn, another environment), both served over gRPC; and a
    tritonclient for it, and its address."""
    old_dir, _ = old_sklearn_model
    env_cache().ensure(EnvSpec.from_model(iris_model_dir))  # built before: a warm start
    port = free_port()
    with run_server(f"old={old_dir}", tmp_path, "-m", f"new={iris_model_dir}",
                    "--env-manager", "venv", "--grpc-port", str(port)) as server:
        url = f"127.0.0.1:{port}"
        client = tg.InferenceServerClient(url)
        try:
            yield server, client, url
        finally:
            client.close()


def test_two_sklearn_versions_over_grpc(two_envs: tuple[Any, Any, str],
                                        old_sklearn_model: tuple[Path, np.ndarray],
                                        iris_model_dir: Path, iris: Any) -> None:
    server, client, _ = two_envs
    _, old_expected = old_sklearn_model
    X = iris[0]
    new_expected = satchel.load_model(iris_model_dir).predict(X)
    workers = workers_of(server.proc.pid)
    assert len(workers) == 2  # two environments, a worker each
    assert client.is_model_ready("old") and client.is_model_ready("new")
    for name, expected in (("old", old_expected), ("new", new_expected)):
        got = _label(client.infer(name, _inputs(X)))
        np.testing.assert_array_equal(got, np.asarray(expected).reshape(-1))
    # the two models answer differently on some rows: each really is its own model
    assert not np.array_equal(np.asarray(old_expected), np.asarray(new_expected))
    # one row at a time too (the batched path), interleaved between the two workers
    for i in (0, 60, 120, 149):
        row = X.iloc[[i]]
        assert _label(client.infer("old", _inputs(row)))[0] == old_expected[i]
        assert _label(client.infer("new", _inputs(row)))[0] == new_expected[i]


def test_a_worker_killed_mid_run_is_unavailable_then_serves_again(
        two_envs: tuple[Any, Any, str], old_sklearn_model: tuple[Path, np.ndarray],
        iris_model_dir: Path, iris: Any) -> None:
    server, client, url = two_envs
    _, old_expected = old_sklearn_model
    X = iris[0]
    new_expected = satchel.load_model(iris_model_dir).predict(X)
    old_python = str(env_cache().ensure(EnvSpec.from_model(old_sklearn_model[0])).python)
    [(old_pid, _)] = [(p, cmd) for p, cmd in workers_of(server.proc.pid)
                      if cmd.startswith(old_python)]
    statuses: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        # requests for "old" in flight while its worker dies
        own = tg.InferenceServerClient(url)
        try:
            while not stop.is_set():
                try:
                    got = _label(own.infer("old", _inputs(X)))
                    if not np.array_equal(got, old_expected):
                        errors.append(AssertionError("old answered something else"))
                    statuses.append("OK")
                except InferenceServerException as exc:
                    statuses.append(str(exc.status()))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            own.close()

    loader = threading.Thread(target=load)
    loader.start()
    try:
        deadline = time.monotonic() + 30
        while statuses.count("OK") < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert statuses.count("OK") >= 3, statuses[-5:]
        os.kill(old_pid, signal.SIGKILL)
        killed_at = len(statuses)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            after = statuses[killed_at:]
            if "StatusCode.UNAVAILABLE" in after and after[-1:] == ["OK"]:
                break
            # the other environment's model is untouched meanwhile
            np.testing.assert_array_equal(_label(client.infer("new", _inputs(X))),
                                          np.asarray(new_expected).reshape(-1))
            time.sleep(0.05)
    finally:
        stop.set()
        loader.join(60)
    assert not errors, errors[:3]
    after = statuses[killed_at:]
    assert "StatusCode.UNAVAILABLE" in after and after[-1] == "OK", after[-10:]
    # nothing but OK and UNAVAILABLE: never INTERNAL (gRPC's 500) or another code
    assert set(after) <= {"OK", "StatusCode.UNAVAILABLE"}, sorted(set(after))
    [(new_pid, _)] = [(p, cmd) for p, cmd in workers_of(server.proc.pid)
                      if cmd.startswith(old_python)]
    assert new_pid != old_pid  # restarted, and serving what it served before
    np.testing.assert_array_equal(_label(client.infer("old", _inputs(X))), old_expected)
