"""Cost of drift monitoring: the same server with monitoring on and off, side by side.

A LogisticRegression on iris saved with a reference profile; 1-row ``dataframe_split``
requests from wrk at 8 and 32 connections, rounds alternating between the two servers
(``--no-monitor`` is the baseline). Prints req/s, p50, p99 and the paired ratios. Then
the memory of the sketches: one model's monitor fed 1,000,000 one-row requests
in-process, its state measured as JSON and by tracemalloc.

    .venv/bin/python benchmarks/monitor_bench.py [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
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


def sketch_memory(model_dir: Path, X: object, requests: int) -> list[list[object]]:
    """Feed ``requests`` one-row observations through a Monitor; measure its state."""
    import satchel
    from satchel.monitoring import Profile
    from satchel.serving.monitoring.monitor import Monitor
    from satchel.serving.monitoring.options import MonitorOptions

    model = satchel.load_model(model_dir)
    profile = Profile.read(model_dir)
    rows = [X.iloc[[i % 150]] for i in range(150)]  # type: ignore[attr-defined]
    outs = [model.predict(r) for r in rows]
    monitor = Monitor(lambda name: profile, MonitorOptions(max_pending=10**7))
    out = []
    tracemalloc.start()
    t0 = time.perf_counter()
    done = 0
    for checkpoint in (10_000, 100_000, requests):
        while done < checkpoint:
            monitor.observe("iris", rows[done % 150], outs[done % 150])
            done += 1
            if done % 4096 == 0:
                monitor.drain()
        monitor.drain()
        current, peak = tracemalloc.get_traced_memory()
        state = len(json.dumps({n: w.to_dict() for n, (_, w) in monitor._windows.items()}))
        out.append([f"{done:,}", f"{time.perf_counter() - t0:.1f}",
                    f"{done / (time.perf_counter() - t0):,.0f}", f"{state / 1024:.1f}",
                    lg.mib(current), lg.mib(peak)])
    tracemalloc.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--requests", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="satchel-monbench-") as tmp:
        work = Path(tmp)
        model_dir, X = make_model(work)
        script = lg.wrk_script(work, lg.split_body(1))
        log = work / "server.log"
        servers = {"monitor off": lg.start_server(f"iris={model_dir}", "--no-monitor", log=log),
                   "monitor on": lg.start_server(f"iris={model_dir}", log=log)}
        try:
            results = lg.paired_loads(servers, script, args.conns, args.rounds,
                                      args.duration, args.warmup)
            counted = lg.metrics(servers["monitor on"].port)
        finally:
            for srv in servers.values():
                lg.stop(srv.proc)
        print(f"1-row requests, {args.rounds} interleaved rounds of {args.duration:g} s "
              "(ratios: paired medians against 'monitor off')")
        print(lg.table(lg.paired_rows(results, args.conns, servers, "monitor off"),
                       ["conns", "server", "req/s", "p50 ms", "p99 ms", "errors",
                        "req/s ratio", "p99 ratio"]))
        done = {k: v for k, v in counted.items() if k.startswith("satchel_monitor_requests")}
        print(f"\nmonitor counters after the runs: {done}")
        print(f"\nsketch state of one model fed one-row requests in-process "
              f"({len(lg.COLUMNS)} inputs + 1 output column)")
        print(lg.table(sketch_memory(model_dir, X, args.requests),
                       ["requests", "seconds", "req/s counted", "state KiB",
                        "traced now", "traced peak"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
