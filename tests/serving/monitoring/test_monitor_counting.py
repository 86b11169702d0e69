"""The monitor counts many requests at once (stacked frames, distinct values looked up
once): it must count exactly what counting each request alone counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from satchel.monitoring import Tally
from satchel.monitoring.profile import build_profile
from satchel.serving.monitoring.monitor import Monitor
from satchel.serving.monitoring.options import MonitorOptions
from satchel.serving.monitoring.stacking import stack


def _reference(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"income": rng.normal(50, 10, n), "age": rng.integers(18, 90, n),
                          "city": rng.choice(["paris", "lyon", "nice"], n),
                          "member": rng.random(n) < 0.3})
    return frame, rng.integers(0, 3, n)


def _one_by_one(profile: Any, requests: list[tuple[Any, Any]]) -> dict[str, Any]:
    tally = Tally(profile)
    for data, output in requests:
        tally.add(data, output)
    return tally.report()


def _monitored(profile: Any, requests: list[tuple[Any, Any]]) -> dict[str, Any]:
    monitor = Monitor(lambda name: profile, MonitorOptions(max_pending=100_000))
    for data, output in requests:
        monitor.observe("m", data, output)
    assert monitor.drain() == len(requests)
    report = monitor.report("m")
    assert report["requests_counted"] == len(requests)
    return {k: report[k] for k in ("requests", "inputs", "outputs", "raw_inputs",
                                   "raw_outputs")}


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["requests"] == b["requests"]
    for side in ("inputs", "outputs", "raw_inputs", "raw_outputs"):
        assert len(a[side]) == len(b[side])
        for x, y in zip(a[side], b[side]):
            assert x.keys() == y.keys()
            for key in x:
                assert x[key] == pytest.approx(y[key]), (side, x["column"], key)


def test_one_row_numeric_requests_count_as_if_alone() -> None:
    """The 1-row float frames a server decodes take the stacked-array path."""
    frame, classes = _reference()
    numeric = frame[["income"]].assign(score=frame["age"] * 1.5)
    profile = build_profile(numeric, classes)
    shifted = numeric.assign(income=numeric["income"] + 15)
    requests = [(shifted.iloc[[i]].reset_index(drop=True), classes[i:i + 1])
                for i in range(len(shifted))]
    requests[7] = (requests[7][0].assign(income=np.nan), requests[7][1])  # a null
    _same(_monitored(profile, requests), _one_by_one(profile, requests))
    assert _monitored(profile, requests)["inputs"][0]["psi"] > 0.2


def test_mixed_and_unstackable_requests_count_as_if_alone() -> None:
    """Strings, ints and booleans (pd.concat path), a request with its columns in another
    order, an extra column the profile lacks, integer and string outputs."""
    frame, classes = _reference()
    profile = build_profile(frame, pd.DataFrame({"label": classes,
                                                 "tier": np.where(classes > 0, "a", "b")}))
    current, out = _reference(300, seed=1)
    current.loc[current.index[:60], "city"] = "marseille"
    labels = pd.DataFrame({"label": out, "tier": np.where(out > 1, "a", "b")})
    requests: list[tuple[Any, Any]] = [
        (current.iloc[i:i + 3].reset_index(drop=True),
         labels.iloc[i:i + 3].reset_index(drop=True)) for i in range(0, 300, 3)]
    requests[5] = (requests[5][0][["city", "age", "income", "member"]], requests[5][1])
    requests[9] = (requests[9][0].assign(extra=1.0), requests[9][1])
    mixed = _monitored(profile, requests)
    _same(mixed, _one_by_one(profile, requests))
    city = next(f for f in mixed["inputs"] if f["column"] == "city")
    assert city["out_of_range_rate"] == pytest.approx(0.2)


def test_stack_keeps_requests_it_cannot_stack() -> None:
    a = pd.DataFrame({"x": [1.0]})
    assert stack([(a, np.array([1])), (a, pd.Series([2]))])[0][1] is not None
    items: list[tuple[Any, Any]] = [(a, np.array([1])), (np.array([[1.0]]), np.array([2]))]
    assert stack(items) == items  # a frame and an array: counted one by one
    stacked = stack([(a, None), (a.assign(x=2.0), None)])
    assert len(stacked) == 1 and stacked[0][0]["x"].tolist() == [1.0, 2.0]


def test_number_columns_count_as_the_general_path_does() -> None:
    """Float, int and NaN values counted on numpy arrays directly give what the pandas
    path (object values, isna) gives."""
    from satchel.monitoring import ColumnCounts
    from satchel.monitoring.profile import profile_column

    rng = np.random.default_rng(3)
    ref = profile_column("x", rng.normal(0, 1, 500))
    values = np.concatenate([rng.normal(0.5, 2, 300), [np.nan, np.inf, -np.inf, 99.0]])
    for column in (pd.Series(values), pd.Series(values.astype(np.float32)),
                   pd.Series(rng.integers(-3, 3, 50))):
        fast, general = ColumnCounts.empty(ref), ColumnCounts.empty(ref)
        fast.add(ref, column)
        general.add(ref, column.astype(object))
        assert fast.to_dict() == general.to_dict()
    assert fast.total == 50 and fast.nulls == 0


def test_frames_sharing_one_column_index_count_as_if_alone() -> None:
    """Decoded frames share one Index per set of names (the monitor knows the columns by
    that object): frames of other dtypes, or another order, under the same or an equal
    Index still count as they would alone."""
    from satchel.serving.protocols.frames import column_index

    frame, classes = _reference()
    numeric = frame[["income"]].assign(score=frame["age"] * 1.5)
    profile = build_profile(numeric, classes)
    index = column_index(["income", "score"])
    values = numeric.to_numpy()
    requests: list[tuple[Any, Any]] = [
        (pd.DataFrame(values[i:i + 1], columns=index), classes[i:i + 1]) for i in range(200)]
    # the same Index object over int64 values, and an equal Index built apart
    requests[3] = (pd.DataFrame(values[3:4].astype(np.int64), columns=index), classes[3:4])
    requests[4] = (pd.DataFrame(values[4:5], columns=pd.Index(["income", "score"])),
                   classes[4:5])
    requests[5] = (pd.DataFrame(values[5:6, ::-1], columns=column_index(["score", "income"])),
                   classes[5:6])
    _same(_monitored(profile, requests), _one_by_one(profile, requests))


def test_array_and_other_outputs_of_one_model_in_one_pass_count_as_if_alone() -> None:
    """Frames of one number dtype scored into arrays are listed by layout as they are
    staged; the same model's other requests (a Series output, int64 outputs, 2-D
    outputs, an empty frame) take the general path in the same pass."""
    frame, classes = _reference()
    numeric = frame[["income"]].assign(score=frame["age"] * 1.5)
    profile = build_profile(numeric, classes)
    requests: list[tuple[Any, Any]] = []
    for i in range(120):
        row = numeric.iloc[[i]].reset_index(drop=True)
        if i % 4 == 1:
            requests.append((row, pd.Series(classes[i:i + 1], name="label")))
        elif i % 4 == 2:
            requests.append((row, classes[i:i + 1].astype(np.float64)))
        else:
            requests.append((row, classes[i:i + 1]))
    requests.append((numeric.iloc[:0].reset_index(drop=True), classes[:0]))
    _same(_monitored(profile, requests), _one_by_one(profile, requests))


def test_past_its_queue_bound_the_monitor_skips_and_counts() -> None:
    """Bounded memory whatever the traffic: a thread that has not caught up holds at most
    max_pending requests; the rest are skipped at once and reported as skipped."""
    frame, classes = _reference()
    numeric = frame[["income"]].assign(score=frame["age"] * 1.5)
    monitor = Monitor(lambda name: build_profile(numeric, classes),
                      MonitorOptions(max_pending=10))
    for i in range(50):
        monitor.observe("m", numeric.iloc[[i]], classes[i:i + 1])
    assert len(monitor._pending) == 10 and monitor.skipped == {"m": 40}
    assert monitor.drain() == 10
    report = monitor.report("m")
    assert report["requests_counted"] == 10 and report["requests_skipped"] == 40
    assert report["inputs"][0]["count"] == 10


def test_a_queued_number_frame_does_not_keep_the_request_frame_alive() -> None:
    """The monitor queues a frame of one number dtype as its bare array: the request's
    DataFrame (about twenty collector-tracked pandas objects) dies with the request, as
    with monitoring off, instead of outliving the young generation in the queue."""
    import gc
    import weakref

    from satchel.serving.protocols.frames import column_index

    frame, classes = _reference()
    numeric = frame[["income"]].assign(score=frame["age"] * 1.5)
    monitor = Monitor(lambda name: build_profile(numeric, classes), MonitorOptions())
    request = pd.DataFrame(numeric.to_numpy()[:1], columns=column_index(["income", "score"]))
    alive = weakref.ref(request)
    monitor.observe("m", request, classes[:1])
    mixed = numeric.iloc[:1].assign(city="paris")  # a mixed frame is queued as it is
    mixed_alive = weakref.ref(mixed)
    monitor.observe("m", mixed, classes[:1])
    del request, mixed
    gc.collect()
    assert alive() is None and mixed_alive() is not None
    assert monitor.drain() == 2
    assert monitor.report("m")["requests_counted"] == 2
