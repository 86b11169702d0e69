"""Drift measured by a real server: /v2/models/{name}/drift and /metrics, with one worker
and two, from reference-like and shifted traffic; opt-in payload logs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from satchel.cli import main
from satchel.serving.server.metrics import parse_page

from ...conftest import make_frame


def _clear_of_a_slice_edge(window: float = 3600.0, buckets: int = 12,
                           margin: float = 30.0) -> None:
    """Wait, when a window slice ends within ``margin`` seconds, until the next one
    starts. Tests that compare counts exactly must count into one slice: a slice one
    older weighs 0.5 ** (1/3) (e.g. 4 of 40 requests there gave 1958.7 for 2000 rows)."""
    width = window / buckets
    left = width - time.time() % width
    if left < margin:
        time.sleep(left + 0.5)


def _send(server: Any, frame: Any, rows_per_request: int = 50) -> int:
    sent = 0
    for start in range(0, len(frame), rows_per_request):
        part = frame.iloc[start:start + rows_per_request]
        body = {"dataframe_split": json.loads(part.to_json(orient="split", index=False))}
        reply = server.post_json("/invocations", body)
        assert reply.status == 200, reply.body
        sent += len(part)
    return sent


def _drift(server: Any, name: str = "credit", requests: int | None = None) -> dict[str, Any]:
    """The drift report once something was counted and, given ``requests``, once the
    monitor's thread has taken in that many (counted or skipped): it lags the replies."""
    deadline = time.monotonic() + 10
    while True:
        reply = server.get(f"/v2/models/{name}/drift")
        assert reply.status == 200, reply.body
        report = reply.json()
        seen = report["requests_counted"] + report["requests_skipped"]
        counted = (report["inputs"] and report["inputs"][0]["count"] > 0) or report["raw_inputs"]
        if (counted and (requests is None or seen >= requests)) or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def _by_column(report: dict[str, Any], side: str = "inputs") -> dict[str, Any]:
    return {f["column"]: f for f in report[side]}


