"""satchel against MLServer 1.7.1 (its scikit-learn runtime), side by side, wrk -t1.

Two scikit-learn models on 20 float features (``make_classification``, 2,000 rows):
a LogisticRegression and a 30-tree RandomForest. Each is served four ways, every server
one worker and all running at once (idle but for the one wrk loads):

- satchel ``--batching off`` and satchel with batching on (its default row limit,
  1,024 rows since this benchmark found 64 kept 100-row requests out of batches; 5 ms);
- MLServer without adaptive batching, and with it (``max_batch_size`` 64 requests,
  ``max_batch_time`` 5 ms, the same numbers); MLServer's own default of one inference
  worker process (``parallel_workers: 1``; ``--mlserver-workers`` changes it).

Each cell (model, rows per request, connections, batched or not) loads three paths in
turn, round after round, so the ratios pair runs that shared the same moment of a shared
machine:

- ``inv``: satchel ``POST /invocations`` with ``dataframe_split`` JSON (20 named columns);
- ``v2``: satchel ``POST /v2/models/m/infer``, one FP64 tensor of shape [N] per column
  (what a V2 client sends a model with a column signature);
- ``mls``: MLServer ``POST /v2/models/m/infer`` with its fastest body, one [N, 20] FP64
  tensor;
- ``grpc``: satchel gRPC ``ModelInfer``, an [N] FP64 tensor per column in
  ``raw_input_contents`` (the message ``tritonclient.grpc`` builds), h2load -t1 -m1;
- ``mlsg``: MLServer gRPC ``ModelInfer``, one [N, 20] FP64 tensor in
  ``raw_input_contents``, h2load -t1 -m1;
- ``bento``: BentoML 1.4.40 (side venv, ``bentoml_side.py``), ``POST /predict`` with
  ``{"input": [[...20 floats], ...]}``, its own batching (``batchable``, max_batch_size
  as MLServer's) when batched.

gRPC runs use h2load, the HTTP runs wrk: ``grpc/inv`` pairs two load generators
(benchmarks/grpc_bench.py measures h2load's own cost against wrk on /invocations);
``grpc/mlsg`` pairs the same one. h2load counts an HTTP 200 with a gRPC error as done, so
every gRPC path is checked before the load (its predictions) and satchel's ``/metrics``
after it (every ModelInfer OK).

Before any load every path must answer the same predictions. MLServer lives in a side
venv this script creates on first use under ``--cache`` (default
``~/.cache/satchel-bench/mlserver-1.7.1``; reused afterwards), with the same
scikit-learn version as this interpreter so both servers unpickle the same estimator.
MLServer gets a copy of each model fitted on a plain array (the same coefficients and
trees) so neither server pays for scikit-learn's feature-name warning.

Prints req/s medians and the median of paired ratios; never run as a test.

    .venv/bin/python benchmarks/mlserver_bench.py [--duration 5] [--rounds 3]
        [--models lr,rf30] [--rows 1,100] [--conns 8,32] [--modes off,on]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bentoml_side  # noqa: E402
import loadgen as lg  # noqa: E402

MLSERVER_VERSION = "1.7.1"
FEATURES = 20
PATHS = ("inv", "v2", "mls", "grpc", "mlsg", "bento")
GRPC_PATHS = ("grpc", "mlsg")
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
# MLServer 1.7.1's inference workers call asyncio.get_event_loop() before setting one;
# uvloop 0.22+ raises there and every worker dies, so the venv keeps the last that works.
UVLOOP_VERSION = "0.21.0"


@dataclass
class Run:
    rps: float
    p99_ms: float
    errors: int
    cpu_us: float  # server CPU (process tree) per request


# --- the MLServer side venv ----------------------------------------------------------------


def mlserver_venv(cache: Path) -> Path:
    """``cache``'s venv with MLServer and its sklearn runtime (built on first use)."""
    import sklearn

    exe = cache / "bin" / "mlserver"
    marker = cache / "satchel-bench.json"
    want = {"mlserver": MLSERVER_VERSION, "scikit-learn": sklearn.__version__,
            "uvloop": UVLOOP_VERSION}
    if exe.exists() and marker.exists() and json.loads(marker.read_text()) == want:
        return exe
    print(f"building MLServer {MLSERVER_VERSION} venv in {cache} ...", file=sys.stderr)
    shutil.rmtree(cache, ignore_errors=True)
    subprocess.run(["python3", "-m", "venv", str(cache)], check=True)
    subprocess.run([str(cache / "bin" / "pip"), "install", "-q",
                    f"mlserver=={MLSERVER_VERSION}", f"mlserver-sklearn=={MLSERVER_VERSION}",
                    f"scikit-learn=={sklearn.__version__}", f"uvloop=={UVLOOP_VERSION}"],
                   check=True)
    marker.write_text(json.dumps(want))
    return exe


