"""Cost of drift monitoring: the same server with monitoring on and off, side by side.

A LogisticRegression on iris saved with a reference profile; 1-row ``dataframe_split``
requests from wrk at 8 and 32 connections, rounds interleaving the servers
(``--no-monitor`` is the baseline; the order rotates every round, so each server runs
first, middle and last equally often). A second, identical ``--no-monitor`` server (the
control) is paired with the baseline the same way: its ratio is the benchmark's own
noise and bias, the yardstick for the monitor's ratio. Every server runs with one hash
seed and no address randomisation (``--random-layout`` to let each draw its own).
Prints req/s, p50, p99, the server's CPU time per request (from /proc: steadier than
req/s on a shared machine, where other processes take the cores), the event loop
thread's CPU per request (the request path itself), the monitor's own CPU per request
(``satchel_monitor_cpu_seconds_total``) and its share of the server's CPU, and the
paired ratios: the median and the spread (quartiles, min-max) of the per-round ratios,
with the load average before and after. ``--simultaneous`` loads every server at once
each round instead. Then the monitor's own cost per request in-process, and the
memory of the sketches: one
model's monitor fed 1,000,000 one-row requests in-process (``--requests``), its state
measured as JSON and by tracemalloc.

    .venv/bin/python benchmarks/monitor_bench.py [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import loadgen as lg


def make_model(root: Path) -> tuple[Path, object]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = lg.COLUMNS
    path = root / "iris"
    satchel.save_model(LogisticRegression(max_iter=1000).fit(X, y), path,
                       input_example=X.head(3), reference_data=X)
    return path, X


def observed_requests(model_dir: Path, X: object, n: int = 150) -> list[tuple[object, object]]:
    """``n`` one-row requests scored through a data plane, as its observers receive them
    (the decoded frame and the prediction: the objects a server's monitor counts)."""
    import asyncio

    from satchel.serving.protocols.base import Inbound
    from satchel.serving.protocols.mlflow import MLFLOW
    from satchel.serving.server.dataplane import DataPlane
    from satchel.serving.server.repository import ModelRepository

    repository = ModelRepository()
    repository.add_path("iris", model_dir)
    repository.load_pending()
    plane = DataPlane(repository)
    seen: list[tuple[object, object]] = []
    plane.observe(lambda name, data, output: seen.append((data, output)))
    rows = X.values.tolist()  # type: ignore[attr-defined]

    async def go() -> None:
        for i in range(n):
            body = {"dataframe_split": {"columns": lg.COLUMNS, "data": [rows[i % len(rows)]]}}
            await plane.score(None, MLFLOW, Inbound(json.dumps(body).encode(),
                                                    content_type="application/json"))
        await plane.stop()

    asyncio.run(go())
    return seen


def counting_cost(model_dir: Path, seen: list[tuple[object, object]], requests: int,
                  per_pass: int) -> list[list[object]]:
    """The monitor's own cost per request, without tracing: ``observe`` (the request
    path) and the counting thread's CPU, fed in passes of ``per_pass`` requests (what
    its thread finds queued every 0.25 s at ``4 * per_pass`` req/s)."""
    from satchel.monitoring import Profile
    from satchel.serving.monitoring.monitor import Monitor
    from satchel.serving.monitoring.options import MonitorOptions

    profile = Profile.read(model_dir)
    monitor = Monitor(lambda name: profile, MonitorOptions(max_pending=10**7))
    observe = count = 0.0
    done = 0
    while done < requests:
        n = min(per_pass, requests - done)
        t0 = time.perf_counter()
        for i in range(done, done + n):
            data, output = seen[i % len(seen)]
            monitor.observe("iris", data, output)
        observe += time.perf_counter() - t0
        c0 = time.thread_time()
        monitor.drain()
        count += time.thread_time() - c0
        done += n
    return [[f"{requests:,}", per_pass, f"{observe / requests * 1e6:.2f}",
             f"{count / requests * 1e6:.2f}"]]


def sketch_memory(model_dir: Path, seen: list[tuple[object, object]], requests: int
                  ) -> list[list[object]]:
    """Feed ``requests`` one-row observations through a Monitor under tracemalloc (slow:
    every allocation is traced); measure its state as JSON and as traced memory."""
    from satchel.monitoring import Profile
    from satchel.serving.monitoring.monitor import Monitor
    from satchel.serving.monitoring.options import MonitorOptions

    profile = Profile.read(model_dir)
    tracemalloc.start()
    monitor = Monitor(lambda name: profile, MonitorOptions(max_pending=10**7))
    out = []
    t0 = time.perf_counter()
    done = 0
    for checkpoint in sorted({min(10_000, requests), min(100_000, requests), requests}):
        while done < checkpoint:
            data, output = seen[done % len(seen)]
            monitor.observe("iris", data, output)
            done += 1
            if done % 4096 == 0:
                monitor.drain()
        monitor.drain()
        current, peak = tracemalloc.get_traced_memory()
        windows = monitor._windows.items()
        state = len(json.dumps({n: w.to_dict() for n, (_, w) in windows}))
        slices = sum(len(w.slices) for _, (_, w) in windows)
        out.append([f"{done:,}", f"{time.perf_counter() - t0:.0f}", slices,
                    f"{state / 1024:.1f}", lg.mib(current), lg.mib(peak)])
    tracemalloc.stop()
    return out


@dataclass
class Run:
    load: lg.Load
    cpu: float  # the server's CPU seconds per request
    monitor_cpu: float | None  # its counting thread's CPU seconds per request
    loop_cpu: float = 0.0  # the event loop (main) thread's CPU seconds per request


def _loop_seconds(pid: int) -> float:
    """CPU seconds of the server's main thread (its event loop: the request path)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _monitor_cpu(port: int) -> float | None:
    return lg.metrics(port).get("satchel_monitor_cpu_seconds_total")


def paired_runs(servers: dict[str, lg.Server], script: Path, conns: int, rounds: int,
                duration: float, warmup: float, simultaneous: bool = False
                ) -> dict[str, list[Run]]:
    """wrk against each server in turn, round by round (the order rotating), with the
    server's CPU seconds per request of each run. Runs follow each other without a pause
    (short rounds keep a pair within seconds of each other on a shared machine), so the
    monitor's CPU per request is taken over all rounds: its counter lags the replies by
    up to a pass."""
    for srv in servers.values():
        lg.wrk(srv.port, script, conns, warmup)
    first = {name: _monitor_cpu(srv.port) for name, srv in servers.items()}
    out: dict[str, list[Run]] = {name: [] for name in servers}
    names = list(servers)
    for rnd in range(rounds):
        if simultaneous:
            for name, run in _together(servers, script, conns, duration).items():
                out[name].append(run)
                _progress(conns, rnd, name, run)
            continue
        shift = rnd % len(names)
        order = names[shift:] + names[:shift]
        for name in order if (rnd // len(names)) % 2 == 0 else order[::-1]:
            srv = servers[name]
            counted = _monitor_cpu(srv.port)
            cpu, loop = lg.cpu_seconds(srv.proc.pid), _loop_seconds(srv.proc.pid)
            load = lg.wrk(srv.port, script, conns, duration)
            cpu = lg.cpu_seconds(srv.proc.pid) - cpu
            loop = _loop_seconds(srv.proc.pid) - loop
            after = _monitor_cpu(srv.port)
            n = max(load.requests, 1)
            run = Run(load, cpu / n, None if counted is None or after is None
                      else (after - counted) / n, loop / n)
            out[name].append(run)
            _progress(conns, rnd, name, run)
    time.sleep(1.5)  # the monitor's last pass over the last run's requests
    for name, srv in servers.items():
        start, last = first[name], _monitor_cpu(srv.port)
        if start is not None and last is not None:
            total = (last - start) / max(sum(r.load.requests for r in out[name]), 1)
            for r in out[name]:
                r.monitor_cpu = total
    return out


def _together(servers: dict[str, lg.Server], script: Path, conns: int, duration: float
              ) -> dict[str, Run]:
    """One wrk per server, all started at once: every server meets the same moment of
    a shared machine (each takes its share of the cores, so the ratio of req/s is the
    inverse ratio of CPU per request)."""
    before = {name: (_monitor_cpu(srv.port), lg.cpu_seconds(srv.proc.pid),
                     _loop_seconds(srv.proc.pid)) for name, srv in servers.items()}
    procs = {name: lg.wrk_start(srv.port, script, conns, duration)
             for name, srv in servers.items()}
    loads = {name: lg.wrk_finish(proc) for name, proc in procs.items()}
    cpu = {name: lg.cpu_seconds(srv.proc.pid) - before[name][1]
           for name, srv in servers.items()}
    loop = {name: _loop_seconds(srv.proc.pid) - before[name][2]
            for name, srv in servers.items()}
    time.sleep(1.5)  # the monitor's last pass over the run's requests
    out = {}
    for name, srv in servers.items():
        counted, after = before[name][0], _monitor_cpu(srv.port)
        n = max(loads[name].requests, 1)
        out[name] = Run(loads[name], cpu[name] / n, None if counted is None or after is None
                        else (after - counted) / n, loop[name] / n)
    return out


def _progress(conns: int, rnd: int, name: str, run: Run) -> None:
    mon = "" if run.monitor_cpu is None else f" monitor {run.monitor_cpu * 1e6:5.1f}"
    print(f"  c={conns} round {rnd + 1} {name:<12} {run.load.rps:8.0f} req/s "
          f"p99 {run.load.p99_ms:7.2f} ms cpu {run.cpu * 1e6:6.0f} loop "
          f"{run.loop_cpu * 1e6:6.0f}{mon} us/req",
          file=sys.stderr)


def paired_table(results: dict[str, list[Run]], conns: int, baseline: str
                 ) -> list[list[object]]:
    base = results[baseline]
    rows: list[list[object]] = []
    for name, runs in results.items():
        pairs = list(zip(runs, base))
        ratios = sorted(r.load.rps / b.load.rps for r, b in pairs)
        rps = statistics.median(ratios)
        p99 = statistics.median(r.load.p99_ms / b.load.p99_ms for r, b in pairs)
        cpu = statistics.median(r.cpu / b.cpu for r, b in pairs)
        loop = statistics.median(r.loop_cpu / b.loop_cpu for r, b in pairs if b.loop_cpu)
        mon = [r.monitor_cpu for r in runs if r.monitor_cpu is not None]
        share = [r.monitor_cpu / r.cpu for r in runs if r.monitor_cpu is not None]
        rows.append([conns, name, f"{statistics.median(r.load.rps for r in runs):.0f}",
                     f"{statistics.median(r.load.p50_ms for r in runs):.2f}",
                     f"{statistics.median(r.load.p99_ms for r in runs):.2f}",
                     f"{statistics.median(r.cpu for r in runs) * 1e6:.0f}",
                     f"{statistics.median(r.loop_cpu for r in runs) * 1e6:.0f}",
                     f"{statistics.median(mon) * 1e6:.1f}" if mon else "-",
                     f"{statistics.median(share):.2%}" if share else "-",
                     sum(r.load.non2xx + r.load.socket_errors for r in runs),
                     f"{rps:.3f}", _spread(ratios), f"{p99:.3f}", f"{cpu:.3f}",
                     f"{loop:.3f}"])
    return rows


def _spread(ratios: list[float]) -> str:
    """Quartiles and extremes of the per-round ratios: the noise the median hides."""
    if len(ratios) < 2:
        return "-"
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{q1:.3f}-{q3:.3f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--requests", type=int, default=1_000_000,
                    help="one-row requests fed to the in-process monitor (0: skip)")
    ap.add_argument("--no-load", action="store_true", help="only the sketch memory")
    ap.add_argument("--simultaneous", action="store_true",
                    help="load every server at once each round instead of in turn")
    ap.add_argument("--random-layout", dest="same_layout", action="store_false",
                    help="let each server draw its own hash seed and address layout")
    ap.add_argument("--no-control", action="store_true",
                    help="without the second --no-monitor server (the noise yardstick)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="satchel-monbench-") as tmp:
        work = Path(tmp)
        model_dir, X = make_model(work)
        if not args.no_load:
            load(args, work, model_dir)
        seen = observed_requests(model_dir, X)
        print(f"\nthe monitor's cost per one-row request, in-process "
              f"({len(lg.COLUMNS)} inputs + 1 output column)")
        print(lg.table([row for per_pass in (100, 400, 2000)
                        for row in counting_cost(model_dir, seen, 100_000, per_pass)],
                       ["requests", "per pass", "observe us/req", "count cpu us/req"]))
        if args.requests:
            print("\nsketch state of one model fed one-row requests in-process "
                  "(tracemalloc on; the drain runs every 4,096 requests)")
            print(lg.table(sketch_memory(model_dir, seen, args.requests),
                           ["requests", "seconds", "window slices", "state KiB",
                            "traced now MiB", "traced peak MiB"]))
    return 0


def load(args: argparse.Namespace, work: Path, model_dir: Path) -> None:
    script = lg.wrk_script(work, lg.split_body(1))
    log = work / "server.log"
    # Two processes of one program differ by several percent with the hash seed and the
    # address layout they draw (an identical control server ran 5-17% apart from the
    # baseline): every server gets the same seed and, where setarch exists, no address
    # randomisation, so what differs is the monitor.
    env = {"PYTHONHASHSEED": "0"} if args.same_layout else {}
    prefix: tuple[str, ...] = ()
    if args.same_layout and shutil.which("setarch"):
        prefix = ("setarch", platform.machine(), "-R")
    start = functools.partial(lg.start_server, log=log, env=env, prefix=prefix)
    servers = {"monitor off": start(f"iris={model_dir}", "--no-monitor"),
               "monitor on": start(f"iris={model_dir}")}
    if not args.no_control:
        servers["off (control)"] = start(f"iris={model_dir}", "--no-monitor")
    load_before = _loadavg()
    rows: list[list[object]] = []
    try:
        for c in args.conns:
            results = paired_runs(servers, script, c, args.rounds, args.duration, args.warmup,
                                  args.simultaneous)
            rows += paired_table(results, c, "monitor off")
        counted = lg.metrics(servers["monitor on"].port)
    finally:
        for srv in servers.values():
            lg.stop(srv.proc)
    how = "simultaneous" if args.simultaneous else "interleaved"
    layout = "one hash seed, no ASLR" if args.same_layout else "each its own layout"
    print(f"1-row requests ({layout}), {args.rounds} {how} rounds of {args.duration:g} s "
          "(ratios: medians of paired runs against 'monitor off'; spread: quartiles "
          f"(min-max) of the per-round ratios); load average {load_before} before, "
          f"{_loadavg()} after")
    print(lg.table(rows, ["conns", "server", "req/s", "p50 ms", "p99 ms", "cpu us/req",
                          "loop us/req", "monitor us/req", "monitor share", "errors",
                          "req/s ratio", "ratio spread", "p99 ratio", "cpu ratio",
                          "loop ratio"]))
    done = {k: v for k, v in counted.items()
            if k.startswith(("satchel_monitor_requests", "satchel_monitor_sample_rate",
                             "satchel_monitor_cpu"))}
    print(f"\nmonitor counters after the runs: {done}")


if __name__ == "__main__":
    sys.exit(main())
