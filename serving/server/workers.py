"""Several worker processes sharing one loaded model: a pre-fork supervisor.

The parent loads the models and builds the app, freezes the GC heap, binds one
listening socket per worker on the same port (``SO_REUSEPORT``), then forks N
children, each running uvicorn on its own socket. The kernel spreads new connections
over the sockets by a hash of their addresses. (With one shared socket, the first
worker to wake accepts every pending connection at once, and a burst of keep-alive
connections can land on one worker while the other idles.) The parent keeps every
socket open, so connections that arrive for a dead worker wait in its socket's queue
for the replacement instead of being refused. Because the model was loaded before the
fork, its memory pages are shared copy-on-write, and ``gc.freeze()`` keeps the
collector from writing to (and so copying) them.

The parent only supervises:

- a child that dies (SIGKILL, a crash) is replaced at once, from the same loaded
  image, so a new worker answers within milliseconds while the others keep serving;
  children that keep dying right after they start make the supervisor give up;
- SIGTERM or SIGINT: the parent closes its copies of the sockets and sends SIGTERM to
  every child; each stops accepting, finishes the requests it holds, and exits; a
  child still running after the drain timeout is killed;
- children get SIGTERM if the parent dies (``PR_SET_PDEATHSIG`` on Linux), so no
  orphan keeps serving.

A child must not inherit threads, so nothing here starts one before the fork (the
batcher and metrics start theirs lazily, in each child).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("satchel.serving")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerOptions:
    """How the supervisor runs its children.

    Attributes:
        workers: number of child processes.
        drain_timeout: seconds a child has to finish its requests after SIGTERM.
        crash_limit: children dying within ``crash_window`` seconds of their start, in a
            row, before the supervisor gives up.
        crash_window: see ``crash_limit``.
        stall_timeout: seconds a child's event loop may go without turning (a hung call
            scored on it) before the child is killed and replaced; None: never.
    """

    workers: int = 2
    drain_timeout: float = 30.0
    crash_limit: int = 5
    crash_window: float = 5.0
    stall_timeout: float | None = None


def bind(host: str, port: int, backlog: int = 2048, *, reuse_port: bool = False
         ) -> socket.socket:
    """A listening TCP socket (one of a ``SO_REUSEPORT`` group when ``reuse_port``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
    # (accepted sockets inherit it); without it a reply written in two parts (headers,
    # body) waits for the client's delayed ACK, ~40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def bind_group(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one port (the first one picks it when ``port`` is 0)."""
    if count == 1:
        return [bind(host, port)]
    first = bind(host, port, reuse_port=True)
    socks = [first]
    try:
        for _ in range(count - 1):
            socks.append(bind(host, first.getsockname()[1], reuse_port=True))
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


class Supervisor:
    """Forks and watches the workers (see the module docstring).

    Args:
        run_child: what a child runs, given its listening socket; it returns when the
            child is done (uvicorn's ``Server.run(sockets=[sock])``).
        socks: one bound, listening socket per worker.
        options: worker count and timeouts.
    """

    def __init__(self, run_child: Callable[[socket.socket], None],
                 socks: list[socket.socket], options: WorkerOptions) -> None:
        if len(socks) != options.workers:
            raise ValueError(f"{options.workers} workers need {options.workers} sockets")
        self.run_child = run_child
        self.socks = socks
        self.options = options
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (slot, start time)
        self.stopping = False
        self._quick_deaths = 0
        self._pipe_r, self._pipe_w = os.pipe()
        os.set_blocking(self._pipe_w, False)
        os.set_blocking(self._pipe_r, False)

    # --- the parent -------------------------------------------------------------------

    def run(self) -> int:
        """Fork the children and supervise them until told to stop; the exit status."""
        self._install_signals()
        # Everything allocated so far (the models, the app) is long-lived: keep the GC
        # off it so the children never write to, and so copy, those pages.
        gc.collect()
        gc.freeze()
        try:
            for slot in range(self.options.workers):
                self._spawn(slot)
            return self._watch()
        finally:
            self._stop_all()
            signal.set_wakeup_fd(-1)
            os.close(self._pipe_r)
            os.close(self._pipe_w)

    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self._pipe_w)

        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        # a handler (not SIG_DFL) so SIGCHLD wakes the select through the wakeup fd
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def _watch(self) -> int:
        while not self.stopping:
            try:
                select.select([self._pipe_r], [], [], 1.0)
            except InterruptedError:
                pass
            self._drain_pipe()
            for pid, status in self._reap():
                child = self.children.pop(pid, None)
                if self.stopping or child is None:
                    continue
                slot, started = child
                lived = time.monotonic() - started
                log.warning("worker %d exited (%s) after %.1f s; starting a new one", pid,
                            _describe(status), lived)
                if lived < self.options.crash_window:
                    self._quick_deaths += 1
                    if self._quick_deaths >= self.options.crash_limit:
                        log.error("workers keep dying right after they start; giving up")
                        return 1
                else:
                    self._quick_deaths = 0
                self._spawn(slot)
        return 0

    def _drain_pipe(self) -> None:
        try:
            while os.read(self._pipe_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> list[tuple[int, int]]:
        dead = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            dead.append((pid, status))
        return dead

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            code = 1
            try:
                self._become_child(parent, slot)
                self.run_child(self.socks[slot])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - report, then leave without cleanup
                log.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = (slot, time.monotonic())
        log.info("started worker %d", pid)

    def _become_child(self, parent: int, slot: int) -> None:
        signal.set_wakeup_fd(-1)
        os.close(self._pipe_r)
        os.close(self._pipe_w)
        for i, sock in enumerate(self.socks):
            if i != slot:  # a child holds only its own socket
                sock.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(0)

    def _stop_all(self) -> None:
        """Close the sockets, SIGTERM every child, wait for the drain, kill stragglers."""
        for sock in self.socks:
            try:
                sock.close()
            except OSError:
                pass
        for pid in list(self.children):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.options.drain_timeout + 5.0
        while self.children and time.monotonic() < deadline:
            for pid, _ in self._reap():
                self.children.pop(pid, None)
            if self.children:
                time.sleep(0.05)
        for pid in list(self.children):
            log.error("worker %d did not stop after the drain timeout; killing it", pid)
            _signal(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self.children.pop(pid, None)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


def run_uvicorn_workers(app: Any, *, host: str, port: int, options: WorkerOptions,
                        **uvicorn_options: Any) -> int:
    """Serve ``app`` (an ASGI app built before the fork) with ``options.workers`` children.

    Returns:
        0 after a clean stop, 1 when workers kept dying.

    Raises:
        OSError: the address cannot be bound.
    """
    import uvicorn

    socks = bind_group(host, port, options.workers)
    # Built in the parent: it configures logging once, and every child reuses it.
    config = uvicorn.Config(app, host=host, port=port,
                            timeout_graceful_shutdown=int(options.drain_timeout) or 1,
                            **uvicorn_options)
    log.info("serving on http://%s:%d with %d workers (supervisor pid %d)", host,
             socks[0].getsockname()[1], options.workers, os.getpid())

    def child(shared: socket.socket) -> None:
        from satchel.serving.server import execution

        # a worker held by hung predict calls exits after draining; the supervisor
        # replaces it with a fresh process (threads cannot be stopped, processes can)
        execution.RECYCLE_WHEN_STUCK = True
        stall = options.stall_timeout

        class WatchedServer(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets=sockets)
                if stall is not None:
                    from satchel.serving.server import watchdog

                    watchdog.start(asyncio.get_running_loop(), stall)

        WatchedServer(config).run(sockets=[shared])

    return Supervisor(child, socks, options).run()
