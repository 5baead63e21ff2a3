"""Engines and schema migrations for PostgreSQL (production, tests) and SQLite (embedded demo)."""
from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

# the handles the layers above store/ pass around, and the one failure they catch
__all__ = ["Connection", "DatabaseUnavailable", "Engine", "make_engine", "migrate", "normalize_url"]


class DatabaseUnavailable(Exception):
    """The project database cannot be used as configured: one sentence naming DATABASE_URL (its password hidden)
    and what to do. Nothing above store/ and db/ sees sqlalchemy's own errors for this."""

MIGRATIONS = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as psql does) and use the pinned psycopg2 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1][:80]


def make_engine(url: str, search_path: str | None = None) -> Engine:
    """An engine for `url`; `search_path` puts PostgreSQL tables in that schema (isolated tests).
    PostgreSQL and SQLite only; a SQLite file is created readable by its owner alone (it holds draw secrets)."""
    url = normalize_url(url)
    if not url.startswith(("postgresql+psycopg2://", "sqlite:")):
        raise DatabaseUnavailable(f"DATABASE_URL {_shown(url)}: only postgresql:// and sqlite:/// databases are "
                                  "supported; set DATABASE_URL to one")
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise DatabaseUnavailable(f"SQLite database {path}: directory {folder} does not exist; create it "
                                          "(`spotcheck server --data-dir` does) or set SPOTCHECK_DATA_DIR or "
                                          "DATABASE_URL")
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
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
    try:
        with engine.connect() as connection:
            if MigrationContext.configure(connection).get_current_revision() == head:
                return
    except OperationalError as error:
        reason = str(error.orig or error).strip().splitlines()[0]
        raise DatabaseUnavailable(f"cannot reach the database {_shown(str(engine.url))}: {reason}; start it or set "
                                  "DATABASE_URL") from None
    command.upgrade(config, "head")
