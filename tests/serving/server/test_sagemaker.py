"""The SageMaker serving contract on a real server: the container is started as
``docker run IMAGE serve`` (so ``satchel serve -m /opt/model serve``); ``serve`` is
accepted and ignored, ``SATCHEL_*`` variables still configure the server, and
``/ping`` and ``/invocations`` answer. (The image itself: tests/serving/images.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def test_the_serve_argument_is_ignored_and_env_honoured(iris_model_dir: Path,
                                                        start_server: Any) -> None:
    rows = {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length",
                                            "petal_width"], "data": [[5.1, 3.5, 1.4, 0.2]]}}
    with start_server(iris_model_dir, "serve", env={"SATCHEL_MAX_BODY_SIZE": "300"}) as server:
        assert server.get("/ping").status == 200
        reply = server.post_json("/invocations", rows)
        assert reply.status == 200 and len(reply.json()["predictions"]) == 1
        # SATCHEL_MAX_BODY_SIZE from the environment still applies
        big = server.post_json("/invocations", {**rows, "params": {"pad": "x" * 400}})
        assert big.status == 413


def test_any_other_word_is_refused(iris_model_dir: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "satchel", "serve", "-m", str(iris_model_dir),
                          "train"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice: 'train'" in out.stderr
