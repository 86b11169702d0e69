"""The single-model path before and after the production-serving layer.

``before`` is satchel as a given git revision left it (extracted with ``git archive``
into a temporary tree and put first on PYTHONPATH); ``after`` is the working tree, run
twice: with ``--no-batching`` (the path the REST server had) and with its defaults
(batching, metrics, limits and request ids all on). The floor app from serve_bench.py
runs too. A LogisticRegression on iris, 1-row ``dataframe_split``, wrk at 8 and 32
connections; rounds alternate between servers. Prints req/s, p50, p99 and ratios to
``before``.

    .venv/bin/python benchmarks/fastpath_bench.py [--rev HEAD] [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import loadgen as lg

ROOT = Path(__file__).resolve().parent.parent


def snapshot(rev: str, work: Path) -> Path:
    """The package tree of ``rev`` laid out as an importable ``satchel`` package."""
    repo = work / "repo"
    repo.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    site = work / "site"
    shutil.copytree(repo / "src" / "satchel", site / "satchel")
    shutil.copytree(repo / "flavors", site / "satchel" / "flavors")
    shutil.copytree(repo / "serving", site / "satchel" / "serving")
    return site


def make_logreg(root: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = lg.COLUMNS
    path = root / "iris"
    satchel.save_model(LogisticRegression(max_iter=1000).fit(X, y), path,
                       input_example=X.head(3))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rev", default="HEAD", help="the 'before' git revision")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", default="8,32")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fastpath-bench-"))
    servers: dict[str, lg.Server] = {}
    try:
        site = snapshot(args.rev, work / "before")
        model = make_logreg(work)
        before_env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        servers["before"] = lg.start_server(model, log=work / "before.log", env=before_env)
        servers["after --no-batching"] = lg.start_server(model, "--no-batching",
                                                         log=work / "nb.log")
        servers["after (defaults)"] = lg.start_server(model, log=work / "d.log")
        floor_port = lg.free_port()
        floor = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(lg.HERE), "floor_app:app",
             "--port", str(floor_port), "--no-access-log", "--log-level", "warning"],
            env={**os.environ, "FLOOR_MODEL": str(model / "model.pkl")},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers["floor"] = lg.Server(floor, floor_port, 0.0)
        deadline = time.monotonic() + 30
        while lg.get(floor_port, "/ping")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        script = lg.wrk_script(work, lg.split_body(1))
        conns = [int(c) for c in args.connections.split(",")]
        results = lg.paired_loads(servers, script, conns, args.rounds, args.duration,
                                  args.warmup)
        rows = lg.paired_rows(results, conns, servers, "before")
        print(f"\nLogisticRegression (iris), 1-row dataframe_split, wrk -t1, {args.duration:g} s x "
              f"{args.rounds} rounds, one process each (medians; ratios of paired runs vs "
              f"'before' = {args.rev})\n")
        print(lg.table(rows, ["conns", "server", "req/s", "p50 ms", "p99 ms", "errors",
                              "x req/s", "x p99"]))
    finally:
        for srv in servers.values():
            lg.stop(srv.proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
