"""The floor under any Python gRPC server here: grpcio answering ``ModelInfer`` with a
constant reply and no work, asyncio server (what satchel and MLServer run) and the
thread-pool server, loaded as ``mlserver_bench.py`` loads gRPC (h2load -t1 -m1, the same
1-row message of 20 FP64 tensors). Prints req/s and server CPU per call; compare with
satchel's whole ``/invocations`` request in ``mlserver_bench.py``'s CPU column.
Never run as a test.

    python benchmarks/grpcio_floor.py [--conns 8] [--duration 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
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
import asyncio, sys
from concurrent import futures
import grpc, grpc.aio
from satchel.serving.protocols import satchel_inference_pb2 as pb

REPLY = pb.ModelInferResponse(model_name="m", id="x").SerializeToString()
handlers = {"ModelInfer": grpc.unary_unary_rpc_method_handler(
    lambda request, context: REPLY, request_deserializer=pb.ModelInferRequest.FromString)}
port, kind = sys.argv[1], sys.argv[2]
if kind == "aio":
    async def infer(request, context):
        return REPLY
    aio = {"ModelInfer": grpc.unary_unary_rpc_method_handler(
        infer, request_deserializer=pb.ModelInferRequest.FromString)}
    async def main():
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", aio),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()
    asyncio.run(main())
else:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grpcio-floor-"))
    X = np.random.default_rng(0).random((1, mb.FEATURES))
    frame = work / "body.grpc"
    frame.write_bytes(mb.grpc_frame([(f"f{i}", np.ascontiguousarray(X[:, i]))
                                     for i in range(mb.FEATURES)]))
    (work / "server.py").write_text(SERVER)
    servers = {}
    try:
        for kind in ("aio", "sync"):
            port = lg.free_port()
            proc = subprocess.Popen([sys.executable, str(work / "server.py"), str(port), kind])
            servers[kind] = (proc, port)
        time.sleep(3)
        runs: dict[str, list[tuple[float, float]]] = {}
        for _, port in servers.values():
            mb.h2load(port, frame, args.conns, 1)  # warm up
        for _ in range(args.rounds):
            for kind, (proc, port) in servers.items():
                before = lg.cpu_seconds(proc.pid)
                rps, done, failed = mb.h2load(port, frame, args.conns, args.duration)
                cpu = lg.cpu_seconds(proc.pid) - before
                if failed:
                    raise RuntimeError(f"{kind}: {failed} calls failed")
                runs.setdefault(kind, []).append((rps, cpu / max(done, 1) * 1e6))
        rows = [[kind, f"{statistics.median(r for r, _ in v):.0f}",
                 f"{statistics.median(c for _, c in v):.0f}"] for kind, v in runs.items()]
        print(f"\ngrpcio constant-reply ModelInfer, h2load -t1 -c{args.conns} -m1, "
              f"{args.rounds} rounds of {args.duration:g} s (medians)\n")
        print(lg.table(rows, ["server", "req/s", "server cpu us/call"]))
    finally:
        for proc, _ in servers.values():
            lg.stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
