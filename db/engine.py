"""Engines and schema migrations for PostgreSQL (production, tests) and SQLite (embedded demo)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event

__all__ = ["Connection", "Engine", "make_engine", "migrate", "normalize_url"]  # the handles the layers above store/ pass around

MIGRATIONS = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as psql does) and use the pinned psycopg2 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, search_path: str | None = None) -> Engine:
    """An engine for `url`; `search_path` puts PostgreSQL tables in that schema (isolated tests)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        # One writer at a time, waiting rather than failing: the demo's worker threads and CLI share the file.
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    connect_args = {"options": f"-csearch_path={search_path}"} if search_path else {}
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8, connect_args=connect_args)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema up to date (idempotent; every command and worker calls it first)."""
    config = _alembic_config(engine)
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
    command.upgrade(config, "head")
