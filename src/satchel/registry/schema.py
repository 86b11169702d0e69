"""Open a registry database: engine set-up (SQLite WAL, PostgreSQL) and migrations.

Opening checks the schema revision with one cheap query; Alembic is imported only when
the database is new or older than this satchel. A database from a newer satchel is
refused with a clear error, never downgraded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satchel.errors import RegistryInputError, RegistrySchemaError, RegistryUnavailableError

#: Every revision this satchel knows, oldest first (tests check it against migrations/).
REVISIONS = ("r0001", "r0002", "r0003")
HEAD = REVISIONS[-1]
VERSION_TABLE = "registry_alembic_version"


def create_engine(url: str) -> Any:
    """A SQLAlchemy engine for ``url`` with the registry's connection settings.

    SQLite: WAL journal (readers never block the writer), foreign keys on, a 30 s busy
    timeout, and write transactions that start with ``BEGIN IMMEDIATE`` so two writers
    queue instead of failing halfway. PostgreSQL: psycopg 3 (``postgresql://`` is
    mapped to ``postgresql+psycopg://``).
    """
    import sqlalchemy as sa
    from sqlalchemy import event

    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise RegistryInputError(
            "registry URI is not a database URL (sqlite:///PATH, postgresql://...) "
            "or an http(s):// registry server",
            field="registry_uri",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(Path(database).expanduser()))
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's begin event below decide how transactions start.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers take the write lock up front. Reads run each statement on its own
            # (autocommit): no BEGIN/ROLLBACK round trips on the hot resolve path, and the
            # read cache keys on the audit head read first, so a later statement seeing a
            # newer commit only makes the next read recompute.
            if conn.get_execution_options().get("satchel_write", False):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise RegistryInputError(
        f"registry databases are SQLite or PostgreSQL, not {parsed.get_backend_name()!r}",
        field="registry_uri",
    )


def refresh_statistics(engine: Any) -> None:
    """Give the query planner table sizes when they are missing or stale.

    Without statistics SQLite guesses every table is the same size, and lists 10,000
    versions by scanning the versions table and sorting all of it in a temporary
    B-tree (half the listing's time); with them it walks models in name order and each
    model's versions through their index, already sorted. ``ANALYZE`` runs again when
    the versions table has more than doubled since the last one (a count over an
    index costs well under a millisecond).

    PostgreSQL's autovacuum takes statistics, but only up to a minute after a table
    grows: until then a freshly filled registry (a bulk import, a restored dump) lists
    a page of 1,000 by hashing and sorting every version (measured at 10,000 versions:
    9.5 ms on the server against 0.9 ms by the name index). Opening the store runs
    ``ANALYZE`` on the registry's tables when they were never analyzed and hold 64
    versions or more, or when the versions table has more than doubled in pages
    since (read from the catalog: no count of a large table).
    """
    if engine.dialect.name == "postgresql":
        _refresh_postgres(engine)
        return
    if engine.dialect.name != "sqlite":
        return
    import sqlalchemy as sa

    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM registry_versions")).scalar() or 0
        has_stats = conn.execute(sa.text(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar()
        known = 0
        indexed = False
        if has_stats:
            stat = conn.execute(sa.text(
                "SELECT stat FROM sqlite_stat1 WHERE tbl = 'registry_versions' LIMIT 1"
            )).scalar()
            known = int(str(stat).split()[0]) if stat else 0
            # Statistics taken before r0003 lack its stage index: the planner would not
            # know how selective it is.
            indexed = bool(conn.execute(sa.text(
                "SELECT count(*) FROM sqlite_stat1 "
                "WHERE idx = 'ix_registry_versions_model_stage'")).scalar())
    if count >= 64 and (count > 2 * known or not indexed):
        with engine.connect().execution_options(satchel_write=True) as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


def _refresh_postgres(engine: Any) -> None:
    import sqlalchemy as sa

    with engine.connect() as conn:
        # What the planner last learnt (reltuples -1: never analyzed nor vacuumed) and
        # the table's size now, without counting its rows.
        known, pages, now = conn.execute(sa.text(
            "SELECT reltuples, relpages, pg_relation_size(oid) / "
            "current_setting('block_size')::int FROM pg_class "
            "WHERE oid = 'registry_versions'::regclass")).one()
        if known < 0:
            stale = conn.execute(sa.text(
                "SELECT count(*) FROM (SELECT 1 FROM registry_versions LIMIT 64) s"
            )).scalar() == 64
        else:
            stale = now > 2 * max(1, pages)
    if not stale:
        return
    try:
        with engine.connect() as conn:
            # Never wait behind a VACUUM or another ANALYZE of these tables: opening
            # the registry goes on with the statistics there are.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
            # A registry user that does not own the tables gets a warning, not an
            # error, and keeps autovacuum's statistics.
            conn.exec_driver_sql("ANALYZE registry_models, registry_versions, "
                                 "registry_version_tags, registry_aliases")
            conn.commit()
    except sa.exc.DBAPIError:
        # Locked, or a hot standby (which refuses ANALYZE): the registry still opens
        # and reads, with the statistics the server has.
        pass


def current_revision(engine: Any) -> str | None:
    """The schema revision stored in the database, or None for an empty database."""
    import sqlalchemy as sa

    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(VERSION_TABLE):
                return None
            row = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        raise RegistryUnavailableError(f"cannot open the registry database: {reason}") from None
    return None if row is None else str(row[0])


def ensure_schema(engine: Any) -> None:
    """Create or upgrade the schema to :data:`HEAD`; refuse a newer or foreign database."""
    rev = current_revision(engine)
    if rev == HEAD:
        return
    if rev is not None and rev not in REVISIONS:
        raise RegistrySchemaError(
            f"the registry database is at schema revision {rev!r}, which this satchel "
            f"does not know (newest known: {HEAD!r}); it was written by a newer satchel — "
            "upgrade satchel instead (the database is left untouched)"
        )
    _upgrade(engine)


def _upgrade(engine: Any) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "satchel.registry:migrations")
    try:
        with engine.connect().execution_options(satchel_write=True) as conn:
            if rev_after_lock(conn) == HEAD:
                return
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, HEAD)
            conn.commit()
    except sa.exc.DBAPIError:
        # Another process may have created the schema at the same moment: if the
        # database is now current, that is fine; otherwise report the failure.
        if current_revision(engine) != HEAD:
            raise


def rev_after_lock(conn: Any) -> str | None:
    """The revision as seen inside the (write-locked) migration transaction."""
    import sqlalchemy as sa

    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    row = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return None if row is None else str(row[0])
