"""BentoML in a side venv for the serving benchmarks: the venv, a service over a
joblib-saved scikit-learn estimator, and starting and stopping it.

The service is BentoML 1.4's own style (``@bentoml.service`` with one ``@bentoml.api``
taking an ``np.ndarray`` ``input``, JSON body ``{"input": [[...], ...]}``), one worker,
its access log off (satchel and MLServer run without theirs). Batched, the API is
``batchable`` with ``max_batch_size`` requests and a latency budget large enough never
to refuse a request. Never run as a test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen as lg  # noqa: E402

BENTOML_VERSION = "1.4.40"

SERVICE = '''\
import os

import bentoml
import joblib
import numpy as np

BATCHED = os.environ.get("BENCH_BATCHED") == "1"


@bentoml.service(workers=1, logging={"access": {"enabled": False}},
                 traffic={"timeout": 60})
class Model:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    @bentoml.api(batchable=BATCHED, max_batch_size=int(os.environ["BENCH_BATCH"]),
                 max_latency_ms=60000)
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self.model.predict(input)
'''


def bentoml_venv(cache: Path) -> Path:
    """``cache``'s venv with BentoML and this interpreter's scikit-learn (built on first
    use); returns its ``bentoml`` executable."""
    import sklearn

    exe = cache / "bin" / "bentoml"
    marker = cache / "satchel-bench.json"
    want = {"bentoml": BENTOML_VERSION, "scikit-learn": sklearn.__version__}
    if exe.exists() and marker.exists() and json.loads(marker.read_text()) == want:
        return exe
    print(f"building BentoML {BENTOML_VERSION} venv in {cache} ...", file=sys.stderr)
    shutil.rmtree(cache, ignore_errors=True)
    subprocess.run(["python3", "-m", "venv", str(cache)], check=True)
    subprocess.run([str(cache / "bin" / "pip"), "install", "-q",
                    f"bentoml=={BENTOML_VERSION}", f"scikit-learn=={sklearn.__version__}"],
                   check=True)
    marker.write_text(json.dumps(want))
    return exe


def start(exe: Path, model: Path, root: Path, batched: bool, batch_size: int, log: Path
          ) -> tuple[subprocess.Popen[bytes], int]:
    """The service over ``model`` (a joblib file) on a free port, once ``/readyz`` is 200."""
    root.mkdir(parents=True)
    (root / "service.py").write_text(SERVICE)
    port = lg.free_port()
    env = {**os.environ, "BENCH_MODEL": str(model), "BENCH_BATCHED": "1" if batched else "0",
           "BENCH_BATCH": str(batch_size), "BENTOML_HOME": str(root / "home"),
           "BENTOML_DO_NOT_TRACK": "True"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(exe), "serve", "service:Model", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=out, stderr=out, cwd=root,
                                env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"BentoML exited with {proc.returncode}; see {log}")
        if lg.get(port, "/readyz")[0] == 200:
            return proc, port
        time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"BentoML did not become ready; see {log}")


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM BentoML's process group (its supervisor and worker)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def body(rows: list[list[float]]) -> bytes:
    return json.dumps({"input": rows}).encode()
