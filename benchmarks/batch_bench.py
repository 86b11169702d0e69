"""``satchel batch`` on a large Parquet file against the floor of reading it whole.

The input is N rows x 20 random double features (default 10M rows, ~1.6 GB, written
once under /tmp/satchel-bench). Each variant runs in its own process; the table shows
wall seconds (process start to exit, imports included), rows/s and peak RSS (from
``wait4``). Both write the predictions as Parquet, and the outputs are compared.

- ``satchel batch``: streams record batches of --batch-rows rows (default 65536).
- floor: ``pd.read_parquet`` of the whole file, one ``predict``, one ``to_parquet``.

The model is the Spark benchmark's 100-tree RandomForestClassifier (max_depth 12);
``--model small`` uses a LogisticRegression instead, to see satchel's own overhead
when the model is cheap.

    .venv/bin/python benchmarks/batch_bench.py [--rows 10000000] [--batch-rows 65536 262144]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spark_bench import FEATURES, WORK, make_data, make_model  # noqa: E402

FLOOR = """
import sys, cloudpickle, pandas as pd
src, model_file, dst = sys.argv[1:4]
df = pd.read_parquet(src)
with open(model_file, "rb") as f:
    model = cloudpickle.load(f)
pd.DataFrame({"prediction": model.predict(df)}).to_parquet(dst, index=False)
"""


def small_model() -> Path:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import satchel

    path = WORK / "logreg20"
    if not path.exists():
        rng = np.random.default_rng(2)
        X = pd.DataFrame(rng.standard_normal((5_000, 20)), columns=FEATURES)
        y = (X["f0"] - X["f1"] > 0).astype(np.int64)
        satchel.save_model(LogisticRegression().fit(X, y), path, input_example=X.head(5))
    return path


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    return elapsed, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--batch-rows", type=int, nargs="+", default=[65_536])
    ap.add_argument("--model", choices=["rf", "small"], default="rf")
    args = ap.parse_args(argv)

    import pyarrow.parquet as pq

    data = make_data(args.rows)
    model = make_model() if args.model == "rf" else small_model()
    out = WORK / "batch_out"
    out.mkdir(exist_ok=True)
    py = sys.executable
    rows: list[tuple[str, float, float]] = []
    for n in args.batch_rows:
        dst = out / f"satchel_{n}.parquet"
        dst.unlink(missing_ok=True)
        cmd = [py, "-c", "from satchel.cli import entry; entry()", "batch", "-m", str(model),
               "-i", str(data), "-o", str(dst), "--batch-rows", str(n), "-q"]
        secs, rss = measure(cmd)
        print(f"  satchel batch --batch-rows {n}: {secs:.1f} s, {rss:.0f} MiB", file=sys.stderr)
        rows.append((f"satchel batch ({n} rows/batch)", secs, rss))
    floor_dst = out / "floor.parquet"
    secs, rss = measure([py, "-c", FLOOR, str(data), str(model / "model.pkl"), str(floor_dst)])
    print(f"  floor: {secs:.1f} s, {rss:.0f} MiB", file=sys.stderr)
    rows.append(("floor: read whole, predict once", secs, rss))

    floor_pred = pq.read_table(floor_dst).column("prediction")
    same = all(pq.read_table(out / f"satchel_{n}.parquet").column("prediction").equals(floor_pred)
               for n in args.batch_rows)
    size = data.stat().st_size / 2**20
    print(f"\n{args.rows:,} rows x {len(FEATURES)} doubles ({size:,.0f} MiB Parquet), model "
          f"{model.name}; one run each, wall time includes process start and imports")
    head = f"{'variant':<34} {'seconds':>8} {'rows/s':>10} {'vs floor':>9} {'peak RSS MiB':>13}"
    print(head)
    print("-" * len(head))
    floor_secs = rows[-1][1]
    for name, s, r in rows:
        print(f"{name:<34} {s:8.1f} {args.rows / s:10,.0f} {floor_secs / s:8.2f}x {r:13,.0f}")
    print(f"(predictions identical to the floor's: {same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
