"""Adaptive batching: the batcher on its own (merging, splitting, retries, keys,
cancellation), then on a real server (merged requests, each request's own rows back,
bad neighbours, params never mixed, models that opt out)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import satchel
from satchel.model import Prediction
from satchel.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, Signature
from satchel.serving.server.batching import Batcher, BatchOptions
from satchel.serving.server.layouts import batch_key, concat, split


class Recorder:
    """A row-independent 'model': y = 2 * x (+ offset param); records every call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[int, Any]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, data: Any, params: dict[str, Any] | None) -> Prediction:
        with self.lock:
            self.calls.append((len(data), params))
        if self.delay:
            time.sleep(self.delay)
        if isinstance(data, pd.DataFrame):
            if (data["x"] < 0).any():
                raise ValueError("negative x")
            offset = (params or {}).get("offset", 0)
            return Prediction(pd.DataFrame({"y": data["x"] * 2 + offset}), rows=len(data))
        return Prediction(np.asarray(data) * 2, rows=len(data))


def frame(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"x": np.asarray(values, dtype=np.float64)})


async def _gather(batcher: Batcher, inputs: list[Any], params: list[Any] | None = None
                  ) -> list[Any]:
    params = params or [None] * len(inputs)
    with batcher.incoming():  # hold the first batch open until all are queued
        tasks = [asyncio.ensure_future(batcher.predict(d, p)) for d, p in zip(inputs, params)]
        await asyncio.sleep(0)
    out = await asyncio.gather(*tasks, return_exceptions=True)
    await batcher.aclose()
    return out


def test_concurrent_requests_are_merged_and_split_in_order() -> None:
    model = Recorder()
    batcher = Batcher(model, BatchOptions(max_batch_size=100, max_batch_delay_ms=200))
    inputs = [frame([float(i), float(i) + 0.5]) for i in range(10)]
    results = asyncio.run(_gather(batcher, inputs))
    assert len(model.calls) == 1 and model.calls[0][0] == 20
    for i, result in enumerate(results):
        assert result.rows == 2
        assert result.output["y"].tolist() == [2 * i, 2 * i + 1]


def test_batcher_retries_a_failed_batch_request_by_request() -> None:
    model = Recorder()
    batcher = Batcher(model, BatchOptions(max_batch_size=100, max_batch_delay_ms=200))
    inputs = [frame([1.0]), frame([-1.0]), frame([3.0])]
    ok1, bad, ok3 = asyncio.run(_gather(batcher, inputs))
    assert ok1.output["y"].tolist() == [2.0] and ok3.output["y"].tolist() == [6.0]
    assert isinstance(bad, ValueError) and "negative" in str(bad)
    # one merged call that failed, then each request alone
    assert [n for n, _ in model.calls] == [3, 1, 1, 1]


def test_batcher_never_mixes_params() -> None:
    model = Recorder()
    batcher = Batcher(model, BatchOptions(max_batch_size=100, max_batch_delay_ms=200))
    inputs = [frame([float(i)]) for i in range(6)]
    params = [{"offset": i % 2} for i in range(6)]
    results = asyncio.run(_gather(batcher, inputs, params))
    assert [r.output["y"].tolist() for r in results] == [[2 * i + i % 2] for i in range(6)]
    assert sorted((n, p["offset"]) for n, p in model.calls) == [(3, 0), (3, 1)]


def test_a_request_over_the_limit_runs_alone() -> None:
    model = Recorder()
    batcher = Batcher(model, BatchOptions(max_batch_size=4, max_batch_delay_ms=200))
    inputs = [frame([1.0]), frame([1.0] * 9), frame([2.0]), frame([3.0, 4.0, 5.0])]
    results = asyncio.run(_gather(batcher, inputs))
    assert [r.rows for r in results] == [1, 9, 1, 3]
    sizes = sorted(n for n, _ in model.calls)
    assert 9 in sizes and max(s for s in sizes if s != 9) <= 4


