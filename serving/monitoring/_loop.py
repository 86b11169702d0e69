"""The background thread shared by the drift monitor and the payload logger: a daemon
that wakes every ``interval`` (or when woken) to do one pass, and a stop that wakes it
and waits for it."""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundLoop:
    """Runs ``run(stop_event, wake_event)`` on a daemon thread named ``name``."""

    def __init__(self, name: str, run: Callable[[threading.Event, threading.Event], None]
                 ) -> None:
        self.name = name
        self._run = run
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self.stop_event.clear()
            self._thread = threading.Thread(
                target=self._run, args=(self.stop_event, self.wake_event), name=self.name,
                daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self.stop_event.set()
            self.wake_event.set()
            thread.join(timeout=timeout)
