"""The server's generation reads on the event loop: every read sees each write committed
before it arrived; concurrent reads share questions to PostgreSQL; a dropped connection
is replaced."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest


class CountingGenerations:
    """Generations with a count of the questions sent to the database (it wraps the real
    query, which still runs)."""

    def __new__(cls, store: Any) -> Any:
        from satchel.serving.registry.generation import Generations

        class Counting(Generations):
            asked = 0

            async def _query(self) -> int:
                type(self).asked += 1
                return await super()._query()

        return Counting(store)


def test_reads_see_every_earlier_write_and_share_questions(
    registry: Any, iris_model_dir: Path
) -> None:
    registry.register(iris_model_dir, "m")
    store = registry.store
    gens = CountingGenerations(store)

    async def scenario() -> None:
        first = await gens.read()
        assert first == store.generation()
        # 200 reads at once: every one answered with the current generation.
        got = await asyncio.gather(*(gens.read() for _ in range(200)))
        assert set(got) == {first}
        if store.engine.dialect.name == "postgresql":
            # one question in flight and one queued: far fewer questions than reads
            assert type(gens).asked <= 10, type(gens).asked
        # A read that arrives while a question sent before a write is in flight waits
        # for the next question, and so sees the write.
        in_flight = asyncio.ensure_future(gens.read())
        await asyncio.sleep(0)
        await asyncio.to_thread(registry.set_alias, "m", "champion", 1)
        after = await gens.read()
        assert after > first
        assert await in_flight >= first

    asyncio.run(scenario())


@pytest.mark.postgres
def test_a_dropped_connection_is_replaced(postgres_server: str, tmp_path: Path,
                                         iris_model_dir: Path) -> None:
    import psycopg

    from satchel.registry import Registry
    from tests.registry.conftest import new_postgres_db

    db = new_postgres_db(postgres_server)
    reg = Registry(db, actor="a", artifact_root=tmp_path / "a")
    reg.register(iris_model_dir, "m")
    gens = CountingGenerations(reg.store)

    async def scenario() -> None:
        g = await gens.read()
        pid = gens._conn.info.backend_pid
        with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The read after the drop still answers (through the pool), then reconnects.
        assert await gens.read() == g
        await asyncio.to_thread(reg.set_alias, "m", "champion", 1)
        assert await gens.read() > g
        assert gens._conn is not None and gens._conn.info.backend_pid != pid

    asyncio.run(scenario())
