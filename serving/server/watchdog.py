"""A worker whose event loop stops turning is replaced.

A model measured as fast is scored on the event loop (``execution.Executor.inline``);
if such a call then hangs, nothing inside the loop can answer or time out again. In a
worker process of the pre-fork supervisor, a watchdog thread sees the loop's heartbeat
stop and kills the worker, which the supervisor replaces at once: its sockets stay
open, so new connections wait for the new worker instead of for the hung call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

log = logging.getLogger("satchel.serving")

BEAT_S = 0.5


def start(loop: asyncio.AbstractEventLoop, stalled_after: float) -> threading.Thread:
    """Beat on ``loop`` every half second; kill this process (SIGKILL) when no beat came
    for ``stalled_after`` seconds."""
    last = [time.monotonic()]

    def beat() -> None:
        last[0] = time.monotonic()
        loop.call_later(BEAT_S, beat)

    loop.call_soon_threadsafe(beat)

    def watch() -> None:
        while True:
            time.sleep(BEAT_S)
            stalled = time.monotonic() - last[0]
            if stalled > stalled_after:
                log.error("the event loop of worker %d has not turned for %.0f s (a predict "
                          "call running on it hung): the worker is replaced", os.getpid(),
                          stalled)
                for handler in logging.getLogger().handlers + log.handlers:
                    handler.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="satchel-loop-watchdog", daemon=True)
    thread.start()
    return thread
