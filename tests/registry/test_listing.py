"""Long listings: every page of a search carries the right tags and aliases, whichever
way they were fetched (one query over the filter, or IN lists of ids), and SQLite gets
planner statistics once the versions table is large."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text


def _bulk_versions(registry: Any, model_dir: Path, models: int, per_model: int) -> None:
    """``models`` x ``per_model`` versions, the first registered for real and the rest
    inserted as rows sharing its tree (registering each would take minutes)."""
    from satchel.registry.convert import V
    from satchel.registry.tables import RegisteredModelRow

    registry.register(model_dir, "m-00")
    store = registry.store
    with store.write() as s:
        template = s.execute(select(V).where(V.c.version == 1)).one()._asdict()
        for m in range(models):
            name = f"m-{m:02d}"
            if m:
                s.add(RegisteredModelRow(name=name, description="", created_at=0,
                                         updated_at=0, next_version=per_model + 1))
                s.flush()
            mid = s.execute(select(RegisteredModelRow.id)
                            .where(RegisteredModelRow.name == name)).scalar_one()
            rows = []
            for n in range(1 if m == 0 else 0, per_model):
                row = dict(template)
                row.pop("id")
                row.update(model_id=mid, version=n + 1)
                rows.append(row)
            s.execute(insert(V), rows)
        s.execute(text("UPDATE registry_models SET next_version = :n"), {"n": per_model + 1})


def _expected(_registry: Any) -> list[tuple[str, int]]:
    return [(f"m-{m:02d}", v) for m in range(6) for v in range(10, 0, -1)]


@pytest.mark.parametrize("in_chunk", [900, 3])
def test_pages_carry_their_own_tags_and_aliases(
    registry: Any, iris_model_dir: Path, monkeypatch: pytest.MonkeyPatch, in_chunk: int
) -> None:
    from satchel.registry import convert

    # in_chunk=3 makes every page "too long for IN lists", so the one-query path serves
    # clipped pages too; 900 keeps IN lists for them.
    monkeypatch.setattr(convert, "IN_CHUNK", in_chunk)
    _bulk_versions(registry, iris_model_dir, 6, 10)
    registry.set_version_tag("m-02", 7, "k", "m2v7")
    registry.set_version_tag("m-03", 7, "k", "m3v7")
    registry.set_version_tag("m-05", 1, "k", "m5v1")
    registry.set_alias("m-02", "champion", 7)
    registry.set_alias("m-03", "champion", 9)
    registry.set_alias("m-03", "old", 9)

    everything = registry.search_versions(max_results=1000)
    assert [(v.name, v.version) for v in everything] == _expected(registry)
    by_key = {(v.name, v.version): v for v in everything}
    assert by_key[("m-02", 7)].tags == {"k": "m2v7"}
    assert by_key[("m-03", 7)].tags == {"k": "m3v7"} and by_key[("m-03", 7)].aliases == ()
    assert by_key[("m-03", 9)].aliases == ("champion", "old")
    assert by_key[("m-05", 1)].tags == {"k": "m5v1"}
    tagged = {k for k, v in by_key.items() if v.tags}
    assert tagged == {("m-02", 7), ("m-03", 7), ("m-05", 1)}

    # Every page, at every offset, equals the same slice of the full listing.
    for size in (7, 25):
        for offset in range(0, 60, size):
            page = registry.search_versions(max_results=size, offset=offset)
            assert [v.to_dict() for v in page] == \
                [v.to_dict() for v in everything[offset:offset + size]]

    # Filters that the tag/alias queries must repeat exactly.
    only = registry.search_versions(tags={"k": "m3v7"})
    assert [(v.name, v.version, v.tags) for v in only] == [("m-03", 7, {"k": "m3v7"})]
    champions = registry.search_versions(alias="champion")
    assert [(v.name, v.version, v.aliases) for v in champions] == [
        ("m-02", 7, ("champion",)), ("m-03", 9, ("champion", "old"))]
    pattern = registry.search_versions(name_like="m-0?", max_results=15, offset=20)
    assert [(v.name, v.version) for v in pattern] == _expected(registry)[20:35]
    assert pattern[3].tags == {"k": "m2v7"} and pattern[3].aliases == ("champion",)


def test_listed_versions_do_not_share_mutable_metadata(
    registry: Any, iris_model_dir: Path
) -> None:
    registry.register(iris_model_dir, "m", metadata={"owner": "a"})
    registry.register(iris_model_dir, "m", metadata={"owner": "a"})
    first, second = registry.search_versions("m")
    first.metadata["owner"] = "changed"
    assert second.metadata == {"owner": "a"}
    assert registry.get_version("m", 1).metadata == {"owner": "a"}


def test_sqlite_gets_planner_statistics_when_the_table_grows(
    tmp_path: Path, iris_model_dir: Path
) -> None:
    from satchel.registry import Registry
    from satchel.registry.api import close_all

    url = f"sqlite:///{tmp_path / 'big.db'}"
    registry = Registry(url, actor="alice", artifact_root=tmp_path / "art")
    _bulk_versions(registry, iris_model_dir, 4, 50)
    engine = registry.store.engine
    with engine.connect() as conn:
        assert not conn.execute(text(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar()
    close_all()
    reopened = Registry(url, actor="alice", artifact_root=tmp_path / "art")
    with reopened.store.engine.connect() as conn:
        stat = conn.execute(text(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = 'registry_versions'")).scalar()
        assert stat is not None and int(stat.split()[0]) == 200
        # With statistics the listing walks models by name and versions by their index:
        # no sort of the whole table in a temporary B-tree.
        sql = ("SELECT v.id FROM registry_versions v JOIN registry_models m "
               "ON m.id = v.model_id ORDER BY m.name, v.version DESC")
        plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert "TEMP B-TREE" not in plan, plan
    assert len(reopened.search_versions(max_results=1000)) == 200



def _postgres_registry_left_unanalyzed(postgres_server: str, tmp_path: Path,
                                       model_dir: Path, models: int, per_model: int) -> str:
    """A new PostgreSQL registry of ``models`` x ``per_model`` versions that autovacuum
    never analyzes (so only the registry can have taken statistics); its URL."""
    from satchel.registry import Registry
    from tests.registry.conftest import new_postgres_db

    url = new_postgres_db(postgres_server)
    registry = Registry(url, actor="alice", artifact_root=tmp_path / "art")
    with registry.store.engine.begin() as conn:
        for table in ("registry_models", "registry_versions"):
            conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    _bulk_versions(registry, model_dir, models, per_model)
    return url


@pytest.mark.postgres
def test_postgres_gets_planner_statistics_when_the_table_grows(
    postgres_server: str, tmp_path: Path, iris_model_dir: Path
) -> None:
    from satchel.registry import Registry
    from satchel.registry.api import close_all
    from satchel.registry.convert import V

    url = _postgres_registry_left_unanalyzed(postgres_server, tmp_path, iris_model_dir, 1, 40)

    def grow_to(last: int) -> None:
        with Registry(url, actor="alice").store.write() as s:
            template = s.execute(select(V).where(V.c.version == 1)).one()._asdict()
            template.pop("id")
            first = s.execute(text("SELECT max(version) FROM registry_versions")).scalar_one()
            s.execute(insert(V), [{**template, "version": n}
                                  for n in range(first + 1, last + 1)])
        close_all()

    def planner_rows() -> float:
        # opening the registry is what refreshes the statistics
        with Registry(url, actor="alice").store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT reltuples FROM pg_class WHERE oid = 'registry_versions'::regclass"
            )).scalar_one()
        close_all()
        return float(rows)

    close_all()
    assert planner_rows() < 0  # 40 versions, never analyzed: left to autovacuum
    grow_to(300)
    assert planner_rows() == 300  # never analyzed and 64 or more: analyzed at open
    grow_to(320)
    assert planner_rows() == 300  # grown, but not doubled: left as it was
    grow_to(1500)
    assert planner_rows() == 1500  # more than doubled: analyzed again
    assert len(Registry(url, actor="alice").search_versions(max_results=2000)) == 1500



@pytest.mark.postgres
def test_postgres_registry_opens_while_its_tables_are_locked_for_maintenance(
    postgres_server: str, tmp_path: Path, iris_model_dir: Path
) -> None:
    """A session holding the lock ANALYZE needs (a VACUUM, CREATE INDEX CONCURRENTLY)
    does not hold up opening the registry: it opens and lists without new statistics."""
    import time

    import sqlalchemy as sa

    from satchel.registry import Registry
    from satchel.registry.api import close_all

    url = _postgres_registry_left_unanalyzed(postgres_server, tmp_path, iris_model_dir, 2, 50)
    close_all()
    other = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with other.connect() as holder:
            holder.exec_driver_sql(
                "LOCK TABLE registry_versions IN SHARE UPDATE EXCLUSIVE MODE")
            started = time.monotonic()
            reader = Registry(url, actor="alice")
            assert len(reader.search_versions(max_results=1000)) == 100
            assert time.monotonic() - started < 10
            with reader.store.engine.connect() as conn:
                assert conn.execute(text(
                    "SELECT reltuples FROM pg_class "
                    "WHERE oid = 'registry_versions'::regclass")).scalar_one() < 0
            holder.rollback()
    finally:
        other.dispose()
        close_all()
