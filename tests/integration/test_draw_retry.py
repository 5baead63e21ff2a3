"""The freeze and the draw at province scale, in small (issue 14): many pages, heartbeats, retries.

The draw runs both ways: the population streamed to domain.draw (SQLite's way, pinned here on
PostgreSQL) and hashed and ranked in the database (PostgreSQL's default), to the identical record.

The page sizes are shrunk (20 population lines a heartbeat, 2 selected rows a statement) so that
the example directory's few thousand entities take many pages. A failure injected once mid-stream,
and once after the selection is stored, is retried as Temporal would retry it: the freeze keeps
the instant and salt of its first attempt, the draw resumes from its stored selection without
streaming the population again, and the record is the one the protocol gives (recomputed here
row by row, and by the independent verifier).
"""
from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.draws import DrawActivities
from db import schema
from domain import draw as draw_protocol
from domain.messages.task import TaskStep
from read.audit_package import verify_against_database
from store import draws, targets, views
from store.directory import task_line
from tests.integration.test_audit_package import ENTROPY, load_tasks

pytestmark = pytest.mark.postgres

LINES, ROWS = 20, 2


class Injected(RuntimeError):
    pass


def run(task_id: str, method, argument, heartbeats: list):
    env = ActivityEnvironment()
    env.info = dataclasses.replace(ActivityEnvironment.default_info(), workflow_id=f"task/{task_id}")
    env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    return env.run(method, argument)


