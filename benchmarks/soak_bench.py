"""Soak: steady load for several minutes; every reply 2xx, and memory stays flat.

wrk loads one ``satchel serve`` (default options: batching on) with 32 connections for
``--minutes`` one-minute runs back to back, valid 1-row requests to a 100-tree
RandomForest. After each minute the server's RSS (sum over its processes) is read from
``/proc``. Prints req/s, p99 and non-2xx per minute and the RSS growth from minute 1
to the last minute (target: zero non-2xx, growth <= 10%).

    .venv/bin/python benchmarks/soak_bench.py [--minutes 5] [--workers 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import loadgen as lg


def rss(pid: int) -> int:
    return sum(lg.rollup(p)["Rss"] for p in [pid, *lg.children(pid)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--minutes", type=int, default=5)
    ap.add_argument("--minute", type=float, default=60.0, help="seconds per step")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--trees", type=int, default=100)
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="soak-bench-"))
    srv = None
    try:
        model = lg.make_forest(work, args.trees)
        srv = lg.start_server(model, "--workers", str(args.workers), log=work / "soak.log")
        script = lg.wrk_script(work, lg.split_body(1))
        rows = []
        rss_by_minute = []
        total_bad = 0
        for minute in range(1, args.minutes + 1):
            run = lg.wrk(srv.port, script, 32, args.minute)
            now = rss(srv.proc.pid)
            rss_by_minute.append(now)
            bad = run.non2xx + run.socket_errors
            total_bad += bad
            rows.append([minute, run.requests, f"{run.rps:.0f}", f"{run.p99_ms:.1f}", bad,
                         lg.mib(now)])
            print(f"  minute {minute}: {run.rps:.0f} req/s, {bad} failed, RSS "
                  f"{lg.mib(now).strip()} MiB", file=sys.stderr)
        growth = rss_by_minute[-1] / rss_by_minute[0] - 1
        print(f"\nsoak: {args.minutes} x {args.minute:g} s, wrk -t1 -c32, 1-row requests, "
              f"{args.trees}-tree RandomForest, --workers {args.workers}, batching on\n")
        print(lg.table(rows, ["minute", "requests", "req/s", "p99 ms", "non-2xx+errors",
                              "RSS MiB"]))
        print(f"\nnon-2xx or failed requests in total: {total_bad}; RSS growth minute 1 -> "
              f"{args.minutes}: {growth * 100:+.1f}%")
    finally:
        if srv is not None:
            lg.stop(srv.proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
