"""Per-model environments: start-up with a cold and a warm cache, and the cost of the
worker channel.

1. ``satchel serve --env-manager venv`` on an iris LogisticRegression: seconds from
   launch to the first ``/ping`` 200 and to the first ``/invocations`` answer, with an
   empty environment cache (cold: the venv is built, satchel's wheel and the model's
   requirements installed) and then with the cache it left (warm), ``--warm-runs``
   times alternating with plain ``satchel serve`` (in-process). With ``--mlflow PYTHON``
   (an interpreter with mlflow and virtualenv), ``mlflow models serve --env-manager
   virtualenv`` on the same directory, cold (its own empty env root) and warm.
2. ``Model.predict`` in a loop: the model loaded in this process against the same model
   behind the worker channel (an ``EnvWorker`` in the environment built in 1, as
   ``serve --env-manager venv`` and ``spark_udf(env_manager="venv")`` use it), at 1 and
   1,000 rows: single calls timed in alternating blocks (both sides see the same
   neighbours on a shared machine), medians, calls per second and the throughput ratio.

    .venv/bin/python benchmarks/env_bench.py [--seconds 20] [--mlflow .mlflow-venv/bin/python]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_model(work: Path) -> Path:
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = FEATURES
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = work / "iris"
    satchel.save_model(model, path, input_example=pd.DataFrame(X.head(3)))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, body: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
            return int(r.status)
    except Exception:  # noqa: BLE001 - not up yet
        return 0


def startup(cmd: list[str], port: int, env: dict[str, str], log: Path) -> tuple[float, float]:
    """Seconds to the first /ping 200 and to the first prediction; the server is stopped."""
    body = json.dumps({"dataframe_split": {"columns": FEATURES,
                                           "data": [[5.1, 3.5, 1.4, 0.2]]}}).encode()
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        while get(base + "/ping") != 200:
            if proc.poll() is not None:
                raise SystemExit(f"{cmd[:4]} exited {proc.returncode}:\n"
                                 f"{log.read_text(errors='replace')[-2000:]}")
            if time.perf_counter() - start > 1800:
                raise SystemExit(f"{cmd[:4]}: no /ping in 30 min")
            time.sleep(0.05)
        ping = time.perf_counter() - start
        status = get(base + "/invocations", body)
        if status != 200:
            raise SystemExit(f"{cmd[:4]}: first prediction answered {status}")
        return ping, time.perf_counter() - start
    finally:
        # the whole session: mlflow's gunicorn and satchel's model workers too
        try:
            os.killpg(proc.pid, 15)
            proc.wait(20)
        except ProcessLookupError:
            proc.wait()
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def part1(model: Path, work: Path, args: argparse.Namespace) -> Path:
    cache = work / "envcache"
    base_env = {**os.environ, "SATCHEL_ENV_CACHE": str(cache)}
    rows = []

    def satchel_cmd(port: int, *extra: str) -> list[str]:
        return [sys.executable, "-m", "satchel", "serve", "-m", str(model), "--host",
                "127.0.0.1", "--port", str(port), *extra]

    port = free_port()
    cold = startup(satchel_cmd(port, "--env-manager", "venv"), port, base_env,
                   work / "venv-cold.log")
    # warm starts alternate with in-process ones: both see the same moments of a
    # shared machine; medians (and the range) of --warm-runs pairs
    runs: dict[str, list[tuple[float, float]]] = {"local": [], "warm": []}
    for _ in range(args.warm_runs):
        for label, extra in (("local", ()), ("warm", ("--env-manager", "venv"))):
            port = free_port()
            runs[label].append(startup(satchel_cmd(port, *extra), port, base_env,
                                       work / f"{label}.log"))

    def cells(ts: list[tuple[float, float]]) -> list[str]:
        return [f"{statistics.median(t[i] for t in ts):.2f} ({min(t[i] for t in ts):.2f}-"
                f"{max(t[i] for t in ts):.2f})" for i in (0, 1)]

    rows.append(["satchel serve (in-process)", "-", *cells(runs["local"])])
    rows.append(["satchel serve --env-manager venv", "cold", *(f"{x:.2f}" for x in cold)])
    rows.append(["satchel serve --env-manager venv", "warm", *cells(runs["warm"])])
    print(f"load average after satchel's starts: {os.getloadavg()}", file=sys.stderr)
    installer = json.loads(next(cache.glob("*/satchel-env.json")).read_text())["installer"]
    print(table(rows, ["server", "cache", "s to /ping 200", "s to 1st prediction"]),
          file=sys.stderr)
    if args.mlflow:
        # satchel is not on MLflow's index: its copy of the model drops that one line
        # (MLflow loads the directory with mlflow.sklearn and never needs satchel)
        mmodel = work / "iris-mlflow"
        shutil.copytree(model, mmodel)
        req = mmodel / "requirements.txt"
        req.write_text("".join(ln + "\n" for ln in req.read_text().splitlines()
                               if not ln.startswith("satchel")))
        mlflow_home = work / "mlflow-envs"
        menv = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        # MLflow keeps its virtualenvs under MLFLOW_ENV_ROOT: an empty one is cold
        menv["MLFLOW_ENV_ROOT"] = str(mlflow_home)
        menv["PATH"] = f"{Path(args.mlflow).parent}:{os.environ.get('PATH', '')}"
        for label in ("cold", "warm"):
            port = free_port()
            cmd = [args.mlflow, "-m", "mlflow", "models", "serve", "-m", str(mmodel),
                   "-h", "127.0.0.1", "-p", str(port), "--env-manager", "virtualenv"]
            try:
                t = startup(cmd, port, menv, work / f"mlflow-{label}.log")
                rows.append(["mlflow models serve --env-manager virtualenv", label,
                             *(f"{x:.2f}" for x in t)])
            except SystemExit as exc:
                print(str(exc)[-3000:], file=sys.stderr)
                rows.append(["mlflow models serve --env-manager virtualenv", label,
                             "failed", "see stderr"])
                break
    print(f"\n1. Start-up, iris LogisticRegression (satchel's environment installer: "
          f"{installer}; {os.cpu_count()} shared cores; warm and in-process: median "
          f"(range) of {args.warm_runs} alternating starts; load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})\n")
    print(table(rows, ["server", "cache", "s to /ping 200", "s to 1st prediction"]))
    return cache


def interleaved(fns: dict[str, Callable[[], Any]], seconds: float, block: int = 20
                ) -> dict[str, float]:
    """Median seconds per call of each function, timed call by call in alternating
    blocks of ``block`` calls for about ``seconds`` in all (one warm-up call each).

    On a shared machine a neighbour's burst lands on both sides alike, and the median
    of single calls ignores the calls that a preemption stretched.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    clock = time.perf_counter
    start = clock()
    order = list(fns)
    while clock() - start < seconds:
        for k in order:
            fn, out = fns[k], times[k]
            for _ in range(block):
                t0 = clock()
                fn()
                out.append(clock() - t0)
        order.reverse()
    return {k: statistics.median(v) for k, v in times.items()}


