"""Load-test ``satchel serve`` against a floor app (and MLflow's server when installed).

Each server runs alone on 127.0.0.1 (one process, access log off) and is loaded by
``wrk`` (Debian package ``wrk``) at each connection count, for each payload:
1-row ``dataframe_split``, 100-row ``dataframe_split``, 1-row ``inputs``. The model is a
LogisticRegression on iris saved by satchel (MLflow loads it too: ``mlflow.sklearn``).

Prints req/s, rows/s, p50, p99, non-2xx counts and ratios against the floor, then the
time from process start to the first ``/ping`` 200. Numbers are medians over --rounds.

    .venv/bin/python benchmarks/serve_bench.py [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
MLFLOW = Path("/work/mlflow-venv/bin/mlflow")
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_model(root: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = COLUMNS
    path = root / "iris"
    satchel.save_model(LogisticRegression(max_iter=1000).fit(X, y), path, input_example=X.head(3))
    return path


def payloads() -> dict[str, tuple[bytes, int]]:
    from sklearn.datasets import load_iris

    X = load_iris().data
    rows1 = X[:1].tolist()
    rows100 = X[:100].tolist()
    def split(rows: list[list[float]]) -> bytes:
        return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows}}).encode()

    inputs = json.dumps({"inputs": {c: [v] for c, v in zip(COLUMNS, rows1[0])}}).encode()
    return {"split-1": (split(rows1), 1), "split-100": (split(rows100), 100),
            "inputs-1": (inputs, 1)}


# --- servers -------------------------------------------------------------------------


def server_command(server: str, model: Path, port: int) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if server == "satchel":
        return ([str(VENV_BIN / "satchel"), "serve", "-m", str(model), "--port", str(port),
                 "--no-access-log", "--log-level", "warning"], env)
    if server == "floor":
        return ([sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "floor_app:app",
                 "--port", str(port), "--no-access-log", "--log-level", "warning"],
                {**env, "FLOOR_MODEL": str(model / "model.pkl")})
    if server == "satchel-thread":
        # satchel with every request handed to a worker thread (the executor's other mode)
        app = ("import uvicorn; from satchel.serving import create_app; "
               "from satchel.serving.server.execution import Executor; "
               f"uvicorn.run(create_app({str(model)!r}, executor=Executor(inline_seconds=0)),"
               f" port={port}, access_log=False, log_level='warning')")
        return ([sys.executable, "-c", app], env)
    if server == "mlflow":
        # mlflow runs `uvicorn` through the shell, so its venv's bin goes first on PATH
        ml_env = {**env, "PATH": f"{MLFLOW.parent}{os.pathsep}{env.get('PATH', '')}",
                  "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
        return ([str(MLFLOW), "models", "serve", "-m", str(model), "--env-manager", "local",
                 "-p", str(port), "-h", "127.0.0.1", "-w", "1"], ml_env)
    raise ValueError(f"unknown server {server!r}")


def wait_ping(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Seconds until GET /ping answers 200."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("server did not answer /ping")


def start(cmd: list[str], env: dict[str, str], port: int, log: Path) -> tuple[
        subprocess.Popen[bytes], float]:
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, cwd=ROOT)
    try:
        wait_ping(port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, time.perf_counter() - t0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- wrk -----------------------------------------------------------------------------


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float = float("nan")  # server CPU time per request (process tree)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants.

    Per-request CPU is steadier than req/s on a shared machine: time a server spends
    preempted by other work does not count.
    """
    stats: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo.extend(p for p, (ppid, _) in stats.items() if ppid == current)
    return total


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unreadable latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(port: int, body: bytes, connections: int, duration: float, workdir: Path) -> Run:
    script = workdir / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(body.decode())}\n")
    seconds = max(1, round(duration))
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}/invocations"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    if errs:
        print(f"    wrk: {errs.group(0)}", file=sys.stderr)
    return Run(rps, p50, p99, int(bad.group(1)) if bad else 0)


