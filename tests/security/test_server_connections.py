"""Slow and idle clients: raw sockets that never finish their headers."""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

from .conftest import serve


def _low_fd_limit() -> None:
    # The server gets 256 descriptors and cannot raise them: 300 sockets exhaust it
    # unless it closes idle ones.
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_idle_sockets_cannot_make_ping_unreachable(tmp_path: Path, iris_model_dir: Path) -> None:
    with serve(iris_model_dir, tmp_path, "--header-timeout", "3", preexec=_low_fd_limit) as srv:
        socks = []
        try:
            for i in range(300):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                if i % 2:
                    s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")  # never finished
                socks.append(s)
            t0 = time.monotonic()
            status = None
            while time.monotonic() - t0 < 5 and status != 200:
                status = srv.ping(timeout=2)
            assert status == 200, "ping unreachable while 300 idle sockets are open"
            # After the header deadline the idle connections are closed by the server.
            time.sleep(4)
            closed = 0
            for s in socks[-50:]:
                s.settimeout(2)
                try:
                    closed += s.recv(1) == b""
                except OSError:
                    closed += 1
            assert closed == 50
        finally:
            for s in socks:
                s.close()
        assert srv.ping() == 200
    log = srv.log_text()
    # A burst can still meet the descriptor limit before evicted sockets are released:
    # then it is said once, never a traceback per attempt.
    assert log.count("Too many open files") <= 1 and log.count("Traceback") <= 1, log[-2000:]
    assert log.count("sent no complete request headers") <= 1
    assert log.count("logged once") >= 1
