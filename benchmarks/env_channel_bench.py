"""CPU per call through the model worker channel: the front's and the worker's, against the
same model in-process.

An iris LogisticRegression is loaded in a model worker running this interpreter (the
channel alone: no environment is built) and in this process. One caller on an event loop
makes sequential ``predict_detailed_async`` calls, as the served front does. Each block
of calls is timed as the front's CPU (``time.process_time``), the worker's CPU
(``/proc``) and wall time, followed by the same number of in-process
``predict_detailed`` calls. Figures are medians over the blocks.

    flock /work/bench.lock .venv/bin/python benchmarks/env_channel_bench.py \\
        [--calls 1500] [--blocks 3] [--rows 1,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402


def main() -> None:
    import time

    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel
    from satchel.serving.server.env_models import remote_model
    from satchel.serving.server.env_workers import EnvWorker

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--calls", type=int, default=1500, help="calls per block")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--rows", default="1,1000")
    args = ap.parse_args()
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = loadgen.COLUMNS
    work = Path(tempfile.mkdtemp(prefix="satchel-envchan-"))
    path = work / "iris"
    satchel.save_model(LogisticRegression(max_iter=500).fit(X, y), path,
                       input_example=X.head(3))
    local = satchel.load_model(path)
    worker = EnvWorker(Path(sys.executable), [{"name": "m", "path": str(path),
                                               "options": {}}], "bench")
    remote = remote_model(worker, "m", path, worker.start())
    assert worker.pid is not None
    pid = worker.pid
    table: list[list[Any]] = []

    async def blocks(frame: pd.DataFrame) -> list[tuple[float, ...]]:
        for _ in range(200):  # warm both
            await remote.predict_detailed_async(frame)
            local.predict_detailed(frame)
        out = []
        n = args.calls
        for _ in range(args.blocks):
            cpu0, wcpu0, t0 = time.process_time(), loadgen.cpu_seconds(pid), time.perf_counter()
            for _ in range(n):
                await remote.predict_detailed_async(frame)
            cpu1, wcpu1, t1 = time.process_time(), loadgen.cpu_seconds(pid), time.perf_counter()
            for _ in range(n):
                local.predict_detailed(frame)
            cpu2, t2 = time.process_time(), time.perf_counter()
            out.append(tuple(x / n * 1e6 for x in (cpu1 - cpu0, wcpu1 - wcpu0, t1 - t0,
                                                   cpu2 - cpu1, t2 - t1)))
        return out

    try:
        for rows in (int(r) for r in args.rows.split(",")):
            frame = pd.DataFrame(np.random.default_rng(0).normal(4, 1, (rows, 4)),
                                 columns=loadgen.COLUMNS)
            got = asyncio.run(blocks(frame))
            med = [statistics.median(b[i] for b in got) for i in range(5)]
            table.append([rows, f"{med[0]:.0f}", f"{med[1]:.0f}", f"{med[0] + med[1]:.0f}",
                          f"{med[2]:.0f}", f"{med[3]:.0f}", f"{med[4]:.0f}"])
    finally:
        worker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nOne caller, {args.blocks} blocks of {args.calls} calls, iris LogisticRegression, "
          f"{os.cpu_count()} shared cores; medians in us per call\n")
    print(loadgen.table(table, ["rows", "front CPU", "worker CPU", "both", "wall",
                                "in-process CPU", "in-process wall"]))
    print("\nload average (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
