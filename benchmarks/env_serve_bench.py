"""Served throughput of a model behind the worker channel against the same model in-process.

Two servers on one iris LogisticRegression: ``satchel serve`` (the model in the front
process) and ``satchel serve --env-manager venv`` (the model in its environment's
worker, the front talking to it over the channel). wrk loads one server at a time with
several connections, the servers alternating round by round (ratios are of paired
rounds), at 1 row and at 1,000 rows a request. The front's HTTP work and the worker's
predict can overlap on two cores; in-process they share one interpreter. The CPU the
front process and the model worker each used per request is reported beside it
(warm-up requests are in the CPU, not in the count: a small overstatement), with the
requests per predict call and the ratio of the CPU per request, which is what the req/s
ratio tends to on a machine whose cores other work keeps busy.

    flock /work/bench.lock .venv/bin/python benchmarks/env_serve_bench.py \\
        [--duration 8] [--rounds 5] [--connections 8] [--rows 1,1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402


def save_model(work: Path) -> Path:
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = loadgen.COLUMNS
    path = work / "iris"
    satchel.save_model(LogisticRegression(max_iter=500).fit(X, y), path,
                       input_example=pd.DataFrame(X.head(3)))
    return path


def body(rows: int) -> bytes:
    import json

    import numpy as np

    data = np.random.default_rng(0).normal(4, 1, (rows, 4)).round(3).tolist()
    return json.dumps({"dataframe_split": {"columns": loadgen.COLUMNS, "data": data}}).encode()


def cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a server process and of its children (the model worker)."""
    kids = 0.0
    for p in loadgen.children(pid):
        try:
            kids += loadgen.cpu_seconds(p)
        except OSError:
            pass
    return loadgen.cpu_seconds(pid), kids


def predict_calls(port: int) -> float:
    """Predict calls the server made so far (merged requests count once)."""
    return sum(v for k, v in loadgen.metrics(port).items()
               if k.startswith("satchel_predict_calls_total"))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", default="8")
    ap.add_argument("--rows", default="1,1000")
    ap.add_argument("--extra", default="", help="more serve options for both servers")
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="satchel-envserve-"))
    servers: dict[str, Any] = {}
    print(f"before: {uptime()}", file=sys.stderr)
    try:
        model = save_model(work)
        env = {"SATCHEL_ENV_CACHE": str(work / "envcache")}
        extra = args.extra.split()
        servers["in-process"] = loadgen.start_server(model, *extra, log=work / "local.log")
        servers["venv worker"] = loadgen.start_server(
            model, "--env-manager", "venv", *extra, log=work / "venv.log", env=env,
            timeout=1200)
        rows_out: list[list[Any]] = []
        loads = []
        for rows in (int(r) for r in args.rows.split(",")):
            payload = body(rows)
            for srv in servers.values():
                status, answer = loadgen.post(srv.port, payload)
                assert status == 200, answer[:300]
            answers = {n: loadgen.post(s.port, payload)[1] for n, s in servers.items()}
            assert len(set(answers.values())) == 1, "the two servers answer differently"
            script = loadgen.wrk_script(work, payload)
            cpu0 = {n: cpu(s.proc.pid) for n, s in servers.items()}
            calls0 = {n: predict_calls(s.port) for n, s in servers.items()}
            results = loadgen.paired_loads(servers, script, conns, args.rounds, args.duration,
                                           args.warmup)
            cpu1 = {n: cpu(s.proc.pid) for n, s in servers.items()}
            calls1 = {n: predict_calls(s.port) for n, s in servers.items()}
            loads.append(os.getloadavg())
            base_cpu = 0.0
            for row in loadgen.paired_rows(results, conns, list(servers), "in-process"):
                name, c = row[1], row[0]
                total = sum(r.requests for r in results[(name, c)])
                front, worker = ((b - a) / max(total, 1) * 1e6
                                 for a, b in zip(cpu0[name], cpu1[name]))
                if name == "in-process":
                    base_cpu = front + worker
                # warm-up requests are in the calls too, as in the CPU: a ratio, not a count
                merged = total / max(calls1[name] - calls0[name], 1)
                rows_out.append([rows, *row[:6], f"{merged:.1f}", f"{front:.0f}",
                                 f"{worker:.0f}", row[6], f"{base_cpu / (front + worker):.2f}",
                                 row[7]])
        print(f"\nServed throughput, iris LogisticRegression, wrk -t1, {args.rounds} "
              f"interleaved rounds of {args.duration:g} s, {os.cpu_count()} shared cores\n")
        print(loadgen.table(rows_out, ["rows", "conns", "server", "req/s", "p50 ms", "p99 ms",
                                       "errors", "req/call", "front CPU us/req",
                                       "worker CPU us/req", "req/s vs in-process",
                                       "CPU/req in-process/this", "p99 vs in-process"]))
        print("\nreq/call: requests per predict call (merged by the batcher); "
              "CPU/req in-process/this: the req/s ratio a CPU-bound machine would give")
        print("\nload average during the runs (1/5/15 min): "
              + "; ".join(" ".join(f"{x:.2f}" for x in la) for la in loads))
        print(f"after: {uptime()}")
    finally:
        for srv in servers.values():
            loadgen.stop(srv.proc)
        time.sleep(0.2)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