def concurrent(fns: dict[str, Callable[[], Any]], threads: int, seconds: float,
               phase: float = 1.0) -> dict[str, float]:
    """Calls per second of each function called by ``threads`` threads at once, in
    alternating phases of ``phase`` seconds for about ``seconds`` in all (median phase)."""
    import threading

    rates: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    order = list(fns)
    while time.perf_counter() - start < seconds:
        for k in order:
            fn, counts = fns[k], [0] * threads
            stop = time.perf_counter() + phase

            def loop(i: int, fn: Callable[[], Any] = fn, counts: list[int] = counts,
                     stop: float = stop) -> None:
                while time.perf_counter() < stop:
                    fn()
                    counts[i] += 1

            t0 = time.perf_counter()
            pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            rates[k].append(sum(counts) / (time.perf_counter() - t0))
        order.reverse()
    return {k: statistics.median(v) for k, v in rates.items()}


def part2(model: Path, cache: Path, args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    import satchel

    os.environ["SATCHEL_ENV_CACHE"] = str(cache)
    local = satchel.load_model(model)
    # the public entry point: the model in its environment's worker, behind the channel
    remote = satchel.load_model(model, env_manager="venv")
    rng = np.random.default_rng(0)
    rows, crows = [], []
    try:
        for n in (1, 1000):
            data = pd.DataFrame(rng.normal(4, 1, (n, 4)), columns=FEATURES)
            assert (np.asarray(local.predict(data)) == np.asarray(remote.predict(data))).all()
            fns: dict[str, Callable[[], Any]] = {
                "local": functools.partial(local.predict, data),
                "remote": functools.partial(remote.predict, data)}
            med = interleaved(fns, args.seconds)
            lt, rt = med["local"], med["remote"]
            rows.append([n, f"{lt * 1e3:.3f}", f"{rt * 1e3:.3f}", f"{1 / lt:.0f}",
                         f"{1 / rt:.0f}", f"{lt / rt:.2f}", f"{(rt - lt) * 1e3:.3f}"])
            if args.threads:
                rate = concurrent(fns, args.threads, args.seconds)
                crows.append([n, f"{rate['local']:.0f}", f"{rate['remote']:.0f}",
                              f"{rate['remote'] / rate['local']:.2f}"])
    finally:
        remote.close()
    print(f"\n2. Model.predict in a loop, in-process vs through the worker channel "
          f"(median of single calls, alternating blocks of 20 for {args.seconds:g} s)\n")
    print(table(rows, ["rows", "local ms", "channel ms", "local calls/s", "channel calls/s",
                       "channel / local (throughput)", "added ms"]))
    if crows:
        print(f"\n3. The same with {args.threads} threads calling at once (median calls/s "
              f"of alternating 1 s phases over {args.seconds:g} s)\n")
        print(table(crows, ["rows", "local calls/s", "channel calls/s",
                            "channel / local (throughput)"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="time per row count in part 2")
    ap.add_argument("--threads", type=int, default=4,
                    help="concurrent callers in part 3 (0: skip)")
    ap.add_argument("--mlflow", metavar="PYTHON",
                    help="an interpreter with mlflow and virtualenv installed")
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--warm-runs", type=int, default=5,
                    help="alternating in-process / warm venv starts in part 1")
    ap.add_argument("--skip-calls", action="store_true", help="part 1 only")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="satchel-envbench-"))
    try:
        model = save_model(work)
        cache = work / "envcache"
        if not args.skip_startup:
            cache = part1(model, work, args)
        if not args.skip_calls:
            part2(model, cache, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
