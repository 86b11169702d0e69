"""Where a request's work runs: inline on the event loop or in a worker thread, and the
one timed call into ``Model.predict_detailed``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread

from satchel.errors import InputFormatError, PredictionError, SatchelError, ServerBusyError
from satchel.model import Prediction
from satchel.serving.server.repository import ServedModel

T = TypeVar("T")
log = logging.getLogger("satchel.serving")

DEFAULT_THREADS = 16
# Set in a worker process of a pre-fork supervisor, which replaces a worker that exits.
RECYCLE_WHEN_STUCK = False


@dataclass(slots=True)
class _Call:
    done: bool = False
    abandoned: bool = False


class Executor:
    """Runs a request's decode + predict + encode, inline or in a worker thread.

    Inline (on the event loop) is cheaper for a model whose ``predict`` costs about a
    few milliseconds of CPU: the thread hand-off costs ~0.1-0.2 ms of CPU per request, and a
    model that holds the GIL gains no parallelism from threads anyway (measured in
    benchmarks/serve_bench.py). Large bodies, slow models and models that wait go to
    the thread pool, so the loop keeps answering health checks.

    Args:
        inline_seconds: largest average predict CPU time run inline.
        inline_bytes: largest request body run inline.
    """

    def __init__(self, *, inline_seconds: float = 0.005, inline_bytes: int = 64 * 1024,
                 max_threads: int = DEFAULT_THREADS) -> None:
        self.inline_seconds = inline_seconds
        self.inline_bytes = inline_bytes
        self.max_threads = max_threads
        self._lock = threading.Lock()
        self.running = 0  # worker threads running a call now (abandoned ones included)
        self.abandoned = 0  # of those, calls whose request already answered (504)
        self.abandoned_total = 0
        self._limiter: anyio.CapacityLimiter | None = None
        self._recycling = False
        # requests waiting for a thread while every one runs a live call (FIFO, woken on
        # the event loop when a call ends)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def waiting(self) -> int:
        """Requests waiting for a predict thread."""
        return sum(1 for w in self._waiters if not w.done())

    def inline(self, served: ServedModel, size: int) -> bool:
        """True when this request should run on the event loop."""
        cpu, wall = served.predict_cpu_seconds, served.predict_seconds
        # A model in a worker process is cheap here in CPU but the loop would sit idle for
        # the round trip, the time the worker predicts: no overlap of HTTP and predict.
        model = served.model
        return (model is not None and not model.out_of_process and cpu is not None
                and wall is not None and size <= self.inline_bytes
                and cpu < self.inline_seconds and wall < 4 * self.inline_seconds)

    async def run(self, served: ServedModel, size: int, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` inline when :meth:`inline` says so, else in a thread."""
        if self.inline(served, size):
            return fn(*args)
        return await self.thread(fn, *args)

    async def run_small(self, small: bool, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` inline when ``small`` (decode or encode of a small body), else in a
        thread."""
        return fn(*args) if small else await self.thread(fn, *args)

    async def thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one of at most ``max_threads`` worker threads.

        While every thread runs a call that can still answer, the request waits for one
        (bounded by the queue limit and the timeout, like any request).

        Raises:
            ServerBusyError: every thread is held by a call abandoned after a timeout;
                with most of them held so, a worker process is recycled.
        """
        # A request that times out answers 504 at once, but its thread runs on (Python
        # cannot stop it): it keeps its place in the count until it really ends, so
        # hung calls can never pile up more threads than the bound.
        while True:
            with self._lock:
                if self.running < self.max_threads:
                    self.running += 1
                    break
                if self.abandoned >= self.max_threads:
                    stuck = self.abandoned
                    self._maybe_recycle()
                    raise ServerBusyError(
                        f"all {self.max_threads} predict threads are busy ({stuck} held by "
                        "calls that timed out); retry later")
                # under the lock: a call ending after this check finds the waiter
                self._loop = asyncio.get_running_loop()
                waiter = self._loop.create_future()
                self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:  # timed out or the client left while waiting
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # it had been woken: pass the free thread on
                waiter.cancel()
                raise
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_threads)
        state = _Call()

        def work() -> T:
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self.running -= 1
                    state.done = True
                    if state.abandoned:
                        self.abandoned -= 1
                    wake = self._loop if self._waiters else None
                if wake is not None:
                    with contextlib.suppress(RuntimeError):  # the loop has closed
                        wake.call_soon_threadsafe(self._wake_one)

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True,
                                                  limiter=self._limiter)
        except BaseException:
            with self._lock:
                if not state.done and not state.abandoned:
                    state.abandoned = True
                    self.abandoned += 1
                    self.abandoned_total += 1
            raise

    def _wake_one(self) -> None:
        # on the event loop: the oldest live waiter tries for the freed thread
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _maybe_recycle(self) -> None:
        """In a worker process, exit gracefully (the supervisor starts a fresh one) once
        most threads are held by abandoned calls: only a new process frees them."""
        if (not RECYCLE_WHEN_STUCK or self._recycling
                or self.abandoned * 2 < self.max_threads):
            return
        self._recycling = True
        log.warning("%d of %d predict threads are held by calls that timed out: this worker "
                    "finishes its requests and is replaced", self.abandoned, self.max_threads)
        os.kill(os.getpid(), signal.SIGTERM)


def predict(served: ServedModel, data: Any, params: dict[str, Any] | None) -> Prediction:
    """``Model.predict_detailed``, timed, with stray parse errors made typed.

    Raises:
        SignatureError: the input or params do not fit the signature.
        PredictionError: the model raised.
        InputFormatError: the input has a shape nothing can read as the model's input.
    """
    model = served.require()
    # CPU time is a syscall, not a vDSO read like perf_counter: sample 1 call in 16.
    served.calls += 1
    if not (served.calls <= 4 or not served.calls % 16):
        return _predict(model, data, params)
    start, process, own = time.perf_counter(), time.process_time(), time.thread_time()
    result = _predict(model, data, params)  # a call that fails measures nothing
    wall, own = time.perf_counter() - start, time.thread_time() - own
    # The model's own cost, however the calls came. Its CPU is the calling thread's: the
    # process's over this call is every thread's. Its wall time leaves out what the
    # process's other threads ran meanwhile, the time this call may have waited for the
    # GIL. Measured whole, a cheap model first called by several clients at once, in
    # threads side by side, looked expensive, stayed in threads and paid for the GIL
    # contention: a 30-tree forest at 1 row cost 3.6 ms of CPU a request instead of 1.9.
    # A model that waits (I/O, sleep) keeps its whole wait: waiting costs no CPU.
    others = time.process_time() - process - own
    served.note_predict(max(own, wall - others), own)
    return result


def _predict(model: Any, data: Any, params: dict[str, Any] | None) -> Prediction:
    try:
        result: Prediction = model.predict_detailed(data, params)
    except BaseException as exc:
        typed = _typed(exc)
        if typed is exc:
            raise
        raise typed from None
    return result


async def predict_async(served: ServedModel, data: Any, params: dict[str, Any] | None
                        ) -> Prediction:
    """:func:`predict` on the event loop, for a model that predicts in another process
    (``Model.out_of_process``): the loop awaits the worker's reply. Only its wall time is
    noted (the loop's CPU meanwhile is other requests')."""
    model = served.require()
    served.calls += 1
    start = time.perf_counter()
    try:
        result = await model.predict_detailed_async(data, params)
    except BaseException as exc:
        typed = _typed(exc)
        if typed is exc:
            raise
        raise typed from None
    served.note_predict(time.perf_counter() - start, None)
    return result


def _typed(exc: BaseException) -> BaseException:
    """What a request sees of an exception a predict call raised."""
    if isinstance(exc, SatchelError):
        return exc
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        # Raised by the model's own code (uvicorn handles the server's signals, so a
        # real Ctrl-C never arrives here): the model failed, the server stays up.
        return PredictionError(f"the model raised {type(exc).__name__}",
                               error_class=type(exc).__name__)
    if isinstance(exc, (ValueError, TypeError, KeyError, IndexError)):
        # Model errors arrive as PredictionError; anything else escaped while reading
        # the input (pandas or numpy refusing its shape) and is the client's to fix.
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        return InputFormatError(f"the input cannot be read as this model's input: {first}")
    return exc
