"""/metrics: the text format, and counts summed over worker processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from satchel.serving.server.metrics import FAMILIES, Metrics, format_page, parse_page

# one sample line of the text exposition format
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?'
                    r" (-?[0-9.]+([eE][+-]?[0-9]+)?|\+Inf|-Inf|NaN)$")


def check_format(text: str) -> None:
    """Every line is a HELP/TYPE comment or a well-formed sample; histograms are complete."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram")
            assert name not in typed, f"{name} typed twice"
            typed[name] = kind
            continue
        assert SAMPLE.match(line), f"malformed sample line: {line!r}"
        name = re.split(r"[{ ]", line)[0]
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"{name} has no TYPE line"


def test_page_format_and_cumulative_buckets() -> None:
    m = Metrics()
    for seconds in (0.0005, 0.003, 0.003, 2.0, 100.0):
        m.request("/invocations", 200, seconds)
    m.request("/invocations", 400, 0.001)
    m.rows("iris", 7)
    m.batch("iris", 3, 5)
    m.set_gauge("satchel_model_load_seconds", (("model", "iris"),), 0.25)
    text = m.render()
    check_format(text)
    s = parse_page(text)
    assert s['satchel_requests_total{route="/invocations",status="200"}'] == 5
    assert s['satchel_requests_total{route="/invocations",status="400"}'] == 1
    buckets = {k: v for k, v in s.items()
               if k.startswith("satchel_request_duration_seconds_bucket")}
    assert s['satchel_request_duration_seconds_bucket{route="/invocations",le="0.001"}'] == 2
    assert s['satchel_request_duration_seconds_bucket{route="/invocations",le="0.005"}'] == 4
    assert s['satchel_request_duration_seconds_bucket{route="/invocations",le="+Inf"}'] == 6
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative
    assert s['satchel_request_duration_seconds_count{route="/invocations"}'] == 6
    assert s['satchel_rows_predicted_total{model="iris"}'] == 7
    assert s['satchel_batch_requests_bucket{model="iris",le="4"}'] == 1
    assert s['satchel_batch_requests_bucket{model="iris",le="2"}'] == 0
    assert s['satchel_model_load_seconds{model="iris"}'] == 0.25
    assert s["satchel_requests_in_flight"] == 0


def test_label_values_are_escaped() -> None:
    text = format_page({("satchel_requests_total", (("route", 'a"b\\c\nd'),)): 1.0}, {}, {})
    assert 'route="a\\"b\\\\c\\nd"' in text
    check_format(text)


def test_workers_sum_and_dead_workers_keep_counters_not_gauges(tmp_path: Path) -> None:
    # a worker that has exited: its snapshot file stays behind
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f"worker-{dead_pid}.json").write_text(json.dumps({
        "pid": dead_pid,
        "counters": [["satchel_requests_total", [["route", "/ping"], ["status", "200"]], 4]],
        "histograms": [],
        "gauges": [["satchel_requests_in_flight", [], 9], ["satchel_workers", [], 1],
                   ["satchel_model_load_seconds", [["model", "m"]], 3.0]],
    }))
    a = Metrics(tmp_path)
    a.request("/ping", 200, 0.001)
    a.in_flight = 2
    a.set_gauge("satchel_model_load_seconds", (("model", "m"),), 1.0)
    s = parse_page(a.render())
    assert s['satchel_requests_total{route="/ping",status="200"}'] == 5
    assert s["satchel_requests_in_flight"] == 2  # the dead worker's 9 is gone
    assert s["satchel_workers"] == 1
    assert s['satchel_model_load_seconds{model="m"}'] == 3.0  # max, not sum
    assert (tmp_path / f"worker-{os.getpid()}.json").exists()


def test_every_family_is_written_even_when_empty() -> None:
    text = Metrics().render()
    for name, family in FAMILIES.items():
        assert (f"# TYPE {name} {family.type}" in text) == family.page


# --- a real server -----------------------------------------------------------------------

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]] * 3}})


def _page(server: Any) -> dict[str, float]:
    reply = server.get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    check_format(reply.body.decode())
    return parse_page(reply.body.decode())