def test_reference_like_traffic_shows_no_drift(profiled_model_dir: Path,
                                               start_server: Any) -> None:
    with start_server(f"credit={profiled_model_dir}") as server:
        _clear_of_a_slice_edge()
        sent = _send(server, make_frame(2000, seed=21))
        report = _drift(server, requests=sent // 50)
        assert report["has_reference"] is True
        assert report["window_seconds"] == 3600
        ins = _by_column(report)
        assert set(ins) == {"income", "age", "city"}
        assert all(f["psi"] < 0.1 for f in ins.values()), ins
        # a busy machine may make the monitor sample (cpu budget): counts are of the sample
        counted = report["requests_counted"]
        assert counted + report["requests_skipped"] == sent // 50
        assert ins["income"]["count"] == pytest.approx(counted * 50)
        assert _by_column(report, "outputs")["prediction"]["psi"] < 0.1
        page = parse_page(server.get("/metrics").body.decode())
        key = 'satchel_drift_psi{model="credit",column="income",side="input"}'
        assert page[key] < 0.1
        assert page['satchel_monitor_requests_total{model="credit",outcome="counted"}'] == counted
        assert 0 < page["satchel_monitor_sample_rate"] <= 1
        assert page["satchel_monitor_cpu_seconds_total"] > 0


def test_shifted_columns_and_only_those_cross_the_threshold(profiled_model_dir: Path,
                                                            start_server: Any) -> None:
    current = make_frame(2000, seed=22, shift=25.0)
    current.loc[current.index[:400], "city"] = "marseille"
    with start_server(f"credit={profiled_model_dir}", "--monitor-window", "15m") as server:
        sent = _send(server, current)
        report = _drift(server, requests=sent // 50)
        assert report["window_seconds"] == 900
        ins = _by_column(report)
        over = sorted(c for c, f in ins.items() if f["psi"] > 0.2)
        assert over == ["city", "income"]
        assert ins["city"]["out_of_range_rate"] == pytest.approx(0.2)
        page = parse_page(server.get("/metrics").body.decode())
        psi = {k: v for k, v in page.items() if k.startswith("satchel_drift_psi{")}
        flagged = sorted(k.split('column="')[1].split('"')[0] for k, v in psi.items()
                         if v > 0.2 and 'side="input"' in k)
        assert flagged == ["city", "income"]
        assert page['satchel_drift_out_of_range_rate{model="credit",column="city",'
                    'side="input"}'] == pytest.approx(0.2)


def test_two_workers_merge_their_windows(profiled_model_dir: Path, start_server: Any) -> None:
    with start_server(f"credit={profiled_model_dir}", "--workers", "2",
                      env={"SATCHEL_METRICS_INTERVAL": "0.05"}) as server:
        _clear_of_a_slice_edge()
        sent = _send(server, make_frame(1500, seed=23), rows_per_request=25)
        time.sleep(1.6)  # each worker has written its window since
        report = _drift(server, requests=sent // 25)
        assert report["requests_counted"] + report["requests_skipped"] == sent // 25
        assert _by_column(report)["income"]["count"] == pytest.approx(
            report["requests_counted"] * 25)
        # /metrics on whichever worker answers merges both workers' windows too (each
        # worker's snapshot of its window is written about once a second)
        deadline = time.monotonic() + 10
        while True:
            page = parse_page(server.get("/metrics").body.decode())
            counted = page['satchel_monitor_requests_total{model="credit",outcome="counted"}']
            skipped = page['satchel_monitor_requests_total{model="credit",outcome="skipped"}']
            if counted + skipped == sent // 25 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert page["satchel_workers"] == 2
        assert counted + skipped == sent // 25
        rows = 'satchel_drift_window_rows{model="credit",column="income",side="input"}'
        assert page[rows] == pytest.approx(counted * 25)
        assert page['satchel_drift_psi{model="credit",column="income",side="input"}'] < 0.1


def test_a_model_without_profile_reports_raw_figures(iris_model_dir: Path,
                                                     start_server: Any) -> None:
    with start_server(f"iris={iris_model_dir}") as server:
        row = {"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5,
                                      "petal_length": 1.4, "petal_width": 0.2}]}
        for _ in range(3):
            assert server.post_json("/invocations", row).status == 200
        report = _drift(server, "iris", requests=3)
        assert report["has_reference"] is False and report["inputs"] == []
        raw = {r["column"]: r for r in report["raw_inputs"]}
        assert raw["sepal_length"]["mean"] == pytest.approx(5.1)
        assert raw["sepal_length"]["count"] + report["requests_skipped"] == 3
        assert server.get("/v2/models/nope/drift").status == 404
    assert server.log.read_text().count("has no reference profile") == 1


def test_no_monitor_turns_the_route_off(iris_model_dir: Path, start_server: Any) -> None:
    with start_server(f"iris={iris_model_dir}", "--no-monitor") as server:
        reply = server.get("/v2/models/iris/drift")
        assert reply.status == 404
        assert "monitoring is off" in reply.body.decode()
        assert "satchel_drift_psi{" not in server.get("/metrics").body.decode()


def test_payload_logs_are_sampled_redacted_parquet(profiled_model_dir: Path, tmp_path: Path,
                                                   start_server: Any) -> None:
    logs = tmp_path / "payloads"
    with start_server(f"credit={profiled_model_dir}", "--log-payloads", str(logs),
                      "--log-sample", "1", "--log-redact", "city") as server:
        sent = _send(server, make_frame(500, seed=24, shift=25.0))
    files = sorted(logs.rglob("*.parquet"))
    assert files and not list(logs.rglob("*.partial"))  # closed and renamed at shutdown
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    assert len(table) == sent
    assert "city" not in table.columns
    assert {"income", "age", "output.prediction", "_logged_at"} <= set(table.columns)
    # the logs feed the offline drift report
    out = tmp_path / "drift.json"
    assert main(["monitor", str(profiled_model_dir), "--data", str(logs), "--no-predict",
                 "--json", str(out)]) == 1
    assert "income" in json.loads(out.read_text())["over_threshold"]


def test_payload_log_counters_are_summed_over_workers(profiled_model_dir: Path,
                                                      tmp_path: Path,
                                                      start_server: Any) -> None:
    logs = tmp_path / "payloads"
    with start_server(f"credit={profiled_model_dir}", "--workers", "2", "--log-payloads",
                      str(logs), "--log-sample", "1",
                      env={"SATCHEL_METRICS_INTERVAL": "0.05"}) as server:
        frame = make_frame(2000, seed=25)
        sent = 0
        writers: set[str] = set()
        # Until both workers have an open log file (connections are spread by the kernel).
        while len(writers) < 2 and sent < len(frame):
            sent += _send(server, frame.iloc[sent:sent + 40], rows_per_request=10)
            writers = {p.name.split("-")[1] for p in logs.rglob("*.parquet.partial")}
        assert len(writers) == 2, "one worker took every request"
        key = 'satchel_payload_log_rows_total{model="credit",outcome="written"}'
        deadline = time.monotonic() + 15
        while True:  # each writer flushes every 0.5 s, each snapshot every 0.05 s
            page = parse_page(server.get("/metrics").body.decode())
            if page.get(key) == sent or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert page[key] == sent  # more than either worker wrote alone
        assert page["satchel_workers"] == 2
    files = list(logs.rglob("*.parquet"))
    assert {f.name.split("-")[1] for f in files} == writers
    assert sum(len(pd.read_parquet(f)) for f in files) == sent


def test_unwritable_payload_directory_fails_at_start(iris_model_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["serve", "-m", str(iris_model_dir), "--log-payloads",
                 str(blocker / "logs")]) == 1
    err = capsys.readouterr().err
    assert "cannot write payload logs to" in err and "Not a directory" in err


@pytest.mark.parametrize("bad, message", [
    (["--monitor-window", "soon"], "is not a duration"),
    (["--monitor-window", "0s"], "not a positive duration"),
    (["--log-payloads", "/tmp/x", "--log-sample", "2"], "must be in (0, 1]"),
    (["--log-payloads", "/tmp/x", "--log-rotate-mb", "0"], "--log-rotate-mb must be more"),
    (["--log-payloads", "/tmp/x", "--log-rotate-mb", "nan"], "--log-rotate-mb must be more"),
    (["--log-payloads", "/tmp/x", "--log-rotate-every", "soon"], "--log-rotate-every"),
    (["--log-payloads", "/tmp/x", "--log-rotate-every", "0m"], "not a positive duration"),
])
def test_bad_monitoring_flags_are_clear_errors(iris_model_dir: Path, bad: list[str],
                                               message: str) -> None:
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace("]", r"\]")):
        main(["serve", "-m", str(iris_model_dir), *bad])