def test_layouts_differ_by_columns_and_dtypes() -> None:
    a, _ = batch_key(frame([1.0]), None)
    b, _ = batch_key(pd.DataFrame({"x": [1]}), None)
    c, _ = batch_key(pd.DataFrame({"z": [1.0]}), None)
    d, _ = batch_key(frame([2.0, 3.0]), None)
    assert a == d and len({a, b, c}) == 3
    assert batch_key(frame([1.0]), {"p": 1})[0] != a
    assert batch_key(frame([1.0]), {})[0] == a  # no params, however written
    assert batch_key(frame([]), None)[0] is None
    assert batch_key([1, 2], None)[0] is None
    assert batch_key(np.zeros((3, 2)), None)[0] != batch_key(np.zeros((3, 4)), None)[0]


def test_model_with_aggregated_output_is_no_longer_merged() -> None:
    def total(data: Any, params: Any) -> Prediction:
        return Prediction(np.asarray([float(data["x"].sum())]), rows=len(data))

    batcher = Batcher(total, BatchOptions(max_batch_size=100, max_batch_delay_ms=200))
    results = asyncio.run(_gather(batcher, [frame([1.0, 2.0]), frame([5.0])]))
    assert [r.output.tolist() for r in results] == [[3.0], [5.0]]
    assert batcher.merging is False


def test_idle_batcher_adds_no_delay() -> None:
    model = Recorder()
    batcher = Batcher(model, BatchOptions(max_batch_size=64, max_batch_delay_ms=2000))

    async def one() -> float:
        start = time.perf_counter()
        await batcher.predict(frame([1.0]))
        took = time.perf_counter() - start
        await batcher.aclose()
        return took

    assert asyncio.run(one()) < 0.5  # no one else was on the way: no 2 s wait


def test_cancelled_request_is_skipped() -> None:
    model = Recorder(delay=0.2)
    batcher = Batcher(model, BatchOptions(max_batch_size=64, max_batch_delay_ms=0))

    async def run() -> Any:
        first = asyncio.ensure_future(batcher.predict(frame([1.0])))
        await asyncio.sleep(0.05)  # first is predicting; the next two queue behind it
        second = asyncio.ensure_future(batcher.predict(frame([2.0])))
        third = asyncio.ensure_future(batcher.predict(frame([3.0])))
        await asyncio.sleep(0)
        second.cancel()
        out = await asyncio.gather(first, third)
        await batcher.aclose()
        return out

    first, third = asyncio.run(run())
    assert third.output["y"].tolist() == [6.0]
    assert [n for n, _ in model.calls] == [1, 1]


def test_arrays_and_dicts_merge() -> None:
    arrays = [np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((1, 2), dtype=np.float32)]
    merged = concat(arrays)
    assert merged.shape == (4, 2)
    parts = split(Prediction(merged * 2, rows=4), [3, 1])
    assert parts[1].output.tolist() == [[2.0, 2.0]] and parts[0].rows == 3
    dicts = [{"a": np.zeros((2, 2)), "b": np.arange(2)}, {"a": np.ones((1, 2)), "b": np.arange(1)}]
    assert batch_key(dicts[0], None)[0] == batch_key(dicts[1], None)[0]
    assert concat(dicts)["b"].tolist() == [0, 1, 0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=50))
def test_every_request_gets_its_own_rows(sizes: list[int], limit: int) -> None:
    model = Recorder()
    batcher = Batcher(model, BatchOptions(max_batch_size=limit, max_batch_delay_ms=100))
    inputs = [frame([1000.0 * i + j for j in range(n)]) for i, n in enumerate(sizes)]
    results = asyncio.run(_gather(batcher, inputs))
    for i, (n, result) in enumerate(zip(sizes, results)):
        assert result.output["y"].tolist() == [2 * (1000.0 * i + j) for j in range(n)]
    assert all(n <= limit or n in sizes for n, _ in model.calls)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        BatchOptions(max_batch_size=0)
    with pytest.raises(ValueError):
        BatchOptions(max_batch_delay_ms=-1)


# --- a real server -----------------------------------------------------------------------

PROBE_SIGNATURE = Signature(
    inputs=Schema([ColSpec(DataType.double, "x")]),
    outputs=Schema([ColSpec(DataType.double, "y"), ColSpec(DataType.string, "tag"),
                    ColSpec(DataType.long, "pid"), ColSpec(DataType.long, "call_rows")]),
    params=ParamSchema([ParamSpec("sleep", DataType.double, 0.0),
                        ParamSpec("tag", DataType.string, "")]),
)


