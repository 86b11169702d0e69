"""Adaptive batching: concurrent requests to one model merged into one ``predict`` call.

A :class:`Batcher` serves one model. Requests wait in a FIFO queue; a dispatcher task
takes the oldest request plus every queued request *compatible* with it (same params,
same input layout: column names and dtypes, or array dtype and trailing shape), up to
``max_batch_size`` rows, concatenates their inputs, and runs ONE
``Model.predict_detailed`` call in a worker thread. The output is cut back into each
request's rows, in order.

Adaptive: the dispatcher never sleeps on a timer when nothing else is on its way. It
waits (at most ``max_batch_delay_ms`` after the oldest request arrived) only while
requests for this model are known to be in flight (being received or decoded, see
:meth:`Batcher.incoming`) or while every predict slot is busy; an idle server adds no
latency. Under load the queue fills while the previous batch predicts, so batches grow
with the load by themselves.

Safety: a request larger than the batch limit runs alone; batches never mix params,
layouts or models (one batcher per model); if a merged call fails, each of its requests
is retried alone, so one bad request only fails itself; a model whose output does not
have one row per input row is never batched again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from satchel import _normalize
from satchel.model import Prediction
from satchel.serving.server.layouts import OutputRowsError, batch_key, concat, split
from satchel.serving.server.options import BatchOptions

log = logging.getLogger("satchel.serving")

PredictFn = Callable[[Any, "dict[str, Any] | None"], Prediction]
# (requests in the call, rows in the call, seconds the call took, seconds to merge the
# requests' inputs, seconds to cut the output back into theirs)
BatchObserver = Callable[[int, int, float, float, float], None]
# what _outcomes records per predict call: the observer's arguments
_Call = tuple[int, int, float, float, float]
AsyncPredictFn = Callable[[Any, "dict[str, Any] | None"], Awaitable[Prediction]]
# what a merged call's plan asks for next: (input, params) in, a Prediction sent back
Calls = Generator[tuple[Any, "dict[str, Any] | None"], Prediction,
                  "list[Prediction | BaseException]"]


@dataclass(eq=False)
class _Item:
    data: Any
    params: dict[str, Any] | None
    key: Hashable | None  # None: never merged with anything
    rows: int
    future: asyncio.Future[Prediction]
    arrived: float = field(default_factory=time.monotonic)
    # perf_counter when its predict call started, and how long that call took
    started: float = 0.0
    seconds: float = 0.0


class Batcher:
    """Merges concurrent predictions for ONE model (see the module docstring).

    Args:
        predict: ``(data, params) -> Prediction``, e.g. ``Model.predict_detailed``.
        options: batch limits.
        name: the model's name, for logs.
        observer: called once per ``predict`` call with (requests, rows, seconds, and
            the seconds spent merging the inputs and cutting the output).
        predict_async: ``predict`` as a coroutine, for a model that predicts in another
            process: the call is awaited on the event loop instead of run in a thread.
    """

    def __init__(self, predict: PredictFn, options: BatchOptions | None = None, *,
                 name: str = "model", observer: BatchObserver | None = None,
                 inline_seconds: float = 0.0,
                 predict_async: AsyncPredictFn | None = None) -> None:
        self._predict = predict
        self._predict_async = predict_async
        self._calls: set[asyncio.Task[None]] = set()  # predict_async calls running
        self.options = options or BatchOptions()
        self.name = name
        self._observer = observer
        # A merged call expected to take less than this runs on the event loop, not in
        # the batch thread (0: always in the thread); see _runs_inline.
        self.inline_seconds = inline_seconds
        # (rows, seconds) of the last call, per merge key (params and layout): a call with
        # other params (e.g. a slower setting) is measured in the thread first
        self._last: dict[Hashable | None, tuple[int, float]] = {}
        self._queue: deque[_Item] = deque()
        self._incoming = 0
        self._busy = 0
        self._holding = False  # the dispatcher holds a batch open for incoming requests
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.merging = True  # turned off when the model's output is not one row per row

    # --- what the transport calls ------------------------------------------------------

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Mark a request as on its way (body being read or decoded).

        The dispatcher holds a partial batch open (within the delay) while requests are
        incoming, since they are likely to join it.
        """
        self._incoming += 1
        try:
            yield
        finally:
            self._incoming -= 1
            if self._holding and self._wakeup is not None:
                self._wakeup.set()  # the batch held open may stop waiting for it

    def plan(self, data: Any, params: dict[str, Any] | None = None
             ) -> tuple[Hashable, int] | None:
        """(merge key, rows) of an input that could share a call, or None when it would run
        alone anyway (too many rows, a layout that never merges, merging turned off).

        A transport runs such a request the way it runs unbatched ones, sparing it the
        queue and the thread hand-off that buy it nothing.
        """
        if not self.merging:
            return None
        key, rows = batch_key(data, params or None)
        if key is None or rows >= self.options.max_batch_size:
            return None
        return key, rows

    async def predict(self, data: Any, params: dict[str, Any] | None = None,
                      plan: tuple[Hashable, int] | None = None,
                      timing: list[float] | None = None) -> Prediction:
        """Predict ``data`` with ``params``, merged with concurrent compatible requests.

        Args:
            plan: :meth:`plan`'s answer for this input, when the caller has it already.
            timing: filled with (``perf_counter`` when its predict call started, seconds
                that call took) once it has an answer.

        Raises:
            whatever the model's ``predict`` raises for this request's rows alone.
        """
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._dispatch(), name=f"batcher-{self.name}")
        params = params or None
        if plan is not None:
            key, rows = plan
        else:
            key, rows = (batch_key(data, params) if self.merging
                         else (None, _normalize.num_rows(data)))
        item = _Item(data, params, key, rows, loop.create_future())
        self._queue.append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        result = await item.future
        if timing is not None:
            timing[:] = (item.started, item.seconds)
        return result

    @property
    def queued(self) -> int:
        """Requests waiting for a predict call to start."""
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued, incoming or predicting."""
        return not self._queue and not self._busy and not self._incoming

    async def aclose(self) -> None:
        """Stop the dispatcher (queued requests are cancelled) and the worker threads."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for call in list(self._calls):
            call.cancel()
        while self._queue:
            self._queue.popleft().future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    # --- the dispatcher ----------------------------------------------------------------

    async def _dispatch(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        loop = asyncio.get_running_loop()
        delay = self.options.max_batch_delay_ms / 1000.0
        while True:
            self._drop_cancelled()
            if not self._queue or self._busy >= self.options.concurrency:
                wakeup.clear()
                await wakeup.wait()
                continue
            first = self._queue[0]
            deadline = first.arrived + delay
            # Hold the batch open while more requests are on their way and it has room.
            while (self._incoming > 0 and first.key is not None
                   and self._compatible_rows(first) < self.options.max_batch_size):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wakeup.clear()
                self._holding = True
                try:
                    await asyncio.wait_for(wakeup.wait(), remaining)
                except TimeoutError:
                    break
                finally:
                    self._holding = False
            batch = self._take()
            if not batch:
                continue
            self._busy += 1
            if self._predict_async is not None:
                call = loop.create_task(self._run_async(batch))
                self._calls.add(call)
                call.add_done_callback(self._calls.discard)
                continue
            if self._runs_inline(batch[0].key, sum(item.rows for item in batch)):
                calls: list[_Call] = []
                try:
                    outcomes = self._drive(self._outcomes(batch, calls))
                except Exception as exc:  # noqa: BLE001 - every waiter must hear back
                    outcomes = [exc] * len(batch)
                self._settle(batch, outcomes, calls)
                await asyncio.sleep(0)  # let the requests that arrived meanwhile in
                continue
            loop.run_in_executor(self._executor(), self._run, batch, loop)

    def _runs_inline(self, key: Hashable | None, rows: int) -> bool:
        """True when the last call with this key says this one takes under
        ``inline_seconds``.

        On the event loop a quick call costs no thread hand-off, and no GIL convoy: a
        predict thread whose library releases the GIL often (numpy on larger arrays,
        each tree of a forest) waits up to the 5 ms switch interval to get it back from
        the loop each time, measured 16 -> 81 ms for a 30-tree forest on 800 rows. The
        estimate scales the last call's time up with the rows, never down.
        """
        last = self._last.get(key)
        if last is None or self.inline_seconds <= 0:
            return False
        last_rows, seconds = last
        return seconds * max(1.0, rows / max(last_rows, 1)) < self.inline_seconds

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    def _compatible_rows(self, first: _Item) -> int:
        rows = 0
        for item in self._queue:
            if item.key == first.key and not item.future.done():
                rows += item.rows
        return rows

    def _take(self) -> list[_Item]:
        """The oldest live request plus compatible ones that fit, in arrival order."""
        self._drop_cancelled()
        if not self._queue:
            return []
        first = self._queue.popleft()
        batch = [first]
        limit = self.options.max_batch_size
        if first.key is None or first.rows >= limit:
            return batch
        rows = first.rows
        keep: deque[_Item] = deque()
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():
                continue
            if item.key == first.key and rows + item.rows <= limit:
                batch.append(item)
                rows += item.rows
            else:
                keep.append(item)
        self._queue = keep
        return batch

    def _executor(self) -> ThreadPoolExecutor:
        # Created on first use, so a server that forks workers forks before any thread.
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.options.concurrency,
                                                thread_name_prefix=f"satchel-predict-{self.name}")
            return self._pool

    # --- in the worker thread --------------------------------------------------------

    def _run(self, batch: list[_Item], loop: asyncio.AbstractEventLoop) -> None:
        outcomes: Sequence[Prediction | BaseException]
        calls: list[_Call] = []
        try:
            outcomes = self._drive(self._outcomes(batch, calls))
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear back
            outcomes = [exc] * len(batch)
        loop.call_soon_threadsafe(self._settle, batch, outcomes, calls)

    async def _run_async(self, batch: list[_Item]) -> None:
        # on the event loop: the model's own process predicts meanwhile
        outcomes: Sequence[Prediction | BaseException]
        calls: list[_Call] = []
        try:
            outcomes = await self._drive_async(self._outcomes(batch, calls))
        except asyncio.CancelledError:  # the batcher is closing
            outcomes = [asyncio.CancelledError()] * len(batch)
            for item in batch:
                item.future.cancel()
        except Exception as exc:  # noqa: BLE001 - every waiter must hear back
            outcomes = [exc] * len(batch)
        self._settle(batch, outcomes, calls)

    def _drive(self, plan: Calls) -> list[Prediction | BaseException]:
        """Run a plan's calls with ``predict`` in this thread; the plan's outcomes."""
        try:
            call = next(plan)
            while True:
                try:
                    result = self._predict(*call)
                except Exception as exc:  # noqa: BLE001 - the plan decides what it means
                    call = plan.throw(exc)
                else:
                    call = plan.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _drive_async(self, plan: Calls) -> list[Prediction | BaseException]:
        """:meth:`_drive` with ``predict_async``, awaited on the event loop."""
        assert self._predict_async is not None
        try:
            call = next(plan)
            while True:
                try:
                    result = await self._predict_async(*call)
                except Exception as exc:  # noqa: BLE001 - the plan decides what it means
                    call = plan.throw(exc)
                else:
                    call = plan.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _settle(self, batch: list[_Item], outcomes: Sequence[Prediction | BaseException],
                calls: list[_Call]) -> None:
        # on the event loop: observers (metrics) are only ever called from its thread
        for call in calls:
            self._observe(*call)
        if calls:
            if len(self._last) >= 256:  # many params values: forget, measure again
                self._last.clear()
            self._last[batch[0].key] = calls[-1][1:3]
        self._busy -= 1
        for item, outcome in zip(batch, outcomes):
            if item.future.done():  # cancelled (timeout, client gone) meanwhile
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        if self._wakeup is not None:
            self._wakeup.set()

    def _outcomes(self, batch: list[_Item], calls: list[_Call]) -> Calls:
        """The plan of a batch's predict calls: it yields each call's (input, params) and
        is sent its prediction (or thrown its exception), whoever makes the call (a
        thread, :meth:`_drive`, or the event loop, :meth:`_drive_async`); it returns
        each request's outcome."""
        if len(batch) == 1:
            return [(yield from self._call_alone(batch[0], calls))]
        counts = [item.rows for item in batch]
        try:
            begin = time.perf_counter()
            merged = concat([item.data for item in batch])
            start = time.perf_counter()
            result = yield merged, batch[0].params
            end = time.perf_counter()
            parts: list[Prediction | BaseException] = list(split(result, counts))
            calls.append((len(batch), sum(counts), end - start, start - begin,
                          time.perf_counter() - end))
            for item in batch:
                item.started, item.seconds = start, end - start
            return parts
        except OutputRowsError as exc:
            self.merging = False
            log.warning("model '%s' is no longer batched: %s", self.name, exc)
        except Exception:  # noqa: BLE001 - some request in it is bad: retry each alone
            pass
        outcomes: list[Prediction | BaseException] = []
        for item in batch:
            outcomes.append((yield from self._call_alone(item, calls)))
        return outcomes

    def _call_alone(self, item: _Item, calls: list[_Call]
                    ) -> Generator[tuple[Any, dict[str, Any] | None], Prediction,
                                   Prediction | BaseException]:
        start = time.perf_counter()
        try:
            result = yield item.data, item.params
        except Exception as exc:  # noqa: BLE001 - handed to the request's own future
            return exc
        item.started, item.seconds = start, time.perf_counter() - start
        calls.append((1, item.rows, item.seconds, 0.0, 0.0))
        return result

    def _observe(self, requests: int, rows: int, seconds: float, input_seconds: float,
                 output_seconds: float) -> None:
        if self._observer is not None:
            try:
                self._observer(requests, rows, seconds, input_seconds, output_seconds)
            except Exception:  # noqa: BLE001 - metrics never fail a prediction
                log.exception("batch observer failed")
