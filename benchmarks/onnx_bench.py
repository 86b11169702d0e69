"""ONNX speed: the flavor's overhead over onnxruntime, and sklearn vs its ONNX conversion.

Run: .venv/bin/python benchmarks/onnx_bench.py [--quick]

Table 1: 1-row and 10k-row predict of the ONNX flavor against a raw
``InferenceSession.run`` on the same float32 arrays: the predictor alone, and the whole
``Model.predict`` (signature checks included), median per call.
Table 2: a 100-tree RandomForest (20 features) in scikit-learn against its converted
ONNX model, natively and through satchel, 1 row and 10k rows, with the speed-up.
Never run as a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_call(fn: Callable[[], Any], n: int) -> float:
    """Median seconds of ``fn()`` over ``n`` calls, after a short warm-up."""
    for _ in range(min(20, n)):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def interleaved(fns: dict[str, Callable[[], Any]], n: int, rounds: int = 5) -> dict[str, float]:
    """Median of per-round medians, rounds interleaved so machine drift hits all alike."""
    got: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            got[k].append(median_call(fn, max(1, n // rounds)))
    return {k: statistics.median(v) for k, v in got.items()}


def _ms(sec: float) -> str:
    return f"{sec * 1e3:9.4f}ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    n1, nbig = (1000, 20) if args.quick else (5000, 60)

    import numpy as np
    import onnxruntime as ort
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    import satchel
    from satchel.flavors import onnx as onnx_flavor

    X, y = make_classification(n_samples=10_000, n_features=20, n_informative=10, random_state=0)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    tmp = Path(tempfile.mkdtemp(prefix="satchel-onnx-bench-"))
    rf = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(df, y)
    satchel.save_model(rf, tmp / "rf", input_example=df.head(5))
    satchel.convert(tmp / "rf", "onnx", tmp / "rf_onnx", sample=df.head(2000))
    proto = onnx_flavor.load_model(tmp / "rf_onnx")
    # the same graph saved with its own tensor signature (float32 [-1, 20])
    onnx_flavor.save_model(proto, tmp / "rf_tensor")

    print(
        f"satchel {satchel.__version__}, onnxruntime {ort.__version__}, "
        f"Python {sys.version.split()[0]}\n"
    )

    # One intra-op thread: on a shared 2-core host the default pool's spinning adds noise
    # larger than the difference measured here. Both sides use this same session.
    model = satchel.load_model(tmp / "rf_tensor", onnx_session_options={"intra_op_num_threads": 1})
    predictor = model._predictor
    sess = predictor.session
    print(
        "ONNX flavor vs raw InferenceSession.run (RandomForest-100 graph, float32 arrays, "
        "1 intra-op thread)"
    )
    head = f"  {'rows':<9} {'raw run':>11} {'predictor':>11} {'Model.predict':>14} "
    print(head + f"{'overhead (pred)':>16} {'overhead (Model)':>17}")
    for label, rows, n in (("1 row", 1, n1), ("10k rows", 10_000, nbig)):
        x = X[:rows].astype(np.float32)
        feeds = {"input": x}
        t = interleaved(
            {
                "raw": lambda f=feeds: sess.run(None, f),
                "pred": lambda f=feeds: predictor.predict(f),
                "model": lambda a=x: model.predict(a),
            },
            n,
        )
        print(
            f"  {label:<9} {_ms(t['raw'])} {_ms(t['pred'])} {_ms(t['model']):>14} "
            f"{(t['pred'] - t['raw']) * 1e3:+14.4f}ms {(t['model'] - t['raw']) * 1e3:+15.4f}ms"
        )
    print("  (target: overhead <= 0.05 ms median for 1 row)\n")

    converted = satchel.load_model(tmp / "rf_onnx")  # column signature: DataFrame in and out
    # onnxruntime's default intra-op pool uses every core; on a busy 2-core host one
    # thread can be faster for big batches, so both are shown.
    single = satchel.load_model(tmp / "rf_onnx", onnx_session_options={"intra_op_num_threads": 1})
    sk_model = satchel.load_model(tmp / "rf")
    csess, ssess = converted._predictor.session, single._predictor.session
    print("RandomForest-100, 20 features: scikit-learn (n_jobs=1) vs converted ONNX")
    print(
        f"  {'rows':<9} {'path':<26} {'sklearn':>11} {'onnx':>11} {'onnx 1-thr':>11} "
        f"{'speed-up':>9}"
    )
    for label, rows, n in (("1 row", 1, max(200, n1 // 10)), ("10k rows", 10_000, nbig)):
        part = df.iloc[:rows]
        feeds = {"input": X[:rows].astype(np.float32)}
        t = interleaved(
            {
                "sk_native": lambda d=part: rf.predict_proba(d),
                "onnx_native": lambda f=feeds: csess.run(None, f),
                "onnx1_native": lambda f=feeds: ssess.run(None, f),
                "sk_satchel": lambda d=part: sk_model.predict(d),
                "onnx_satchel": lambda d=part: converted.predict(d),
                "onnx1_satchel": lambda d=part: single.predict(d),
            },
            n,
        )
        for path, key in (
            ("native (predict_proba/run)", "native"),
            ("satchel Model.predict(df)", "satchel"),
        ):
            a, b, c = t[f"sk_{key}"], t[f"onnx_{key}"], t[f"onnx1_{key}"]
            print(f"  {label:<9} {path:<26} {_ms(a)} {_ms(b)} {_ms(c)} {a / min(b, c):8.1f}x")
    print(f"\nload average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\nmodels in {tmp}")


if __name__ == "__main__":
    main()