# --- models --------------------------------------------------------------------------------


def make_models(work: Path, names: list[str]) -> dict[str, tuple[Path, Any, np.ndarray]]:
    """name -> (satchel model dir, the estimator fitted on an array, X)."""
    import joblib
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = make_classification(n_samples=2000, n_features=FEATURES, n_informative=10,
                               n_classes=3, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(FEATURES)])
    makers = {"lr": lambda: LogisticRegression(max_iter=1000),
              "rf30": lambda: RandomForestClassifier(n_estimators=30, random_state=0)}
    out = {}
    for name in names:
        path = work / "satchel" / name
        satchel.save_model(makers[name]().fit(frame, y), path, input_example=frame.head(3))
        plain = makers[name]().fit(X, y)
        mdir = work / "mlserver-models" / name
        mdir.mkdir(parents=True)
        joblib.dump(plain, mdir / "model.joblib")
        out[name] = (path, plain, X)
    return out


def mlserver_start(exe: Path, model_dir: Path, root: Path, batched: bool, workers: int,
                   batch_size: int, batch_ms: float, log: Path) -> tuple[Any, int, int]:
    root.mkdir(parents=True)
    shutil.copytree(model_dir, root / "m")
    settings: dict[str, Any] = {"name": "m", "implementation": "mlserver_sklearn.SKLearnModel",
                                "parameters": {"uri": "./model.joblib"}}
    if batched:
        settings.update(max_batch_size=batch_size, max_batch_time=batch_ms / 1000.0)
    (root / "m" / "model-settings.json").write_text(json.dumps(settings))
    port, grpc_port = lg.free_port(), lg.free_port()
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": grpc_port,
        "metrics_port": lg.free_port(), "parallel_workers": workers,
        "metrics_dir": str(root / "metrics"),
        # debug also turns uvicorn's access log on; satchel runs with its access log off
        "debug": False}))
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(exe), "start", str(root)], stdout=out, stderr=out,
                                cwd=root, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"MLServer exited with {proc.returncode}; see {log}")
        if lg.get(port, "/v2/models/m/ready")[0] == 200:
            return proc, port, grpc_port
        time.sleep(0.1)
    stop_group(proc)
    raise RuntimeError(f"MLServer did not become ready; see {log}")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM MLServer and its inference workers (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- bodies ----------------------------------------------------------------------------


def bodies(X: np.ndarray, rows: int) -> dict[str, bytes]:
    data = X[:rows]
    cols = [f"f{i}" for i in range(FEATURES)]
    inv = {"dataframe_split": {"columns": cols, "data": data.tolist()}}
    v2 = {"inputs": [{"name": c, "shape": [rows], "datatype": "FP64",
                      "data": data[:, i].tolist()} for i, c in enumerate(cols)]}
    mls = {"inputs": [{"name": "input-0", "shape": [rows, FEATURES], "datatype": "FP64",
                       "data": data.reshape(-1).tolist()}]}
    out = {k: json.dumps(v).encode() for k, v in (("inv", inv), ("v2", v2), ("mls", mls))}
    out["bento"] = bentoml_side.body(data.tolist())
    out["grpc"] = grpc_frame([(c, np.ascontiguousarray(data[:, i]))
                              for i, c in enumerate(cols)])
    out["mlsg"] = grpc_frame([("input-0", np.ascontiguousarray(data))])
    return out


def grpc_frame(tensors: list[tuple[str, np.ndarray]]) -> bytes:
    """A ModelInferRequest for model ``m`` as tritonclient builds it (FP64 tensors in
    raw_input_contents), framed for the wire: flag byte, big-endian length, message."""
    import struct

    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name="m")
    for name, arr in tensors:
        t = request.inputs.add(name=name, datatype="FP64")
        t.shape.extend(arr.shape)
        request.raw_input_contents.append(arr.astype("<f8").tobytes())
    message = request.SerializeToString()
    return b"\x00" + struct.pack(">I", len(message)) + message


