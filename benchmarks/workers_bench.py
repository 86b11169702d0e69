"""Worker processes: throughput, shared memory, and a worker killed under load.

1. req/s of ``--workers 2`` against ``--workers 1`` on a model whose predict dominates
   (a 100-tree RandomForest, batching off so every request pays a full predict), with
   the CPU wrk itself used on the same cores.
2. Memory: total PSS (``/proc/PID/smaps_rollup``) of one server with N workers (the
   supervisor plus its children, model loaded once before the fork) against N
   independent single-process servers, each after serving the same requests.
3. Kill test: SIGKILL one of 2 workers while wrk loads the server; failed requests and
   the time until a replacement worker is up.

    .venv/bin/python benchmarks/workers_bench.py [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import loadgen as lg


def throughput(model: Path, work: Path, args: argparse.Namespace) -> None:
    servers = {n: lg.start_server(model, "--no-batching", "--workers", str(n),
                                  log=work / f"w{n}.log") for n in (1, 2)}
    script = lg.wrk_script(work, lg.split_body(1))
    results: dict[int, list[lg.Load]] = {1: [], 2: []}
    try:
        for srv in servers.values():
            lg.wrk(srv.port, script, 32, args.warmup)
        for rnd in range(args.rounds):
            for n, srv in servers.items():
                run = lg.wrk(srv.port, script, 32, args.duration)
                results[n].append(run)
                print(f"  round {rnd + 1} workers={n} {run.rps:7.0f} req/s p99 "
                      f"{run.p99_ms:7.2f} ms wrk cpu {run.cpu_s:.2f} s", file=sys.stderr)
    finally:
        for srv in servers.values():
            lg.stop(srv.proc)
    rows = []
    for n in (1, 2):
        runs = results[n]
        ratio = statistics.median(r.rps / b.rps for r, b in zip(runs, results[1]))
        wrk_share = statistics.median(r.cpu_s / r.seconds for r in runs)
        rows.append([n, f"{statistics.median(r.rps for r in runs):.0f}",
                     f"{statistics.median(r.p50_ms for r in runs):.2f}",
                     f"{statistics.median(r.p99_ms for r in runs):.2f}",
                     sum(r.non2xx + r.socket_errors for r in runs), f"{ratio:.2f}",
                     f"{wrk_share * 100:.0f}%"])
    print(f"\n1. {args.trees}-tree RandomForest, --no-batching, 1-row requests, wrk -t1 -c32, "
          f"{args.duration:g} s x {args.rounds} (medians; 'wrk cpu' = CPU wrk used, as a "
          f"share of one of the {os.cpu_count()} cores)\n")
    print(lg.table(rows, ["workers", "req/s", "p50 ms", "p99 ms", "errors", "x 1 worker",
                          "wrk cpu"]))


def _warm(port: int, body: bytes, n: int = 200) -> None:
    for _ in range(n):
        status, _ = lg.post(port, body)
        assert status == 200


def memory(model: Path, work: Path, counts: list[int]) -> None:
    body = lg.split_body(1)
    rows = []
    for n in counts:
        srv = lg.start_server(model, "--workers", str(n), log=work / f"m{n}.log")
        try:
            _warm(srv.port, body, 100 * n)
            kids = lg.children(srv.proc.pid)
            pids = [srv.proc.pid, *kids]
            shared = [lg.rollup(p) for p in pids]
            pss_shared = sum(r["Pss"] for r in shared)
            rss_shared = sum(r["Rss"] for r in shared)
        finally:
            lg.stop(srv.proc)
        alone = [lg.start_server(model, log=work / f"a{n}-{i}.log") for i in range(n)]
        try:
            for srv in alone:
                _warm(srv.port, body, 100)
            singles = [lg.rollup(s.proc.pid) for s in alone]
            pss_alone = sum(r["Pss"] for r in singles)
            rss_alone = sum(r["Rss"] for r in singles)
        finally:
            for srv in alone:
                lg.stop(srv.proc)
        rows.append([n, lg.mib(pss_shared), lg.mib(pss_alone),
                     f"{pss_shared / pss_alone:.2f}", lg.mib(rss_shared), lg.mib(rss_alone),
                     len(kids)])
    print("\n2. memory after serving 100 requests per process (MiB; PSS counts a shared "
          "page once in total)\n")
    print(lg.table(rows, ["N", "PSS --workers N", "PSS N servers", "ratio",
                          "RSS --workers N", "RSS N servers", "children"]))


def kill_test(model: Path, work: Path, args: argparse.Namespace) -> None:
    srv = lg.start_server(model, "--workers", "2", log=work / "kill.log",
                          env={"SATCHEL_METRICS_INTERVAL": "0.05"})
    script = lg.wrk_script(work, lg.split_body(1))
    try:
        before = lg.children(srv.proc.pid)
        assert len(before) == 2, before
        wrk = lg.wrk_start(srv.port, script, 32, args.kill_duration)
        time.sleep(args.kill_duration / 3)
        victim = before[0]
        t0 = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        new_pid_s = up_s = None
        while time.perf_counter() - t0 < 10:
            kids = lg.children(srv.proc.pid)
            fresh = [k for k in kids if k not in before]
            if fresh and new_pid_s is None:
                new_pid_s = time.perf_counter() - t0
            if fresh and lg.metrics(srv.port).get("satchel_workers") == 2:
                up_s = time.perf_counter() - t0
                break
            time.sleep(0.005)
        run = lg.wrk_finish(wrk)
    finally:
        lg.stop(srv.proc)
    print(f"\n3. kill test: SIGKILL one of 2 workers {args.kill_duration / 3:.0f} s into a "
          f"{args.kill_duration:g} s wrk run (32 connections, batching on)\n")
    print(f"   requests: {run.requests}, failed: {run.socket_errors} socket errors + "
          f"{run.non2xx} non-2xx")
    print(f"   replacement forked after {1000 * (new_pid_s or float('nan')):.0f} ms, serving "
          f"(reports to /metrics) after {1000 * (up_s or float('nan')):.0f} ms")
    print(f"   req/s over the run: {run.rps:.0f}, p99 {run.p99_ms:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--memory-workers", default="2,4")
    ap.add_argument("--kill-duration", type=float, default=9.0)
    ap.add_argument("--parts", default="throughput,memory,kill")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="workers-bench-"))
    try:
        model = lg.make_forest(work, args.trees)
        parts = args.parts.split(",")
        if "throughput" in parts:
            throughput(model, work, args)
        if "memory" in parts:
            memory(model, work, [int(n) for n in args.memory_workers.split(",")])
        if "kill" in parts:
            kill_test(model, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
