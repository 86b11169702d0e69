"""Drift figures in Prometheus' text format, per model, column and side.

Families (gauges): ``satchel_drift_psi``, ``satchel_drift_js_distance``,
``satchel_drift_null_rate``, ``satchel_drift_out_of_range_rate`` and
``satchel_drift_window_rows``, labelled ``model``, ``column``, ``side`` (input or
output; output drift is the prediction distribution's); counters
``satchel_monitor_requests_total{model,outcome="counted|skipped"}`` and
``satchel_monitor_cpu_seconds_total`` (what counting costs).
"""

from __future__ import annotations

from collections.abc import Iterable

from satchel.serving.monitoring.monitor import Monitor

_GAUGES = (
    ("satchel_drift_psi", "psi", "Population stability index against the reference profile."),
    ("satchel_drift_js_distance", "js_distance",
     "Jensen-Shannon distance (base 2) against the reference profile."),
    ("satchel_drift_null_rate", "null_rate", "Share of null values in the window."),
    ("satchel_drift_out_of_range_rate", "out_of_range_rate",
     "Share of values outside the reference's range or categories."),
    ("satchel_drift_window_rows", "count", "Rows in the window (decayed weights)."),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(monitor: Monitor, models: Iterable[str]) -> str:
    """The drift families for ``models`` (every worker merged)."""
    samples: dict[str, list[str]] = {name: [] for name, _, _ in _GAUGES}
    requests: list[str] = []
    for model in models:
        tally, totals = monitor.merged(model)
        ins, outs = tally.figures()
        for side, figures in (("input", ins), ("output", outs)):
            for f in figures:
                labels = (f'model="{_escape(model)}",column="{_escape(f.column)}",'
                          f'side="{side}"')
                values = f.to_dict()
                for name, key, _ in _GAUGES:
                    value = values[key]
                    if value is not None:
                        samples[name].append(f"{name}{{{labels}}} {float(value)!r}")
        for outcome in ("counted", "skipped"):
            requests.append(f'satchel_monitor_requests_total{{model="{_escape(model)}",'
                            f'outcome="{outcome}"}} {totals[outcome]!r}')
    lines: list[str] = []
    for name, _, help_text in _GAUGES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples[name]]
    lines += ["# HELP satchel_monitor_sample_rate Share of requests this worker counts "
              "(below 1 when counting all would exceed the monitor's CPU budget).",
              "# TYPE satchel_monitor_sample_rate gauge",
              f"satchel_monitor_sample_rate {monitor.admit!r}"]
    lines += ["# HELP satchel_monitor_requests_total Scored requests counted into drift "
              "windows, or skipped when the monitor fell behind.",
              "# TYPE satchel_monitor_requests_total counter", *requests]
    lines += ["# HELP satchel_monitor_cpu_seconds_total CPU time the drift monitors' "
              "counting threads have used (all workers).",
              "# TYPE satchel_monitor_cpu_seconds_total counter",
              f"satchel_monitor_cpu_seconds_total {monitor.cpu_total()!r}"]
    return "\n".join(lines) + "\n"