def grpc_answer(port: int, frame: bytes) -> list[Any]:
    """The predictions a gRPC server answers to ``frame``'s request (tritonclient)."""
    import tritonclient.grpc as tg
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest.FromString(frame[5:])
    client = tg.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        reply = client._client_stub.ModelInfer(request)
    finally:
        client.close()
    out = reply.outputs[0]
    dtype = {"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4"}[out.datatype]
    return np.frombuffer(reply.raw_output_contents[0], dtype=dtype).tolist()


URL_PATHS = {"inv": "/invocations", "v2": "/v2/models/m/infer", "mls": "/v2/models/m/infer",
             "bento": "/predict", "grpc": MODEL_INFER, "mlsg": MODEL_INFER}


def answer(port: int, path: str, body: bytes) -> list[Any]:
    if path in GRPC_PATHS:
        return grpc_answer(port, body)
    status, reply = lg.post(port, body, URL_PATHS[path])
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {reply[:300]!r}")
    obj = json.loads(reply)
    if path == "bento":
        return list(obj)
    return list(obj["predictions"]) if path == "inv" else list(obj["outputs"][0]["data"])


def tree_cpu(pid: int) -> float:
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += lg.cpu_seconds(p)
        except OSError:
            continue
        todo += lg.children(p)
    return total


def load(port: int, pid: int, script: Path, path: str, conns: int, seconds: float) -> Run:
    before = tree_cpu(pid)
    if path in GRPC_PATHS:
        rps, requests, failed = h2load(port, script, conns, seconds)
        cpu = tree_cpu(pid) - before
        return Run(rps, float("nan"), failed, cpu / max(requests, 1) * 1e6)
    r = lg.wrk_finish(lg.wrk_start(port, script, conns, seconds, path=URL_PATHS[path]))
    cpu = tree_cpu(pid) - before
    return Run(r.rps, r.p99_ms, r.non2xx + r.socket_errors, cpu / max(r.requests, 1) * 1e6)


