"""The register's verbs refuse before reaching Temporal what they can judge alone (no server runs here):
a stop-publication application while the province has set no minimum period (R27), a correction of a
result never published or withdrawn."""
from __future__ import annotations

import pytest

from cli import main
from cli.common import login_tokens
from domain.access import Actor
from runtime import config
from service import identity
from tests.public.year import INSPECTORS, T1, populate


@pytest.fixture
def year(sqlite_engine, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:9")  # nothing listens: a verb that reached it would fail (1)
    monkeypatch.setenv("SPOTCHECK_DATA_DIR", str(tmp_path))
    populated = populate(sqlite_engine)
    # The verbs act as the logged-in user: an inspector of the results' unit, staff who records applications.
    staff = next(iter(INSPECTORS))
    identity.add_user(sqlite_engine, Actor(id="root", roles=frozenset({"admin"}), unit=None, method="cli-local"),
                      staff, "correct horse battery staple")
    monkeypatch.setenv("SPOTCHECK_TOKEN", identity.issue_access_token(staff, login_tokens(config.load(tmp_path)))[0])
    return populated


def test_an_application_is_refused_until_the_minimum_period_is_set(year, monkeypatch, capsys):
    monkeypatch.delenv("SPOTCHECK_STOP_PUBLICATION_MIN_DAYS", raising=False)
    assert main(["publication", "stop-apply", T1, year.corrected, "--applicant", "张三", "--grounds", "已整改"]) == 2
    error = capsys.readouterr().err
    assert "minimum publication period is not set" in error and "SPOTCHECK_STOP_PUBLICATION_MIN_DAYS" in error


def test_a_period_that_is_not_a_number_of_days_is_refused(year, monkeypatch, capsys):
    monkeypatch.setenv("SPOTCHECK_STOP_PUBLICATION_MIN_DAYS", "six months")
    assert main(["publication", "stop-apply", T1, year.corrected, "--applicant", "张三", "--grounds", "已整改"]) == 2
    assert "'six months': not a whole number of days" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["withdrawn", "unpublished"])
def test_only_a_published_result_is_corrected_or_withdrawn(year, monkeypatch, capsys, which):
    monkeypatch.setenv("SPOTCHECK_STOP_PUBLICATION_MIN_DAYS", "180")
    uscc = year.withdrawn if which == "withdrawn" else next(u for u, _ in year.population if u not in year.selected)
    assert main(["publication", "correct", T1, uscc, "--category", "other", "--reason", "r"]) == 2
    assert main(["publication", "stop-apply", T1, uscc, "--applicant", "张三", "--grounds", "已整改"]) == 2
    error = capsys.readouterr().err
    assert error.count(f"no published result of {uscc} in task {T1}") == 2