def test_the_monitor_samples_within_its_cpu_budget(profiled_model_dir: Path) -> None:
    """The admission rate follows the budget when the process is busy, spare time lets it
    count everything, and a sample still shows the drifted column and only it."""
    import satchel
    from satchel.monitoring import Profile
    from satchel.serving.monitoring.monitor import Monitor
    from satchel.serving.monitoring.options import MonitorOptions

    monitor = Monitor(lambda name: None, MonitorOptions(cpu_budget=0.02))
    # 1 s of a fully busy process, 1000 requests offered and counted at 1 ms each: the
    # budget affords 20 per second, so the rate moves halfway towards 2%
    monitor._offered = 1000
    monitor._adjust(1000, 1.0, 1.0, 1.0)
    assert monitor.admit == pytest.approx(0.5 * 1.0 + 0.5 * 0.02)
    for _ in range(20):
        monitor._offered = 1000
        monitor._adjust(1000, 1.0, 1.0, 1.0)
    assert monitor.admit == pytest.approx(0.02, rel=0.01)
    # an idle process: half of the spare second affords everything again
    for _ in range(20):
        monitor._offered = 100
        monitor._adjust(100, 0.1, 0.1, 1.0)
    assert monitor.admit == pytest.approx(1.0, rel=0.01)
    # a busy loop kept off the CPU half the time by other processes (0.5 s run, 0.5 s
    # waiting to run) is not idle: 2% of the process's 0.5 s, 10 requests of 1 ms
    for _ in range(20):
        monitor._offered = 1000
        monitor._adjust(1000, 1.0, 0.5, 1.0, loop_busy=1.0)
    assert monitor.admit == pytest.approx(0.01, rel=0.01)
    # the same process when the loop really had nothing to do half the time
    for _ in range(20):
        monitor._offered = 100
        monitor._adjust(100, 0.1, 0.5, 1.0, loop_busy=0.5)
    assert monitor.admit == pytest.approx(1.0, rel=0.01)
    # ... but on a machine with no idle CPU (its clients and other processes take the
    # cores the loop leaves) there is no spare time: the budget alone, 2% of 0.5 s
    for _ in range(20):
        monitor._offered = 100
        monitor._adjust(100, 0.1, 0.5, 1.0, loop_busy=0.5, machine_idle=0.0)
    assert monitor.admit == pytest.approx(0.1, rel=0.01)
    # and with 0.2 CPU seconds idle machine-wide: half of those, 0.01 + 0.1 s for 100 ms
    for _ in range(20):
        monitor._offered = 100
        monitor._adjust(100, 0.1, 0.5, 1.0, loop_busy=0.5, machine_idle=0.2)
    assert monitor.admit == pytest.approx(1.0, rel=0.01)

    model = satchel.load_model(profiled_model_dir)
    profile = Profile.read(profiled_model_dir)
    sampled = Monitor(lambda name: profile, MonitorOptions(max_pending=100_000))
    sampled.admit = 0.3
    frame = make_frame(3000, seed=30, shift=25.0)
    rows = [frame.iloc[[i]] for i in range(len(frame))]
    out = model.predict(rows[0])
    for row in rows:
        sampled.observe("credit", row, out)
    assert sampled.report("credit")["requests_counted"] == 0  # the thread counts, not a read
    sampled.drain()
    report = sampled.report("credit")
    assert report["requests_counted"] + report["requests_skipped"] == 3000
    assert 0.2 < report["requests_counted"] / 3000 < 0.4
    psi = {f["column"]: f["psi"] for f in report["inputs"]}
    assert psi["income"] > 0.2 and psi["age"] < 0.1 and psi["city"] < 0.1


