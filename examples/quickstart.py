"""satchel's main job on an embedded default, end to end.

Train a classifier on the iris dataset that ships with scikit-learn, save it as a model
directory, load it back and predict in-process, register it in a model registry under the
name ``iris`` with the alias ``champion``, serve ``models:/iris@champion`` over HTTP with
``satchel serve`` and check that the served predictions equal the in-process ones.

Everything is written under the run's own directory (default ``quickstart-out/``): the
model directory ``iris/`` and a fresh SQLite registry ``registry/`` (database, version
files, download cache), so the run touches nothing in ``~/.satchel``.

Run: python examples/quickstart.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def satchel_cli(*args: str, env: dict[str, str]) -> str:
    """Run ``satchel ARGS`` with this interpreter; its stdout, or exit naming the failure."""
    done = subprocess.run(
        [sys.executable, "-m", "satchel", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(
            f"satchel {' '.join(args)} exited with status {done.returncode}:\n{done.stderr}"
        )
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", default="quickstart-out", help="run directory: model and registry go here"
    )
    args = ap.parse_args()
    run_dir = Path(args.out).absolute()

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import satchel

    # 1. train
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    clf = LogisticRegression(max_iter=1000).fit(X, y)

    # 2. save: the signature is inferred from the input example
    out = run_dir / "iris"
    satchel.save_model(clf, out, input_example=X.head(3), overwrite=True)
    print(f"saved {out}/ : {', '.join(sorted(p.name for p in out.iterdir()))}")

    # 3. load and predict in-process
    model = satchel.load_model(out)
    print(f"in-process predict on 3 rows -> {model.predict(X.head(3)).tolist()}")

    # 4. register it: a fresh SQLite registry under the run directory, so a rerun starts
    # from version 1 and nothing is written to ~/.satchel
    registry = run_dir / "registry"
    shutil.rmtree(registry, ignore_errors=True)
    registry.mkdir(parents=True)
    env = dict(
        os.environ,
        SATCHEL_REGISTRY_URI=f"sqlite:///{registry / 'registry.db'}",
        SATCHEL_CACHE_DIR=str(registry / "cache"),
    )
    registered = json.loads(
        satchel_cli("registry", "register", str(out), "--name", "iris", "--json", env=env)
    )
    version = str(registered["version"])
    satchel_cli("registry", "alias", "iris", "champion", version, env=env)
    print(f"registered iris version {version} in {registry}/ ; alias champion -> {version}")
    print(satchel_cli("registry", "show", "iris@champion", env=env).rstrip())

    # 5. serve the registered model by its alias over HTTP and score it
    uri = "models:/iris@champion"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "satchel",
            "serve",
            "-m",
            f"iris={uri}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/ping", proc)
        # one row of each iris class, in MLflow's dataframe_split scoring format
        rows = X.iloc[[0, 50, 100]]
        body = json.dumps(
            {"dataframe_split": {"columns": list(rows.columns), "data": rows.values.tolist()}}
        ).encode()
        req = urllib.request.Request(
            f"{base}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            reply = json.loads(r.read())
        print(f"POST {base}/invocations ({uri}) -> {reply}")
        expected = model.predict(rows).tolist()
        if reply.get("predictions") != expected:
            raise SystemExit(f"served predictions {reply} differ from in-process {expected}")
        with urllib.request.urlopen(f"{base}/v2/models/iris", timeout=10) as r:
            served = json.loads(r.read())
        print(f"GET {base}/v2/models/iris -> versions {served.get('versions')}")
        if str(served.get("versions", [None])[0]) != version:
            raise SystemExit(f"the server reports {served}, expected iris version {version}")
        print("ok: the served model answers exactly as the in-process one")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
