"""The dispatch's rows on PostgreSQL, which enforces column lengths (SQLite does not): a target left
unstaffed is stored as such (teams.source "unstaffed" was one character too long before migration 0008)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from store.draws import dispatched, save_dispatch

pytestmark = pytest.mark.postgres


def test_a_dispatch_with_an_unstaffed_target_is_stored(fresh_pg_engine):
    at = datetime(2026, 4, 1, 2, 0, tzinfo=timezone.utc)
    with fresh_pg_engine.begin() as connection:
        save_dispatch(connection, "T-1", [("91360200MA35XXXX0A", "360202-SCJ", ["I001", "I002"], None),
                                          ("91360200MA35XXXX1B", "360202-SCJ", None, "no eligible inspector")],
                      at, "task/T-1")
    with fresh_pg_engine.connect() as connection:
        assert dispatched(connection, "T-1") == {"draw": 1, "unstaffed": 1}