def test_every_entry_point_feeds_the_monitor(profiled_model_dir: Path, free_port_number: int,
                                             start_server: Any) -> None:
    """MLflow JSON and CSV, V2 REST and gRPC (the real tritonclient) requests all reach
    the drift window, and /metrics exports every figure per column."""
    import tritonclient.grpc as tg

    frame = make_frame(40, seed=26)
    with start_server(f"credit={profiled_model_dir}", "--grpc-port",
                      str(free_port_number)) as server:
        _clear_of_a_slice_edge()
        body = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
        assert server.post_json("/invocations", body).status == 200
        csv = server.request("POST", "/invocations", frame.to_csv(index=False), "text/csv")
        assert csv.status == 200, csv.body
        v2 = {"inputs": [
            {"name": "income", "shape": [40], "datatype": "FP64",
             "data": frame["income"].tolist()},
            {"name": "age", "shape": [40], "datatype": "FP64", "data": frame["age"].tolist()},
            {"name": "city", "shape": [40], "datatype": "BYTES", "data": frame["city"].tolist()}]}
        reply = server.post_json("/v2/models/credit/infer", v2)
        assert reply.status == 200, reply.body
        client = tg.InferenceServerClient(f"127.0.0.1:{free_port_number}")
        try:
            inputs = []
            for col, datatype in (("income", "FP64"), ("age", "FP64"), ("city", "BYTES")):
                arr = frame[col].to_numpy()
                arr = arr.astype(object) if datatype == "BYTES" else arr.astype(np.float64)
                tensor = tg.InferInput(col, [len(arr)], datatype)
                tensor.set_data_from_numpy(arr)
                inputs.append(tensor)
            client.infer("credit", inputs)
        finally:
            client.close()
        report = _drift(server, requests=4)
        assert report["requests_counted"] + report["requests_skipped"] == 4
        page = parse_page(server.get("/metrics").body.decode())
    counted = report["requests_counted"]
    income = _by_column(report)["income"]
    assert income["count"] == pytest.approx(counted * 40)
    assert income["null_rate"] == 0.0 and income["psi"] < 0.5
    labels = 'model="credit",column="income",side="input"'
    for family, key in (("satchel_drift_psi", "psi"), ("satchel_drift_js_distance",
                                                        "js_distance"),
                        ("satchel_drift_null_rate", "null_rate"),
                        ("satchel_drift_out_of_range_rate", "out_of_range_rate")):
        assert page[f"{family}{{{labels}}}"] == pytest.approx(income[key]), family
    assert 0 <= page[f"satchel_drift_js_distance{{{labels}}}"] <= 1
    assert 'satchel_drift_psi{model="credit",column="prediction",side="output"}' in page


