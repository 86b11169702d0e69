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


TOKENS = {
    "admin": "admin-token-0123456789",
    "editor": "editor-token-0123456789",
    "editor2": "editor2-token-0123456789",
    "reader": "reader-token-0123456789",
}


class RegistryServer:
    """A ``satchel registry serve`` subprocess on a free loopback port."""

    def __init__(self, db_url: str, artifact_root: Path, token_file: Path | None,
                 extra: tuple[str, ...] = ()) -> None:
        self.extra = extra
        self.db_url = db_url
        self.artifact_root = artifact_root
        self.token_file = token_file
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistryServer:
        import sys
        import urllib.request

        cmd = [sys.executable, "-m", "satchel", "registry", "serve", "--registry-uri",
               self.db_url, "--artifact-root", str(self.artifact_root), "--port",
               str(self.port), "--log-level", "warning"]
        if self.token_file is not None:
            cmd += ["--auth-token-file", str(self.token_file)]
        cmd += list(self.extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"registry server exited: {err[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("registry server did not start in 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(
        "# token identity role\n"
        f"{TOKENS['admin']} root admin\n{TOKENS['editor']} erin editor\n"
        f"{TOKENS['editor2']} ed editor\n{TOKENS['reader']} rita reader\n"
    )
    return path


@pytest.fixture
def server(db_url: str, tmp_path: Path, token_file: Path) -> Iterator[RegistryServer]:
    """A running registry server with token roles over ``db_url``."""
    srv = RegistryServer(db_url, tmp_path / "server-artifacts", token_file).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def remote(server: RegistryServer, tmp_path: Path) -> Any:
    """``Registry(server.url)`` as the editor, caching into tmp_path."""
    from satchel.registry import Registry
    from satchel.registry.client import HttpStore

    reg = Registry._from_store(
        HttpStore(server.url, token=TOKENS["editor"], cache_dir=tmp_path / "cache"), "erin")
    return reg
