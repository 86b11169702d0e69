"""The audit-head probe behind the cached resolves: one driver connection per thread,
kept across calls, seeing other connections' commits, never holding a transaction."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import text


def test_probe_keeps_one_connection_and_sees_every_commit(
    registry: Any, iris_model_dir: Path
) -> None:
    store = registry.store
    registry.register(iris_model_dir, "fraud")
    registry.set_alias("fraud", "champion", 1)
    first = store._probe.seq()
    assert isinstance(first, int) and first >= 3
    conn = store._probe._local.conn[1]
    for _ in range(20):
        assert store._probe.seq() == first
    assert store._probe._local.conn[1] is conn, "the probe reconnected"
    # a change through the pool (another connection) advances what the probe reads
    registry.set_model_tag("fraud", "k", "v")
    assert store._probe.seq() == first + 1
    assert store._probe._local.conn[1] is conn
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as c:
            idle = c.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                "AND datname = current_database()")).scalar()
        assert idle == 0, "the probe left a transaction open"
    # another thread gets its own connection
    seen: list[Any] = []
    t = threading.Thread(target=lambda: seen.append(
        (store._probe.seq(), store._probe._local.conn[1])))
    t.start()
    t.join()
    assert seen[0][0] == first + 1 and seen[0][1] is not conn


def test_cached_resolve_follows_an_alias_move(registry: Any, iris_model_dir: Path,
                                               iris_model_dir_2: Path) -> None:
    registry.register(iris_model_dir, "m")
    registry.register(iris_model_dir_2, "m")
    registry.set_alias("m", "champion", 1)
    for _ in range(3):
        assert registry.resolve("models:/m@champion").version == 1
    registry.set_alias("m", "champion", 2)
    assert registry.resolve("models:/m@champion").version == 2
    registry.delete_alias("m", "champion")
    import pytest

    from satchel.errors import RegistryNotFoundError

    with pytest.raises(RegistryNotFoundError, match="has no alias 'champion'"):
        registry.resolve("models:/m@champion")
