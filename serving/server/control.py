"""Model loads and unloads told to every worker process.

With ``--workers N`` each worker has its own copy of the repository (forked from the
parent after the first load). A load or unload request reaches one worker; that worker
does it first (so a directory that fails to load is refused before anyone else tries),
then appends the operation to a log file in the shared control directory and waits until
every live worker has applied it. Each worker watches the log (a ``stat`` every
``interval`` seconds) and applies new operations in order; a worker the parent forks
later, to replace one that died, replays the whole log when it starts, so every worker
serves the same models.

The log is a JSON list of ``[seq, "load", name, path]`` / ``[seq, "unload", name, null]``,
rewritten atomically under an ``flock``; each worker records the last ``seq`` it applied
in ``applied-<pid>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from satchel.errors import ModelNotFoundError, SatchelError

log = logging.getLogger("satchel.serving")

LOG_NAME = "repository-ops.json"


class Control:
    """One worker's end of the control directory (see the module docstring); ``plane`` is
    the worker's :class:`~satchel.serving.server.dataplane.DataPlane`."""

    def __init__(self, directory: str | os.PathLike[str], plane: Any, *,
                 interval: float = 0.1, ack_timeout: float = 60.0) -> None:
        self.directory = Path(directory)
        self.plane = plane
        self.interval = interval
        self.ack_timeout = ack_timeout
        self.applied = 0
        self._seen: int | None = None  # the log's mtime when last read
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one apply or request at a time in this worker

    @property
    def _log(self) -> Path:
        return self.directory / LOG_NAME

    # --- requests this worker answers ----------------------------------------------------

    async def load(self, name: str, path: str | None) -> None:
        """Load here, then tell every worker and wait until they all have."""
        async with self._lock:
            await self._catch_up()
            served = await self.plane.load(name, path)
            seq = self._append("load", name, served.path)
        await self._wait_for_all(seq)

    async def unload(self, name: str) -> None:
        """Unload here, then tell every worker and wait until they all have."""
        async with self._lock:
            await self._catch_up()
            await self.plane.unload(name)
            seq = self._append("unload", name, None)
        await self._wait_for_all(seq)

    # --- the watcher ---------------------------------------------------------------------

    async def start(self) -> None:
        """Apply what the log holds already (a replacement worker), then keep watching."""
        self._ack()
        async with self._lock:
            await self._catch_up()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(OSError):
            (self.directory / f"applied-{os.getpid()}").unlink()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self._lock:
                    await self._catch_up()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failure
                log.exception("applying model loads from the other workers failed")

    async def _catch_up(self) -> None:
        try:
            mtime = self._log.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._seen:
            return
        ops = self._read()
        self._seen = mtime
        for seq, action, name, path in ops:
            if seq <= self.applied:
                continue
            try:
                if action == "load":
                    await self.plane.load(name, path)
                else:
                    await self.plane.unload(name)
            except ModelNotFoundError:
                pass  # already unloaded here
            except SatchelError as exc:
                # loaded fine in the worker that took the request; this one keeps its model
                log.error("model '%s' did not %s in worker %d: %s", name, action,
                          os.getpid(), exc)
            self.applied = seq
        self._ack()

    # --- the files -----------------------------------------------------------------------

    def _read(self) -> list[tuple[int, str, str, str | None]]:
        try:
            raw = json.loads(self._log.read_text())
        except (OSError, ValueError):
            return []
        return [(int(s), str(a), str(n), p if isinstance(p, str) else None)
                for s, a, n, p in raw]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / "ops.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append(self, action: str, name: str, path: str | None) -> int:
        with self._locked():
            ops: list[Any] = [list(op) for op in self._read()]
            seq = (ops[-1][0] if ops else 0) + 1
            ops.append([seq, action, name, path])
            tmp = self.directory / f".{LOG_NAME}.{os.getpid()}"
            tmp.write_text(json.dumps(ops))
            os.replace(tmp, self._log)  # readers see the old log or the new, never half
        # this worker has applied everything up to seq (it held the lock in between)
        self.applied = seq
        self._seen = self._log.stat().st_mtime_ns
        self._ack()
        return seq

    def _ack(self) -> None:
        tmp = self.directory / f".applied-{os.getpid()}"
        tmp.write_text(str(self.applied))
        os.replace(tmp, self.directory / f"applied-{os.getpid()}")

    async def _wait_for_all(self, seq: int) -> None:
        deadline = time.monotonic() + self.ack_timeout
        while True:
            behind = [pid for pid, done in self._acks() if done < seq and _alive(pid)]
            if not behind:
                return
            if time.monotonic() > deadline:
                log.warning("workers %s have not applied model change %d after %.0f s",
                            behind, seq, self.ack_timeout)
                return
            await asyncio.sleep(self.interval / 2)

    def _acks(self) -> list[tuple[int, int]]:
        out = []
        for path in self.directory.glob("applied-*"):
            try:
                out.append((int(path.name.split("-", 1)[1]), int(path.read_text() or 0)))
            except (OSError, ValueError):
                continue
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
