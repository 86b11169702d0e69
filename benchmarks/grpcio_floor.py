"""The transport floors under satchel's two scoring paths: what grpcio and uvicorn cost per
call when the handler does no work, loaded as ``mlserver_bench.py`` loads them.

- ``grpcio aio``: grpcio's asyncio server (what satchel and MLServer run) answering
  ``ModelInfer`` with a constant reply, the request parsed as satchel parses it; h2load
  -t1 -m1 with the 1-row message of 20 FP64 tensors (tritonclient's);
- ``grpcio aio registered``: the same, the method registered with grpcio's core
  (``add_registered_method_handlers``) instead of found by a generic handler;
- ``grpcio aio +options``: the same with the server options one would try first
  (``grpc.optimization_target=throughput``, BDP probes, retries and channelz off);
- ``grpcio aio legacy endpoints``: the same with grpcio's EventEngine listener and
  endpoints switched off (``GRPC_EXPERIMENTS``), grpcio's older I/O path;
- ``grpcio sync``: grpcio's thread-pool server, one thread (and 8, and 64 threads: more
  threads cost no more per call with constant replies);
- ``uvicorn``: a bare ASGI app answering a constant JSON reply on uvicorn as satchel runs
  it (its default loop and HTTP parser), wrk -t1 with the 1-row ``dataframe_split`` body
  of ``/invocations``: the HTTP side's floor.

Prints req/s, server CPU per call and the load generator's CPU per call (medians over
interleaved rounds); compare the server CPU with satchel's whole request in
``mlserver_bench.py``'s CPU column. Never run as a test.

    python benchmarks/grpcio_floor.py [--conns 8] [--duration 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen as lg  # noqa: E402
import mlserver_bench as mb  # noqa: E402

SERVER = '''
import asyncio, json, sys
from concurrent import futures
import grpc, grpc.aio
from satchel.serving.protocols import satchel_inference_pb2 as pb

REPLY = pb.ModelInferResponse(model_name="m", id="x").SerializeToString()
port, kind, options = sys.argv[1], sys.argv[2], [tuple(o) for o in json.loads(sys.argv[3])]
service = "inference.GRPCInferenceService"
if kind.startswith("aio"):
    async def infer(request, context):
        return REPLY
    aio = {"ModelInfer": grpc.unary_unary_rpc_method_handler(
        infer, request_deserializer=pb.ModelInferRequest.FromString)}
    async def main():
        server = grpc.aio.server(options=options)
        if kind == "aio-registered":  # methods matched by grpcio's core, not in Python
            server.add_registered_method_handlers(service, aio)
        else:
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service,
                                                                                aio),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()
    asyncio.run(main())
else:
    handlers = {"ModelInfer": grpc.unary_unary_rpc_method_handler(
        lambda request, context: REPLY, request_deserializer=pb.ModelInferRequest.FromString)}
    threads = int(kind.split("-")[1]) if "-" in kind else 1
    server = grpc.server(futures.ThreadPoolExecutor(threads), options=options)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()
'''

ASGI = '''
REPLY = b'{"predictions":[0]}'


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body, as any handler must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": REPLY})
'''

OPTIONS = [("grpc.optimization_target", "throughput"), ("grpc.http2.bdp_probe", 0),
           ("grpc.enable_retries", 0), ("grpc.enable_channelz", 0)]
LEGACY = {"GRPC_EXPERIMENTS": "-event_engine_listener,-event_engine_for_all_other_endpoints"}
# name -> (server kind, grpcio options, extra environment)
GRPC_SERVERS: dict[str, tuple[str, list[tuple[str, object]], dict[str, str]]] = {
    "grpcio aio": ("aio", [], {}),
    "grpcio aio registered": ("aio-registered", [], {}),
    "grpcio aio +options": ("aio", OPTIONS, {}),
    "grpcio aio legacy endpoints": ("aio", [], LEGACY),
    "grpcio sync": ("sync", [], {}),
    "grpcio sync, 8 threads": ("sync-8", [], {}),
    "grpcio sync, 64 threads": ("sync-64", [], {}),
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    lg.check_serve_extras()  # the uvicorn floor is of uvicorn as satchel[serve] runs it
    work = Path(tempfile.mkdtemp(prefix="grpcio-floor-"))
    X = np.random.default_rng(0).random((1, mb.FEATURES))
    body = mb.bodies(X, 1)
    frame = work / "body.grpc"
    frame.write_bytes(body["grpc"])
    script = lg.wrk_script(work, body["inv"])
    (work / "server.py").write_text(SERVER)
    (work / "asgi_floor.py").write_text(ASGI)
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name, (kind, options, env) in GRPC_SERVERS.items():
            port = lg.free_port()
            servers[name] = (subprocess.Popen(
                [sys.executable, str(work / "server.py"), str(port), kind,
                 json.dumps(options)], env={**os.environ, **env}), port)
        port = lg.free_port()
        servers["uvicorn"] = (subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(work), "asgi_floor:app",
             "--port", str(port), "--no-access-log", "--log-level", "warning"]), port)
        time.sleep(3)

        def load(name: str, seconds: float) -> tuple[float, float, float]:
            proc, port = servers[name]
            before, client = lg.cpu_seconds(proc.pid), _children_cpu()
            if name == "uvicorn":
                r = lg.wrk(port, script, args.conns, seconds)
                rps, done, failed = r.rps, r.requests, r.non2xx + r.socket_errors
            else:
                rps, done, failed = mb.h2load(port, frame, args.conns, seconds)
            if failed:
                raise RuntimeError(f"{name}: {failed} calls failed")
            return (rps, (lg.cpu_seconds(proc.pid) - before) / max(done, 1) * 1e6,
                    (_children_cpu() - client) / max(done, 1) * 1e6)

        for name in servers:
            load(name, 1)  # warm up
        runs: dict[str, list[tuple[float, float, float]]] = {}
        for _ in range(args.rounds):
            for name in servers:
                runs.setdefault(name, []).append(load(name, args.duration))
        rows = [[name, "wrk -t1" if name == "uvicorn" else "h2load -t1 -m1",
                 *(f"{statistics.median(r[i] for r in v):.0f}" for i in range(3))]
                for name, v in runs.items()]
        print(f"\nconstant-reply servers, {args.conns} connections, {args.rounds} interleaved "
              f"rounds of {args.duration:g} s (medians); 1-row requests of 20 FP64 columns\n")
        print(lg.table(rows, ["server", "load", "req/s", "server cpu us/call",
                              "load generator cpu us/call"]))
    finally:
        for proc, _ in servers.values():
            lg.stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