def h2load(port: int, frame: Path, conns: int, seconds: float) -> tuple[float, int, int]:
    """(req/s, requests done, failed or errored) of unary ModelInfer calls, one in flight
    per connection."""
    import re

    cmd = ["h2load", "-t1", f"-c{conns}", "-m1", f"-D{max(1, round(seconds))}",
           "-d", str(frame), "-H", "content-type: application/grpc", "-H", "te: trailers",
           f"http://127.0.0.1:{port}{MODEL_INFER}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, "
                     r"(\d+) failed, (\d+) errored", out)
    if not (rps and done):
        raise RuntimeError(f"unreadable h2load output:\n{out}")
    return (float(rps.group(1)), int(done.group(1)),
            int(done.group(2)) + int(done.group(3)))


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="lr,rf30")
    ap.add_argument("--rows", default="1,100")
    ap.add_argument("--conns", default="8,32")
    ap.add_argument("--modes", default="off,on", help="off: unbatched, on: batched")
    ap.add_argument("--mlserver-workers", type=int, default=1,
                    help="MLServer parallel_workers (its default, 1)")
    ap.add_argument("--batch-size", type=int, default=64,
                    help="MLServer's max_batch_size (requests)")
    ap.add_argument("--satchel-batch-rows", type=int, default=0,
                    help="satchel's --max-batch-size (rows; default: satchel's own)")
    ap.add_argument("--batch-ms", type=float, default=5.0)
    ap.add_argument("--satchel-args", default="", help="extra args for every satchel serve")
    cache = Path(os.environ.get("SATCHEL_BENCH_CACHE", Path.home() / ".cache" / "satchel-bench"))
    ap.add_argument("--cache", type=Path, default=cache / f"mlserver-{MLSERVER_VERSION}")
    ap.add_argument("--bentoml-cache", type=Path,
                    default=cache / f"bentoml-{bentoml_side.BENTOML_VERSION}")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"of {','.join(PATHS)}")
    args = ap.parse_args(argv)
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: apt-get install -y {package}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    paths = [p for p in PATHS if p in args.paths.split(",")]
    exe = mlserver_venv(args.cache)
    bento_exe = bentoml_side.bentoml_venv(args.bentoml_cache) if "bento" in paths else None
    names, modes = args.models.split(","), args.modes.split(",")
    rows_list = [int(r) for r in args.rows.split(",")]
    conns = [int(c) for c in args.conns.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mlserver-bench-"))
    satchels: dict[tuple[str, str], lg.Server] = {}
    mlservers: dict[tuple[str, str], tuple[Any, int, int]] = {}
    bentos: dict[tuple[str, str], tuple[Any, int]] = {}
    results: dict[tuple[str, int, int, str, str], list[Run]] = {}
    try:
        models = make_models(work, names)
        for name in names:
            path, plain, X = models[name]
            for mode in modes:
                extra = ["--batching", "off"] if mode == "off" else [
                    "--max-batch-delay-ms", str(args.batch_ms)] + (
                    ["--max-batch-size", str(args.satchel_batch_rows)]
                    if args.satchel_batch_rows else [])
                satchels[(name, mode)] = lg.start_server(
                    path, "--name", "m", "--grpc-port", str(lg.free_port()), *extra,
                    *args.satchel_args.split(), log=work / f"satchel-{name}-{mode}.log")
                mlservers[(name, mode)] = mlserver_start(
                    exe, work / "mlserver-models" / name, work / f"mls-{name}-{mode}",
                    mode == "on", args.mlserver_workers, args.batch_size, args.batch_ms,
                    work / f"mlserver-{name}-{mode}.log")
                if bento_exe is not None:
                    bentos[(name, mode)] = bentoml_side.start(
                        bento_exe, work / "mlserver-models" / name / "model.joblib",
                        work / f"bento-{name}-{mode}", mode == "on", args.batch_size,
                        work / f"bento-{name}-{mode}.log")
        for name in names:
            _, plain, X = models[name]
            for rows in rows_list:
                body = bodies(X, rows)
                scripts = {}
                for p, b in body.items():
                    if p in GRPC_PATHS:  # h2load's body file
                        scripts[p] = work / f"{name}-{rows}-{p}.grpc"
                        scripts[p].write_bytes(b)
                        continue
                    scripts[p] = work / f"{name}-{rows}-{p}.lua"
                    scripts[p].write_text(
                        'wrk.method = "POST"\nwrk.headers["Content-Type"] = '
                        f'"application/json"\nwrk.body = {json.dumps(b.decode())}\n')
                expected = plain.predict(X[:rows]).tolist()
                for mode in modes:
                    sat, mls = satchels[(name, mode)], mlservers[(name, mode)]
                    sat_grpc = int(sat.proc.args[sat.proc.args.index("--grpc-port") + 1])
                    every = {"inv": (sat.port, sat.proc.pid), "v2": (sat.port, sat.proc.pid),
                             "mls": (mls[1], mls[0].pid), "grpc": (sat_grpc, sat.proc.pid),
                             "mlsg": (mls[2], mls[0].pid)}
                    if (name, mode) in bentos:
                        bento = bentos[(name, mode)]
                        every["bento"] = (bento[1], bento[0].pid)
                    targets = {p: every[p] for p in paths}
                    for p, (port, _) in targets.items():
                        got = answer(port, p, body[p])
                        if got != expected:
                            raise RuntimeError(f"{name} {p} predicts {got[:5]}, "
                                               f"not {expected[:5]}")
                    for c in conns:
                        for p, (port, pid) in targets.items():
                            load(port, pid, scripts[p], p, c, args.warmup)
                        for rnd in range(args.rounds):
                            for p, (port, pid) in targets.items():
                                run = load(port, pid, scripts[p], p, c, args.duration)
                                results.setdefault((name, rows, c, mode, p), []).append(run)
                                print(f"  {name:<4} rows={rows:<3} c={c:<2} {mode:<3} "
                                      f"round {rnd + 1} {p:<5} {run.rps:7.0f} req/s "
                                      f"p99 {run.p99_ms:6.1f} ms cpu {run.cpu_us:5.0f} us/req"
                                      f" errors {run.errors}", file=sys.stderr)
        bad = grpc_not_ok(satchels.values()) if "grpc" in paths else {}
    finally:
        for srv in satchels.values():
            lg.stop(srv.proc)
        for proc, _, _ in mlservers.values():
            stop_group(proc)
        for proc, _ in bentos.values():
            bentoml_side.stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    report(results, names, rows_list, conns, modes, paths, args)
    print(f"satchel ModelInfer answers not OK (CANCELLED: left in flight by h2load at its "
          f"time limit): {bad or 'none'}")
    return 1 if bad else 0


def grpc_not_ok(servers: Any) -> dict[str, float]:
    """satchel's gRPC statuses other than OK and CANCELLED, from each server's /metrics."""
    bad: dict[str, float] = {}
    for srv in servers:
        for key, value in lg.metrics(srv.port).items():
            if (key.startswith("satchel_requests_total") and MODEL_INFER in key
                    and 'status="OK"' not in key and 'status="CANCELLED"' not in key):
                bad[key] = bad.get(key, 0.0) + value
    return bad


def _ratio(a: list[Run], b: list[Run]) -> float:
    return float(statistics.median(x.rps / y.rps for x, y in zip(a, b)))


RATIOS = (("inv", "mls"), ("v2", "mls"), ("v2", "inv"), ("grpc", "mlsg"), ("grpc", "inv"),
          ("inv", "bento"))


def report(results: dict[tuple[str, int, int, str, str], list[Run]], names: list[str],
           rows_list: list[int], conns: list[int], modes: list[str], paths: list[str],
           args: Any) -> None:
    label = {"lr": "LogisticRegression", "rf30": "RandomForest-30"}
    ratios = [(a, b) for a, b in RATIOS if a in paths and b in paths]
    table: list[list[Any]] = []
    for name in names:
        for rows in rows_list:
            for c in conns:
                for mode in modes:
                    r = {p: results[(name, rows, c, mode, p)] for p in paths}
                    med = {p: statistics.median(x.rps for x in r[p]) for p in paths}
                    cpu = {p: statistics.median(x.cpu_us for x in r[p]) for p in paths}
                    errors = sum(x.errors for p in paths for x in r[p])
                    table.append([label.get(name, name), rows, c,
                                  "batched" if mode == "on" else "unbatched",
                                  *(f"{med[p]:.0f}" for p in paths),
                                  *(f"{_ratio(r[a], r[b]):.2f}" for a, b in ratios),
                                  "/".join(f"{cpu[p]:.0f}" for p in paths), errors])
    print(f"\nsatchel vs MLServer {MLSERVER_VERSION} (sklearn runtime, parallel_workers="
          f"{args.mlserver_workers}); wrk -t1, {args.rounds} interleaved rounds of "
          f"{args.duration:g} s; medians; ratios are medians of paired runs; batched: "
          f"satchel --max-batch-size {args.satchel_batch_rows or 'default'} (rows), MLServer "
          f"max_batch_size {args.batch_size} (requests), both {args.batch_ms:g} ms; "
          f"{os.cpu_count()} cores shared with wrk\n")
    print(lg.table(table, ["model", "rows", "conns", "mode", *(f"{p} req/s" for p in paths),
                           *(f"{a}/{b}" for a, b in ratios),
                           f"cpu us/req {'/'.join(paths)}", "errors"]))
    print("\ninv: satchel /invocations dataframe_split; v2: satchel V2 REST (a [N] FP64 "
          "tensor per column); mls: MLServer V2 REST, one [N,20] FP64 tensor; grpc: satchel "
          "gRPC ModelInfer (a [N] FP64 tensor per column, raw contents); mlsg: MLServer gRPC "
          "ModelInfer (one [N,20] FP64 tensor, raw contents); bento: BentoML "
          f"{bentoml_side.BENTOML_VERSION} POST /predict. gRPC paths: h2load -t1 -m1; "
          "HTTP paths: wrk -t1")


if __name__ == "__main__":
    sys.exit(main())
