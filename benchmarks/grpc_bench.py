"""gRPC ModelInfer against HTTP ``/invocations`` on the same server and model.

One ``satchel serve --grpc-port`` process (one worker, default batching) serves the iris
LogisticRegression; every round loads both paths in turn, so the ratios pair runs that
shared the same moment of a shared machine:

- ``invocations/wrk``: POST /invocations, ``dataframe_split`` JSON, HTTP/1.1, wrk -t1
  (the baseline the project's other serving benchmarks use);
- ``invocations/h2load``: the same request from h2load --h1 (a control: the same load
  generator as the gRPC row, so the tool's own cost is seen);
- ``grpc``: ModelInfer with four FP64 inputs in ``raw_input_contents``, the message the
  real ``tritonclient.grpc`` client sends, over HTTP/2 from h2load -t1 (one stream in
  flight per connection, as a unary client has);
- ``grpc-stream/N``: ModelStreamInfer, N of those messages sent at once on one stream
  per connection (what ``async_stream_infer`` called N times does); its req/s counts
  messages (h2load's streams x N), its latency is one whole stream's.

h2load counts any HTTP 200 as success and a gRPC error is an HTTP 200, so the run checks
the server's own ``/metrics`` afterwards: every ModelInfer must have answered OK.
Needs ``wrk`` and ``h2load`` (Debian: wrk, nghttp2-client). Never run as a test.

    python benchmarks/grpc_bench.py [--rows 1] [--conns 8,32] [--rounds 3] [--duration 5]
                                    [--batching auto|off] [--stream 16]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402

SERVICE = "/inference.GRPCInferenceService/ModelInfer"
STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"


@dataclass
class Run:
    rps: float
    mean_ms: float
    failed: int


def make_model(root: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = loadgen.COLUMNS
    path = root / "iris"
    satchel.save_model(LogisticRegression(max_iter=1000).fit(X, y), path,
                       input_example=X.head(3))
    return path


def grpc_frame(rows: int) -> tuple[bytes, object]:
    """A ModelInferRequest as tritonclient builds it, framed for the wire (1 byte
    compressed flag, 4 bytes big-endian length, the message); and the inputs."""
    import tritonclient.grpc as tg
    from sklearn.datasets import load_iris
    from tritonclient.grpc import service_pb2

    data = load_iris().data[:rows]
    request = service_pb2.ModelInferRequest(model_name="iris")
    inputs = []
    for i, col in enumerate(loadgen.COLUMNS):
        t = tg.InferInput(col, [rows], "FP64")
        t.set_data_from_numpy(np.ascontiguousarray(data[:, i]))
        inputs.append(t)
        request.inputs.append(t._get_tensor())
        request.raw_input_contents.append(t._get_content())
    message = request.SerializeToString()
    return b"\x00" + struct.pack(">I", len(message)) + message, inputs


def h2load(url: str, body: Path, conns: int, seconds: float, *, grpc: bool) -> Run:
    cmd = ["h2load", "-t1", f"-c{conns}", "-m1", f"-D{max(1, round(seconds))}",
           "-d", str(body)]
    if grpc:
        cmd += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    else:
        cmd += ["--h1", "-H", "content-type: application/json"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    if not (rps and done and mean):
        raise RuntimeError(f"unreadable h2load output:\n{out}")
    return Run(float(rps.group(1)), loadgen._ms(mean.group(1)),
               int(done.group(2)) + int(done.group(3)))


def wrk(port: int, script: Path, conns: int, seconds: float) -> Run:
    load = loadgen.wrk(port, script, conns, seconds)
    return Run(load.rps, load.p50_ms, load.non2xx + load.socket_errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--conns", default="8,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--batching", choices=("auto", "off"), default="auto",
                        help="the server's batching (auto: the default, batched)")
    parser.add_argument("--stream", type=int, default=16,
                        help="messages per ModelStreamInfer stream (0: no stream row)")
    args = parser.parse_args()
    for tool in ("wrk", "h2load"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: wrk, nghttp2-client)")
    conns = [int(c) for c in args.conns.split(",")]
    work = Path(tempfile.mkdtemp(prefix="satchel-grpc-bench-"))
    try:
        model = make_model(work)
        json_body = loadgen.split_body(args.rows)
        (work / "body.json").write_bytes(json_body)
        frame, inputs = grpc_frame(args.rows)
        (work / "body.grpc").write_bytes(frame)
        (work / "body.stream").write_bytes(frame * max(args.stream, 1))
        script = loadgen.wrk_script(work, json_body)
        grpc_port = loadgen.free_port()
        server = loadgen.start_server(model, "--name", "iris", "--grpc-port", str(grpc_port),
                                      "--batching", args.batching, log=work / "serve.log")
        try:
            import tritonclient.grpc as tg

            # both paths answer, and answer the same, before any load
            client = tg.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            result = client.infer("iris", inputs)
            via_grpc = result.as_numpy(result.get_response().outputs[0].name).tolist()
            status, body = loadgen.post(server.port, json_body)
            assert status == 200, body[:200]
            import json

            assert json.loads(body)["predictions"] == via_grpc, (body[:200], via_grpc)
            client.close()
            http_url = f"http://127.0.0.1:{server.port}/invocations"
            grpc_url = f"http://127.0.0.1:{grpc_port}{SERVICE}"
            paths = {
                "invocations/wrk": lambda c, s: wrk(server.port, script, c, s),
                "invocations/h2load": lambda c, s: h2load(http_url, work / "body.json", c, s,
                                                          grpc=False),
                "grpc": lambda c, s: h2load(grpc_url, work / "body.grpc", c, s, grpc=True),
            }
            if args.stream:
                stream_url = f"http://127.0.0.1:{grpc_port}{STREAM}"

                def stream(c: int, s: float) -> Run:
                    r = h2load(stream_url, work / "body.stream", c, s, grpc=True)
                    return Run(r.rps * args.stream, r.mean_ms, r.failed)

                paths[f"grpc-stream/{args.stream}"] = stream
            results: dict[tuple[str, int], list[Run]] = {}
            for c in conns:
                for run in paths.values():
                    run(c, args.warmup)
                for rnd in range(args.rounds):
                    for name, run in paths.items():
                        r = run(c, args.duration)
                        results.setdefault((name, c), []).append(r)
                        print(f"  c={c} round {rnd + 1} {name:<20} {r.rps:8.0f} req/s "
                              f"{r.mean_ms:6.2f} ms failed {r.failed}", file=sys.stderr)
            counts = loadgen.metrics(server.port)
        finally:
            loadgen.stop(server.proc)
        # CANCELLED: calls h2load left in flight when its time was up
        routes = (SERVICE + '"', STREAM + '"')
        bad = {k: v for k, v in counts.items() if any(r in k for r in routes)
               and "satchel_requests_total" in k
               and 'status="OK"' not in k and 'status="CANCELLED"' not in k}
        ok = sum(v for k, v in counts.items() if any(r in k for r in routes)
                 and 'status="OK"' in k and "satchel_requests_total" in k)
        rows = []
        for c in conns:
            base = results[("invocations/wrk", c)]
            for name in paths:
                runs = results[(name, c)]
                ratio = statistics.median(r.rps / b.rps for r, b in zip(runs, base))
                rows.append([c, name, f"{statistics.median(r.rps for r in runs):.0f}",
                             f"{statistics.median(r.mean_ms for r in runs):.2f}",
                             sum(r.failed for r in runs), f"{ratio:.2f}"])
        print(f"\niris LogisticRegression, {args.rows} row(s) per request, one worker, "
              f"batching {args.batching}, "
              f"{args.rounds} interleaved rounds of {args.duration:g} s (medians; ratio = "
              "req/s over invocations/wrk of the same round)\n")
        print(loadgen.table(rows, ["conns", "path", "req/s", "latency ms*", "failed",
                                   "ratio"]))
        print("\n* wrk: median latency; h2load: mean latency")
        print(f"ModelInfer and ModelStreamInfer requests answered OK {ok:.0f} times; "
              f"not OK: {bad or 'none'}")
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
