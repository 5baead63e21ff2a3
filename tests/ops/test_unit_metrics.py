"""R32 per unit: the year's metrics per lead unit on the hand-built year of tests/integration/test_queries.py,
and the doors that print them (`metrics --by-unit`, the demo's summary), with `publication export --json`."""
from __future__ import annotations

import json

import pytest

import cli
from db.engine import make_engine, migrate
from read.metrics import metrics, metrics_by_unit, year_summary
from cli.demo import render
from tests.conftest import own_schema
from tests.integration.test_queries import AS_OF, build, engine  # noqa: F401 - engine: the fixture, both databases


def ratio(numerator: int, denominator: int) -> dict:
    return {"value": numerator / denominator if denominator else None, "numerator": numerator,
            "denominator": denominator}


@pytest.fixture
def year(engine):  # noqa: F811
    build(engine)
    return engine


def test_metrics_per_unit_match_the_hand_counts(year):
    with year.connect() as c:
        units = metrics_by_unit(c, 2025, as_of=AS_OF)
        total = metrics(c, 2025, as_of=AS_OF).as_json()
    assert units == {
        # T1 (own) and T3 (joint, cancelled): inspected a b c g; published a c on time, b late, d e g
        # overdue; problems b c, c disposed
        "360202-SCJ": {"inspected_targets": 4, "joint_rate": ratio(0, 1), "on_time_publication_rate": ratio(2, 6),
                       "problem_disposal_rate": ratio(1, 2)},
        # T2 (joint) and T4 (own): inspected h i l (j targeted, k 2026); h j l on time, i late; problems h j l, j disposed
        "360203-SCJ": {"inspected_targets": 3, "joint_rate": ratio(1, 2), "on_time_publication_rate": ratio(3, 4),
                       "problem_disposal_rate": ratio(1, 3)},
    }
    # The units add up to the year: every task has one lead unit.
    assert sum(u["inspected_targets"] for u in units.values()) == total["inspected_share"]["numerator"]
    for name in ("joint_rate", "on_time_publication_rate", "problem_disposal_rate"):
        for part in ("numerator", "denominator"):
            assert sum(u[name][part] for u in units.values()) == total[name][part], (name, part)


def test_the_demo_summary_shows_each_unit(year):
    with year.connect() as c:
        summary = year_summary(c, "P-2025", as_of=AS_OF)
    summary |= {"archive": {"entries": 0, "ok": True}, "web_ui": None, "human_steps": {}}
    lines = render(summary).splitlines()
    first = lines.index("metrics per unit (a task counts for its lead unit):") + 1
    assert lines[first:first + 2] == [
        "  360202-SCJ     inspected=4  joint_rate=0/1  on_time_publication_rate=2/6  problem_disposal_rate=1/2",
        "  360203-SCJ     inspected=3  joint_rate=1/2  on_time_publication_rate=3/4  problem_disposal_rate=1/3"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The scenario in a database a command line can name."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'spotcheck.db'}"
        engine = make_engine(url)
        migrate(engine)
        build(engine)
        engine.dispose()
        yield url
    else:
        with own_schema(request.getfixturevalue("postgres_url")) as db:
            build(db.engine)
            yield db.url


@pytest.fixture
def spotcheck(database_url, monkeypatch, tmp_path, capsys):
    """`spotcheck …` in this process on the scenario's database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SPOTCHECK_DATA_DIR", str(tmp_path))

    def run(*argv: str) -> str:
        assert cli.main(list(argv)) == 0
        return capsys.readouterr().out
    return run


def test_metrics_by_unit_at_the_command_line(spotcheck):
    data = json.loads(spotcheck("metrics", "--year", "2025", "--by-unit", "--json"))
    assert set(data["by_unit"]) == {"360202-SCJ", "360203-SCJ"}
    assert data["by_unit"]["360203-SCJ"]["inspected_targets"] == 3
    assert "by_unit" not in json.loads(spotcheck("metrics", "--year", "2025", "--json"))
    text = spotcheck("metrics", "--year", "2025", "--by-unit")
    assert "360202-SCJ: inspected=4  joint_rate=0/1" in text


def test_publication_export_takes_json(spotcheck):
    rows = json.loads(spotcheck("publication", "export", "--year", "2025", "--json"))
    assert rows and {"kind", "published_at", "task_id", "uscc", "category", "unit"} <= set(rows[0])
    lines = spotcheck("publication", "export", "--year", "2025").splitlines()
    assert len(lines) == len(rows)
    assert all(line.startswith(row["published_at"]) and row["kind"] in line for line, row in zip(lines, rows))
