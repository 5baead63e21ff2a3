"""The dispatch at province scale, in small (issue 14): targets read and teams stored a page at a time, with
heartbeats; a dispatch that fails part-way is retried as Temporal would and stores the rest only.

The page is shrunk to 7 rows so that the example task's targets take many pages. The record left is the one
a dispatch in one go leaves: every target once per unit, the teams the independent verifier recomputes.
"""
from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.draws import DrawActivities
from audit.verify import verify_dispatch
from db import schema
from domain.messages.task import TaskStep
from read.audit_package import export_dispatch
from store import draws
from tests.integration.test_audit_package import ENTROPY, load_tasks
from tests.integration.test_draw_retry import Injected, fail_once_after, run

pytestmark = pytest.mark.postgres

PAGE = 7


def test_a_paged_dispatch_resumes_after_a_failure_with_one_team_per_target(fresh_pg_engine, monkeypatch, tmp_path):
    engine = fresh_pg_engine
    (task_id,) = load_tasks(engine)
    activities = DrawActivities(engine, rows_per_page=PAGE)
    step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
    for method in (activities.announce, activities.freeze, activities.draw):
        run(task_id, method, step, [])
    with engine.connect() as connection:
        selected = sorted(r.uscc for r in connection.execute(
            select(schema.targets.c.uscc).where(schema.targets.c.task_id == task_id)))
    assert len(selected) > 4 * PAGE

    # The third page of teams fails to store: two pages are committed, the dispatch is marked pending.
    fail_once_after(monkeypatch, draws, "save_dispatch", 3)
    first: list = []
    with pytest.raises(Injected):
        run(task_id, activities.dispatch, step, first)
    read = [h["targets"] for h in first if "targets" in h]
    assert read == [min(PAGE * n, len(selected)) for n in range(1, len(read) + 1)] and read[-1] == len(selected)
    assert [h["rows"] for h in first if "rows" in h] == [PAGE, 2 * PAGE]
    with engine.connect() as connection:
        pending = json.loads(draws.draw(connection, task_id, 1).record)
    assert "dispatch_pending" in pending and pending["dispatch_as_of"]

    retried: list = []
    summary = run(task_id, activities.dispatch, step, retried)
    stored = [h["rows"] for h in retried if "rows" in h]
    assert stored[0] == 3 * PAGE and stored[-1] == len(selected)  # on from the committed rows
    assert summary.teams + summary.unstaffed == len(selected)

    with engine.connect() as connection:
        rows = Counter((r.uscc, r.unit_code) for r in connection.execute(
            select(schema.teams).where(schema.teams.c.task_id == task_id, schema.teams.c.step == "dispatch")))
        record = json.loads(draws.draw(connection, task_id, 1).record)
        pools = {r.unit_code: r.pool_file.encode("ascii") for r in connection.execute(
            select(schema.dispatch_pools).where(schema.dispatch_pools.c.task_id == task_id))}
    assert sorted(uscc for uscc, _ in rows) == selected and set(rows.values()) == {1}
    assert "dispatch_pending" not in record and record["dispatch_as_of"] == pending["dispatch_as_of"]

    again: list = []
    assert run(task_id, activities.dispatch, step, again) == summary and again == []  # done: the stored counts
    exported = export_dispatch(engine, task_id, tmp_path / "dispatch.json")
    report = verify_dispatch(exported, pools, exported["seed"], exported["required_qualifications"], selected)
    assert report.ok, str(report)


def test_a_long_step_heartbeats_until_it_returns(sqlite_engine):
    """The step returns only once it has been heartbeaten for twice: it is still running meanwhile."""
    beats: list = []
    released = threading.Event()

    def beat(*details):
        beats.append(details[0])
        if len(beats) == 2:
            released.set()

    env = ActivityEnvironment()
    env.on_heartbeat = beat
    activities = DrawActivities(sqlite_engine, beat_seconds=0.01)

    def long_step() -> str:
        with activities.beating(step="dispatch"):
            released.wait()
        return "done"
    result = env.run(long_step)
    assert result == "done" and len(beats) >= 2 and all(beat == {"step": "dispatch"} for beat in beats)