def check_reply(port: int, body: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200 or not data.startswith(b'{"predictions"'):
        raise RuntimeError(f"bad reply {resp.status}: {data[:200]!r}")


# --- main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per payload")
    ap.add_argument("--rounds", type=int, default=3, help="repeat every run; report medians")
    ap.add_argument("--connections", default="8,32")
    ap.add_argument("--servers", default="satchel,floor,satchel-thread,mlflow")
    ap.add_argument("--payloads", default="split-1,split-100,inputs-1")
    ap.add_argument("--startup-runs", type=int, default=5)
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    # SIGTERM ends the run through the finally below, which stops every server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    conns = [int(c) for c in args.connections.split(",")]
    servers = [s for s in args.servers.split(",") if s != "mlflow" or MLFLOW.exists()]
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        model = make_model(work)
        bodies = {k: v for k, v in payloads().items() if k in args.payloads.split(",")}
        # Every server runs at once, idle but for the one wrk loads; runs alternate
        # between servers so each comparison is made under the same background load.
        ports = {server: free_port() for server in servers}
        for server in servers:
            cmd, env = server_command(server, model, ports[server])
            proc, _ = start(cmd, env, ports[server], work / f"{server}.log")
            procs.append(proc)
        results: dict[tuple[str, str, int], list[Run]] = {}
        for name, (body, _) in bodies.items():
            for server in servers:
                check_reply(ports[server], body)
            for c in conns:
                for server in servers:
                    wrk(ports[server], body, c, args.warmup, work)
                for rnd in range(args.rounds):
                    for server, proc in zip(servers, procs):
                        before = tree_cpu(proc.pid)
                        run = wrk(ports[server], body, c, args.duration, work)
                        requests = run.rps * max(1, round(args.duration))
                        run.cpu_us = (tree_cpu(proc.pid) - before) / max(requests, 1) * 1e6
                        results.setdefault((server, name, c), []).append(run)
                        print(f"  {name:<10} c={c:<3} round {rnd + 1} {server:<15} "
                              f"{run.rps:8.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
                              f"p99 {run.p99_ms:6.2f} ms  cpu {run.cpu_us:6.0f} us/req",
                              file=sys.stderr)
        for proc in procs:
            stop(proc)
        procs.clear()
        startup: dict[str, list[float]] = {}
        for _ in range(args.startup_runs):
            for server in servers:
                cmd, env = server_command(server, model, ports[server])
                proc, took = start(cmd, env, ports[server], work / f"{server}.log")
                stop(proc)
                startup.setdefault(server, []).append(took)
        report(results, startup, servers, bodies, conns, args)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _median(runs: list[Run], attr: str) -> float:
    return float(statistics.median(getattr(r, attr) for r in runs))


def report(results: dict[tuple[str, str, int], list[Run]], startup: dict[str, list[float]],
           servers: list[str], bodies: dict[str, tuple[bytes, int]], conns: list[int],
           args: Any) -> None:
    print(f"\nwrk -t1, {args.duration:g} s per run, median of {args.rounds} round(s) "
          f"(ratios: median of paired runs); one server process each, access log off; "
          f"{os.cpu_count()} cores shared with wrk\n")
    head = (f"{'payload':<10} {'conns':>5} {'server':<15} {'req/s':>8} {'rows/s':>9} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'non2xx':>6} {'x floor':>8} {'p99 x':>6} "
            f"{'cpu us/req':>10} {'floor/cpu':>9}")
    print(head)
    print("-" * len(head))
    for name, (_, rows) in bodies.items():
        for c in conns:
            floor = results.get(("floor", name, c))
            for server in servers:
                runs = results[(server, name, c)]
                rps, p50, p99 = (_median(runs, a) for a in ("rps", "p50_ms", "p99_ms"))
                errors = sum(r.errors for r in runs)
                # ratios of paired runs (same round, back to back), then their median
                ratio = (statistics.median(r.rps / f.rps for r, f in zip(runs, floor))
                         if floor else float("nan"))
                p99r = (statistics.median(r.p99_ms / f.p99_ms for r, f in zip(runs, floor))
                        if floor else float("nan"))
                cpu = _median(runs, "cpu_us")
                # floor CPU / this server's CPU: the req/s ratio a quiet machine would show
                cpur = (statistics.median(f.cpu_us / r.cpu_us for r, f in zip(runs, floor))
                        if floor else float("nan"))
                print(f"{name:<10} {c:>5} {server:<15} {rps:8.0f} {rps * rows:9.0f} "
                      f"{p50:7.2f} {p99:7.2f} {errors:>6} {ratio:8.2f} {p99r:6.2f} "
                      f"{cpu:10.0f} {cpur:9.2f}")
        print()
    print("start to first /ping 200 (s): median [min-max]")
    for server in servers:
        t = startup[server]
        print(f"  {server:<15} {statistics.median(t):.2f} [{min(t):.2f}-{max(t):.2f}] "
              f"n={len(t)}")


if __name__ == "__main__":
    sys.exit(main())
