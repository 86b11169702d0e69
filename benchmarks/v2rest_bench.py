"""V2 REST against ``/invocations`` on the same model: req/s and server CPU per request,
before and after a change, paired in one run.

The models and bodies are mlserver_bench.py's (a LogisticRegression and a 30-tree
RandomForest on 20 float features): ``inv`` posts ``dataframe_split`` JSON to
``/invocations``; ``v2`` posts one [N] FP64 tensor per column to ``/v2/models/m/infer``
(what tritonclient builds for a column signature). No MLServer runs.

With ``--before REV`` every (model, batching) pair is served twice at once: by ``REV``'s
source tree (``git archive``, first on PYTHONPATH) and by the working tree. Each cell
(model, rows, connections, batched or not) then loads ``inv`` and ``v2`` of both, one
after the other, round after round, so every ratio pairs runs that shared the same
moment of a shared machine. Server CPU per request (the server process's user + system
time over the run, divided by its requests) is printed beside req/s: on a busy machine
it moves much less than req/s does.

    flock /work/bench.lock .venv/bin/python benchmarks/v2rest_bench.py --before main
        [--duration 4] [--rounds 3] [--models lr,rf30] [--rows 1,100] [--conns 8,32]
        [--modes off,on] [--after REV]

Prints medians and medians of paired ratios; never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen as lg  # noqa: E402
import mlserver_bench as mb  # noqa: E402
from fastpath_bench import snapshot  # noqa: E402

PATHS = ("inv", "v2")


def scripts(work: Path, body: dict[str, bytes], tag: str) -> dict[str, Path]:
    out = {}
    for p in PATHS:
        out[p] = work / f"{tag}-{p}.lua"
        out[p].write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = '
                          f'"application/json"\nwrk.body = {json.dumps(body[p].decode())}\n')
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--before", default="", help="git revision to pair with the working tree")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="lr,rf30")
    ap.add_argument("--rows", default="1,100")
    ap.add_argument("--conns", default="8,32")
    ap.add_argument("--modes", default="off,on", help="off: unbatched, on: batched (5 ms)")
    ap.add_argument("--after", default="",
                    help="git revision served as 'after' (default: the working tree)")
    ap.add_argument("--before-only", action="store_true",
                    help="serve only --before's tree (a baseline of it alone)")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    names, modes = args.models.split(","), args.modes.split(",")
    rows_list = [int(r) for r in args.rows.split(",")]
    conns = [int(c) for c in args.conns.split(",")]
    work = Path(tempfile.mkdtemp(prefix="v2rest-bench-"))
    trees: dict[str, dict[str, str]] = {"after": {}}
    results: dict[tuple[str, int, int, str, str, str], list[mb.Run]] = {}
    load_avg = []
    try:
        if args.before:
            site = snapshot(args.before, work / "before")
            trees = {"before": {"PYTHONPATH": f"{site}{os.pathsep}"
                                              f"{os.environ.get('PYTHONPATH', '')}"},
                     "after": {}}
            if args.before_only:
                del trees["after"]
        if args.after and "after" in trees:
            site = snapshot(args.after, work / "after")
            trees["after"] = {"PYTHONPATH": f"{site}{os.pathsep}"
                                            f"{os.environ.get('PYTHONPATH', '')}"}
        models = mb.make_models(work, names)
        for name in names:
            path, plain, X = models[name]
            for mode in modes:
                extra = ["--batching", "off"] if mode == "off" else [
                    "--max-batch-delay-ms", "5"]
                servers: dict[str, lg.Server] = {}
                try:
                    for tree, env in trees.items():
                        servers[tree] = lg.start_server(
                            path, "--name", "m", *extra, env=env,
                            log=work / f"{tree}-{name}-{mode}.log")
                    load_avg.append(os.getloadavg()[0])
                    run_cells(servers, name, mode, plain, X, rows_list, conns, args, work,
                              results)
                    load_avg.append(os.getloadavg()[0])
                finally:
                    for srv in servers.values():
                        lg.stop(srv.proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, list(trees), names, rows_list, conns, modes, args, load_avg)
    return 0


def run_cells(servers: dict[str, lg.Server], name: str, mode: str, plain: Any, X: Any,
              rows_list: list[int], conns: list[int], args: Any, work: Path,
              results: dict[tuple[str, int, int, str, str, str], list[mb.Run]]) -> None:
    for rows in rows_list:
        body = mb.bodies(X, rows)
        script = scripts(work, body, f"{name}-{rows}")
        expected = plain.predict(X[:rows]).tolist()
        targets = [(tree, p) for tree in servers for p in PATHS]
        for tree, p in targets:
            got = mb.answer(servers[tree].port, p, body[p])
            if got != expected:
                raise RuntimeError(f"{tree} {name} {p} predicts {got[:5]}, not {expected[:5]}")
        for c in conns:
            for tree, p in targets:
                srv = servers[tree]
                mb.load(srv.port, srv.proc.pid, script[p], p, c, args.warmup)
            for rnd in range(args.rounds):
                for tree, p in targets:
                    srv = servers[tree]
                    run = mb.load(srv.port, srv.proc.pid, script[p], p, c, args.duration)
                    results.setdefault((name, rows, c, mode, tree, p), []).append(run)
                    print(f"  {name:<4} rows={rows:<3} c={c:<2} {mode:<3} round {rnd + 1} "
                          f"{tree:<6} {p:<3} {run.rps:7.0f} req/s cpu {run.cpu_us:5.0f} us/req "
                          f"errors {run.errors}", file=sys.stderr)


def report(results: dict[tuple[str, int, int, str, str, str], list[mb.Run]],
           trees: list[str], names: list[str], rows_list: list[int], conns: list[int],
           modes: list[str], args: Any, load_avg: list[float]) -> None:
    label = {"lr": "LogisticRegression", "rf30": "RandomForest-30"}
    table: list[list[Any]] = []
    for name in names:
        for rows in rows_list:
            for c in conns:
                for mode in modes:
                    row: list[Any] = [label.get(name, name), rows, c,
                                      "batched" if mode == "on" else "unbatched"]
                    errors = 0
                    for tree in trees:
                        r = {p: results[(name, rows, c, mode, tree, p)] for p in PATHS}
                        cpu = {p: statistics.median(x.cpu_us for x in r[p]) for p in PATHS}
                        ratio = statistics.median(
                            v.rps / i.rps for v, i in zip(r["v2"], r["inv"]))
                        row += [f"{statistics.median(x.rps for x in r['inv']):.0f}",
                                f"{statistics.median(x.rps for x in r['v2']):.0f}",
                                f"{ratio:.2f}", f"{cpu['inv']:.0f}/{cpu['v2']:.0f}",
                                f"{cpu['v2'] - cpu['inv']:+.0f}"]
                        errors += sum(x.errors for p in PATHS for x in r[p])
                    table.append([*row, errors])
    head = ["model", "rows", "conns", "mode"]
    for tree in trees:
        head += [f"{tree} inv req/s", f"{tree} v2 req/s", f"{tree} v2/inv",
                 f"{tree} cpu us/req inv/v2", f"{tree} v2-inv cpu"]
    print(f"\nV2 REST vs /invocations, satchel one worker; wrk -t1, {args.rounds} interleaved "
          f"rounds of {args.duration:g} s; medians; v2/inv is the median of paired runs; "
          f"before: {args.before or '-'}; after: {args.after or 'working tree'}; "
          f"batched: 5 ms; load average (1 min) during the "
          f"run {min(load_avg, default=0):.1f}-{max(load_avg, default=0):.1f}; "
          f"{os.cpu_count()} cores shared with wrk\n")
    print(lg.table(table, [*head, "errors"]))


if __name__ == "__main__":
    sys.exit(main())