def test_metrics_of_one_server(iris_model_dir: Path, start_server: Any) -> None:
    with start_server(iris_model_dir, "--name", "iris") as server:
        for _ in range(5):
            assert server.request("POST", "/invocations", ROW, "application/json").status == 200
        server.request("POST", "/invocations", "{", "application/json")
        server.get("/no/such/path/1")
        server.get("/no/such/path/2")
        s = _page(server)
        assert s['satchel_requests_total{route="/invocations",status="200"}'] == 5
        assert s['satchel_requests_total{route="/invocations",status="400"}'] == 1
        assert s['satchel_requests_total{route="other",status="404"}'] == 2  # no raw paths
        assert s['satchel_request_duration_seconds_count{route="/invocations"}'] == 6
        assert s['satchel_rows_predicted_total{model="iris"}'] == 15
        assert s['satchel_batch_rows_sum{model="iris"}'] == 15
        assert s['satchel_model_load_seconds{model="iris"}'] > 0
        assert s["satchel_requests_in_flight"] == 1  # the /metrics request itself
        assert s["satchel_requests_queued"] == 0
        assert s["satchel_workers"] == 1


def test_metrics_add_up_over_two_workers(iris_model_dir: Path, start_server: Any) -> None:
    with start_server(iris_model_dir, "--name", "iris", "--workers", "2",
                      env={"SATCHEL_METRICS_INTERVAL": "0.05"}) as server:
        pids = set(children(server.proc.pid))
        assert len(pids) == 2
        # each request on a new connection: the kernel spreads them over both workers
        for _ in range(40):
            assert server.request("POST", "/invocations", ROW, "application/json").status == 200
        time.sleep(0.3)  # every worker has written its snapshot since
        files = sorted(p.name for p in Path(_metrics_dir(server)).glob("worker-*.json"))
        assert files == sorted(f"worker-{pid}.json" for pid in pids)
        per_worker = [json.loads((Path(_metrics_dir(server)) / f).read_text()) for f in files]
        served = [sum(v for n, lb, v in w["counters"] if n == "satchel_requests_total"
                      and ["route", "/invocations"] in lb) for w in per_worker]
        assert all(n > 0 for n in served)  # both workers scored some
        s = _page(server)  # answered by either worker: the sum of both
        assert s['satchel_requests_total{route="/invocations",status="200"}'] == 40
        assert s['satchel_rows_predicted_total{model="iris"}'] == 120
        assert s["satchel_workers"] == 2


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


def _metrics_dir(server: Any) -> str:
    """The supervisor's metrics directory: the one holding its workers' snapshots."""
    for tmp in Path(tempfile.gettempdir()).glob("satchel-metrics-*"):
        if any(tmp.glob(f"worker-{pid}.json") for pid in children(server.proc.pid)):
            return str(tmp)
    raise AssertionError("no metrics directory found")


def test_batch_sizes_are_itemized_up_to_a_bound_and_kept_off_the_page() -> None:
    from satchel.serving.server.metrics import MAX_BATCH_SIZES, Metrics, parse_page

    m = Metrics()
    for rows in range(1, 3 * MAX_BATCH_SIZES):  # a client choosing every size it likes
        m.batch("a", 1, rows, 0.001, 0.0005, 0.0002)
    m.batch("a", 1, 1, 0.001)  # a size seen before still counts
    counters, _, _ = m.merged()
    sizes = {dict(lb)["rows"]: v for (n, lb), v in counters.items()
             if n == "satchel_batch_calls_total"}
    assert len(sizes) == MAX_BATCH_SIZES and sizes["1"] == 2
    page = m.render()
    assert "satchel_batch_calls_total" not in page
    assert "satchel_batch_stage_seconds_total" not in page
    # the predict-call histogram still counts every call
    assert parse_page(page)['satchel_predict_calls_total{model="a"}'] == 3 * MAX_BATCH_SIZES


def test_request_stages_sum_per_model() -> None:
    from satchel.serving.server.metrics import Metrics, parse_page

    m = Metrics()
    m.stages("a", 0.5, 0.25, 1.0, 0.125)
    m.stages("a", 0.5, 0.25, 1.0, 0.125)
    page = parse_page(m.render())
    assert page['satchel_request_stage_seconds_total{model="a",stage="queue"}'] == 1.0
    assert page['satchel_request_stage_seconds_total{model="a",stage="compute_output"}'] == 0.25
