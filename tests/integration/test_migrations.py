"""The migrations build exactly the schema the code declares, on both databases."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from db.schema import metadata


@pytest.mark.parametrize("engine_fixture", ["sqlite_engine", pytest.param("fresh_pg_engine", marks=pytest.mark.postgres)])
def test_migrated_schema_matches_the_declared_one(engine_fixture, request):
    engine = request.getfixturevalue(engine_fixture)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