class Probe(satchel.PythonModel):
    """y = 2x, plus the params' tag, the worker's pid and the rows in the predict call."""

    row_independent = True

    def load_context(self, context: Any) -> None:
        marker = context.model_config.get("marker")
        if marker:  # one line per load, so tests can count loads
            with open(marker, "a") as f:
                f.write(f"{os.getpid()}\n")

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        if params.get("sleep"):
            time.sleep(params["sleep"])
        x = model_input["x"]
        if (x < 0).any():
            raise ValueError("x must not be negative")
        return pd.DataFrame({"y": x * 2, "tag": params.get("tag", ""), "pid": os.getpid(),
                             "call_rows": len(model_input)})


class CrossRow(Probe):
    """The same, but not declared row-independent (the python flavor's default)."""

    row_independent = None


def save_probe(save_python_model: Any, path: Path, model: Any = None,
               marker: Path | None = None) -> Path:
    return save_python_model(model or Probe(), path, signature=PROBE_SIGNATURE,
                             input_example=pd.DataFrame({"x": [1.0, 2.0]}),
                             model_config={"marker": str(marker)} if marker else None)


def body(xs: list[float], **params: Any) -> str:
    payload: dict[str, Any] = {"dataframe_split": {"columns": ["x"], "data": [[x] for x in xs]}}
    if params:
        payload["params"] = params
    return json.dumps(payload)


def post_all(server: Any, bodies: list[str], path: str = "/invocations") -> list[Any]:
    """POST every body at once, each on its own connection; replies in the same order."""
    barrier = threading.Barrier(len(bodies))

    def one(b: str) -> Any:
        barrier.wait()
        return server.request("POST", path, b, "application/json")

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory, save_python_model: Any) -> Path:
    return save_probe(save_python_model, tmp_path_factory.mktemp("probe") / "probe")


@pytest.fixture(scope="module")
def batching_server(probe_dir: Path, start_server: Any) -> Any:
    with start_server(probe_dir, "--max-batch-size", "32", "--max-batch-delay-ms", "20",
                      env={"SATCHEL_METRICS_INTERVAL": "0.05"}) as server:
        yield server


def test_concurrent_requests_are_merged(batching_server: Any) -> None:
    from satchel.serving.server.metrics import parse_page

    # the first request holds the model for 0.2 s; the others queue and go in together
    replies = post_all(batching_server, [body([float(i)], sleep=0.2) for i in range(12)])
    assert all(r.status == 200 for r in replies), [r.body for r in replies]
    outputs = [r.json()["predictions"] for r in replies]
    assert [o[0]["y"] for o in outputs] == [2.0 * i for i in range(12)]
    assert max(o[0]["call_rows"] for o in outputs) > 1
    page = parse_page(batching_server.get("/metrics").body.decode())
    assert page['satchel_batch_requests_bucket{model="probe",le="1"}'] < \
        page['satchel_batch_requests_count{model="probe"}']


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=12), min_size=2, max_size=10),
       st.randoms(use_true_random=False))
def test_each_request_gets_exactly_its_own_rows(batching_server: Any, sizes: list[int],
                                               rnd: Any) -> None:
    bodies = []
    expected = []
    for i, n in enumerate(sizes):
        xs = [float(1000 * i + j) for j in range(n)]
        rnd.shuffle(xs)
        bodies.append(body(xs, sleep=0.01))
        expected.append([2 * x for x in xs])
    order = list(range(len(sizes)))
    rnd.shuffle(order)  # sent in a random order
    replies = post_all(batching_server, [bodies[k] for k in order])
    for k, reply in zip(order, replies):
        assert reply.status == 200, reply.body
        assert [row["y"] for row in reply.json()["predictions"]] == expected[k]


def test_a_failing_request_does_not_fail_its_neighbours(batching_server: Any) -> None:
    xs = [[1.0], [2.0, -1.0], [3.0], [4.0]]
    replies = post_all(batching_server, [body(x, sleep=0.1) for x in xs])
    assert [r.status for r in replies] == [200, 422, 200, 200]
    assert "x must not be negative" in replies[1].json()["message"]
    assert [r.json()["predictions"][0]["y"] for r in (replies[0], replies[2], replies[3])] == \
        [2.0, 6.0, 8.0]


