"""The floor for serve_bench.py: the least a hand-written starlette app does to serve a model.

Parse the JSON body, build a DataFrame, call the estimator, write ``{"predictions": ...}``.
No content-type checks, no signature, no error handling, predict inline on the event
loop. satchel's server is measured against this. Run it with
``FLOOR_MODEL=path/to/model.pkl uvicorn benchmarks.floor_app:app`` (or ``--app-dir``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import cloudpickle
import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

with open(os.environ["FLOOR_MODEL"], "rb") as f:
    MODEL: Any = cloudpickle.load(f)


async def invocations(request: Request) -> Response:
    body = json.loads(await request.body())
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        frame = pd.DataFrame(split["data"], columns=split["columns"])
    else:
        frame = pd.DataFrame(body["inputs"])
    predictions = MODEL.predict(frame)
    return Response(json.dumps({"predictions": predictions.tolist()}),
                    media_type="application/json")


async def ping(request: Request) -> Response:
    return Response("\n", media_type="application/json")


app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]),
                        Route("/ping", ping, methods=["GET"])])
