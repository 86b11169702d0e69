"""schemathesis' own CLI (pinned in the test extra) over a live server's /openapi.json,
every V2 route: no 5xx for anything it generates, fitting the spec or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import serve
from .test_server_requests import evil_dir  # noqa: F401 - the fixture, reused


def test_schemathesis_cli_finds_no_5xx_on_v2(
    tmp_path: Path, iris_model_dir: Path, evil_dir: Path  # noqa: F811
) -> None:
    with serve(f"iris={iris_model_dir}", tmp_path, "-m", f"evil={evil_dir}",
               "--log-level", "warning") as srv:
        proc = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run",
             f"http://127.0.0.1:{srv.port}/openapi.json",
             "--checks", "not_a_server_error", "--include-path-regex", "^/v2",
             "--max-examples", "30", "--mode", "all", "--generation-deterministic",
             "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml")],
            capture_output=True, text=True, timeout=900,
            cwd=tmp_path,  # its .schemathesis/ cache stays out of the checkout
        )
        assert srv.ping() == 200
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    tested = [ln for ln in out.splitlines() if "Tested:" in ln]
    assert tested and int(tested[0].split()[-1]) >= 10, out[-2000:]  # both models, server
    assert "failed" not in out.split("SUMMARY")[-1].lower().replace("0 failed", "")
