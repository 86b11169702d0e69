"""``satchel registry serve --workers N``: forked workers over one database, each with
the same tokens and roles, each seeing every other worker's writes on its next read."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.registry.conftest import TOKENS, RegistryServer


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _call(port: int, method: str, path: str, token: str | None,
          body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    # A fresh connection per call: the kernel spreads connections over the workers.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


ALIAS = "/api/2.0/mlflow/registered-models/alias"


def test_two_workers_share_the_store_and_the_tokens(
    db_url: str, tmp_path: Path, token_file: Path, iris_model_dir: Path
) -> None:
    from satchel.registry import Registry

    reg = Registry(db_url, actor="seed", artifact_root=tmp_path / "art")
    reg.register(iris_model_dir, "fraud")
    reg.register(iris_model_dir, "fraud")
    reg.set_alias("fraud", "champion", 1)
    srv = RegistryServer(db_url, tmp_path / "art", token_file,
                         extra=("--workers", "2")).start()
    try:
        assert srv.proc is not None
        workers = _children(srv.proc.pid)
        assert len(workers) == 2, workers
        before = {w: _cpu_ticks(w) for w in workers}
        query = f"{ALIAS}?name=fraud&alias=champion"
        for _ in range(60):
            status, body = _call(srv.port, "GET", query, TOKENS["reader"])
            assert status == 200 and body["model_version"]["version"] == "1"
        # Each worker holds the same token table: no token, a bad one, a reader writing.
        for _ in range(10):
            assert _call(srv.port, "GET", query, None)[0] == 401
            assert _call(srv.port, "GET", query, "not-a-known-token-000")[0] == 401
            status, body = _call(srv.port, "POST", ALIAS, TOKENS["reader"],
                                 {"name": "fraud", "alias": "champion", "version": "2"})
            assert status == 403 and body["error_code"] == "PERMISSION_DENIED"
        # A write through one worker: every worker's next read sees it (their read
        # caches key on the audit head, which the write advanced).
        status, _ = _call(srv.port, "POST", ALIAS, TOKENS["editor"],
                          {"name": "fraud", "alias": "champion", "version": "2"})
        assert status == 200
        for _ in range(60):
            status, body = _call(srv.port, "GET", query, TOKENS["reader"])
            assert status == 200 and body["model_version"]["version"] == "2"
        after = {w: _cpu_ticks(w) for w in workers}
        assert all(after[w] > before[w] for w in workers), (before, after)
        assert _children(srv.proc.pid) == workers  # nobody crashed
        # The audit names the token's identity, whichever worker wrote.
        entry = reg.audit("fraud")[-1]
        assert (entry.action, entry.actor, entry.after) == ("set_alias", "erin",
                                                             {"champion": 2})
        # SIGTERM stops the supervisor and its workers cleanly.
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0
        for w in workers:
            assert not Path(f"/proc/{w}").exists() or \
                Path(f"/proc/{w}/stat").read_text().split()[2] == "Z"
    finally:
        srv.stop()


@pytest.mark.parametrize("value", ["0", "-1", "65", "two"])
def test_bad_worker_counts_are_refused(value: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "satchel", "registry", "serve", "--registry-uri",
         f"sqlite:///{tmp_path / 'r.db'}", "--workers", value],
        capture_output=True, text=True, timeout=120, env={**os.environ})
    assert done.returncode != 0
    assert "--workers" in done.stderr and "Traceback" not in done.stderr
