"""``import satchel``: time in fresh interpreters, and what it imports.

Run: .venv/bin/python benchmarks/import_bench.py [--runs N]

N fresh interpreters run ``import satchel`` and N run nothing (``pass``), alternating so
load on a shared machine hits both; the table gives the medians and the median of the
per-pair difference (satchel's own cost; target < 25 ms). A further run with
``-X importtime`` lists the modules with the largest cumulative import time, and one
more lists any ML library (or numpy/pandas) found in ``sys.modules`` after the import
(target: none). Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

# Libraries `import satchel` must not import (the flavors' and serving's).
HEAVY = (
    "numpy", "pandas", "sklearn", "onnx", "onnxruntime", "torch", "tensorflow", "keras",
    "jax", "xgboost", "lightgbm", "catboost", "statsmodels", "transformers", "pyspark",
    "starlette", "uvicorn", "grpc", "sqlalchemy", "yaml", "pyarrow", "mlflow",
)  # fmt: skip


def run(code: str, *flags: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *flags, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    base: list[float] = []
    sat: list[float] = []
    for i in range(args.runs):
        pair = (("pass", base), ("import satchel", sat))
        for code, out in pair if i % 2 == 0 else pair[::-1]:
            out.append(run(code))
    diff = statistics.median(s - b for s, b in zip(sat, base))
    print(f"python {sys.version.split()[0]}; {args.runs} fresh interpreters each, alternating")
    print(f"{'bare interpreter':24} {statistics.median(base) * 1e3:8.1f} ms (median)")
    print(f"{'import satchel':24} {statistics.median(sat) * 1e3:8.1f} ms (median)")
    verdict = "ok" if diff < 0.025 else "MISS (< 25 ms)"
    print(f"{'satchel own (paired)':24} {diff * 1e3:8.1f} ms  {verdict}")

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import satchel"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    print("\n-X importtime, top 12 by cumulative us (one run):")
    print(f"{'cumulative':>10} {'self':>8}  module")
    for cum, own, name in sorted(rows, reverse=True)[:12]:
        print(f"{cum:>10} {own:>8}  {name}")

    probe = (
        "import sys, json; before = set(sys.modules); import satchel; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    new = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
    )
    heavy = sorted({m.split(".")[0] for m in new} & set(HEAVY))
    print(f"\nmodules imported: {len(new)}; heavy libraries among them: {heavy or 'none'}")


if __name__ == "__main__":
    main()
