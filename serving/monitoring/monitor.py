"""Drift measured while serving, off the request path.

The data plane calls :meth:`Monitor.observe` for every scored request; that appends to a
bounded queue and returns (no task, no copy; a frame of one number dtype is queued as
its bare array, so the frame dies with its request). A background thread stacks the queued
requests every 50 ms (so the requests' own objects die young) and once a second counts
each model's inputs and predictions into its sliding :class:`Window` against the
model's reference profile, one vectorised pass per column over all of them, with the
interpreter lock let go between slices so the event loop is never held up for long.
The thread measures its own CPU time: when counting every request would cost more than
``cpu_budget`` of the process's CPU time while its event loop is busy, requests are
admitted with a probability that keeps it within budget (a uniform sample, so
distributions and drift figures are unbiased), and past the queue bound they are
dropped. Both are counted; serving never slows for monitoring.

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
from satchel.serving.monitoring.cpu_clocks import loop_times, machine_idle
from satchel.serving.monitoring.options import MonitorOptions
from satchel.serving.monitoring.stacking import ROWS, as_frame, is_rows, number_dtype, stack
from satchel.serving.monitoring.window import Window, combine
from satchel.serving.protocols import frames

log = logging.getLogger("satchel.serving")

_SNAPSHOT = "monitor-{pid}.json"
_UNSEEN = object()
# Observations counted per hold of the interpreter lock: ~2 ms of counting for 1-row
# requests (in-process; more on a busy machine), under the 5 ms switch interval after
# which the event loop would take the lock back anyway; each slice has a fixed cost
# (~0.4 ms), so not much smaller.
_SLICE = 512
# Seconds between stacking passes: queued requests are stacked (their own objects
# freed) this soon, and counted every ``MonitorOptions.interval``.
_STAGE_SECONDS = 0.05


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
        # Stacked requests waiting to be counted, per model, and how many requests each
        # model's pieces hold (see _stage).
        self._staged: dict[str, list[tuple[Any, Any]]] = {}
        self._staged_requests: dict[str, int] = {}
        # The common request, a frame of one number dtype scored into an array, staged
        # straight into lists of arrays per model and layout (values, outputs): one
        # concatenate per list when counted, no per-request sorting then.
        self._rows: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}
        # Column names -> the one number dtype frames with those columns had (or None):
        # decided once per set of columns (reading a frame's dtypes costs ~50 us).
        self._dtypes: dict[tuple[Any, ...], Any] = {}
        # id(column Index) -> (that Index, its names): see _compact.
        self._indexes: dict[int, tuple[Any, tuple[Any, ...]]] = {}
        self._windows: dict[str, tuple[str | None, Window]] = {}
        self._lock = threading.Lock()
        self._loop = BackgroundLoop("satchel-monitor", self._run)
        self._wake_at = max(1, self.options.max_pending // 4)
        self.skipped: dict[str, int] = {}
        self.counted: dict[str, int] = {}
        self.admit = 1.0  # probability a request is counted (cpu_budget)
        self.cpu_seconds = 0.0  # the counting thread's CPU time (its own cost)
        self._offered = 0
        self._random = random.Random()
        self._told_no_profile: set[str] = set()

    # --- the request path (event loop): O(1) ------------------------------------------

    def observe(self, name: str, data: Any, output: Any) -> None:
        """Queue one scored request; skip (and count) it when sampled out or queue-full."""
        self._offered += 1
        queued = len(self._pending)
        if (self.admit < 1.0 and self._random.random() >= self.admit) or (
                queued >= self.options.max_pending):
            self.skipped[name] = self.skipped.get(name, 0) + 1
            return
        # A frame of one number dtype is queued as its bare array (see _compact): the
        # frame itself then dies with its request, as it does with monitoring off. Held
        # for the thread, a request's ~20 collector-tracked pandas objects outlived the
        # young generation: 40x the young collections, and ~10% more CPU per request
        # on the event loop in 3-second benchmark rounds.
        self._pending.append((name, self._compact(data), output))
        if queued == self._wake_at:  # busy: count before the queue fills up
            self._loop.wake_event.set()

    # --- the background thread --------------------------------------------------------

    def start(self) -> None:
        if self.options.enabled:
            self._loop.start()

    def stop(self) -> None:
        self._loop.stop(timeout=10)
        self.drain()
        self.write_snapshot()

    def _run(self, stop: threading.Event, wake: threading.Event) -> None:
        last_snapshot = last_count = 0.0
        last, last_proc, last_loop = time.monotonic(), time.process_time(), loop_times()
        last_idle = machine_idle()
        period_cpu = 0.0
        while not stop.is_set():
            wake.wait(min(_STAGE_SECONDS, self.options.interval))
            wake.clear()
            try:
                cpu = time.thread_time()
                if self._pending:
                    self._stage()
                counted = 0
                if (time.monotonic() - last_count >= self.options.interval
                        or sum(self._staged_requests.values()) >= self._wake_at):
                    counted = self._count_staged()
                    last_count = time.monotonic()
                if self.directory is not None and time.monotonic() - last_snapshot >= 1.0:
                    self.write_snapshot()
                    last_snapshot = time.monotonic()
                spent = time.thread_time() - cpu
                self.cpu_seconds += spent
                period_cpu += spent
                if counted:
                    now, proc, loop = time.monotonic(), time.process_time(), loop_times()
                    idle = machine_idle()
                    busy = None if loop is None or last_loop is None else (
                        loop[0] - last_loop[0] + loop[1] - last_loop[1])
                    spare = None if idle is None or last_idle is None else (
                        idle - last_idle)
                    self._adjust(counted, period_cpu, proc - last_proc, now - last, busy,
                                 spare)
                    last, last_proc, last_loop, period_cpu = now, proc, loop, 0.0
                    last_idle = idle
            except Exception:  # noqa: BLE001 - monitoring never takes serving down
                log.exception("drift monitoring failed to count a batch")

    def _adjust(self, counted: int, cpu: float, process_cpu: float, wall: float,
                loop_busy: float | None = None, machine_idle: float | None = None) -> None:
        """Set the admission probability so counting costs at most ``cpu_budget`` of the
        process's CPU time while its event loop is busy (then every second counting takes
        is a second serving loses), and may use half of the spare time besides: time
        the loop was idle *and* a CPU of the machine was idle (``machine_idle``, CPU
        seconds no process used). An idle loop on a machine whose cores are taken by
        others (its clients, say) has no time to spare: counting would take the cores
        from them, and on a saturated server that is throughput lost.

        ``process_cpu`` and ``wall`` cover the same interval as ``cpu`` (the counting
        thread's CPU for ``counted`` requests); ``loop_busy`` is the seconds the event
        loop's thread ran or waited to run (a shared machine's other processes can keep
        a busy loop off the CPU: that is not idle time), else the process's CPU stands
        in for it.
        """
        offered, self._offered = self._offered, 0
        if counted == 0 or wall <= 0 or offered == 0:
            return
        per_request = cpu / counted
        busy = min(1.0, (process_cpu if loop_busy is None else loop_busy) / wall)
        spare = (1.0 - busy) * wall
        if machine_idle is not None:
            spare = min(spare, max(0.0, machine_idle))
        allowed = self.options.cpu_budget * process_cpu + 0.5 * spare
        affordable = allowed / max(per_request, 1e-9)
        target = min(1.0, affordable / offered)
        # Move part of the way: one noisy pass must not swing the sample rate.
        self.admit = max(0.001, 0.5 * self.admit + 0.5 * target)

    def drain(self) -> int:
        """Count the observations queued so far; returns how many were counted.

        Called by the monitor's thread only (and by tests or a shutdown once the thread
        has stopped): it is the one writer of the windows' counts.
        """
        self._stage()
        return self._count_staged()

    def _stage(self) -> int:
        """Take the queued requests per model, in slices, keeping a frame of one number
        dtype as its bare array (see _compact), listed with the others of its model and
        layout when its output is an array, until the next count. This runs every
        50 ms so that a request's DataFrame dies young: objects that outlive a few
        garbage collections are promoted to older generations, which every collection
        then walks again (holding a second of requests cost the process about as much
        CPU as counting them)."""
        import numpy as np

        todo = len(self._pending)
        done = 0
        pending = self._pending
        while done < todo:
            size = min(_SLICE, todo - done)
            rows, staged, requests = self._rows, self._staged, self._staged_requests
            for _ in range(size):
                name, data, output = pending.popleft()
                requests[name] = requests.get(name, 0) + 1
                if type(output) is np.ndarray and is_rows(data):
                    key = (name, data[1], data[2].dtype, output.dtype, output.shape[1:])
                    lists = rows.get(key)
                    if lists is None:
                        lists = rows[key] = ([], [])
                    lists[0].append(data[2])
                    lists[1].append(output)
                else:
                    staged.setdefault(name, []).append((data, output))
            done += size
            if done < todo:
                # Hand the interpreter lock to the event loop between slices: a sleep(0)
                # releases it but may take it straight back before the loop's thread
                # wakes; a millisecond of wall time (no CPU) lets the loop run.
                time.sleep(0.001)
        return done

    def _compact(self, data: Any) -> Any:
        """A frame of one number dtype as its 2-D array and column names (a tuple the
        collector soon stops tracking); anything else as it is. Runs in ``observe``, on
        the event loop: a few microseconds (the columns known by their Index's
        identity, the dtype once per set of columns)."""
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            return data
        index = data.columns
        # The decoders share one Index per set of names (protocols.frames): know
        # it by identity, as listing an Arrow-backed text Index costs ~12 us a request.
        seen = self._indexes.get(id(index))
        if seen is not None and seen[0] is index:
            columns = seen[1]
        else:
            columns = tuple(index.tolist())
            if len(self._indexes) >= 64:  # bounded, whatever column names clients send
                self._indexes.clear()
            # The Index is held with its id, so the id cannot be reused while cached.
            self._indexes[id(index)] = (index, columns)
        dtype = self._dtypes.get(columns, _UNSEEN)
        if dtype is _UNSEEN:
            if len(self._dtypes) >= 64:  # bounded, whatever column names clients send
                self._dtypes.clear()
            dtype = self._dtypes[columns] = number_dtype(data)
        if dtype is None:
            return data
        values = data.values
        # A frame of several number dtypes converts to their common one, as pd.concat
        # would upcast it when stacked: numeric bins see the same float64 values.
        return (ROWS, columns, values) if values.dtype == dtype else data

    def _count_staged(self) -> int:
        """Count every model's staged stacks into its window (one pass per column)."""
        import numpy as np

        staged, self._staged = self._staged, {}
        rows, self._rows = self._rows, {}
        requests, self._staged_requests = self._staged_requests, {}
        batches: dict[str, list[tuple[Any, Any]]] = {}
        for (name, columns, _, _, _), (values, outputs) in rows.items():
            batches.setdefault(name, []).append(
                (frames.frame(np.concatenate(values), list(columns)),
                 np.concatenate(outputs)))
        for name, pieces in staged.items():
            batches.setdefault(name, []).extend(
                (as_frame(data), output) for data, output in stack(pieces))
        now = time.time()
        for name, stacked in batches.items():
            window = self._window(name)
            n = requests.get(name, 0)
            with self._lock:
                tally = window.current(now)
                for data, output in stacked:
                    tally.add(data, output)
                # Tally.add counts one request per call; a stacked batch holds many.
                tally.requests += n - len(stacked)
            self.counted[name] = self.counted.get(name, 0) + n
        return sum(requests.values())

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
                "skipped": self.skipped, "counted": self.counted,
                "cpu_seconds": self.cpu_seconds}
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
        # No drain here: this runs on the event loop (every scrape), and the monitor's
        # thread is the windows' one writer; the figures lag traffic by one pass at most.
        now = time.time() if now is None else now
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

    def cpu_total(self) -> float:
        """CPU seconds every worker's counting thread has spent (the monitor's cost)."""
        return self.cpu_seconds + sum(float(snap.get("cpu_seconds", 0.0))
                                      for snap in self._other_snapshots())

    def report(self, name: str) -> dict[str, Any]:
        """The drift figures of one model as JSON-ready data (``/v2/models/{name}/drift``)."""
        tally, totals = self.merged(name)
        out = tally.report()
        out.update(model=name, window_seconds=self.options.window,
                   requests_counted=totals["counted"], requests_skipped=totals["skipped"])
        return out


def with_suppressed_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
