"""Registry fixtures: a registry on SQLite and on a real PostgreSQL server.

PostgreSQL is Debian's server in a private cluster this session starts under a temp
dir (listening on 127.0.0.1 and a unix socket there) and stops at the end; each test
gets a fresh database. ``$SATCHEL_TEST_POSTGRES_URL`` points the tests at an existing
server instead. Without the server binaries the postgres tests fail (``_MUST_RUN``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

PG_BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _as_postgres(cmd: list[str]) -> list[str]:
    # The server refuses to run as root: run its tools as the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A base URL (``postgresql://satchel@127.0.0.1:PORT``) of a running server."""
    env_url = os.environ.get("SATCHEL_TEST_POSTGRES_URL")
    if env_url:
        yield env_url.rstrip("/")
        return
    if not PG_BINARIES:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    bindir = Path(PG_BINARIES[-1])
    work = Path(tempfile.mkdtemp(prefix="satchel-pg-"))
    data = work / "data"
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "satchel",
                      "--no-sync"]),
        check=True, capture_output=True, timeout=120,
    )
    opts = f"-k {work} -h 127.0.0.1 -p {port} -c fsync=off -c full_page_writes=off"
    subprocess.run(
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                      str(work / "log"), "-w", "start"]),
        check=True, capture_output=True, timeout=120,
    )
    try:
        yield f"postgresql://satchel@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True, timeout=120,
        )
        shutil.rmtree(work, ignore_errors=True)


def new_postgres_db(base: str) -> str:
    """Create an empty database on the server; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return f"{base}/{name}"
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty registry database URL: SQLite file, then PostgreSQL."""
    from satchel.registry.api import close_all

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        base = request.getfixturevalue("postgres_server")
        yield new_postgres_db(base)
    close_all()


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Any:
    """A Registry on ``db_url`` with its artifact root in tmp_path, acting as alice."""
    from satchel.registry import Registry

    return Registry(db_url, actor="alice", artifact_root=tmp_path / "artifacts")


@pytest.fixture(scope="session")
def iris_model_dir_2(
    tmp_path_factory: pytest.TempPathFactory, iris: tuple[Any, Any]
) -> Path:
    """A second, different model (another C) with an input example."""
    from sklearn.linear_model import LogisticRegression

    import satchel

    X, y = iris
    path = tmp_path_factory.mktemp("models") / "iris2"
    satchel.save_model(LogisticRegression(C=0.1, max_iter=1000).fit(X, y), path,
                       input_example=X.head(5))
    return path
