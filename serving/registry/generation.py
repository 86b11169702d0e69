"""The registry generation for a read, asked of the database from the event loop.

A cached reply is served only while the database reports the generation it was
rendered at (:mod:`satchel.serving.registry.response_cache`), so every cached read
asks for the generation first. On SQLite that is an in-process primary-key read (a few
microseconds), done inline. On PostgreSQL it is a network round trip, and through a
worker thread each one also cost a thread hop and the interpreter lock; with several
clients at once, the PostgreSQL backends, the server's threads and the load generator
fought over the cores, and throughput swung between rounds. Here PostgreSQL is asked on
the event loop through psycopg's asyncio connection (its own, autocommit, so no
BEGIN/ROLLBACK; libpq sets TCP_NODELAY), and concurrent reads share one question:

- a read waits for an answer to a question sent *after* it arrived, so it sees every
  write committed before it arrived (as a question of its own would);
- while one question is in flight, every read arriving meanwhile waits for the next
  one, sent as soon as the first is answered: at most one question in flight and one
  queued, whatever the number of clients.

When the asyncio connection cannot answer (PostgreSQL restarted, psycopg missing), the
read asks through the store's pool in a thread, as before, and the next read connects
again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from anyio import to_thread

from satchel.errors import RegistryUnavailableError
from satchel.registry.probe import HEAD_SQL

log = logging.getLogger("satchel.serving.registry")


class Generations:
    """``await read()``: the registry generation, current as of the call."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._postgres = store.engine.dialect.name == "postgresql"
        self._conn: Any = None
        self._pid = 0
        self._running: asyncio.Future[int] | None = None
        self._queued: asyncio.Future[int] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self) -> int:
        """The generation, from a question to the database sent after this call."""
        if not self._postgres:
            return int(self._store.generation())
        loop = asyncio.get_running_loop()
        if self._running is None:
            self._running = waiter = loop.create_future()
            self._start(waiter)
        else:
            # The question in flight was sent before this read arrived: wait for the next.
            if self._queued is None:
                self._queued = loop.create_future()
            waiter = self._queued
        # shield: a read given up by its client must not cancel the others' answer
        return await asyncio.shield(waiter)

    def _start(self, waiter: asyncio.Future[int]) -> None:
        task = asyncio.get_running_loop().create_task(self._ask(waiter))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _ask(self, waiter: asyncio.Future[int]) -> None:
        try:
            waiter.set_result(await self._query())
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting read
            if not waiter.done():
                waiter.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._running = None
            if self._queued is not None:
                self._running, self._queued = self._queued, None
                self._start(self._running)

    async def _query(self) -> int:
        try:
            conn = await self._connection()
            cur = await conn.execute(HEAD_SQL)
            row = await cur.fetchone()
            return int(row[0]) if row else 0
        except Exception as exc:  # noqa: BLE001 - any driver error: the pool decides
            log.debug("asyncio generation read failed (%s); asking through the pool",
                      type(exc).__name__)
            await self._close()
        try:
            return int(await to_thread.run_sync(self._store.generation))
        except Exception as exc:  # noqa: BLE001 - the database is not answering
            raise RegistryUnavailableError(
                f"the registry database is not answering ({type(exc).__name__})") from None

    async def _connection(self) -> Any:
        # A forked worker opens its own (a socket used by two processes breaks both).
        if self._conn is None or self._pid != os.getpid() or self._conn.closed:
            import psycopg

            url = self._store.engine.url.set(drivername="postgresql")
            self._conn = await psycopg.AsyncConnection.connect(
                url.render_as_string(hide_password=False), autocommit=True)
            self._pid = os.getpid()
        return self._conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - it is being dropped either way
                pass
