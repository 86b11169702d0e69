"""Where a request's work runs: inline on the event loop or in a worker thread, and the
one timed call into ``Model.predict_detailed``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

from satchel.errors import InputFormatError, PredictionError, SatchelError
from satchel.model import Prediction
from satchel.serving.server.repository import ServedModel

T = TypeVar("T")


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

    def __init__(self, *, inline_seconds: float = 0.005, inline_bytes: int = 64 * 1024) -> None:
        self.inline_seconds = inline_seconds
        self.inline_bytes = inline_bytes

    def inline(self, served: ServedModel, size: int) -> bool:
        """True when this request should run on the event loop."""
        cpu, wall = served.predict_cpu_seconds, served.predict_seconds
        return (cpu is not None and wall is not None and size <= self.inline_bytes
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

    @staticmethod
    async def thread(fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread."""
        # abandon_on_cancel: a request that times out answers 504 at once; its thread
        # finishes in the background (Python cannot stop it).
        return await anyio.to_thread.run_sync(functools.partial(fn, *args),
                                              abandon_on_cancel=True)


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
    timed = served.calls <= 4 or not served.calls % 16
    start, start_cpu = time.perf_counter(), time.process_time() if timed else 0.0
    try:
        result = model.predict_detailed(data, params)
    except SatchelError:
        raise
    except (KeyboardInterrupt, SystemExit) as exc:
        # Raised by the model's own code (uvicorn handles the server's signals, so a
        # real Ctrl-C never arrives here): the model failed, the server stays up.
        raise PredictionError(f"the model raised {type(exc).__name__}",
                              error_class=type(exc).__name__) from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        # Model errors arrive as PredictionError; anything else escaped while reading
        # the input (pandas or numpy refusing its shape) and is the client's to fix.
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise InputFormatError(f"the input cannot be read as this model's input: "
                               f"{first}") from None
    served.note_predict(time.perf_counter() - start,
                        time.process_time() - start_cpu if timed else None)
    return result