def test_payload_logs_rotate_by_size(profiled_model_dir: Path, tmp_path: Path,
                                     start_server: Any) -> None:
    logs = tmp_path / "payloads"
    with start_server(f"credit={profiled_model_dir}", "--log-payloads", str(logs),
                      "--log-sample", "1", "--log-rotate-mb", "0.001") as server:
        sent = 0
        for i in range(4):  # the writer takes what is queued every 0.5 s
            sent += _send(server, make_frame(200, seed=30 + i))
            time.sleep(0.6)
    files = sorted(logs.rglob("*.parquet"))
    assert len(files) >= 2 and not list(logs.rglob("*.partial"))
    assert sum(len(pd.read_parquet(f)) for f in files) == sent


def test_payload_logs_rotate_by_age(profiled_model_dir: Path, tmp_path: Path,
                                    start_server: Any) -> None:
    logs = tmp_path / "payloads"
    with start_server(f"credit={profiled_model_dir}", "--log-payloads", str(logs),
                      "--log-sample", "1", "--log-rotate-every", "1s") as server:
        sent = _send(server, make_frame(100, seed=32))
        deadline = time.monotonic() + 10
        while not list(logs.rglob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.1)  # the first file is closed once a second old
        assert list(logs.rglob("*.parquet")), "no file was closed after a second"
        sent += _send(server, make_frame(100, seed=33))
    files = sorted(logs.rglob("*.parquet"))
    assert len(files) >= 2 and not list(logs.rglob("*.partial"))
    assert sum(len(pd.read_parquet(f)) for f in files) == sent


def test_payload_logger_drops_and_counts_when_behind(tmp_path: Path) -> None:
    """A writer that has not caught up: requests past the queue bound are dropped at once
    (observe never waits) and counted; what was queued is still written."""
    from satchel.serving.monitoring.options import PayloadLogOptions
    from satchel.serving.monitoring.payloads import PayloadLogger

    logger = PayloadLogger(PayloadLogOptions(str(tmp_path / "logs"), sample=1.0,
                                             max_pending=3))
    frame = make_frame(10, seed=34)
    started = time.perf_counter()
    for i in range(10):  # the writer thread is not running: it is behind
        logger.observe("credit", frame.iloc[[i]], np.array([i % 2]))
    assert time.perf_counter() - started < 1.0
    assert dict(logger.dropped) == {"credit": 7}
    counts = {dict(labels)["outcome"]: n for labels, n in logger.counts()}
    assert counts == {"dropped": 7.0}
    logger.start()
    logger.stop()  # flushes and closes
    assert {dict(labels)["outcome"]: n for labels, n in logger.counts()} == {
        "written": 3.0, "dropped": 7.0}
    files = list((tmp_path / "logs").rglob("*.parquet"))
    assert len(files) == 1
    written = pd.read_parquet(files[0])
    assert written["income"].tolist() == frame["income"].iloc[:3].tolist()


def test_payload_logger_writes_the_sample_it_is_given(tmp_path: Path) -> None:
    """--log-sample 0.25 logs about a quarter of the requests (a binomial draw: 2,000
    requests give 500 +- 19; the bounds are 5 standard deviations)."""
    from satchel.serving.monitoring.options import PayloadLogOptions
    from satchel.serving.monitoring.payloads import PayloadLogger

    logger = PayloadLogger(PayloadLogOptions(str(tmp_path / "logs"), sample=0.25,
                                             max_pending=10_000))
    frame = make_frame(2000, seed=35)
    for i in range(2000):
        logger.observe("credit", frame.iloc[[i]], np.array([i % 2]))
    logger.start()
    logger.stop()
    written = logger.written.get("credit", 0)
    assert 400 < written < 600 and not logger.dropped
    files = list((tmp_path / "logs").rglob("*.parquet"))
    assert sum(len(pd.read_parquet(f)) for f in files) == written
