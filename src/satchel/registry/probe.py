"""The audit head's sequence number, read on a bare driver connection per thread.

Every registry change advances the audit head in its own transaction, so "has anything
changed since this value was computed?" is one primary-key read. The cached reads
(resolving ``NAME@ALIAS``, ``NAME/VERSION``) ask it on every call; through a pooled
SQLAlchemy connection the question cost ~15 times the query itself (pool checkout and
return, events, statement cache lookup, result wrapping). Here each thread keeps one
driver connection outside the pool (so probes never hold pool slots) with the statement
text fixed, and runs it on a plain cursor.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger("satchel.registry")

#: The generation question (the audit head's sequence number), also asked by the server.
HEAD_SQL = "SELECT seq FROM registry_audit_head WHERE id = 1"


class HeadProbe:
    """``seq()``: the audit head's sequence number, or None when the probe cannot
    answer (the caller then reads through SQLAlchemy as usual)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._local = threading.local()

    def _connection(self) -> Any:
        held = getattr(self._local, "conn", None)
        # A forked worker must not use its parent's connection (one socket or file
        # handle shared by two processes).
        if held is not None and held[0] == os.getpid():
            return held[1]
        raw = self._engine.raw_connection()
        driver = raw.driver_connection  # (None once detached)
        raw.detach()  # its own connection, closed with this thread's local state
        if self._engine.dialect.name == "postgresql":
            # No transaction left open between probes (it would pin old row versions).
            # The pool's pre-ping may have opened one, and psycopg refuses to switch to
            # autocommit inside a transaction: end it first.
            raw.rollback()
            driver.autocommit = True
        self._local.conn = (os.getpid(), raw)
        return raw

    def seq(self) -> int | None:
        """The head's sequence number now."""
        try:
            cursor = self._connection().cursor()
            try:
                cursor.execute(HEAD_SQL)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except Exception as exc:  # noqa: BLE001 - any driver error: reconnect next time
            log.debug("audit head probe failed (%s); reading through the pool",
                      type(exc).__name__)
            self.reset()
            return None
        return None if row is None else int(row[0])

    def reset(self) -> None:
        """Drop this thread's connection (the next probe opens a new one)."""
        held = getattr(self._local, "conn", None)
        self._local.conn = None
        if held is not None and held[0] == os.getpid():
            try:
                held[1].close()
            except Exception:  # noqa: BLE001 - it is being discarded either way
                pass