def fail_once_after(monkeypatch, owner, name: str, calls: int) -> list[int]:
    """`owner.name` raises Injected on its `calls`-th call, once; the calls made are counted."""
    original, made = getattr(owner, name), [0]

    def failing(*args, **kwargs):
        made[0] += 1
        if made[0] == calls:
            raise Injected(f"{name} call {calls}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)
    return made


def test_a_paged_freeze_and_draw_survive_failures_with_the_identical_record(fresh_pg_engine, monkeypatch):
    engine = fresh_pg_engine
    (task_id,) = load_tasks(engine)
    # The population streamed to Python for the draw too (SQLite's way; PostgreSQL draws in the database).
    activities = DrawActivities(engine, lines_per_block=LINES, rows_per_page=ROWS, in_database=False)
    step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
    run(task_id, activities.announce, step, [])

    # The freeze fails after three pages of its stream; the retry digests the same population, same salt.
    fail_once_after(monkeypatch, draw_protocol.PopulationDigest, "add_lines", 4)
    first: list = []
    with pytest.raises(Injected):
        run(task_id, activities.freeze, step, first)
    assert first == [{"step": "freeze", "rows": LINES * n} for n in (1, 2, 3)]
    with engine.connect() as connection:
        fixed = draws.draw(connection, task_id, 1)
    assert fixed.state == "announced" and fixed.frozen_at and fixed.population_salt
    retried: list = []
    freeze = run(task_id, activities.freeze, step, retried)
    pages = -(-freeze.population // LINES)
    assert pages > 20 and [h["rows"] for h in retried] == [min(LINES * n, freeze.population)
                                                            for n in range(1, pages + 1)]
    with engine.connect() as connection:
        row = draws.draw(connection, task_id, 1)
        population = list(views.draw_population(connection, task_id, 1))
    assert (row.frozen_at, row.population_salt) == (fixed.frozen_at, fixed.population_salt)
    by_row = draw_protocol.PopulationDigest(bytes.fromhex(row.population_salt))
    for uscc, stratum in population:  # the protocol row by row, check digits and all
        by_row.add(uscc, stratum)
    assert (freeze.population_digest, freeze.strata) == (by_row.hexdigest(), by_row.counts)

    # The draw fails mid-stream, then after storing its selection; the last retry streams nothing.
    monkeypatch.undo()
    fail_once_after(monkeypatch, draw_protocol.Selection, "add_lines", 5)
    stored = fail_once_after(monkeypatch, targets, "add_drawn", 1)
    beats: list = []
    with pytest.raises(Injected):
        run(task_id, activities.draw, step, beats)
    assert beats == [{"step": "draw", "rows": LINES * n} for n in (1, 2, 3, 4)]
    beats.clear()
    with pytest.raises(Injected, match="add_drawn"):
        run(task_id, activities.draw, step, beats)
    streamed = [h for h in beats if h["step"] == "draw"]
    written = [h["rows"] for h in beats if h["step"] == "selection"]
    assert len(streamed) == pages and len(written) > 10 and written == sorted(written)
    beats.clear()
    summary = run(task_id, activities.draw, step, beats)
    assert beats == [] and stored[0] == 2

    seed = bytes.fromhex(summary.seed)
    expected = draw_protocol.select(seed, population, summary.strata)
    assert summary.selected == len(expected) == written[-1]
    assert summary.selection_digest == draw_protocol.selection_digest(expected)
    with engine.connect() as connection:
        public = json.loads(draws.draw(connection, task_id, 1).record)["public"]
        assert views.draw_selection(connection, task_id, 1)[0] == expected
        assert sorted(targets.task_targets(connection, task_id)) == expected
    assert public["selection_digest"] == summary.selection_digest
    assert public["population_digest"] == freeze.population_digest
    report = verify_against_database(engine, task_id)
    assert report.ok, str(report)


def test_a_population_that_no_longer_hashes_to_the_freeze_is_not_drawn(fresh_pg_engine):
    engine = fresh_pg_engine
    (task_id,) = load_tasks(engine)
    activities = DrawActivities(engine, lines_per_block=LINES, rows_per_page=ROWS)
    step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
    run(task_id, activities.announce, step, [])
    run(task_id, activities.freeze, step, [])
    e = schema.entities
    with engine.begin() as connection:  # history rewritten under the freeze: one entity's version removed
        uscc = next(iter(views.draw_population(connection, task_id, 1)))[0]
        connection.execute(e.delete().where(e.c.uscc == uscc))
    with pytest.raises(ApplicationError, match="no longer hashes to the published digest") as raised:
        run(task_id, activities.draw, step, [])
    assert raised.value.non_retryable
    with engine.connect() as connection:
        assert draws.draw(connection, task_id, 1).state == "frozen"
        assert views.draw_selection(connection, task_id, 1)[0] == []


def test_the_draw_in_the_database_gives_the_streamed_draw_record_and_heartbeats_and_resumes(fresh_pg_engine,
                                                                                              monkeypatch):
    engine = fresh_pg_engine
    (task_id,) = load_tasks(engine)
    activities = DrawActivities(engine, lines_per_block=LINES, rows_per_page=ROWS, beat_seconds=0.01)
    assert activities.in_database  # PostgreSQL's default
    step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
    run(task_id, activities.announce, step, [])
    freeze = run(task_id, activities.freeze, step, [])
    with engine.connect() as connection:
        row = draws.draw(connection, task_id, 1)
        population = list(views.draw_population(connection, task_id, 1))
        salt = bytes.fromhex(row.population_salt)
        # The digest by the database and by domain.draw, row by row, over the same population.
        by_row = draw_protocol.PopulationDigest(salt)
        for uscc, stratum in population:
            by_row.add(uscc, stratum)
        assert draws.population_digest(connection, row, salt) == by_row.hexdigest() == freeze.population_digest
        # The keys ranked by the database, with bars so low that every stratum is ranked again whole.
        seed = draw_protocol.draw_seed(task_id, freeze.population_digest, bytes.fromhex(row.nonce), ENTROPY)
        quotas = {s: p.quota for s, p in draw_protocol.plan_strata(freeze.strata, task_line(connection, task_id)[0]["ratios"]).items()}
        expected = draw_protocol.select(seed, population, quotas)
        assert [u for u, _ in draws.select_in_database(connection, row, seed, quotas, freeze.strata)] == expected
        with monkeypatch.context() as patched:
            patched.setattr(draws, "_bar", lambda quota, population: b"\x00\x00\x01" if quota else b"")
            assert [u for u, _ in draws.select_in_database(connection, row, seed, quotas, freeze.strata)] == expected

    # While the keys are ranked, nothing comes back but heartbeats: the statement here waits for one.
    original, beats = draws.select_in_database, []

    def slow(*args, **kwargs):
        for _ in range(10_000):  # a heartbeat from the ticker thread ends the wait (at most 10 s)
            if any(b.get("step") == "keys" for b in beats):
                break
            threading.Event().wait(0.001)
        return original(*args, **kwargs)

    monkeypatch.setattr(draws, "select_in_database", slow)
    fail_once_after(monkeypatch, targets, "add_drawn", 1)
    with pytest.raises(Injected, match="add_drawn"):
        run(task_id, activities.draw, step, beats)
    assert {"step": "keys"} in beats
    written = [b["rows"] for b in beats if b.get("step") == "selection"]
    assert written[-1] == len(expected) and len(written) > 10
    beats.clear()
    summary = run(task_id, activities.draw, step, beats)  # resumed from the stored selection: nothing ranked again
    assert beats == []
    assert summary.selected == len(expected) and summary.selection_digest == draw_protocol.selection_digest(expected)
    with engine.connect() as connection:
        public = json.loads(draws.draw(connection, task_id, 1).record)["public"]
        assert views.draw_selection(connection, task_id, 1)[0] == expected
    assert (public["seed"], public["selection_digest"]) == (seed.hex(), summary.selection_digest)
    report = verify_against_database(engine, task_id)
    assert report.ok, str(report)