def test_server_batches_never_mix_params(batching_server: Any) -> None:
    tags = ["a", "b"] * 6
    replies = post_all(batching_server, [body([float(i)], sleep=0.05, tag=t)
                                         for i, t in enumerate(tags)])
    for tag, reply in zip(tags, replies):
        rows = reply.json()["predictions"]
        assert rows[0]["tag"] == tag
        assert rows[0]["call_rows"] <= tags.count(tag)


def test_v2_infer_requests_are_batched_too(batching_server: Any) -> None:
    def infer(x: float) -> str:
        return json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64",
                                       "data": [x]}], "parameters": {"sleep": 0.2}})

    replies = post_all(batching_server, [infer(float(i)) for i in range(6)],
                       "/v2/models/probe/infer")
    outs = [{o["name"]: o["data"] for o in r.json()["outputs"]} for r in replies]
    assert [o["y"] for o in outs] == [[2.0 * i] for i in range(6)]
    assert max(o["call_rows"][0] for o in outs) > 1


def test_no_batching_flag_and_cross_row_models_run_alone(
        tmp_path: Path, save_python_model: Any, probe_dir: Path, start_server: Any) -> None:
    cross = save_probe(save_python_model, tmp_path / "cross", CrossRow())
    for model_dir, args in ((probe_dir, ("--no-batching",)), (cross, ())):
        with start_server(model_dir, *args) as server:
            replies = post_all(server, [body([float(i)], sleep=0.1) for i in range(6)])
            assert [r.json()["predictions"][0]["call_rows"] for r in replies] == [1] * 6
    # a model not declared row-independent is batched when the operator says so
    with start_server(cross, "--batching", "on", "--max-batch-delay-ms", "20") as server:
        replies = post_all(server, [body([float(i)], sleep=0.2) for i in range(6)])
        assert max(r.json()["predictions"][0]["call_rows"] for r in replies) > 1


def test_requests_of_a_hundred_rows_merge_by_default(probe_dir: Path,
                                                     start_server: Any) -> None:
    # The default row limit (1,024) leaves room for several 100-row requests per call;
    # each still gets exactly its own rows, and a bad one fails alone.
    xs = [[float(1000 * i + j) for j in range(100)] for i in range(6)]
    with start_server(probe_dir, "--max-batch-delay-ms", "50") as server:
        replies = post_all(server, [body(x, sleep=0.2) for x in xs])
        assert [r.status for r in replies] == [200] * 6
        call_rows = set()
        for x, reply in zip(xs, replies):
            rows = reply.json()["predictions"]
            assert [r["y"] for r in rows] == [2 * v for v in x]  # as it would alone
            call_rows |= {r["call_rows"] for r in rows}
        assert max(call_rows) > 100  # merged with another request at least once
        xs[3][57] = -1.0  # one bad row in the fourth request
        replies = post_all(server, [body(x, sleep=0.2) for x in xs])
    assert [r.status for r in replies] == [200, 200, 200, 422, 200, 200]
    assert "x must not be negative" in replies[3].json()["message"]
    for i in (0, 1, 2, 4, 5):
        assert [r["y"] for r in replies[i].json()["predictions"]] == [2 * v for v in xs[i]]


def test_quick_merged_calls_run_on_the_event_loop() -> None:
    # Once a call has been quick, merged calls run inline (no thread); a slow model's
    # stay in the batch thread. Either way each request gets its own rows.
    threads: list[str] = []

    def model(data: Any, params: Any) -> Prediction:
        threads.append(threading.current_thread().name)
        if (params or {}).get("slow"):
            time.sleep(0.05)
        return Prediction(pd.DataFrame({"y": data["x"] * 2}), rows=len(data))

    for slow, where in ((False, "MainThread"), (True, "satchel-predict")):
        threads.clear()
        batcher = Batcher(model, BatchOptions(max_batch_delay_ms=50), inline_seconds=0.005)

        async def run(batcher: Batcher = batcher, slow: bool = slow) -> list[Any]:
            params = {"slow": True} if slow else None
            await batcher.predict(frame([0.0] * 15), params)  # the first call is measured
            return await _gather(batcher, [frame([float(i)] * 3) for i in range(5)],
                                 [params] * 5)

        results = asyncio.run(run())
        assert [r.output["y"].tolist() for r in results] == [[2.0 * i] * 3 for i in range(5)]
        assert threads[0].startswith("satchel-predict")  # no measurement yet: a thread
        assert all(t.startswith(where) for t in threads[1:]), threads


