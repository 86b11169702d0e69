"""The README's quickstart (examples/quickstart.py) runs end to end in the test venv:
train on iris, save, load, register (alias champion), serve models:/iris@champion on a
real loopback server and compare the HTTP scores with in-process predictions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_registers_serves_by_alias_and_scores(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # HOME points away from ~/.satchel: the run must keep its registry under --out
    env = dict(os.environ, HOME=str(home))
    env.pop("SATCHEL_REGISTRY_URI", None)
    env.pop("SATCHEL_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered iris version 1" in done.stdout
    assert "models:/iris@champion" in done.stdout
    assert "ok: the served model answers exactly as the in-process one" in done.stdout
    assert (tmp_path / "run" / "registry" / "registry.db").is_file()
    assert not (home / ".satchel").exists(), "the quickstart wrote to ~/.satchel"
    # a second run starts a fresh registry in the same directory
    again = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "registered iris version 1" in again.stdout
