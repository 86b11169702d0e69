"""The time limit a transport puts on one request, visible to the data plane.

A transport (HTTP middleware, gRPC servicer) enforces ``--timeout`` by cancelling the
request's task. The data plane sees only ``CancelledError``, which also arrives when a
client goes away. The limit therefore travels in a context variable, so the data plane
can ask whether *this* cancellation is the limit expiring (a failed request, counted)
or a client leaving (not the model's failure, not counted), instead of guessing from
the elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar

_active: ContextVar[asyncio.Timeout | None] = ContextVar("satchel_request_limit",
                                                         default=None)


@contextlib.asynccontextmanager
async def time_limit(seconds: float) -> AsyncIterator[None]:
    """Run the body under a limit of ``seconds``; raises ``TimeoutError`` past it."""
    async with asyncio.timeout(seconds) as limit:
        token = _active.set(limit)
        try:
            yield
        finally:
            _active.reset(token)


def expired() -> bool:
    """Whether the request's time limit has fired (False when it has none)."""
    limit = _active.get()
    return limit is not None and limit.expired()
