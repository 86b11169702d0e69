"""satchel's main job on an embedded default, end to end.

Train a classifier on the iris dataset that ships with scikit-learn, save it as a model
directory, load it back and predict in-process, then serve it over HTTP with
``satchel serve`` and score it with a plain HTTP client.

Run: python examples/quickstart.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"satchel serve exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise SystemExit(f"satchel serve did not answer {url} within {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="quickstart-out/iris", help="model directory to write")
    args = ap.parse_args()

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    # 1. train
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    clf = LogisticRegression(max_iter=1000).fit(X, y)

    # 2. save: the signature is inferred from the input example
    out = Path(args.out)
    satchel.save_model(clf, out, input_example=X.head(3), overwrite=True)
    print(f"saved {out}/ : {', '.join(sorted(p.name for p in out.iterdir()))}")

    # 3. load and predict in-process
    model = satchel.load_model(out)
    print(f"in-process predict on 3 rows -> {model.predict(X.head(3)).tolist()}")

    # 4. serve over HTTP and score it
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "satchel",
            "serve",
            "-m",
            str(out),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/ping", proc)
        body = (out / "serving_input_example.json").read_bytes()
        req = urllib.request.Request(
            f"{base}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            reply = json.loads(r.read())
        print(f"POST {base}/invocations -> {reply}")
        expected = model.predict(X.head(3)).tolist()
        if reply.get("predictions") != expected:
            raise SystemExit(f"served predictions {reply} differ from in-process {expected}")
        print("ok: the served model answers exactly as the in-process one")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
