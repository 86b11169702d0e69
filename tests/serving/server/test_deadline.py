"""The request time limit tells the data plane why a request was cancelled."""

from __future__ import annotations

import asyncio

import pytest

from satchel.serving.server import deadline


def test_a_limit_that_fires_is_expired_inside_the_cancelled_body() -> None:
    seen: list[bool] = []

    async def run() -> None:
        with pytest.raises(TimeoutError):
            async with deadline.time_limit(0.05):
                try:
                    await asyncio.sleep(5)
                except asyncio.CancelledError:
                    seen.append(deadline.expired())
                    raise

    asyncio.run(run())
    assert seen == [True]


def test_a_cancel_for_another_reason_is_not_the_limit() -> None:
    """A client that goes away cancels the task before the limit: not a timeout."""
    seen: list[bool] = []

    async def body() -> None:
        async with deadline.time_limit(30):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                seen.append(deadline.expired())
                raise

    async def run() -> None:
        task = asyncio.create_task(body())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert seen == [False]


def test_no_limit_is_never_expired_and_the_limit_ends_with_its_block() -> None:
    async def run() -> list[bool]:
        states = [deadline.expired()]
        async with deadline.time_limit(30):
            states.append(deadline.expired())
        states.append(deadline.expired())
        return states

    assert asyncio.run(run()) == [False, False, False]
