"""What inferring requirements adds to a python-model save.

Run: .venv/bin/python benchmarks/requirements_bench.py [--saves N]

In one process, saves the same two python models (a pickled ``PythonModel`` whose
example is a DataFrame, and a models-from-code script that calls scikit-learn) N times
each with ``SATCHEL_INFER_REQUIREMENTS=0`` (the baseline: the save without inference)
and with it on, interleaved so load on a shared machine hits both. Reported per save:
the first save with inference (it starts the warm capture interpreter) and the median
of the others, as wall time and as CPU time of this process plus its children (the
shared machine's load stretches wall time; CPU time is the work done). Never run as a
test.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cpu() -> float:
    """CPU seconds of this process, its waited-for children, and the warm capture server
    with the forks it has waited for (it outlives each save, so rusage misses it)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + server_cpu()


def server_cpu() -> float:
    from satchel import requirements

    proc = getattr(getattr(requirements, "_SERVER", None), "_proc", None)
    if proc is None:
        return 0.0
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 (1-based; 12-15 after the name)
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    c0, t0 = cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=6)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import pandas as pd

    import satchel
    from satchel.flavors import python as py_flavor

    df = pd.DataFrame({"x": [1.0, 2.0]})

    class Doubler(satchel.PythonModel):
        def predict(self, model_input: Any, params: Any = None) -> Any:
            return model_input["x"] * 2

    with tempfile.TemporaryDirectory(prefix="req-bench-") as tmp:
        script = Path(tmp) / "model.py"
        script.write_text(
            textwrap.dedent(
                """
                import satchel
                def predict(model_input):
                    from sklearn.preprocessing import StandardScaler
                    return StandardScaler().fit_transform(model_input)
                satchel.set_model(predict)
                """
            )
        )
        kinds: dict[str, Callable[[str], Any]] = {
            "PythonModel (pickle)": lambda p: satchel.save_model(Doubler(), p, input_example=df),
            "model from code (sklearn)": lambda p: py_flavor.save_model(
                p, python_model=str(script), input_example=df
            ),
        }
        print(f"python {sys.version.split()[0]}; {args.saves} saves per kind and mode")
        header = (
            f"{'model':28} {'off ms':>8} {'first on ms':>12} {'next on ms':>11} "
            f"{'added ms':>9} {'off cpu':>8} {'first cpu':>10} {'next cpu':>9}"
        )
        print(header)
        print("-" * len(header))
        n = 0
        for name, save in kinds.items():
            off: list[tuple[float, float]] = []
            on: list[tuple[float, float]] = []
            for i in range(args.saves):
                for mode, out in (("0", off), ("1", on)) if i % 2 else (("1", on), ("0", off)):
                    os.environ["SATCHEL_INFER_REQUIREMENTS"] = mode
                    n += 1
                    out.append(timed(lambda s=save, p=f"{tmp}/m{n}": s(p)))
            off_w = statistics.median(w for w, _ in off)
            off_c = statistics.median(c for _, c in off)
            rest = on[1:] or on
            next_w = statistics.median(w for w, _ in rest)
            next_c = statistics.median(c for _, c in rest)
            print(
                f"{name:28} {off_w * 1e3:>8.0f} {on[0][0] * 1e3:>12.0f} {next_w * 1e3:>11.0f} "
                f"{(next_w - off_w) * 1e3:>9.0f} {off_c * 1e3:>8.0f} {on[0][1] * 1e3:>10.0f} "
                f"{next_c * 1e3:>9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
