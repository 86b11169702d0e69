"""Models served from their own environments: one worker process per environment, and
the front server's side of the channel to it.

An :class:`EnvWorker` starts a :mod:`~satchel.serving.server.model_worker` in an
environment's interpreter, waits for its models to load, and carries calls to it. A
worker that dies is restarted on the same socket path; its requests answer 503
(``ModelNotReadyError``) meanwhile, never 500. The models the front server puts in its
repository, and the start of one worker per environment, are in
:mod:`~satchel.serving.server.env_models`.

Connections are opened on demand, one per concurrent caller, and reused. A process
forked after the workers started (``serve --workers N``: the HTTP workers) opens its own
connections to the same model workers; only the process that started a worker watches,
restarts and stops it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from satchel import errors as _errors
from satchel.errors import ModelNotReadyError, PredictionError, SatchelError
from satchel.serving.server import channel

log = logging.getLogger("satchel.serving")

_START_TIMEOUT = 300.0
_CONNECT_TIMEOUT = 5.0


class EnvWorker:
    """One worker process in one environment, serving one or more models.

    Args:
        python: the environment's interpreter.
        specs: ``{"name", "path", "options"}`` of each model it loads.
        key: the environment's key (for names and messages).
    """

    def __init__(self, python: Path, specs: list[dict[str, Any]], key: str) -> None:
        self.python = python
        self.specs = specs
        self.key = key
        self.info: dict[str, Any] = {}
        self.restarts = 0
        self._dir = Path(tempfile.mkdtemp(prefix="satchel-w-"))
        self._sock = str(self._dir / "worker.sock")
        self._key = secrets.token_bytes(channel.KEY_BYTES)
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()
        # idle connections of the process in _pool_pid (a forked child starts afresh)
        self._idle: list[Any] = []
        self._idle_async: list[Any] = []  # non-blocking ones, for the event loop
        self._pool_pid = os.getpid()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._generation = 0
        self._launched: tuple[subprocess.Popen[bytes], Path] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Start the worker and wait until its models are loaded; returns what it loaded.

        Raises:
            SatchelError: the worker could not load a model (its reason quoted).
        """
        self.launch()
        return self.wait_started()

    def launch(self) -> None:
        """Start the worker process without waiting for it (see :meth:`wait_started`):
        the caller can do its own start-up while the models load."""
        self._launched = self._popen()

    def wait_started(self) -> dict[str, Any]:
        """Wait for the worker :meth:`launch` started to load its models, then watch it.

        Raises:
            SatchelError: the worker could not load a model (its reason quoted).
        """
        if self._launched is None:
            raise SatchelError("wait_started() before launch()")
        proc, errors = self._launched
        self._await(proc, errors)
        self._watcher = threading.Thread(target=self._watch, name=f"satchel-env-{self.key}",
                                         daemon=True)
        self._watcher.start()
        return self.info

    def _spawn(self) -> None:
        self._await(*self._popen())

    def _popen(self) -> tuple[subprocess.Popen[bytes], Path]:
        self._generation += 1
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["SATCHEL_WORKER_KEY"] = self._key.hex()
        env["SATCHEL_WORKER_PARENT"] = str(os.getpid())
        errors = self._dir / f"w{self._generation}.stderr"
        with open(errors, "wb") as err:
            proc = subprocess.Popen(
                [str(self.python), "-m", "satchel.serving.server.model_worker", self._sock],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(self.specs).encode())
        proc.stdin.close()
        return proc, errors

    def _await(self, proc: subprocess.Popen[bytes], errors: Path) -> None:
        line = _read_line(proc, _START_TIMEOUT)
        try:
            status = json.loads(line) if line else {}
        except ValueError:
            status = {}
        if "ready" not in status:
            proc.kill()
            proc.wait()
            why = status.get("error") or _last_line(errors) or f"it exited with {proc.returncode}"
            raise SatchelError(f"the model worker of environment {self.key} could not load "
                               f"{', '.join(s['name'] for s in self.specs)}: {why}")
        if status.get("channel") != channel.VERSION:
            # An environment cached by another build of satchel with the same version
            # number: its worker would misread every message.
            proc.kill()
            proc.wait()
            raise SatchelError(
                f"the model worker of environment {self.key} speaks channel version "
                f"{status.get('channel', 1)}, this satchel speaks {channel.VERSION}: the "
                "environment was built by another build of satchel; delete "
                f"{self.python.parent.parent} and start again to rebuild it")
        with self._lock:
            self._proc, self.info = proc, status["ready"]
        self._ready.set()

    def _watch(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is None:
                self._stopping.wait(0.2)
                continue
            if self._stopping.is_set():
                return
            self._ready.clear()
            log.warning("model worker of environment %s exited (%s); restarting", self.key,
                        proc.returncode if proc is not None else "not started")
            self._close_idle()
            try:
                self._spawn()
                self.restarts += 1
                delay = 0.5
            except Exception:  # noqa: BLE001 - keep trying; requests answer 503 meanwhile
                log.exception("restarting the model worker of environment %s failed", self.key)
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)

    def stop(self) -> None:
        """Stop the worker (only the process that started it does; a forked one just
        closes its connections)."""
        self._close_idle()
        if os.getpid() != self._owner:
            return
        self._stopping.set()
        self._ready.clear()
        proc = self._proc or (self._launched[0] if self._launched is not None else None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _close_idle(self) -> None:
        with self._lock:
            idle, self._idle, self._idle_async = self._idle + self._idle_async, [], []
        for sock in idle:
            try:
                sock.close()
            except OSError:
                pass

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # --- the request path --------------------------------------------------------------

    def call(self, op: str, name: str, data: Any = None, params: dict[str, Any] | None = None
             ) -> Any:
        """Run ``op`` (``predict``, ``predict_proba``, ``native``) for model ``name`` in the
        worker, on ``data`` already fitted to the model's signature; a dead or restarting
        worker is a ModelNotReadyError (503), not a 500. Each concurrent caller has its
        own connection (and the worker a thread for it), so calls overlap.

        Raises:
            SatchelError: the worker was stopped (a closed model), or the model raised.
        """
        sock = self._take(name, self._idle, blocking=True)
        try:
            channel.send(sock, (op, name, channel.pack_input(data), params))
            reply = channel.recv(sock)
        except BaseException as exc:
            raise self._failed(sock, name, exc) from None
        self._idle.append(sock)
        return _result(reply)

    async def call_async(self, op: str, name: str, data: Any = None,
                         params: dict[str, Any] | None = None) -> Any:
        """:meth:`call` from the event loop, on a non-blocking connection: the request is
        written by the loop and the reply wakes the loop's own poll, so no thread is
        handed the call and none waits for the reply (two wake-ups fewer per call).

        Raises:
            SatchelError: as :meth:`call`.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        sock = self._take(name, self._idle_async, blocking=False)
        try:
            await channel.send_async(loop, sock, (op, name, channel.pack_input(data), params))
            reply = await channel.recv_async(loop, sock)
        except BaseException as exc:
            # cancelled mid-call too: the reply would arrive on a pooled connection
            raise self._failed(sock, name, exc) from None
        self._idle_async.append(sock)
        return _result(reply)

    def predict(self, name: str, data: Any, params: dict[str, Any] | None) -> Any:
        """Predict in the worker (see :meth:`call`)."""
        return self.call("predict", name, data, params)

    def _take(self, name: str, idle: list[Any], *, blocking: bool) -> Any:
        """An idle connection of this process, or a new one.

        Raises:
            SatchelError: the worker was stopped; ModelNotReadyError: it is restarting.
        """
        if self._stopping.is_set():
            raise SatchelError(f"model '{name}' was closed (its worker is stopped)")
        if os.getpid() == self._owner and not self._ready.is_set():
            raise ModelNotReadyError(f"model '{name}' is restarting (its environment's "
                                     "worker exited)")
        if self._pool_pid != os.getpid():
            # Forked: the inherited sockets belong to the parent's conversations.
            self._idle, self._idle_async, self._pool_pid = [], [], os.getpid()
            idle = self._idle if blocking else self._idle_async
        try:
            return idle.pop()  # list.pop is atomic: no lock on the hot path
        except IndexError:
            pass
        try:
            sock = channel.connect(self._sock, self._key, _CONNECT_TIMEOUT)
        except OSError as exc:
            raise ModelNotReadyError(f"model '{name}' is restarting (its environment's "
                                     f"worker is not listening: {type(exc).__name__})") from None
        sock.setblocking(blocking)
        return sock

    @staticmethod
    def _failed(sock: Any, name: str, exc: BaseException) -> BaseException:
        """What a call that failed mid-way raises; its connection is closed either way
        (mid-message, the stream is unusable)."""
        sock.close()
        if isinstance(exc, (EOFError, OSError)):
            # The watcher (in the process that started the worker) sees it exit and
            # restarts it; until then connecting fails and requests get 503.
            return ModelNotReadyError(f"model '{name}' is restarting (its environment's "
                                      f"worker exited: {type(exc).__name__})")
        return exc


def _result(reply: Any) -> Any:
    if reply[0] == "ok":
        return channel.from_wire(reply[1])
    raise _error(reply[1], reply[2], reply[3])


def _error(cls_name: str, message: str, error_class: str | None) -> SatchelError:
    """The worker's error as the same satchel error class in the front server."""
    if cls_name == "PredictionError" or error_class is not None:
        return PredictionError(message, error_class=error_class or cls_name)
    cls = getattr(_errors, cls_name, None)
    if isinstance(cls, type) and issubclass(cls, SatchelError):
        try:
            return cls(message)
        except TypeError:
            pass
    return PredictionError(message, error_class=cls_name)


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:500] if lines else ""


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The worker's first stdout line, or "" when it exits or times out first."""
    out: list[bytes] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].decode("utf-8", "replace").strip() if out else ""


def wait_ready(workers: list[EnvWorker], timeout: float) -> bool:
    """True once every worker is ready again (tests and shutdown use it)."""
    deadline = time.monotonic() + timeout
    for w in workers:
        if not w._ready.wait(max(0.0, deadline - time.monotonic())):
            return False
    return True
