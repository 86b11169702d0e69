"""Shared pieces of the production-serving benchmarks: models, servers, wrk, /proc.

Used by batching_bench.py, workers_bench.py and soak_bench.py (never run as tests).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_forest(root: Path, trees: int = 100) -> Path:
    """A RandomForestClassifier on iris, saved by satchel (pickle format)."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = COLUMNS
    path = root / f"forest{trees}"
    model = RandomForestClassifier(n_estimators=trees, random_state=0).fit(X, y)
    satchel.save_model(model, path, input_example=X.head(3))
    return path


def split_body(rows: int = 1) -> bytes:
    from sklearn.datasets import load_iris

    data = load_iris().data[:rows].tolist()
    return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}).encode()


# --- servers -----------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    started_s: float


# What `pip install satchel[serve]` puts beside uvicorn and the server picks up when it is
# there: uvicorn's C HTTP parser and the JSON reader. Without them a server is slower
# in ways users never see (uvicorn falls back to h11: ~110 against ~35 us of CPU per
# request, benchmarks/grpcio_floor.py), which makes every ratio against /invocations
# look better than it is: figures of this repository's 2026-11-30 sessions were taken
# in such a venv, and the gRPC and V2 ratios were overstated.
SERVE_EXTRAS = ("httptools", "orjson")


def check_serve_extras() -> None:
    """Exit naming what is missing when this interpreter lacks the ``serve`` extra's
    parsers (the servers run on this interpreter's venv)."""
    import importlib.util

    missing = [m for m in SERVE_EXTRAS if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"{sys.executable} lacks {', '.join(missing)}, which "
                         "`pip install satchel[serve]` installs and the server uses: "
                         "figures taken without them are not what users get. Run "
                         "`pip install -e '.[serve,grpc,sklearn]'` in this venv first.")


def start_server(model: Path | str, *args: str, log: Path, env: dict[str, str] | None = None,
                 timeout: float = 60.0, prefix: tuple[str, ...] = ()) -> Server:
    """``satchel serve -m MODEL ARGS`` on a free port; returns once /ping answers 200.
    ``prefix`` runs it under a command that execs it (e.g. ``setarch -R``: same pid).
    Exits first when the venv lacks the ``serve`` extra (:func:`check_serve_extras`)."""
    check_serve_extras()
    port = free_port()
    cmd = [*prefix, str(VENV_BIN / "satchel"), "serve", "-m", str(model), "--port", str(port),
           "--no-access-log", "--log-level", "warning", *args]
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        if get(port, "/ping")[0] == 200:
            return Server(proc, port, time.perf_counter() - t0)
        time.sleep(0.01)
    stop(proc)
    raise RuntimeError("server did not answer /ping")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def get(port: int, path: str, timeout: float = 2.0) -> tuple[int | None, bytes]:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, body
    except OSError:
        return None, b""


def post(port: int, body: bytes, path: str = "/invocations") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def metrics(port: int) -> dict[str, float]:
    from satchel.serving.server.metrics import parse_page

    status, body = get(port, "/metrics", timeout=10)
    return parse_page(body.decode()) if status == 200 else {}


# --- wrk ---------------------------------------------------------------------------------


@dataclass
class Load:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    cpu_s: float  # CPU time wrk itself used
    seconds: float


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unreadable latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk_script(workdir: Path, body: bytes) -> Path:
    script = workdir / f"post-{abs(hash(body)) % 10**8}.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(body.decode())}\n")
    return script


def wrk_start(port: int, script: Path, connections: int, seconds: float,
              threads: int = 1, path: str = "/invocations") -> subprocess.Popen[str]:
    return subprocess.Popen(["wrk", f"-t{threads}", f"-c{connections}",
                             f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
                             f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wrk_finish(proc: subprocess.Popen[str]) -> Load:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out, err = proc.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {err[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert total is not None
    seconds = float(total.group(2)) * {"s": 1.0, "ms": 1e-3, "m": 60.0}.get(total.group(3), 1.0)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Load(rps, int(total.group(1)), _ms(_find(r"\s50%\s+(\S+)", out)),
                _ms(_find(r"\s99%\s+(\S+)", out)), int(bad.group(1)) if bad else 0,
                sum(int(g) for g in errs.groups()) if errs else 0, cpu, seconds)


def _find(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"wrk output lacks {pattern!r}:\n{text}")
    return m.group(1)


def wrk(port: int, script: Path, connections: int, seconds: float) -> Load:
    return wrk_finish(wrk_start(port, script, connections, seconds))


# --- /proc -------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` in bytes (Rss, Pss, Shared_Clean, ...)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(n: float) -> str:
    return f"{n / 2**20:7.1f}"


def table(rows: list[list[Any]], head: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(head), "-" * len(line(head)), *map(line, rows)])


def paired_rows(results: dict[tuple[str, int], list[Any]], conns: list[int], names: Any,
                baseline: str) -> list[list[Any]]:
    """Table rows of medians, and ratios of paired runs against ``baseline``'s runs.

    ``results[(name, conns)]`` holds one wrk run per round; round i of every server is
    compared with round i of the baseline, so drift on a shared machine cancels out.
    """
    rows: list[list[Any]] = []
    for c in conns:
        base = results[(baseline, c)]
        for name in names:
            runs = results[(name, c)]
            rps_ratio = statistics.median(r.rps / b.rps for r, b in zip(runs, base))
            p99_ratio = statistics.median(r.p99_ms / b.p99_ms for r, b in zip(runs, base))
            rows.append([c, name, f"{statistics.median(r.rps for r in runs):.0f}",
                         f"{statistics.median(r.p50_ms for r in runs):.2f}",
                         f"{statistics.median(r.p99_ms for r in runs):.2f}",
                         sum(r.non2xx + r.socket_errors for r in runs),
                         f"{rps_ratio:.2f}", f"{p99_ratio:.2f}"])
    return rows


def paired_loads(servers: dict[str, Any], script: Path, conns: list[int], rounds: int,
                 duration: float, warmup: float) -> dict[tuple[str, int], list[Any]]:
    """Load every server with wrk, round-robin per round, after a warm-up of each.

    Interleaving the servers round by round lets :func:`paired_rows` compare runs that
    shared the same moment of a shared machine. Progress goes to stderr.
    """
    results: dict[tuple[str, int], list[Any]] = {}
    width = max(len(n) for n in servers)
    for c in conns:
        for srv in servers.values():
            wrk(srv.port, script, c, warmup)
        for rnd in range(rounds):
            for name, srv in servers.items():
                run = wrk(srv.port, script, c, duration)
                results.setdefault((name, c), []).append(run)
                print(f"  c={c} round {rnd + 1} {name:<{width}} {run.rps:8.0f} req/s "
                      f"p50 {run.p50_ms:7.2f} ms p99 {run.p99_ms:7.2f} ms "
                      f"non2xx {run.non2xx}", file=sys.stderr)
    return results
