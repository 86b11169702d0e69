"""Migrations: they build exactly the declared tables; a newer database is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from satchel.errors import RegistryInputError, RegistrySchemaError


def test_migrations_match_the_models_and_revision_list(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from satchel.registry import schema
    from satchel.registry.governance import tables as _governance  # noqa: F401 (declares)
    from satchel.registry.tables import Base

    engine = schema.create_engine(db_url)
    schema.ensure_schema(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": schema.VERSION_TABLE})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    cfg = Config()
    cfg.set_main_option("script_location", "satchel.registry:migrations")
    revisions = [s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()]
    assert tuple(reversed(revisions)) == schema.REVISIONS
    assert schema.current_revision(engine) == schema.HEAD
    engine.dispose()


def test_an_older_database_is_upgraded_in_place_with_its_data(
    db_url: str, tmp_path: Path, iris_model_dir: Path
) -> None:
    """A registry written at r0001 (before governance and the search indexes) opens in
    this satchel: migrated to the head revision in place, every row kept, the schema
    then equal to the declared tables, and the audit chain still verifying."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext

    from satchel.registry import Registry, schema
    from satchel.registry.api import close_all
    from satchel.registry.governance import tables as _governance  # noqa: F401 (declares)
    from satchel.registry.tables import Base

    reg = Registry(db_url, actor="old", artifact_root=tmp_path / "a")
    reg.register(iris_model_dir, "m", tags={"k": "v"}, run_id="r1")
    reg.set_alias("m", "champion", 1)
    close_all()
    engine = schema.create_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", "satchel.registry:migrations")
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "r0001")
        conn.commit()
    assert schema.current_revision(engine) == "r0001"
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("governance_policies")
    reg = Registry(db_url, actor="new")
    assert schema.current_revision(engine) == schema.HEAD
    v = reg.resolve("models:/m@champion")
    assert (v.version, v.tags, v.run_id) == (1, {"k": "v"}, "r1")
    assert [x.version for x in reg.search_versions(run_id="r1")] == [1]
    assert reg.verify_audit().ok
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": schema.VERSION_TABLE})
        assert compare_metadata(ctx, Base.metadata) == []
    close_all()
    engine.dispose()


def test_a_database_from_a_newer_satchel_is_refused_untouched(db_url: str,
                                                              tmp_path: Path) -> None:
    from satchel.registry import Registry, schema
    from satchel.registry.api import close_all

    Registry(db_url, artifact_root=tmp_path / "a").create_model("m")
    close_all()
    engine = schema.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'r9999'"))
    with pytest.raises(RegistrySchemaError, match="r9999.*newer satchel"):
        Registry(db_url)
    assert schema.current_revision(engine) == "r9999"  # never downgraded
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM registry_models")).scalar() == "m"
    engine.dispose()


def test_bad_registry_uris(tmp_path: Path) -> None:
    from satchel.registry import Registry

    with pytest.raises(RegistryInputError, match="SQLite or PostgreSQL"):
        Registry("mysql://u@h/db")
    with pytest.raises(RegistryInputError, match="not a database URL"):
        Registry("not a url")


def test_default_location_and_wal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  iris_model_dir: Path) -> None:
    from satchel.registry import Registry
    from satchel.registry.api import close_all

    monkeypatch.delenv("SATCHEL_REGISTRY_URI", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    reg = Registry()
    assert reg.uri == f"sqlite:///{tmp_path}/.satchel/registry.db"
    v = reg.register(iris_model_dir, "m")
    assert reg.local_path(v).is_relative_to(tmp_path / ".satchel" / "artifacts")
    with reg.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    close_all()


def test_import_satchel_registry_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, satchel, satchel.registry; "
            "from satchel.registry.uri import parse; parse('models:/a@b'); "
            "print(','.join(m for m in ('sqlalchemy', 'alembic', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


