"""The data plane: the one place a scoring request is carried out, whatever its protocol
and transport.

``DataPlane.score(model, protocol, inbound)`` looks the model up and checks it is
ready, reads and decodes the request with the protocol's codec, plans batching, runs
the prediction (inline, in a thread, or merged with concurrent requests), encodes the
reply and counts it in the metrics. Transports (HTTP in :mod:`.http`, gRPC) only
translate their requests into an :class:`~satchel.serving.protocols.base.Inbound` and the
:class:`~satchel.serving.protocols.base.Reply` (or a typed error) back.

It also loads, unloads and swaps models at run time (:meth:`DataPlane.load`), and hands
each scored request to observers (:meth:`DataPlane.observe`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from satchel.errors import InputFormatError, ModelLoadError, ModelNotFoundError, SatchelError
from satchel.serving.protocols import budget
from satchel.serving.protocols.base import Decoded, Inbound, Protocol, Reply
from satchel.serving.server import deadline
from satchel.serving.server.batching import Batcher
from satchel.serving.server.execution import Executor, predict, predict_async
from satchel.serving.server.metrics import Metrics
from satchel.serving.server.options import ServeOptions
from satchel.serving.server.repository import ModelRepository, ServedModel

if TYPE_CHECKING:
    from satchel.serving.server.control import Control

log = logging.getLogger("satchel.serving")

# (model name, decoded model input, model output), called once the reply is encoded
Observer = Callable[[str, Any, Any], None]
_INLINE_ROWS = 1024  # replies to batched requests up to this many rows are encoded inline
# A model behind a worker channel merges this many times the batch limit in rows: each of
# its predict calls is a round trip whose cost (two wake-ups, rebuilding the input in the
# worker: ~300 us of CPU measured for an iris model) hardly depends on the rows, so
# requests of 1,000 rows, which never share a call under the 1,024-row limit, share one
# there (benchmarks/env_serve_bench.py).
WORKER_BATCH_FACTOR = 8


class DataPlane:
    """Scores requests against a repository of models (see the module docstring).

    Args:
        repository: the served models.
        options: batching, limits and metrics settings (default ``ServeOptions()``).
        executor: where work runs (default :class:`Executor`).
    """

    def __init__(self, repository: ModelRepository, options: ServeOptions | None = None,
                 executor: Executor | None = None) -> None:
        self.repository = repository
        self.options = options or ServeOptions()
        self.executor = executor or Executor(max_threads=self.options.limits.predict_threads)
        limits = self.options.limits
        self.budget = budget.DecodeBudget(limits.max_rows, limits.decoded_bytes_limit)
        self.metrics = Metrics(self.options.metrics_dir,
                               flush_interval=self.options.metrics_interval)
        self._batchers: dict[ServedModel, Batcher | None] = {}
        self._observers: list[Observer] = []
        self._flusher: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.control: Control | None = None
        if self.options.control_dir is not None:
            from satchel.serving.server.control import Control

            self.control = Control(self.options.control_dir, self)
        self.metrics.gauge_function("satchel_requests_queued", (), self.queued)
        self.metrics.gauge_function("satchel_predict_threads_busy", (),
                                    lambda: self.executor.running)
        self.metrics.gauge_function("satchel_predict_threads_abandoned", (),
                                    lambda: self.executor.abandoned)
        self.note_load_times()

    # --- scoring -------------------------------------------------------------------------

    def model(self, name: str | None, version: str | None = None) -> ServedModel:
        """The served model ``name`` (the default model for None).

        Raises:
            ModelNotFoundError: no such model or version.
        """
        return self.repository.default if name is None else self.repository.get(name, version)

    async def score(self, model: str | None, protocol: Protocol, inbound: Inbound, *,
                    version: str | None = None) -> Reply:
        """Score one request for ``model`` (None: the default model) in ``protocol``.

        Raises:
            ModelNotFoundError, ModelNotReadyError: no such model, or not loaded.
            SatchelError: the request cannot be decoded, does not fit the signature, or
                the model failed (the transport maps the class to its status).
        """
        # An unknown model is refused before anything is counted: a client must not be
        # able to add a label value per name it makes up.
        served = self.model(model, version)
        start = time.perf_counter()
        try:
            with budget.using(self.budget):
                reply = await self._score(served, protocol, inbound)
        except asyncio.CancelledError:
            # The transports cancel a request at the time limit (a failure of this model's
            # request) or when its client goes away (neither: not counted).
            if deadline.expired():
                self.metrics.inference(served.name, False, time.perf_counter() - start)
            raise
        except BaseException:
            self.metrics.inference(served.name, False, time.perf_counter() - start)
            raise
        self.metrics.inference(served.name, True, time.perf_counter() - start)
        return reply

    async def _score(self, served: ServedModel, protocol: Protocol, inbound: Inbound
                     ) -> Reply:
        served.require()  # before reading the body: a model still loading answers at once
        executor = self.executor
        batcher = self.batcher(served)
        # The statistics' stages, protocol-neutral: queue (from having the message to its
        # predict call starting, less decoding: waiting for a thread, for a batch),
        # compute_input (decode), compute_infer (the predict call), compute_output (encode).
        if batcher is None:
            message = await _message(inbound)
            arrived = time.perf_counter()
            decoded, prediction, reply, t = await executor.run(
                served, protocol.size(message), _score_alone, served, protocol, message, inbound)
            queue = t.started - arrived
        else:
            with batcher.incoming():  # the batch being formed may wait for this one
                message = await _message(inbound)
                size = protocol.size(message)
                arrived = time.perf_counter()
                decoded, decode_seconds = await executor.run_small(
                    size <= executor.inline_bytes, _decode, served, protocol, message, inbound)
            plan = batcher.plan(decoded.data, decoded.params)
            if plan is None:  # it would run alone: run it as unbatched requests run
                decoded, prediction, reply, t = await executor.run(
                    served, size, _predict_encode, served, protocol, decoded)
                t.decode = decode_seconds
                queue = t.started - arrived - decode_seconds
                batcher = None
            else:
                timing: list[float] = []
                prediction = await batcher.predict(decoded.data, decoded.params, plan, timing)
                encoding = time.perf_counter()
                reply = await executor.run_small(prediction.rows <= _INLINE_ROWS,
                                                 protocol.encode, served, decoded, prediction)
                t = _Timing(timing[0], decode_seconds, timing[1],
                            time.perf_counter() - encoding)
                queue = t.started - arrived - decode_seconds
        self.metrics.rows(served.name, reply.rows)
        if batcher is None:  # a batcher counts its own predict calls
            self.metrics.batch(served.name, 1, reply.rows, t.predict, t.decode, t.encode)
        self.metrics.stages(served.name, max(queue, 0.0), t.decode, t.predict, t.encode)
        if self._observers:
            self._notify(served.name, decoded.data, prediction.output)
        return reply

    def batcher(self, served: ServedModel) -> Batcher | None:
        """The model's batcher, or None when its requests run one by one."""
        try:
            return self._batchers[served]
        except KeyError:
            pass
        model = served.require()
        mode = self.options.batching
        batcher = None
        if mode == "on" or (mode == "auto" and model.row_independent):
            name = served.name
            batch = self.options.batch
            if model.out_of_process:
                batch = dataclasses.replace(
                    batch, max_batch_size=batch.max_batch_size * WORKER_BATCH_FACTOR)
            batcher = Batcher(lambda data, params: predict(served, data, params),
                              batch, name=name,
                              observer=lambda *call: self.metrics.batch(name, *call),
                              # a worker's round trip is awaited on the loop, never
                              # run there as a blocking call nor handed to a thread
                              inline_seconds=(0.0 if model.out_of_process
                                              else self.executor.inline_seconds),
                              predict_async=((lambda data, params: predict_async(
                                  served, data, params)) if model.out_of_process else None))
        self._batchers[served] = batcher
        return batcher

    def queued(self) -> float:
        """Scoring requests waiting for a predict call: batch queues, requests waiting for
        a predict thread, and the thread pool's own queue."""
        waiting = sum(b.queued for b in self._batchers.values() if b is not None)
        waiting += self.executor.waiting
        try:
            import anyio.to_thread

            waiting += anyio.to_thread.current_default_thread_limiter().statistics(
            ).tasks_waiting
        except Exception:  # noqa: BLE001 - no event loop here: nothing waits on it
            pass
        return float(waiting)

    # --- observers -----------------------------------------------------------------------

    def observe(self, observer: Observer) -> None:
        """Call ``observer(model_name, model_input, model_output)`` for every scored request,
        once its reply is encoded and before the transport sends it.

        Observers run on the event loop, inline, for every request: they must be O(1) --
        put the values on a queue a monitoring thread drains, nothing more. (A background
        task per reply cost starlette a thread-pool round trip per request: about a
        fifth of the 1-row throughput.) An observer that raises is logged, not fatal.
        With no observer registered, scoring pays nothing for this.
        """
        self._observers.append(observer)

    def _notify(self, name: str, data: Any, output: Any) -> None:
        for observer in self._observers:
            try:
                observer(name, data, output)
            except Exception:  # noqa: BLE001 - monitoring never fails serving
                log.exception("a request observer failed")

    # --- the model repository at run time ------------------------------------------------

    async def load(self, name: str, path: str | None = None, **options: Any) -> ServedModel:
        """Load (or reload) a model and swap it in without stopping (see
        :meth:`ModelRepository.load`, which takes ``options``); the old model's batcher
        closes once idle."""
        old = self.repository.find(name)
        served = await self.executor.thread(
            functools.partial(self.repository.load, name, path, **options))
        if old is not None:
            self._retire(old)
        self.note_load_times()
        return served

    async def unload(self, name: str) -> None:
        """Stop serving a model; requests it already has finish."""
        self._retire(self.repository.unload(name))

    async def load_request(self, name: str) -> None:
        """What a transport's repository ``load`` calls: (re)load ``name`` from its
        directory (its served path, or ``--model-repository``/NAME) in this process and,
        with several workers, in every worker before returning.

        Raises:
            ModelNotFoundError: no such model, and no such folder in the repository.
            ModelLoadError: the directory failed to load or verify; the old model (if
                any) keeps serving.
        """
        try:
            if self.control is not None:
                await self.control.load(name, None)
            else:
                await self.load(name)
        except (ModelNotFoundError, ModelLoadError):
            raise
        except SatchelError as exc:
            kept = (" the model served before keeps serving" if self.repository.find(name)
                    else "")
            raise ModelLoadError(f"model '{name[:100]}' was not loaded: {exc};{kept}"
                                 .rstrip(";"), name=name) from None

    async def unload_request(self, name: str) -> None:
        """What a transport's repository ``unload`` calls (every worker, like
        :meth:`load_request`).

        Raises:
            ModelNotFoundError: ``name`` is not served.
        """
        if self.control is not None:
            await self.control.unload(name)
        else:
            await self.unload(name)

    def _retire(self, served: ServedModel) -> None:
        batcher = self._batchers.pop(served, None)
        if batcher is None:
            return
        task = asyncio.get_running_loop().create_task(_close_when_idle(batcher))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def note_load_times(self) -> None:
        """Export each loaded model's load time and memory as gauges."""
        for served in self.repository:
            labels = (("model", served.name),)
            if served.load_seconds is not None:
                self.metrics.set_gauge("satchel_model_load_seconds", labels,
                                       served.load_seconds)
            if served.memory_bytes is not None:
                self.metrics.set_gauge("satchel_model_memory_bytes", labels,
                                       float(served.memory_bytes))

    # --- lifespan ------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin writing metric snapshots and following model loads (a worker among
        several)."""
        if self.control is not None:
            await self.control.start()
        if self.metrics.directory is not None:
            self.metrics.flush()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.metrics.flush_interval)
            self.metrics.flush()

    async def stop(self) -> None:
        """Stop batchers and the snapshot task; write a last snapshot."""
        if self.control is not None:
            await self.control.stop()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for batcher in self._batchers.values():
            if batcher is not None:
                await batcher.aclose()
        for task in list(self._retiring):
            task.cancel()
        self.metrics.flush()


async def _message(inbound: Inbound) -> Any:
    return inbound.message if inbound.receive is None else await inbound.receive()


@dataclass(slots=True)
class _Timing:
    """One request's stages (the statistics): ``perf_counter`` when the work for it
    started (a thread or the event loop took it up), and seconds in decode, predict and
    encode."""

    started: float
    decode: float
    predict: float
    encode: float


def _decode(served: ServedModel, protocol: Protocol, message: Any, inbound: Inbound
            ) -> tuple[Decoded, float]:
    start = time.perf_counter()
    try:
        decoded = protocol.decode(served, message, inbound)
    except UnicodeEncodeError as exc:
        # JSON may spell a lone surrogate (\ud800), which no UTF-8 text holds: pandas 3
        # keeps column labels and text columns as Arrow (UTF-8) strings and refuses it.
        raise InputFormatError(f"the request holds text that is not valid Unicode ({exc.reason}"
                               f", character {exc.start} of a string): send UTF-8 text "
                               "without lone surrogate escapes") from None
    budget.current().check_decoded(decoded.data)  # whatever the protocol or format
    return decoded, time.perf_counter() - start


def _score_alone(served: ServedModel, protocol: Protocol, message: Any, inbound: Inbound
                 ) -> tuple[Decoded, Any, Reply, _Timing]:
    started = time.perf_counter()
    decoded, seconds = _decode(served, protocol, message, inbound)
    result = _predict_encode(served, protocol, decoded)
    result[3].started, result[3].decode = started, seconds
    return result


def _predict_encode(served: ServedModel, protocol: Protocol, decoded: Decoded
                    ) -> tuple[Decoded, Any, Reply, _Timing]:
    """Predict and encode, timing both (the statistics' stages)."""
    start = time.perf_counter()
    prediction = predict(served, decoded.data, decoded.params)
    encoding = time.perf_counter()
    reply = protocol.encode(served, decoded, prediction)
    return decoded, prediction, reply, _Timing(start, 0.0, encoding - start,
                                               time.perf_counter() - encoding)


async def _close_when_idle(batcher: Batcher) -> None:
    # requests already queued on a swapped-out model finish on it
    while not batcher.idle:
        await asyncio.sleep(0.05)
    await batcher.aclose()
