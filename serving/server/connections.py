"""Connections that never send a request: a header deadline and a connection cap.

uvicorn arms its keep-alive timer only after a reply, so a connection that opens and
sends nothing, or half a request line, is held forever; a few hundred of them exhaust
the process's file descriptors and the accept loop fails on every new client (/ping
included). This HTTP protocol class, given to uvicorn as ``http=``, adds:

- a header deadline: a connection whose request headers are not complete within
  ``header_timeout`` seconds of opening (or of its previous reply) is closed;
- a connection cap: at ``max_connections`` open connections, a new one first evicts
  the oldest connection still waiting for its headers; when none is idle it gets a 503
  and is closed, so the process never reaches its descriptor limit.

Each kind of event is logged once per process (then only counted, see
:func:`counters`), so a flood cannot fill the log.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from typing import Any

log = logging.getLogger("satchel.serving")

_counts: Counter[str] = Counter()
_logged: set[str] = set()
# Descriptors kept free beyond the cap: model files, logs, the metrics directory.
_RESERVED_FDS = 64
_BUSY_BODY = (b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "too many open '
              b'connections; retry later"}')
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
         b"connection: close\r\nretry-after: 1\r\ncontent-length: "
         + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


def counters() -> dict[str, int]:
    """Connections closed so far, by reason (``header_timeout``, ``evicted``, ``refused``)."""
    return dict(_counts)


def _event(kind: str, message: str) -> None:
    _counts[kind] += 1
    if kind not in _logged:
        _logged.add(kind)
        log.warning("%s (logged once; later ones are only counted)", message)


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def budget(max_connections: int | None) -> tuple[int, int]:
    """(connection cap, listen backlog) that keep the process under its descriptor limit.

    asyncio accepts up to ``backlog`` connections in one go before any protocol sees
    them, so the cap leaves room for one such burst plus the descriptors the process
    needs for itself.
    """
    soft = raise_fd_limit()
    backlog = max(16, min(2048, soft // 4))
    room = max(16, soft - backlog - _RESERVED_FDS)
    return (min(max_connections, room) if max_connections else min(room, 10_000)), backlog


class _OnceFilter(logging.Filter):
    """Lets asyncio's "out of system resource" accept error through once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "out of system resource" not in str(record.msg):
            return True
        _counts["accept_failed"] += 1
        return _counts["accept_failed"] == 1


def quiet_accept_errors() -> None:
    """Log a failing accept() once, not a traceback per attempt."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _OnceFilter) for f in logger.filters):
        logger.addFilter(_OnceFilter())


def protocol_class(header_timeout: float, max_connections: int) -> type:
    """uvicorn's HTTP protocol with the header deadline and connection cap above.

    httptools' C parser when it is installed (the ``serve`` extra has it): h11, pure
    Python, cost about a quarter of a 1-row request's CPU here; h11 otherwise.
    """
    base = _base_protocol()

    class GuardedProtocol(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            # requests whose headers arrived, and replies sent, on this connection
            self._satchel_heads = self._satchel_replies = 0
            super().connection_made(transport)
            self._satchel_timer: asyncio.TimerHandle | None = None
            self._satchel_since = self.loop.time()
            if len(self.connections) > max_connections and not _evict(self.connections, self):
                _event("refused", f"more than {max_connections} connections are open and "
                       "all are busy: new ones get 503 (raise --max-connections or the "
                       "descriptor limit)")
                transport.write(_BUSY)
                transport.close()
                return
            self._satchel_arm()

        def _satchel_arm(self) -> None:
            self._satchel_since = self.loop.time()
            if self._satchel_timer is not None:
                self._satchel_timer.cancel()
            self._satchel_timer = self.loop.call_later(header_timeout, self._satchel_expire)

        def _satchel_waiting(self) -> bool:
            """True while no request's headers have arrived since the last reply."""
            if hasattr(self, "conn"):  # h11 keeps the state itself
                return bool(self.conn.their_state is _h11_idle())
            return bool(self._satchel_heads <= self._satchel_replies)

        def on_headers_complete(self) -> None:  # httptools' parser callback
            self._satchel_heads += 1
            super().on_headers_complete()

        def _satchel_expire(self) -> None:
            self._satchel_timer = None
            if self.transport.is_closing() or not self._satchel_waiting():
                return
            _event("header_timeout", f"closed a connection that sent no complete request "
                   f"headers within {header_timeout:g} s (--header-timeout)")
            self.transport.close()

        def on_response_complete(self) -> None:
            self._satchel_replies += 1
            super().on_response_complete()
            if not self.transport.is_closing():
                self._satchel_arm()  # the next request's headers have the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "_satchel_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

    return GuardedProtocol


def _base_protocol() -> type:
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


def _h11_idle() -> Any:
    import h11

    return h11.IDLE


def _evict(connections: Any, newcomer: Any) -> bool:
    """Close the oldest connection still waiting for its headers; False when none is."""
    waiting = [c for c in connections if c is not newcomer
               and getattr(c, "_satchel_since", None) is not None
               and not c.transport.is_closing() and c._satchel_waiting()]
    if not waiting:
        return False
    oldest = min(waiting, key=lambda c: c._satchel_since)
    _event("evicted", "the connection cap was reached: closing the oldest connections "
           "that have not sent their request headers")
    oldest.transport.close()
    return True
