"""Adaptive batching against none: a 100-tree RandomForest, 1-row requests, wrk.

Two ``satchel serve`` processes (one worker each, access log off) serve the same model:
one with batching (the default), one with ``--no-batching``. wrk loads each in turn at
each connection count; rounds alternate between the servers so both see the same
background. Prints req/s, p50, p99, non-2xx, the ratios, and the mean batch size the
batching server formed (from its /metrics).

    .venv/bin/python benchmarks/batching_bench.py [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import loadgen as lg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", default="32")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--extra", default="", help="extra serve args for the batching server")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="batching-bench-"))
    servers: dict[str, lg.Server] = {}
    try:
        model = lg.make_forest(work, args.trees)
        servers["batching"] = lg.start_server(model, *args.extra.split(), log=work / "b.log")
        servers["no-batching"] = lg.start_server(model, "--no-batching", log=work / "n.log")
        script = lg.wrk_script(work, lg.split_body(1))
        conns = [int(c) for c in args.connections.split(",")]
        results = lg.paired_loads(servers, script, conns, args.rounds, args.duration,
                                  args.warmup)
        m = lg.metrics(servers["batching"].port)
        label = f'model="forest{args.trees}"'
        calls = m.get(f"satchel_batch_requests_count{{{label}}}", 0.0)
        merged = m.get(f"satchel_batch_requests_sum{{{label}}}", 0.0)
        rows = lg.paired_rows(results, conns, servers, "no-batching")
        print(f"\n{args.trees}-tree RandomForest, 1-row dataframe_split, wrk -t1, "
              f"{args.duration:g} s x {args.rounds} rounds (medians; ratios of paired runs "
              "vs no-batching)\n")
        print(lg.table(rows, ["conns", "server", "req/s", "p50 ms", "p99 ms", "errors",
                              "x req/s", "x p99"]))
        if calls:
            print(f"\nbatching server: {merged:.0f} requests in {calls:.0f} predict calls, "
                  f"{merged / calls:.1f} requests per call on average")
    finally:
        for srv in servers.values():
            lg.stop(srv.proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
