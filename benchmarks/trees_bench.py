"""xgboost, lightgbm, catboost and statsmodels: ``Model.predict`` against the native call.

Run: .venv/bin/python benchmarks/trees_bench.py [--quick]

For each flavor, a model is trained here (sklearn datasets), saved with satchel and
loaded back; then 1-row and 1,000-row predictions are timed through ``Model.predict``
(signature enforcement, params, output normalisation included) and through the native
call MLflow's pyfunc makes on the same DataFrame, in the same process, interleaved in
rounds so machine drift hits both alike. Medians per call. Targets: overhead <= 0.1 ms
at 1 row, ratio <= 1.1x at 1,000 rows. The ARIMA row forecasts 1 and 1,000 steps from a
one-row ``start``/``end`` frame. "own ms" is ``Model.predict`` around a predictor that
returns the answer at no cost: satchel's own work, free of the native call's noise (the
paired overhead on a loaded machine swings by more than the target). Never run as a
test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any


def paired(a: Callable[[], Any], b: Callable[[], Any], n: int) -> tuple[float, float, float]:
    """Medians of ``a`` and ``b`` and of their per-pair difference ``b - a`` over ``n``
    pairs, called alternately (in both orders) so load on a shared machine hits both."""
    for _ in range(min(20, n)):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for i in range(n):
        order = ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta))
        for fn, out in order:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    diff = statistics.median(y - x for x, y in zip(ta, tb))
    return statistics.median(ta), statistics.median(tb), diff


class _Answer:
    """A predictor that returns a fixed output: what is left is satchel's own work."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.out


def own_work(model: Any, out: Any, data: Any, n: int) -> float:
    """Median seconds of ``Model.predict`` around a predictor that costs nothing: the
    signature check, params and output normalisation, without the native call's noise."""
    from satchel.model import Model

    stub = Model(model.path, model.manifest, model.flavor, model._config, _Answer(out))
    for _ in range(20):
        stub.predict(data)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        stub.predict(data)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def cases() -> list[tuple[str, Any, Callable[[Any], Any], Callable[[int], Any]]]:
    """(name, model object, native predict on data, data of n rows)."""
    import catboost as cb
    import lightgbm as lgb
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm
    import xgboost as xgb
    from sklearn.datasets import make_classification
    from statsmodels.tsa.arima.model import ARIMA

    X, y = make_classification(
        n_samples=2000, n_features=20, n_informative=10, n_redundant=0, random_state=0
    )
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])

    def rows(n: int) -> pd.DataFrame:
        return df.iloc[:n].reset_index(drop=True)

    xgb_clf = xgb.XGBClassifier(n_estimators=100, max_depth=6, random_state=0, n_jobs=1).fit(df, y)
    xgb_booster = xgb_clf.get_booster()
    lgb_clf = lgb.LGBMClassifier(n_estimators=100, verbose=-1, n_jobs=1).fit(df, y)
    lgb_booster = lgb_clf.booster_
    cb_clf = cb.CatBoostClassifier(
        iterations=100, depth=6, verbose=0, allow_writing_files=False, thread_count=1
    ).fit(df, y)
    ols = sm.OLS(y.astype(float), sm.add_constant(df)).fit()
    series = np.cumsum(np.random.default_rng(0).normal(size=500))
    arima = ARIMA(series, order=(2, 0, 1)).fit()

    def with_const(n: int) -> pd.DataFrame:
        return sm.add_constant(rows(n), has_constant="add")

    def horizon(n: int) -> pd.DataFrame:
        return pd.DataFrame({"start": [500], "end": [500 + n - 1]})

    return [
        ("xgboost XGBClassifier", xgb_clf, lambda d: xgb_clf.predict(d), rows),
        ("xgboost Booster", xgb_booster, lambda d: xgb_booster.predict(xgb.DMatrix(d)), rows),
        ("lightgbm LGBMClassifier", lgb_clf, lambda d: lgb_clf.predict(d), rows),
        ("lightgbm Booster", lgb_booster, lambda d: lgb_booster.predict(d), rows),
        ("catboost CatBoostClassifier", cb_clf, lambda d: cb_clf.predict(d), rows),
        ("statsmodels OLS", ols, lambda d: ols.predict(d), with_const),
        (
            "statsmodels ARIMA (steps)",
            arima,
            lambda d: arima.predict(start=d["start"].iloc[0], end=d["end"].iloc[0]),
            horizon,
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    n1, nbig = (1000, 100) if args.quick else (4000, 400)
    warnings.simplefilter("ignore")
    # One thread per library: on a shared machine a thread pool measures contention, and
    # both sides run the same native code anyway.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import satchel

    print(
        f"python {sys.version.split()[0]}; medians per call over {n1}/{nbig} alternating "
        "pairs; overhead = median of per-pair differences"
    )
    header = (
        f"{'flavor':30} {'rows':>5} {'native ms':>10} {'satchel ms':>11} "
        f"{'overhead ms':>12} {'own ms':>9} {'ratio':>6}  target"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="trees-bench-") as tmp:
        for i, (name, obj, native, data) in enumerate(cases()):
            path = Path(tmp) / f"m{i}"
            satchel.save_model(obj, path, input_example=data(3))
            model = satchel.load_model(path)
            for n, calls in ((1, n1), (1000, nbig)):
                d = data(n)
                t_native, t_satchel, over = paired(
                    lambda native=native, d=d: native(d),
                    lambda model=model, d=d: model.predict(d),
                    calls,
                )
                own = own_work(model, native(d), d, calls)
                t = {"native": t_native, "satchel": t_satchel}
                ratio = (t_native + over) / t_native
                if n == 1:
                    ok = "ok" if over <= 1e-4 else "MISS (<= 0.1 ms)"
                else:
                    ok = "ok" if ratio <= 1.1 else "MISS (<= 1.1x)"
                print(
                    f"{name:30} {n:>5} {t['native'] * 1e3:>10.4f} {t['satchel'] * 1e3:>11.4f} "
                    f"{over * 1e3:>12.4f} {own * 1e3:>9.4f} {ratio:>5.2f}x  {ok}"
                )


if __name__ == "__main__":
    main()
