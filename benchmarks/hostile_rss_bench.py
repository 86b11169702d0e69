"""Server memory under a hostile client sweep: RSS before, at its peak, and after.

One ``satchel serve`` (a one-column python model; ``--max-body-size 1MiB``,
``--timeout 2``, ``--predict-threads 4``, ``--header-timeout 3``) is started with
``--workers 1`` and ``--workers 2``. The RSS of the whole process tree (supervisor and
workers, from ``/proc/PID/status``) is sampled every 20 ms while this sweep runs:

1. Parquet bombs: 0.2 MiB bodies that would decode to 30 million rows (x5);
2. 300 raw sockets that never finish their headers, held past the header deadline;
3. a burst of 40 predicts that hang for 20 s (each answered 504 or 503);
4. 200 malformed requests: 1e999, deep nesting, wrong V2 shapes, two Authorization
   headers, bodies over the limit;
5. 50 large but legal JSON bodies (0.9 MiB each).

The table gives the baseline (idle, model loaded, after one request), the peak, the
figure 5 s after the sweep, and peak/baseline. Memory is measured here, never asserted
in tests.

    .venv/bin/python benchmarks/hostile_rss_bench.py [--workers 1 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class Sleepy:
    """Returns ``a``; a < 0 sleeps -a seconds (a model call that hangs)."""

    row_independent = False

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        v = float(df["a"].iloc[0])
        if v < 0:
            time.sleep(-v)
        return df[["a"]]


def save_model(path: Path) -> Path:
    import cloudpickle

    import satchel

    if __name__ != "__main__":  # __main__'s classes are pickled by value already
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    satchel.save_model(Sleepy(), path, input_example=pd.DataFrame({"a": [1.0]}))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` and its children."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: list[tuple[str, str]] | None = None, timeout: float = 30) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path)
        for k, v in headers or []:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return 0
    finally:
        conn.close()


JSON = [("Content-Type", "application/json")]


def score(port: int, value: float) -> int:
    body = json.dumps({"dataframe_split": {"columns": ["a"], "data": [[value]]}}).encode()
    return request(port, "POST", "/invocations", body, JSON, timeout=60)


def parquet_bomb(rows: int) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"a": pa.array(np.zeros(rows))}), buf, compression="zstd",
                   row_group_size=1 << 22)
    return buf.getvalue()


def sweep(port: int, statuses: dict[str, list[int]]) -> None:
    bomb = parquet_bomb(30_000_000)
    for _ in range(5):
        statuses["parquet bomb"].append(request(
            port, "POST", "/invocations", bomb,
            [("Content-Type", "application/vnd.apache.parquet")]))
    socks = []
    for i in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            statuses["idle sockets"].append(0)
    statuses["ping during idle sockets"].append(request(port, "GET", "/ping", timeout=10))
    time.sleep(4)
    for s in socks:
        s.close()
    with ThreadPoolExecutor(40) as pool:
        statuses["hung predicts"] += list(pool.map(lambda _: score(port, -20.0), range(40)))
    bad = [
        (b'{"dataframe_split": {"columns": ["a"], "data": [[1e999]]}}', "/invocations"),
        (b"[" * 5000 + b"]" * 5000, "/invocations"),
        (b'{"inputs": [{"name": "a", "shape": {}, "datatype": {}, "data": 1}]}',
         "/v2/models/m/infer"),
        (b"x" * (2 << 20), "/invocations"),
    ]
    for i in range(200):
        body, path = bad[i % len(bad)]
        statuses["malformed"].append(request(port, "POST", path, body, JSON))
    statuses["two auth headers"].append(request(
        port, "GET", "/v2/health/ready",
        headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")]))
    rows = [[float(i)] for i in range(60_000)]
    big = json.dumps({"dataframe_split": {"columns": ["a"], "data": rows}}).encode()
    with ThreadPoolExecutor(4) as pool:
        statuses["large legal bodies"] += list(pool.map(
            lambda _: request(port, "POST", "/invocations", big, JSON), range(50)))


def run_one(model: Path, workers: int, work: Path) -> dict[str, Any]:
    port = free_port()
    log = open(work / f"serve-{workers}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "satchel", "serve", "-m", f"m={model}", "--port", str(port),
         "--workers", str(workers), "--max-body-size", "1MiB", "--timeout", "2",
         "--predict-threads", "4", "--header-timeout", "3", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while request(port, "GET", "/ping", timeout=2) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("server did not start; see " + log.name)
            time.sleep(0.1)
        score(port, 1.0)
        time.sleep(1)
        baseline = tree_rss(proc.pid)
        peak = baseline
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss(proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        statuses: dict[str, list[int]] = {k: [] for k in (
            "parquet bomb", "idle sockets", "ping during idle sockets", "hung predicts",
            "malformed", "two auth headers", "large legal bodies")}
        t0 = time.monotonic()
        sweep(port, statuses)
        seconds = time.monotonic() - t0
        time.sleep(5)
        stop.set()
        sampler.join()
        after = tree_rss(proc.pid)
        return {"workers": workers, "baseline": baseline, "peak": peak, "after": after,
                "seconds": seconds, "statuses": statuses, "alive": proc.poll() is None}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def mib(n: float) -> str:
    return f"{n / (1 << 20):.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    model = save_model(work / "model")
    results: dict[int, list[dict[str, Any]]] = {w: [] for w in args.workers}
    for _ in range(args.rounds):
        for w in args.workers:  # interleaved, so drift on a shared machine hits both
            results[w].append(run_one(model, w, work))
    print("\nServer RSS (MiB, whole process tree) under the hostile sweep; median of "
          f"{args.rounds} round(s)")
    print(f"{'workers':>7} {'baseline':>9} {'peak':>6} {'after':>6} {'peak/base':>9} "
          f"{'sweep s':>8} {'alive':>5}")
    for w, runs in results.items():
        b = statistics.median(r["baseline"] for r in runs)
        p = statistics.median(r["peak"] for r in runs)
        a = statistics.median(r["after"] for r in runs)
        s = statistics.median(r["seconds"] for r in runs)
        alive = all(r["alive"] for r in runs)
        print(f"{w:>7} {mib(b):>9} {mib(p):>6} {mib(a):>6} {p / b:>9.2f} {s:>8.1f} "
              f"{'yes' if alive else 'NO':>5}")
    print("\nStatuses seen (last round):")
    for w, runs in results.items():
        for k, v in runs[-1]["statuses"].items():
            counts = {s: v.count(s) for s in sorted(set(v))}
            print(f"  workers={w} {k:<26} {counts}")


if __name__ == "__main__":
    main()
