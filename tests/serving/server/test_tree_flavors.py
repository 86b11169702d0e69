"""xgboost and statsmodels models behind a real server: native predictions over REST,
concurrent time-series forecasts each answered with their own range, and the client's
mistakes answered 400."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import satchel


@pytest.fixture(scope="module")
def xgb_dir(tmp_path_factory: pytest.TempPathFactory, iris: Any) -> tuple[Path, Any]:
    import xgboost as xgb

    clf = xgb.XGBClassifier(n_estimators=6, max_depth=3, n_jobs=1).fit(*iris)
    path = tmp_path_factory.mktemp("xgb") / "xgb"
    satchel.save_model(clf, path, input_example=iris[0].head(3))
    return path, clf


@pytest.fixture(scope="module")
def arima(iris: Any) -> Any:
    from statsmodels.tsa.arima.model import ARIMA

    return ARIMA(iris[0]["sepal_length"].to_numpy(), order=(2, 0, 0)).fit()


@pytest.fixture(scope="module")
def arima_dir(tmp_path_factory: pytest.TempPathFactory, arima: Any) -> Path:
    path = tmp_path_factory.mktemp("arima") / "ts"
    satchel.save_model(arima, path, input_example=pd.DataFrame({"start": [150], "end": [155]}))
    return path


def test_xgboost_over_rest_matches_native(
    xgb_dir: tuple[Path, Any], iris: Any, start_server: Any
) -> None:
    path, clf = xgb_dir
    X = iris[0].sample(20, random_state=0)
    with start_server(path, "--name", "xgb") as server:
        reply = server.post_json(
            "/invocations", {"dataframe_split": json.loads(X.to_json(orient="split"))}
        )
        assert reply.status == 200, reply.body
        assert reply.json()["predictions"] == clf.predict(X).tolist()
        # a wrong column type is the client's mistake: 400, naming the column
        bad = X.head(2).astype({"sepal_width": str}).assign(sepal_width=["a", "b"])
        reply = server.post_json("/invocations", {"dataframe_records": bad.to_dict("records")})
        assert reply.status == 400 and "sepal_width" in reply.json()["message"]


def test_concurrent_time_series_requests_get_their_own_forecasts(
    arima_dir: Path, arima: Any, start_server: Any
) -> None:
    ranges = [(150 + i, 3000 + 10 * i) for i in range(8)]
    bodies = [json.dumps({"dataframe_records": [{"start": s, "end": e}]}) for s, e in ranges]
    with start_server(
        arima_dir,
        "--name",
        "ts",
        "--max-batch-size",
        "32",
        "--max-batch-delay-ms",
        "50",
        env={"SATCHEL_METRICS_INTERVAL": "0.05"},
    ) as server:
        barrier = threading.Barrier(len(bodies))

        def one(b: str) -> Any:
            barrier.wait()
            return server.request("POST", "/invocations", b, "application/json")

        with ThreadPoolExecutor(len(bodies)) as pool:
            replies = list(pool.map(one, bodies))
        for (s, e), reply in zip(ranges, replies):
            assert reply.status == 200, reply.body
            np.testing.assert_allclose(
                reply.json()["predictions"], arima.predict(start=s, end=e), rtol=1e-12
            )
        # two ranges in one request is the client's mistake, answered 400
        reply = server.post_json(
            "/invocations", {"dataframe_records": [{"start": 150, "end": 151}] * 2}
        )
        assert reply.status == 400 and "exactly one row" in reply.json()["message"]
