"""Serving images: size, cold and warm build times, model-only rebuilds.

Run (needs an engine and the local base image):
    eval "$(.ci/docker-up.sh)"
    .venv/bin/python benchmarks/docker_bench.py [--base-image IMAGE] [--repeat 3] [--quick]

For a LogisticRegression (iris) and its ONNX conversion, and the LogisticRegression
without pyarrow (``--no-parquet``), each row reports:
- cold: every satchel build cache pruned first (context + build of every layer);
- warm: the same model again (everything cached);
- model-only: a different model of the same kind (the dependency layers cached);
and splits each time into the context (satchel wheel, pip download, copies) and the
``docker build`` itself. Times are medians of ``--repeat`` runs (cold: one run); "cached"
is the median number of build steps the engine reused. satchel's wheel is built once at
the start, so edits to the source tree during the run do not count as satchel changes.
The baseline in the same run is a single-stage build of the same context (wheels
COPY'd then removed in a later RUN), the layout the template avoids. MLflow's builder
cannot run here (no registry, no internet); users report ~3 GB images (MLflow #5927).
Never run as a test. Removes every image it builds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SINGLE_STAGE = """FROM {base}
ENV PIP_NO_CACHE_DIR=1 PIP_NO_INDEX=1
RUN python3 -m venv /opt/venv
COPY requirements.txt /build/requirements.txt
COPY wheels/ /build/wheels/
RUN /opt/venv/bin/pip install --no-index --find-links /build/wheels -r /build/requirements.txt \\
    && find /opt/venv/lib -mindepth 4 -depth -type d -name tests -exec rm -rf {{}} + \\
    && rm -rf /build/wheels
