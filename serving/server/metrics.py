"""Prometheus metrics in the text exposition format (0.0.4), correct with several workers.

Each process counts in memory (a dict increment per event: no lock, no I/O on the
request path). With several worker processes, each one rewrites a small JSON snapshot
of its counts in a shared directory, atomically (write, then rename), about once a
second and when it stops; ``/metrics`` on any worker writes its own snapshot, then sums
every worker's file. Counters and histograms of workers that died stay in the sum, so
they never go backwards; gauges (in-flight, queued) count live workers only. The price
of this design, against a shared memory map, is staleness: another worker's last
second may be missing from a scrape, and a worker killed with SIGKILL loses at most
its last second of counts. No client library is needed for this little.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("satchel.serving")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Distinct predict-call sizes (rows) one worker itemizes per model in the statistics'
# batch_stats: request sizes are the client's to choose, the series must stay bounded.
MAX_BATCH_SIZES = 64

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Family:
    """A metric family: its name, type, help text and, for histograms, bucket bounds."""

    name: str
    type: str  # counter | gauge | histogram
    help: str
    buckets: tuple[float, ...] = ()
    aggregate: str = "sum"  # gauges: "sum" over live workers, or "max"
    # False: kept, summed over workers and read by the statistics, but not on /metrics
    # (e.g. a label per batch size: too many series for Prometheus, what Triton reports)
    page: bool = True


FAMILIES = {f.name: f for f in (
    Family("satchel_requests_total", "counter", "HTTP requests answered, by route and status."),
    Family("satchel_request_duration_seconds", "histogram",
           "Time from request start to the last byte of the reply, by route.", LATENCY_BUCKETS),
    Family("satchel_rows_predicted_total", "counter", "Input rows scored, by model."),
    Family("satchel_predict_calls_total", "counter", "Calls to the model's predict, by model."),
    Family("satchel_batch_requests", "histogram",
           "Requests merged into one predict call, by model.", BATCH_BUCKETS),
    Family("satchel_batch_rows", "histogram", "Rows in one predict call, by model.",
           BATCH_BUCKETS),
    Family("satchel_inference_duration_seconds", "histogram",
           "Time to score one request of a served model, from lookup to encoded reply, by "
           "model and outcome (success or fail).", LATENCY_BUCKETS),
    Family("satchel_predict_duration_seconds", "histogram",
           "Time in one call to the model's predict (a batch counts once), by model.",
           LATENCY_BUCKETS),
    Family("satchel_request_stage_seconds_total", "counter",
           "Time successful requests spent in each stage, by model and stage: queue "
           "(waiting for their predict call to start), compute_input (decoding), "
           "compute_infer (the predict call they were in), compute_output (encoding)."),
    Family("satchel_batch_calls_total", "counter",
           "Predict calls by model and rows in the call.", page=False),
    Family("satchel_batch_stage_seconds_total", "counter",
           "Time predict calls spent in each stage, by model, rows in the call and stage.",
           page=False),
    Family("satchel_model_memory_bytes", "gauge",
           "Growth of the process's resident memory while each model loaded.",
           aggregate="max"),
    Family("satchel_model_last_inference_timestamp_seconds", "gauge",
           "Unix time of the last request scored (or refused) for each model.",
           aggregate="max"),
    Family("satchel_payload_log_rows_total", "counter",
           "Rows written to the payload log, or requests dropped when its writer fell "
           "behind, by model and outcome."),
    Family("satchel_requests_in_flight", "gauge", "Requests being handled now."),
    Family("satchel_requests_queued", "gauge",
           "Scoring requests waiting for a predict call to start."),
    Family("satchel_model_load_seconds", "gauge", "Seconds it took to load each model.",
           aggregate="max"),
    Family("satchel_model_version", "gauge",
           "Registry version each model serves (models:/ sources).", aggregate="max"),
    Family("satchel_workers", "gauge", "Worker processes reporting metrics."),
    Family("satchel_predict_threads_busy", "gauge",
           "Worker threads running a call now, abandoned ones included."),
    Family("satchel_predict_threads_abandoned", "gauge",
           "Worker threads still running a call whose request already timed out."),
)}


class Metrics:
    """One process's counts, and the ``/metrics`` page for all worker processes.

    Args:
        directory: where every worker's snapshot lives (None: this process only).
        flush_interval: seconds between snapshots (with a directory).
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 flush_interval: float = 1.0) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.flush_interval = flush_interval
        self._counters: dict[tuple[str, Labels], float] = {}
        self._hists: dict[tuple[str, Labels], list[float]] = {}  # bucket counts, sum, count
        self._gauges: dict[tuple[str, Labels], float] = {}
        self._live_gauges: list[tuple[str, Labels, Callable[[], float]]] = []
        self._live_counters: list[tuple[str, Callable[[], Iterable[tuple[Labels, float]]]]] = []
        self.in_flight = 0
        self._last_flush = 0.0
        self._collectors: list[Callable[[], str]] = []
        self._batch_sizes: dict[str, set[int]] = {}  # per model: sizes itemized so far

    # --- the request path --------------------------------------------------------------

    def inc(self, name: str, labels: Labels = (), value: float = 1.0) -> None:
        key = (name, labels)
        self._counters[key] = self._counters.get(key, 0.0) + value

    def observe(self, name: str, labels: Labels, value: float) -> None:
        key = (name, labels)
        hist = self._hists.get(key)
        buckets = FAMILIES[name].buckets
        if hist is None:
            hist = self._hists[key] = [0.0] * (len(buckets) + 3)  # + Inf, sum, count
        # bucket i counts values <= buckets[i] (made cumulative when written)
        hist[bisect_left(buckets, value)] += 1
        hist[-2] += value
        hist[-1] += 1

    def request(self, route: str, status: int, seconds: float) -> None:
        """One answered request (``route`` is the route's template, not the raw path)."""
        labels = (("route", route), ("status", str(status)))
        self.inc("satchel_requests_total", labels)
        self.observe("satchel_request_duration_seconds", (("route", route),), seconds)

    def rows(self, model: str, rows: int) -> None:
        self.inc("satchel_rows_predicted_total", (("model", model),), rows)

    def batch(self, model: str, requests: int, rows: int, seconds: float | None = None,
              input_seconds: float = 0.0, output_seconds: float = 0.0) -> None:
        """One predict call holding ``requests`` requests and ``rows`` rows (and taking
        ``seconds``, when timed; ``input_seconds`` and ``output_seconds`` to make its
        input and its output, for the per-size statistics)."""
        labels = (("model", model),)
        self.inc("satchel_predict_calls_total", labels)
        self.observe("satchel_batch_requests", labels, requests)
        self.observe("satchel_batch_rows", labels, rows)
        if seconds is None:
            return
        self.observe("satchel_predict_duration_seconds", labels, seconds)
        sizes = self._batch_sizes.setdefault(model, set())
        if rows not in sizes:
            if len(sizes) >= MAX_BATCH_SIZES:
                return  # the statistics itemize the first sizes seen; /metrics has all
            sizes.add(rows)
        size = (("model", model), ("rows", str(rows)))
        self.inc("satchel_batch_calls_total", size)
        for stage, value in (("compute_input", input_seconds), ("compute_infer", seconds),
                             ("compute_output", output_seconds)):
            self.inc("satchel_batch_stage_seconds_total", (*size, ("stage", stage)), value)

    def stages(self, model: str, queue: float, compute_input: float, compute_infer: float,
               compute_output: float) -> None:
        """Where one successful request of ``model`` spent its time (seconds per stage;
        see the ``satchel_request_stage_seconds_total`` family)."""
        for stage, value in (("queue", queue), ("compute_input", compute_input),
                             ("compute_infer", compute_infer),
                             ("compute_output", compute_output)):
            key = ("satchel_request_stage_seconds_total", (("model", model), ("stage", stage)))
            self._counters[key] = self._counters.get(key, 0.0) + value

    def inference(self, model: str, ok: bool, seconds: float) -> None:
        """One scoring request of a served model answered: successfully, or with an error
        (the per-model statistics of ``ModelStatistics`` and ``/v2/models/{name}/stats``)."""
        self.observe("satchel_inference_duration_seconds",
                     (("model", model), ("outcome", "success" if ok else "fail")), seconds)
        self._gauges[("satchel_model_last_inference_timestamp_seconds",
                      (("model", model),))] = time.time()

    def set_gauge(self, name: str, labels: Labels, value: float) -> None:
        self._gauges[(name, labels)] = value

    def gauge_function(self, name: str, labels: Labels, fn: Callable[[], float]) -> None:
        """A gauge read when written (e.g. a queue's length)."""
        self._live_gauges.append((name, labels, fn))

    def counter_function(self, name: str,
                         fn: Callable[[], Iterable[tuple[Labels, float]]]) -> None:
        """Counters kept by someone else (e.g. a background thread, which must not write
        into this object's dicts while a snapshot iterates them), read when a snapshot is
        taken and merged across workers like the counters counted here."""
        self._live_counters.append((name, fn))

    def add_collector(self, render: Callable[[], str]) -> None:
        """Families rendered by someone else (e.g. drift), appended to the page as text.

        ``render`` merges across workers itself; it is called on each scrape.
        """
        self._collectors.append(render)

    # --- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        gauges = dict(self._gauges)
        gauges[("satchel_requests_in_flight", ())] = float(self.in_flight)
        for name, labels, fn in self._live_gauges:
            try:
                gauges[(name, labels)] = gauges.get((name, labels), 0.0) + float(fn())
            except Exception:  # noqa: BLE001 - a broken gauge must not break /metrics
                log.exception("gauge %s failed", name)
        gauges[("satchel_workers", ())] = 1.0
        counters = dict(self._counters)
        for name, counted in self._live_counters:
            try:
                for labels, value in counted():
                    counters[(name, labels)] = counters.get((name, labels), 0.0) + value
            except Exception:  # noqa: BLE001 - a broken counter must not break /metrics
                log.exception("counter %s failed", name)
        return {
            "pid": os.getpid(),
            "counters": [[n, list(lb), v] for (n, lb), v in counters.items()],
            "histograms": [[n, list(lb), h] for (n, lb), h in self._hists.items()],
            "gauges": [[n, list(lb), v] for (n, lb), v in gauges.items()],
        }

    @property
    def path(self) -> Path | None:
        """This process's snapshot file."""
        return None if self.directory is None else self.directory / f"worker-{os.getpid()}.json"

    def flush(self) -> None:
        """Rewrite this process's snapshot atomically (no-op without a directory)."""
        path = self.path
        if path is None:
            return
        data = json.dumps(self.snapshot(), separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            log.exception("cannot write metrics snapshot %s", path)
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self._last_flush = time.monotonic()

    def snapshots(self) -> list[tuple[dict[str, Any], bool]]:
        """Every worker's snapshot with whether that worker is alive; this one's is fresh."""
        own = self.snapshot()
        if self.directory is None:
            return [(own, True)]
        self.flush()
        out: list[tuple[dict[str, Any], bool]] = [(own, True)]
        for path in sorted(self.directory.glob("worker-*.json")):
            if path == self.path:
                continue
            try:
                snap = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now, or gone
            out.append((snap, _alive(int(snap.get("pid", 0)))))
        return out

    # --- the page ---------------------------------------------------------------------

    def render(self) -> str:
        """The ``/metrics`` page: every worker's counts summed."""
        page = format_page(*self.merged())
        for collect in self._collectors:
            try:
                page += collect()
            except Exception:  # noqa: BLE001 - a broken collector must not break /metrics
                log.exception("a metrics collector failed")
        return page

    def merged(self) -> tuple[dict[tuple[str, Labels], float],
                              dict[tuple[str, Labels], list[float]],
                              dict[tuple[str, Labels], float]]:
        """Every worker's counters, histograms and gauges, summed as ``/metrics`` shows
        them (histograms: per-bucket counts, then sum and count)."""
        counters: dict[tuple[str, Labels], float] = {}
        hists: dict[tuple[str, Labels], list[float]] = {}
        gauges: dict[tuple[str, Labels], float] = {}
        for snap, alive in self.snapshots():
            for name, labels, value in snap.get("counters", []):
                key = (name, _labels(labels))
                counters[key] = counters.get(key, 0.0) + value
            for name, labels, hist in snap.get("histograms", []):
                key = (name, _labels(labels))
                have = hists.get(key)
                hists[key] = list(hist) if have is None else [a + b for a, b in zip(have, hist)]
            for name, labels, value in snap.get("gauges", []):
                family = FAMILIES.get(name)
                if family is None:
                    continue
                key = (name, _labels(labels))
                if family.aggregate == "max":
                    gauges[key] = max(gauges.get(key, value), value)
                elif alive:
                    gauges[key] = gauges.get(key, 0.0) + value
        return counters, hists, gauges


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _labels(raw: Iterable[Sequence[str]]) -> Labels:
    return tuple((str(k), str(v)) for k, v in raw)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    items = list(labels) + ([extra] if extra else [])
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_page(counters: dict[tuple[str, Labels], float],
                hists: dict[tuple[str, Labels], list[float]],
                gauges: dict[tuple[str, Labels], float]) -> str:
    """Prometheus text format: ``# HELP``/``# TYPE`` then samples, one family at a time."""
    lines: list[str] = []
    for family in FAMILIES.values():
        if not family.page:
            continue
        name = family.name
        if family.type == "counter":
            samples = sorted((lb, v) for (n, lb), v in counters.items() if n == name)
        elif family.type == "gauge":
            samples = sorted((lb, v) for (n, lb), v in gauges.items() if n == name)
        else:
            samples = []
        series = sorted((lb, h) for (n, lb), h in hists.items() if n == name)
        lines.append(f"# HELP {name} {family.help}")
        lines.append(f"# TYPE {name} {family.type}")
        for labels, value in samples:
            lines.append(f"{name}{_label_text(labels)} {_num(value)}")
        for labels, hist in series:
            cumulative = 0.0
            for bound, count in zip((*family.buckets, math.inf), hist[:-2]):
                cumulative += count
                le = "+Inf" if math.isinf(bound) else _num(float(bound))
                lines.append(f"{name}_bucket{_label_text(labels, ('le', le))} "
                             f"{_num(cumulative)}")
            lines.append(f"{name}_sum{_label_text(labels)} {_num(hist[-2])}")
            lines.append(f"{name}_count{_label_text(labels)} {_num(hist[-1])}")
    return "\n".join(lines) + "\n"


def parse_page(text: str) -> dict[str, float]:
    """Samples of a text-format page as ``{'name{labels}': value}`` (for tests and tools)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out
