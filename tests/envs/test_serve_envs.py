"""``satchel serve --env-manager venv``: two scikit-learn versions in one server, each
model in its own environment's worker, a dead worker restarted with 503s meanwhile."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from satchel.envs import EnvSpec

from ..serving.conftest import run_server
from .conftest import copy_model, env_cache, workers_of

pytestmark = pytest.mark.slow


@pytest.fixture
def start_server(tmp_path: Path) -> Any:
    return lambda model_dir, *args, env=None: run_server(model_dir, tmp_path, *args, env=env)


def test_two_sklearn_versions_in_one_server(old_sklearn_model: tuple[Path, np.ndarray],
                                            iris_model_dir: Path, iris: Any,
                                            start_server: Any) -> None:
    import satchel

    old_dir, old_expected = old_sklearn_model
    X = iris[0]
    new_expected = satchel.load_model(iris_model_dir).predict(X)
    env_cache().ensure(EnvSpec.from_model(iris_model_dir))  # built before: the server starts warm
    body = {"dataframe_split": json.loads(X.to_json(orient="split", index=False))}
    with start_server(f"new={iris_model_dir}", "-m", f"old={old_dir}",
                      "--env-manager", "venv", "--batching", "off") as server:
        workers = workers_of(server.proc.pid)
        assert len(workers) == 2  # two environments, a worker each
        assert all(str(Path(os.environ["SATCHEL_ENV_CACHE"])) in cmd for _, cmd in workers)
        for name, expected in (("old", old_expected), ("new", new_expected)):
            reply = server.post_json(f"/v2/models/{name}/infer", {"inputs": [
                {"name": c, "datatype": "FP64", "shape": [len(X)],
                 "data": X[c].tolist()} for c in X.columns]})
            assert reply.status == 200, reply.body
            got = np.asarray(reply.json()["outputs"][0]["data"])
            np.testing.assert_array_equal(got, np.asarray(expected).reshape(-1))
        reply = server.post_json("/invocations", body)  # the default model: the first
        assert reply.status == 200
        np.testing.assert_array_equal(reply.json()["predictions"], new_expected)
        sockets = [Path(cmd.split()[-1]) for _, cmd in workers]
        assert all(s.parent.is_dir() for s in sockets)
    # SIGTERM: the workers stop and their socket directories are removed
    assert not any(s.parent.exists() for s in sockets)


def test_a_dead_model_worker_is_restarted_with_503s_meanwhile(
    old_sklearn_model: tuple[Path, np.ndarray], start_server: Any
) -> None:
    old_dir, expected = old_sklearn_model
    row = {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length",
                                           "petal_width"], "data": [[5.1, 3.5, 1.4, 0.2]]}}
    with start_server(f"old={old_dir}", "--env-manager", "venv") as server:
        assert server.post_json("/invocations", row).status == 200
        [(pid, _)] = workers_of(server.proc.pid)
        os.kill(pid, signal.SIGKILL)
        statuses = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            reply = server.post_json("/invocations", row)
            statuses.append(reply.status)
            if reply.status == 200 and len(statuses) > 1:
                break
            assert reply.status == 503, reply.body
            time.sleep(0.05)
        assert statuses[-1] == 200 and 500 not in statuses
        assert 503 in statuses
        [(new_pid, _)] = workers_of(server.proc.pid)
        assert new_pid != pid
        assert server.post_json("/invocations", row).json()["predictions"] == [
            int(expected[0])]


def _http_children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids
            if "model_worker" not in Path(f"/proc/{k}/cmdline").read_text()]


def _socket_fds(pid: int) -> int:
    return sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir()
               if os.readlink(fd).startswith("socket:"))


def test_several_http_workers_share_the_model_workers(
    old_sklearn_model: tuple[Path, np.ndarray], start_server: Any
) -> None:
    old_dir, expected = old_sklearn_model
    row = {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length",
                                           "petal_width"], "data": [[5.1, 3.5, 1.4, 0.2]]}}
    with start_server(f"old={old_dir}", "--env-manager", "venv", "--workers", "2") as server:
        assert len(_http_children(server.proc.pid)) == 2
        [(pid, _)] = workers_of(server.proc.pid)  # one model worker, started before the fork
        # each request on a new connection: the kernel spreads them over both HTTP workers
        for _ in range(40):
            reply = server.post_json("/invocations", row)
            assert reply.status == 200, reply.body
            assert reply.json()["predictions"] == [int(expected[0])]
        # the listener and at least one connection from each HTTP worker
        assert _socket_fds(pid) >= 3
        os.kill(pid, signal.SIGKILL)
        statuses = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            reply = server.post_json("/invocations", row)
            statuses.append(reply.status)
            if reply.status == 200:
                break
            assert reply.status == 503, reply.body
            time.sleep(0.05)
        assert statuses[-1] == 200 and 500 not in statuses
        # the supervisor restarted it; every HTTP worker reaches the new one
        [(new_pid, _)] = workers_of(server.proc.pid)
        assert new_pid != pid
        for _ in range(20):
            assert server.post_json("/invocations", row).status == 200


def test_a_model_failing_to_load_in_its_worker_is_one_clear_error(
    iris_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from satchel.cli import main

    bad = copy_model(iris_model_dir, tmp_path / "bad")
    (bad / "model.pkl").write_bytes(b"corrupt")  # digests no longer match
    assert main(["serve", "-m", str(bad), "--env-manager", "venv"]) == 1
    err = capsys.readouterr().err
    assert "could not load bad" in err and "Traceback" not in err


def test_models_sharing_an_environment_share_one_worker(
    iris_model_dir: Path, iris: Any, tmp_path: Path, start_server: Any
) -> None:
    import satchel

    twin = copy_model(iris_model_dir, tmp_path / "twin")  # same requirements: same env
    X = iris[0].head(5)
    expected = satchel.load_model(iris_model_dir).predict(X).tolist()
    env_cache().ensure(EnvSpec.from_model(iris_model_dir))
    body = {"dataframe_split": json.loads(X.to_json(orient="split", index=False))}
    with start_server(f"a={iris_model_dir}", "-m", f"b={twin}",
                      "--env-manager", "venv") as server:
        assert len(workers_of(server.proc.pid)) == 1
        for name in ("a", "b"):
            reply = server.post_json(f"/v2/models/{name}/infer", {"inputs": [
                {"name": c, "datatype": "FP64", "shape": [len(X)], "data": X[c].tolist()}
                for c in X.columns]})
            assert reply.status == 200, reply.body
            assert reply.json()["outputs"][0]["data"] == expected
        assert server.post_json("/invocations", body).json()["predictions"] == expected


def test_requests_over_the_batch_limit_share_a_worker_call(
    iris_model_dir: Path, iris: Any, start_server: Any
) -> None:
    """Behind a worker each predict call is a round trip, so requests merge up to
    ``WORKER_BATCH_FACTOR`` times the batch limit: 150-row requests, which run alone under
    a 100-row limit in process, share calls; each still gets exactly its own rows."""
    from concurrent.futures import ThreadPoolExecutor

    import satchel
    from satchel.serving.server.dataplane import WORKER_BATCH_FACTOR
    from satchel.serving.server.metrics import parse_page

    X = iris[0]
    parts = [X.sample(150, random_state=i) for i in range(6)]
    model = satchel.load_model(iris_model_dir)
    expected = [model.predict(p).tolist() for p in parts]
    bodies = [{"dataframe_split": json.loads(p.to_json(orient="split", index=False))}
              for p in parts]
    env_cache().ensure(EnvSpec.from_model(iris_model_dir))
    assert 150 * 2 <= 100 * WORKER_BATCH_FACTOR
    with start_server(f"m={iris_model_dir}", "--env-manager", "venv", "--max-batch-size",
                      "100", "--max-batch-delay-ms", "200") as server:
        config = server.get("/v2/models/m/config").json()
        assert config["parameters"]["max_batch_rows"]["string_value"] == str(
            100 * WORKER_BATCH_FACTOR)  # the limit it really merges up to
        sent = calls = 0
        with ThreadPoolExecutor(len(bodies)) as pool:
            for _ in range(10):  # until one round's requests arrive together
                replies = list(pool.map(lambda b: server.post_json("/invocations", b), bodies))
                for reply, want in zip(replies, expected):
                    assert reply.status == 200, reply.body
                    assert reply.json()["predictions"] == want
                sent += len(bodies)
                page = parse_page(server.get("/metrics").body.decode())
                calls = int(page['satchel_predict_calls_total{model="m"}'])
                if calls < sent:
                    break
        assert calls < sent, "no two 150-row requests ever shared a call"
        rows = page['satchel_batch_rows_sum{model="m"}']
        assert rows == 150 * sent  # every row predicted once
