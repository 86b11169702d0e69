"""``satchel evaluate`` against a hand-written pandas + scikit-learn evaluation script.

The data is N rows x 20 random double features, a binary target that depends on them
with noise, and a 5-value ``region`` column to slice by (written once under
/tmp/satchel-bench as Parquet). The model is a LogisticRegression trained on other rows.

Both sides compute the same figures: accuracy, precision/recall/F1 macro, ROC AUC, log
loss and the confusion matrix with scikit-learn, a 95% bootstrap interval for each, and
the metrics per region. Each variant runs in its own process; the table shows wall seconds
(process start to exit, imports included, median of --repeat runs) and peak RSS (``wait4``).

- hand-written: ``pd.read_parquet`` of the whole file, ``predict`` + ``predict_proba``,
  scikit-learn metrics, the metrics per region, and no intervals (the floor of computing
  the point figures at all: the baseline the ratio column divides by). With
  ``--hand-resamples B`` also the textbook bootstrap: B resamples of n row indices, each
  scored with the same scikit-learn functions.
- satchel: ``satchel evaluate MODEL --data F --target y --slice-by region --resamples B``
  (streams Arrow batches into per-cell sums; Poisson bootstrap over cells, intervals for
  every figure and every slice). Its time includes the intervals.

Run at two sizes (e.g. ``--rows 250000 1000000``) to see satchel's peak memory stay flat
while the script's grows with the rows.

    .venv/bin/python benchmarks/evaluate_bench.py [--rows 250000 1000000] [--resamples 1000]
        [--hand-resamples 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK = Path("/tmp/satchel-bench")
FEATURES = [f"f{i}" for i in range(20)]

HAND = """
import json, sys, time
import cloudpickle, numpy as np, pandas as pd
from sklearn import metrics as skm
src, model_file, B = sys.argv[1], sys.argv[2], int(sys.argv[3])
features = [f"f{i}" for i in range(20)]
df = pd.read_parquet(src)
with open(model_file, "rb") as f:
    model = cloudpickle.load(f)
X, y = df[features], df["y"].to_numpy()
pred, proba = model.predict(X), model.predict_proba(X)

def figures(y, pred, proba):
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "precision_macro": skm.precision_score(y, pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y, pred, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "log_loss": skm.log_loss(y, proba),
    }

point = figures(y, pred, proba)
confusion = skm.confusion_matrix(y, pred)
rng = np.random.default_rng(0)
draws = []
for _ in range(B):
    idx = rng.integers(0, len(y), len(y))
    draws.append(figures(y[idx], pred[idx], proba[idx]))
intervals = {k: np.percentile([d[k] for d in draws], [2.5, 97.5]).tolist() for k in point} \
    if draws else {}
slices = {}
for region, rows in df.groupby("region").indices.items():
    slices[region] = figures(y[rows], pred[rows], proba[rows])
print(json.dumps({"point": point, "intervals": intervals}))
"""


def make_data(rows: int) -> Path:
    """Features, target and region as Parquet, written once per row count in chunks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = WORK / f"evaluate_{rows}.parquet"
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp")
    regions = np.array(["north", "south", "east", "west", "centre"])
    with pq.ParquetWriter(tmp, pa.schema([*[(f, pa.float64()) for f in FEATURES],
                                          ("y", pa.int64()), ("region", pa.string())])) as w:
        for start in range(0, rows, 250_000):
            n = min(250_000, rows - start)
            X = rng.standard_normal((n, 20))
            y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * X[:, 2] + rng.normal(0, 1, n) > 0)
            cols = [pa.array(X[:, i]) for i in range(20)]
            w.write_batch(pa.record_batch(cols + [pa.array(y.astype(np.int64)),
                                                  pa.array(regions[rng.integers(0, 5, n)])],
                                          names=[*FEATURES, "y", "region"]))
    os.replace(tmp, path)
    return path


def make_model() -> Path:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import satchel

    path = WORK / "evaluate_logreg"
    if not path.exists():
        rng = np.random.default_rng(7)
        X = pd.DataFrame(rng.standard_normal((20_000, 20)), columns=FEATURES)
        y = (X["f0"] - 0.5 * X["f1"] + 0.3 * X["f2"] + rng.normal(0, 1, 20_000) > 0)
        satchel.save_model(LogisticRegression().fit(X, y.astype(np.int64)), path,
                           input_example=X.head(5))
    return path


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    return elapsed, usage.ru_maxrss / 1024, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--resamples", type=int, nargs="+", default=[1000],
                    help="satchel's bootstrap resamples (default 1000, its default)")
    ap.add_argument("--hand-resamples", type=int, default=0,
                    help="also run the hand-written script with a textbook bootstrap of this "
                    "many resamples (its cost grows with rows x resamples; default: not run)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    py = sys.executable
    model = make_model()
    table = []
    base_name = "hand-written, no intervals"
    for rows in args.rows:
        data = make_data(rows)
        variants = [(base_name, [py, "-c", HAND, str(data), str(model / "model.pkl"), "0"])]
        if args.hand_resamples:
            variants.append((f"hand-written, B={args.hand_resamples}",
                             [py, "-c", HAND, str(data), str(model / "model.pkl"),
                              str(args.hand_resamples)]))
        for b in args.resamples:
            out = WORK / f"evaluate_{rows}_{b}.json"
            variants.append((f"satchel evaluate, B={b}", [
                py, "-c", "from satchel.cli import entry; entry()", "evaluate", str(model),
                "--data", str(data), "--target", "y", "--slice-by", "region",
                "--resamples", str(b), "--json", str(out), "-q"]))
        results: dict[str, list[tuple[float, float, str]]] = {}
        for _ in range(args.repeat):
            # interleaved, so a slow moment of the shared machine hits every variant alike
            for name, cmd in variants:
                secs, rss, stdout = measure(cmd)
                results.setdefault(name, []).append((secs, rss, stdout))
                print(f"  {rows:,} rows, {name}: {secs:.1f} s, {rss:.0f} MiB", file=sys.stderr)
        hand = statistics.median(s for s, _, _ in results[base_name])
        for name, runs in results.items():
            secs = statistics.median(s for s, _, _ in runs)
            table.append((rows, name, secs, secs / hand, max(r for _, r, _ in runs)))
        # the same point figures on both sides
        want = json.loads(results[base_name][0][2])["point"]
        got = json.loads((WORK / f"evaluate_{rows}_{args.resamples[0]}.json").read_text())
        diff = {k: abs(want[k] - got["metrics"][k]["value"]) for k in want}
        print(f"  {rows:,} rows: point figures, |satchel - hand-written|: "
              + ", ".join(f"{k} {v:.1e}" for k, v in diff.items())
              + f" (satchel's ROC AUC error bound: {got.get('roc_auc_tie_bound', 0):.1e})",
              file=sys.stderr)
    print(f"\nbinary LogisticRegression, 20 double features + target + region; median of "
          f"{args.repeat} runs, wall time includes process start and imports")
    head = (f"{'rows':>10} {'variant':<28} {'seconds':>8} {'vs hand, no intervals':>22}"
            f" {'peak RSS MiB':>13}")
    print(head)
    print("-" * len(head))
    for rows, name, secs, ratio, rss in table:
        print(f"{rows:>10,} {name:<28} {secs:8.2f} {ratio:21.2f}x {rss:13,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