COPY satchel/ /build/satchel/
RUN /opt/venv/bin/pip install --no-index --no-deps /build/satchel/*.whl && rm -rf /build/satchel
RUN useradd --no-log-init --uid 10001 --user-group --no-create-home satchel
COPY model/ /opt/model/
USER 10001:10001
ENTRYPOINT ["/opt/venv/bin/satchel", "serve", "-m", "/opt/model"]
"""


class Timer:
    """Splits a build_image call at its first ``Step 1/`` line: context, then docker build."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_step: float | None = None

    def __call__(self, line: str) -> None:
        if self.first_step is None and line.startswith("Step 1/"):
            self.first_step = time.perf_counter()

    def split(self) -> tuple[float, float, float]:
        end = time.perf_counter()
        first = self.first_step or end
        return end - self.start, first - self.start, end - first


def models(root: Path) -> dict[str, list[Path]]:
    """Two different models of each kind (the second one is the 'model-only change')."""
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = load_iris(return_X_y=True, as_frame=True)
    out: dict[str, list[Path]] = {"sklearn": [], "onnx": []}
    for i, c in enumerate((1.0, 0.3, 0.1, 3.0)):
        est = LogisticRegression(C=c, max_iter=1000).fit(X, y)
        p = root / f"sklearn-{i}"
        satchel.save_model(est, p, input_example=X.head(3))
        out["sklearn"].append(p)
        onx = convert_sklearn(est, initial_types=[("input", FloatTensorType([None, 4]))],
                              options={"zipmap": False})
        p = root / f"onnx-{i}"
        satchel.save_model(onx, p, input_example=np.asarray(X.head(3), dtype="float32"))
        out["onnx"].append(p)
    return out


def prune(client: Any, tags: list[str]) -> None:
    for tag in tags:
        try:
            client.remove_image(tag, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
    client.prune_images(filters={"dangling": True, "label": "satchel.stage=build"})
    client.prune_images(filters={"dangling": True, "label": "satchel.bench=single"})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-image",
                    default=os.environ.get("SATCHEL_TEST_BASE_IMAGE", "local/python:3.11-bookworm-slim"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="sklearn only, no baseline")
    args = ap.parse_args()

    from satchel.serving.images.docker import build_image, docker_client, generate_dockerfile

    client = docker_client()
    base_size = int(client.inspect_image(args.base_image)["Size"])
    tags: list[str] = []
    rows = []

    def build(model: Path, parquet: bool = True) -> tuple[float, float, float, int, int]:
        tag = f"satchel-bench/{model.name}:{uuid.uuid4().hex[:8]}"
        tags.append(tag)
        timer = Timer()
        image = build_image(model, tag, base_image=args.base_image, parquet=parquet,
                            progress=timer)
        total, ctx, dock = timer.split()
        return total, ctx, dock, image.size, image.cached_steps

    with tempfile.TemporaryDirectory(prefix="satchel-bench-") as tmp:
        import shutil

        from satchel.serving.images import docker, wheels

        frozen = wheels.satchel_wheel(Path(tmp, "frozen"))

        def frozen_wheel(dest: Path) -> Path:
            dest.mkdir(parents=True, exist_ok=True)
            return Path(shutil.copy2(frozen, dest / frozen.name))

        docker.satchel_wheel = frozen_wheel  # see the module docstring
        kinds = models(Path(tmp))
        cases = [("LogisticRegression", kinds["sklearn"], True)]
        if not args.quick:
            cases += [("ONNX (LogisticRegression)", kinds["onnx"], True),
                      ("LogisticRegression --no-parquet", kinds["sklearn"], False)]
        try:
            for label, paths, parquet in cases:
                prune(client, tags)
                print(f"{label}: cold build ...", file=sys.stderr, flush=True)
                cold = build(paths[0], parquet)
                warm = [build(paths[0], parquet) for _ in range(args.repeat)]
                # Each model-only rebuild uses a model the cache has not seen yet.
                changed = [build(paths[1 + i], parquet) for i in range(min(args.repeat, 3))]
                rows.append((label, cold, warm, changed))
            single = None
            if not args.quick:
                prune(client, tags)
                ctx = Path(tmp, "single")
                generate_dockerfile(kinds["sklearn"][0], ctx, platform=None)
                (ctx / "Dockerfile").write_text(SINGLE_STAGE.format(base=args.base_image))
                t = time.perf_counter()
                tag = f"satchel-bench/single:{uuid.uuid4().hex[:8]}"
                tags.append(tag)
                for _ in client.build(path=str(ctx), tag=tag, rm=True, forcerm=True,
                                      decode=True, network_mode="none",
                                      labels={"satchel.bench": "single"}):
                    pass
                single = (time.perf_counter() - t, int(client.inspect_image(tag)["Size"]))
        finally:
            prune(client, tags)

    med = statistics.median
    print(f"\nbase image {args.base_image}: {base_size / 1e6:.0f} MB; "
          f"{os.cpu_count()} cores; times are total (context + docker build)\n")
    print(f"{'image':34} {'size MB':>8} {'over base':>9} {'cold s':>16} {'warm s':>16} "
          f"{'model-only s':>16} {'cached':>8}")
    for label, cold, warm, changed in rows:
        def fmt(t: tuple[float, ...]) -> str:
            return f"{t[0]:5.1f} ({t[1]:3.1f}+{t[2]:4.1f})"
        w = tuple(med(x[i] for x in warm) for i in range(3))
        c = tuple(med(x[i] for x in changed) for i in range(3))
        print(f"{label:34} {cold[3] / 1e6:8.0f} {(cold[3] - base_size) / 1e6:9.0f} "
              f"{fmt(cold[:3]):>16} {fmt(w):>16} {fmt(c):>16} "
              f"{med(x[4] for x in warm):3.0f}/{med(x[4] for x in changed):<4.0f}")
    if single is not None:
        multi = rows[0][1][3]
        print(f"{'baseline: single-stage, same ctx':34} {single[1] / 1e6:8.0f} "
              f"{(single[1] - base_size) / 1e6:9.0f} {single[0]:16.1f}"
              f"   multi-stage is {multi / single[1]:.2f}x its size")
    print("\n(a+b): a = context (satchel wheel, pip download, copies), b = docker build; "
          "cached: warm/model-only steps reused.")
    print("Targets: < 500 MB for a scikit-learn model on a Debian-slim base; model-only "
          "rebuild < 10 s. MLflow's builder: ~3 GB reported (MLflow #5927), not run here.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
