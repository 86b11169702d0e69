"""Drift measured while serving, off the request path.

The data plane calls :meth:`Monitor.observe` after a reply is sent; that appends to a
bounded queue and returns. A background thread drains the queue in batches and counts
each model's inputs and predictions into its sliding :class:`Window` against the
model's reference profile. The thread measures its own CPU time: when counting every
request would cost more than ``cpu_budget`` of a core, requests are admitted with a
probability that keeps it within budget (a uniform sample, so distributions and drift
figures are unbiased), and past the queue bound they are dropped. Both are counted;
serving never slows for monitoring.

With several worker processes each one writes its windows to the shared metrics
directory about once a second; ``/metrics`` and the drift route on any worker merge
every worker's windows before computing figures (PSI cannot be summed; counts can).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from satchel.monitoring import Profile, Tally
from satchel.serving.monitoring._loop import BackgroundLoop
from satchel.serving.monitoring.options import MonitorOptions
from satchel.serving.monitoring.window import Window, combine

log = logging.getLogger("satchel.serving")

_SNAPSHOT = "monitor-{pid}.json"


class Monitor:
    """Per-model drift windows fed by scored requests (see the module docstring).

    Args:
        profile_of: the reference profile of a served model name (None when it has none).
        options: window length and limits.
        directory: the shared metrics directory of worker processes (None: one process).
        identity_of: an identity of the model now served under a name (e.g. its uuid);
            when it changes (a swap), that model's window starts afresh.
    """

    def __init__(self, profile_of: Callable[[str], Profile | None],
                 options: MonitorOptions | None = None, *,
                 directory: str | os.PathLike[str] | None = None,
                 identity_of: Callable[[str], str | None] = lambda name: None) -> None:
        self.options = options or MonitorOptions()
        self.profile_of = profile_of
        self.identity_of = identity_of
        self.directory = Path(directory) if directory is not None else None
        self._pending: collections.deque[tuple[str, Any, Any]] = collections.deque()
        self._windows: dict[str, tuple[str | None, Window]] = {}
        self._lock = threading.Lock()
        self._loop = BackgroundLoop("satchel-monitor", self._run)
        self.skipped: dict[str, int] = {}
        self.counted: dict[str, int] = {}
        self.admit = 1.0  # probability a request is counted (cpu_budget)
        self._offered = 0
        self._random = random.Random()
        self._told_no_profile: set[str] = set()

    # --- the request path (event loop): O(1) ------------------------------------------

    def observe(self, name: str, data: Any, output: Any) -> None:
        """Queue one scored request; skip (and count) it when sampled out or queue-full."""
        self._offered += 1
        if (self.admit < 1.0 and self._random.random() >= self.admit) or (
                len(self._pending) >= self.options.max_pending):
            self.skipped[name] = self.skipped.get(name, 0) + 1
            return
        self._pending.append((name, data, output))

    # --- the background thread --------------------------------------------------------

    def start(self) -> None:
        if self.options.enabled:
            self._loop.start()

    def stop(self) -> None:
        self._loop.stop(timeout=10)
        self.drain()
        self.write_snapshot()

    def _run(self, stop: threading.Event, wake: threading.Event) -> None:
        last_snapshot = 0.0
        last = time.monotonic()
        while not stop.is_set():
            wake.wait(self.options.interval)
            wake.clear()
            try:
                cpu, proc = time.thread_time(), time.process_time()
                n = self.drain()
                now = time.monotonic()
                self._adjust(n, time.thread_time() - cpu, time.process_time() - proc,
                             now - last)
                last = now
                if self.directory is not None and time.monotonic() - last_snapshot >= 1.0:
                    self.write_snapshot()
                    last_snapshot = time.monotonic()
            except Exception:  # noqa: BLE001 - monitoring never takes serving down
                log.exception("drift monitoring failed to count a batch")

    def _adjust(self, counted: int, cpu: float, process_cpu: float, wall: float) -> None:
        """Set the admission probability so counting stays within ``cpu_budget`` of a core
        while the process is busy; a process with time to spare (its serving threads share
        one interpreter lock, so "busy" is one core) may spend half of it counting."""
        offered, self._offered = self._offered, 0
        if counted == 0 or wall <= 0 or offered == 0:
            return
        per_request = cpu / counted
        busy = min(1.0, process_cpu / wall)
        allowed = self.options.cpu_budget * wall + 0.5 * (1.0 - busy) * wall
        affordable = allowed / max(per_request, 1e-9)
        target = min(1.0, affordable / offered)
        # Move part of the way: one noisy pass must not swing the sample rate.
        self.admit = max(0.001, 0.5 * self.admit + 0.5 * target)

    def drain(self) -> int:
        """Count every queued observation; returns how many were counted."""
        batch: dict[str, list[tuple[Any, Any]]] = {}
        n = 0
        while self._pending:
            name, data, output = self._pending.popleft()
            batch.setdefault(name, []).append((data, output))
            n += 1
        now = time.time()
        for name, items in batch.items():
            window = self._window(name)
            with self._lock:
                tally = window.current(now)
                for data, output in stack(items):
                    tally.add(data, output)
            self.counted[name] = self.counted.get(name, 0) + len(items)
        return n

    def _window(self, name: str) -> Window:
        identity = self.identity_of(name)
        with self._lock:
            have = self._windows.get(name)
            if have is not None and have[0] == identity:
                return have[1]
        profile = self.profile_of(name)
        if profile is None and name not in self._told_no_profile:
            self._told_no_profile.add(name)
            log.warning("model %s has no reference profile: monitoring reports raw "
                        "distributions only (save it with reference_data= or run "
                        "`satchel profile`)", name)
        window = Window(profile, self.options.window, self.options.buckets)
        with self._lock:
            self._windows[name] = (identity, window)
        return window

    # --- across workers ---------------------------------------------------------------

    def write_snapshot(self) -> None:
        """This process's windows, atomically, for the other workers to merge."""
        if self.directory is None:
            return
        with self._lock:
            data = {"pid": os.getpid(), "models": {
                name: {"identity": ident, "slices": w.to_dict()}
                for name, (ident, w) in self._windows.items()},
                "skipped": self.skipped, "counted": self.counted}
            text = json.dumps(data, separators=(",", ":"))
        path = self.directory / _SNAPSHOT.format(pid=os.getpid())
        fd, tmp = tempfile.mkstemp(prefix=".tmp-monitor-", dir=self.directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError:
            log.exception("cannot write the drift snapshot %s", path)
            with_suppressed_unlink(tmp)

    def merged(self, name: str, now: float | None = None) -> tuple[Tally, dict[str, float]]:
        """The model's window over every worker, and the counted/skipped totals."""
        now = time.time() if now is None else now
        self.drain()
        window = self._window(name)
        with self._lock:
            window.expire(now)
            slices = {slot: t.scaled(1.0) for slot, t in window.slices.items()}
        totals = {"counted": float(self.counted.get(name, 0)),
                  "skipped": float(self.skipped.get(name, 0))}
        identity = self.identity_of(name)
        for snap in self._other_snapshots():
            entry = snap.get("models", {}).get(name)
            if not isinstance(entry, dict) or entry.get("identity") != identity:
                continue
            for slot_text, raw in entry.get("slices", {}).items():
                slot = int(slot_text)
                other = Tally.from_dict(window.profile, raw)
                if slot in slices:
                    slices[slot].merge(other)
                else:
                    slices[slot] = other
            totals["counted"] += float(snap.get("counted", {}).get(name, 0))
            totals["skipped"] += float(snap.get("skipped", {}).get(name, 0))
        return combine(window.profile, slices, window.slot(now), window.buckets), totals

    def _other_snapshots(self) -> list[dict[str, Any]]:
        if self.directory is None:
            return []
        own = _SNAPSHOT.format(pid=os.getpid())
        out = []
        for path in sorted(self.directory.glob("monitor-*.json")):
            if path.name == own:
                continue
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # being replaced, or gone
        return out

    def report(self, name: str) -> dict[str, Any]:
        """The drift figures of one model as JSON-ready data (``/v2/models/{name}/drift``)."""
        tally, totals = self.merged(name)
        out = tally.report()
        out.update(model=name, window_seconds=self.options.window,
                   requests_counted=totals["counted"], requests_skipped=totals["skipped"])
        return out


def stack(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Many small requests as one batch (one pass over each column instead of one per
    request), when their inputs and outputs stack; otherwise as they came."""
    if len(items) < 2:
        return items
    try:
        import numpy as np
        import pandas as pd

        datas = [d for d, _ in items]
        outs = [o for _, o in items]
        if all(isinstance(d, pd.DataFrame) for d in datas):
            data: Any = pd.concat(datas, ignore_index=True, copy=False)
        elif all(isinstance(d, np.ndarray) for d in datas):
            data = np.concatenate(datas)
        else:
            return items
        if all(o is None for o in outs):
            output: Any = None
        elif all(isinstance(o, (pd.DataFrame, pd.Series)) for o in outs):
            output = pd.concat(outs, ignore_index=True, copy=False)
        elif all(isinstance(o, np.ndarray) for o in outs):
            output = np.concatenate(outs)
        else:
            return items
        return [(data, output)]
    except (ValueError, TypeError):
        return items


def with_suppressed_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
