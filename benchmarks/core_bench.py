"""Core speed: import time, load time and predict overhead, each against its floor.

Run: .venv/bin/python benchmarks/core_bench.py [--quick]

Prints one table per measurement: medians over repeated runs, and the difference or
ratio against the baseline measured in the same run. Never run as a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _child_seconds(code: str, runs: int) -> float:
    """Median seconds a fresh interpreter reports for ``code`` (which prints its elapsed time)."""
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def _timed(body: str) -> str:
    return f"import time; t = time.perf_counter()\n{body}\nprint(time.perf_counter() - t)"


def bench_import(runs: int) -> list[tuple[str, float]]:
    pandas = _child_seconds(_timed("import pandas"), runs)
    satchel = _child_seconds(_timed("import satchel"), runs)
    api = _child_seconds(_timed("import satchel; satchel.load_model; satchel.save_model"), runs)
    return [
        ("import pandas (floor)", pandas),
        ("import satchel", satchel),
        ("import satchel + load/save API", api),
    ]


def bench_load(model_dir: Path, pickle_path: Path, runs: int) -> list[tuple[str, float]]:
    raw = _child_seconds(
        _timed(
            f"import cloudpickle\nwith open({str(pickle_path)!r}, 'rb') as f: cloudpickle.load(f)"
        ),
        runs,
    )
    ours = _child_seconds(_timed(f"import satchel; satchel.load_model({str(model_dir)!r})"), runs)
    return [("cloudpickle.load (floor)", raw), ("satchel.load_model", ours)]


def _median_call(fn: Any, arg: Any, n: int) -> float:
    for _ in range(min(50, n)):
        fn(arg)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn(arg)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def bench_predict(
    model_dir: Path, estimator: Any, X: Any, n: int
) -> list[tuple[str, float, float]]:
    import satchel

    model = satchel.load_model(model_dir)
    rows = []
    for label, data, reps in (
        ("1 row", X.head(1), n),
        ("10k rows", X.head(10_000), max(20, n // 50)),
    ):
        # interleave the two so drift on a shared machine hits both alike
        raw_t, ours_t = [], []
        for _ in range(5):
            raw_t.append(_median_call(estimator.predict, data, reps // 5))
            ours_t.append(_median_call(model.predict, data, reps // 5))
        rows.append((label, statistics.median(raw_t), statistics.median(ours_t)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    runs = 5 if args.quick else 11
    n = 500 if args.quick else 3000

    import cloudpickle
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import satchel

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(10_000, 20)), columns=[f"f{i}" for i in range(20)])
    y = (X["f0"] + X["f1"] > 0).astype(int)
    tmp = Path(tempfile.mkdtemp(prefix="satchel-bench-"))
    rf = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0, n_jobs=1).fit(X, y)
    satchel.save_model(rf, tmp / "rf", input_example=X.head(3))
    with open(tmp / "rf.pkl", "wb") as f:
        cloudpickle.dump(rf, f)
    lr = LogisticRegression(max_iter=500).fit(X, y)
    satchel.save_model(lr, tmp / "lr", input_example=X.head(3))

    print(f"satchel {satchel.__version__}, Python {sys.version.split()[0]}, runs={runs}\n")
    print("import time (fresh process, median)")
    imp = bench_import(runs)
    for name, sec in imp:
        print(f"  {name:<34} {sec * 1000:8.1f} ms")
    print(
        f"  {'satchel - pandas':<34} {(imp[1][1] - imp[0][1]) * 1000:+8.1f} ms"
        "  (target: <= +60 ms)\n"
    )

    print("load a 100-tree RandomForest (fresh process incl. imports, median)")
    size = sum(p.stat().st_size for p in (tmp / "rf").iterdir())
    load = bench_load(tmp / "rf", tmp / "rf.pkl", runs)
    for name, sec in load:
        print(f"  {name:<34} {sec * 1000:8.1f} ms")
    print(
        f"  {'difference':<34} {(load[1][1] - load[0][1]) * 1000:+8.1f} ms  "
        f"(target: <= +50 ms; model {size / 1e6:.1f} MB)\n"
    )

    for label, est, d in (
        ("LogisticRegression", lr, tmp / "lr"),
        ("RandomForest-100", rf, tmp / "rf"),
    ):
        print(f"predict, {label}, 20 double columns (median per call)")
        print(f"  {'rows':<10} {'raw':>12} {'satchel':>12} {'overhead':>12} {'ratio':>8}")
        for rows, raw, ours in bench_predict(d, est, X, n):
            print(
                f"  {rows:<10} {raw * 1e3:10.3f}ms {ours * 1e3:10.3f}ms "
                f"{(ours - raw) * 1e3:+10.3f}ms {ours / raw:8.3f}"
            )
        print()


if __name__ == "__main__":
    main()