def test_a_call_with_other_params_is_measured_in_the_thread_first() -> None:
    # A quick call with no params says nothing about one that asks for a slow setting:
    # that one runs in the thread (the loop keeps answering, timeouts still fire).
    threads: list[str] = []

    def model(data: Any, params: Any) -> Prediction:
        threads.append(threading.current_thread().name)
        if (params or {}).get("slow"):
            time.sleep(0.05)
        return Prediction(pd.DataFrame({"y": data["x"] * 2}), rows=len(data))

    batcher = Batcher(model, BatchOptions(max_batch_delay_ms=0), inline_seconds=0.005)

    async def run() -> None:
        await batcher.predict(frame([1.0]))  # measured in the thread
        await batcher.predict(frame([1.0]))  # quick: on the loop
        await batcher.predict(frame([1.0]), {"slow": True})  # not measured yet: thread
        await batcher.aclose()

    asyncio.run(run())
    assert [t.startswith("satchel-predict") for t in threads] == [True, False, True], threads


def _awaited(model: Recorder) -> Any:
    """``model`` as a coroutine that yields to the loop, as a model worker's reply does;
    the thread-side predict must never be called then."""

    def in_thread(data: Any, params: dict[str, Any] | None) -> Prediction:
        raise AssertionError("an awaited model was called in a thread")

    async def predict_async(data: Any, params: dict[str, Any] | None) -> Prediction:
        await asyncio.sleep(0.001)
        assert threading.current_thread() is threading.main_thread()
        return model(data, params)

    return in_thread, predict_async


def test_an_awaited_model_is_merged_and_retried_on_the_event_loop() -> None:
    model = Recorder()
    in_thread, predict_async = _awaited(model)
    batcher = Batcher(in_thread, BatchOptions(max_batch_size=100, max_batch_delay_ms=200),
                      predict_async=predict_async)
    inputs = [frame([float(i)]) for i in range(5)] + [frame([-1.0])]
    results = asyncio.run(_gather(batcher, inputs))
    assert [r.output["y"].tolist() for r in results[:5]] == [[2.0 * i] for i in range(5)]
    assert isinstance(results[5], ValueError) and "negative" in str(results[5])
    # one merged call that failed on the bad row, then each request alone
    assert [n for n, _ in model.calls] == [6, 1, 1, 1, 1, 1, 1]


def test_closing_cancels_an_awaited_call_in_flight() -> None:
    async def never(data: Any, params: dict[str, Any] | None) -> Prediction:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def go() -> None:
        batcher = Batcher(Recorder(), BatchOptions(max_batch_delay_ms=0), predict_async=never)
        task = asyncio.ensure_future(batcher.predict(frame([1.0])))
        await asyncio.sleep(0.05)
        await batcher.aclose()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_batch_keys_of_frames_list_their_labels_once_per_index() -> None:
    import pandas as pd

    from satchel.serving.server import layouts as batching

    shared = pd.Index(["a", "b"])
    one = pd.DataFrame([[1.0, 2.0]], columns=shared)
    two = pd.DataFrame([[3.0, 4.0]], columns=shared)
    apart = pd.DataFrame([[5.0, 6.0]], columns=pd.Index(["a", "b"]))  # equal, not shared
    other = pd.DataFrame([[5.0, 6.0]], columns=["a", "c"])
    keys = [batching.batch_key(f, None)[0] for f in (one, two, apart, other)]
    assert keys[0] == keys[1] == keys[2] != keys[3]
    for i in range(300):  # many distinct column sets: the label cache stays bounded
        batching.batch_key(pd.DataFrame([[1.0]], columns=[f"c{i}"]), None)
    assert len(batching._LABELS) <= 256
    assert batching.batch_key(one, None)[0] == keys[0]
    # names of 40 Ki characters each: keyed alike, but their Index is not held
    long_names = pd.Index(["a" * 40_960, "b" * 40_960])
    wide = [pd.DataFrame([[1.0, 2.0]], columns=long_names) for _ in range(2)]
    assert batching.batch_key(wide[0], None)[0] == batching.batch_key(wide[1], None)[0]
    assert all(index is not long_names for index, _ in batching._LABELS.values())
