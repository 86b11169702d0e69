"""gRPC ModelInfer against ``/invocations``, this checkout's satchel beside an older one.

The 1-row cells of ``mlserver_bench.py --paths inv,grpc`` (the same two scikit-learn
models on 20 FP64 features, unbatched and batched, 8 and 32 connections; ``inv``: wrk -t1
with ``dataframe_split`` JSON, ``grpc``: h2load -t1 -m1 with tritonclient's message of 20
[1] FP64 tensors in ``raw_input_contents``), with two satchels per cell: this checkout
(``after``) and ``--before COMMIT`` (default ``main``), checked out with ``git worktree``
into a temporary directory and run from it through ``PYTHONPATH`` (a link tree of its
packages laid out as installed; same interpreter and dependencies). Every round loads
the four (server, path) pairs in turn, so the ratios pair runs that shared the same
moment of a shared machine. Prints req/s medians, median paired ratios and each
server's CPU per request (its process tree, /proc); never run as a test.

    python benchmarks/grpc_paired_bench.py [--before main] [--duration 5] [--rounds 3]
        [--models lr,rf30] [--conns 8,32] [--modes off,on]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen as lg  # noqa: E402
import mlserver_bench as mb  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SIDES = ("after", "before")
PATHS = ("inv", "grpc")


def link_tree(source: Path, tree: Path) -> None:
    """``source``'s packages as pip would install them (its ``package-dir`` mapping), as
    symlinks under ``tree``, for ``PYTHONPATH``."""
    config = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, folder in sorted(config["package-dir"].items()):
        target = tree.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in (source / folder).iterdir():
            link = target / entry.name
            if entry.is_file() and not link.exists():
                link.symlink_to(entry)
            elif entry.is_dir() and not link.exists() and f"{package}.{entry.name}" not in \
                    config["package-dir"] and entry.name != "__pycache__":
                link.symlink_to(entry)  # a folder shipped as data (static files)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--before", default="main", help="the commit to compare with")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="lr,rf30")
    ap.add_argument("--conns", default="8,32")
    ap.add_argument("--modes", default="off,on", help="off: unbatched, on: batched")
    ap.add_argument("--batch-ms", type=float, default=5.0)
    args = ap.parse_args()
    names, modes = args.models.split(","), args.modes.split(",")
    conns = [int(c) for c in args.conns.split(",")]
    work = Path(tempfile.mkdtemp(prefix="grpc-paired-"))
    before_src = work / "before-src"
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.before],
                            capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q",
                    str(before_src), commit], check=True)
    servers: dict[tuple[str, str, str], lg.Server] = {}
    results: dict[tuple[str, int, str, str, str], list[mb.Run]] = {}
    try:
        link_tree(before_src, work / "before-path")
        env = {"before": {"PYTHONPATH": str(work / "before-path")}, "after": {}}
        models = mb.make_models(work, names)
        for name in names:
            path, _, _ = models[name]
            for mode in modes:
                extra = (["--batching", "off"] if mode == "off"
                         else ["--max-batch-delay-ms", str(args.batch_ms)])
                for side in SIDES:
                    servers[(name, mode, side)] = lg.start_server(
                        path, "--name", "m", "--grpc-port", str(lg.free_port()), *extra,
                        log=work / f"{name}-{mode}-{side}.log", env=env[side])
        for name in names:
            _, plain, X = models[name]
            body = mb.bodies(X, 1)
            scripts = {"grpc": work / f"{name}.grpc", "inv": work / f"{name}.lua"}
            scripts["grpc"].write_bytes(body["grpc"])
            scripts["inv"].write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = '
                                      f'"application/json"\nwrk.body = '
                                      f'{json.dumps(body["inv"].decode())}\n')
            expected = plain.predict(X[:1]).tolist()
            for mode in modes:
                targets: dict[tuple[str, str], tuple[int, int]] = {}
                for side in SIDES:
                    srv = servers[(name, mode, side)]
                    grpc_port = int(srv.proc.args[srv.proc.args.index("--grpc-port") + 1])
                    targets[(side, "inv")] = (srv.port, srv.proc.pid)
                    targets[(side, "grpc")] = (grpc_port, srv.proc.pid)
                for (side, p), (port, _) in targets.items():
                    if (got := mb.answer(port, p, body[p])) != expected:
                        raise RuntimeError(f"{name} {side} {p} predicts {got}, not {expected}")
                for c in conns:
                    for (_, p), (port, pid) in targets.items():
                        mb.load(port, pid, scripts[p], p, c, args.warmup)
                    for rnd in range(args.rounds):
                        for (side, p), (port, pid) in targets.items():
                            run = mb.load(port, pid, scripts[p], p, c, args.duration)
                            results.setdefault((name, c, mode, side, p), []).append(run)
                            print(f"  {name:<4} c={c:<2} {mode:<3} round {rnd + 1} {side:<6} "
                                  f"{p:<4} {run.rps:7.0f} req/s cpu {run.cpu_us:5.0f} us/req "
                                  f"errors {run.errors}", file=sys.stderr)
        bad = mb.grpc_not_ok(servers.values())
    finally:
        for srv in servers.values():
            lg.stop(srv.proc)
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                        str(before_src)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    report(results, names, conns, modes, args, commit)
    print(f"satchel ModelInfer answers not OK: {bad or 'none'}")
    return 1 if bad else 0


def report(results: dict[tuple[str, int, str, str, str], list[mb.Run]], names: list[str],
           conns: list[int], modes: list[str], args: Any, commit: str) -> None:
    label = {"lr": "LogisticRegression", "rf30": "RandomForest-30"}
    rows: list[list[Any]] = []
    for name in names:
        for c in conns:
            for mode in modes:
                r = {(s, p): results[(name, c, mode, s, p)] for s in SIDES for p in PATHS}
                rps = {k: statistics.median(x.rps for x in v) for k, v in r.items()}
                cpu = {k: statistics.median(x.cpu_us for x in v) for k, v in r.items()}
                rows.append([
                    label.get(name, name), c, "batched" if mode == "on" else "unbatched",
                    f"{rps[('after', 'grpc')]:.0f}", f"{rps[('before', 'grpc')]:.0f}",
                    f"{mb._ratio(r[('after', 'grpc')], r[('after', 'inv')]):.2f}",
                    f"{mb._ratio(r[('before', 'grpc')], r[('before', 'inv')]):.2f}",
                    f"{mb._ratio(r[('after', 'grpc')], r[('before', 'grpc')]):.2f}",
                    f"{cpu[('after', 'grpc')]:.0f}/{cpu[('before', 'grpc')]:.0f}",
                    f"{cpu[('after', 'inv')]:.0f}/{cpu[('before', 'inv')]:.0f}"])
    print(f"\n1-row ModelInfer and /invocations, this checkout (after) and {commit} (before), "
          f"one worker each; {args.rounds} interleaved rounds of {args.duration:g} s; "
          f"medians; ratios are medians of paired runs; {os.cpu_count()} cores shared with "
          "the load generators\n")
    print(lg.table(rows, ["model", "conns", "mode", "grpc req/s after", "before",
                          "grpc/inv after", "grpc/inv before", "grpc after/before",
                          "grpc cpu us/req after/before", "inv cpu us/req after/before"]))


if __name__ == "__main__":
    sys.exit(main())
