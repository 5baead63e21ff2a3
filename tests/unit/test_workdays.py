"""Working-day arithmetic on real 2025 arrangements, holiday files and the deadlines built on them."""
from __future__ import annotations

import json
import pickle
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from domain.workdays import (
    HOLIDAY_DIR_ENV,
    PACKAGED_HOLIDAY_DIR,
    SHANGHAI,
    CalendarYearUnknown,
    Deadlines,
    HolidayFileError,
    HolidayYear,
    WorkingDayCalendar,
    calendar_from_env,
    load_holiday_file,
)

PACKAGE_ONLY = WorkingDayCalendar.official()
WITH_2027 = calendar_from_env(None)

SPRING_FESTIVAL_2025 = [date(2025, 1, 28) + timedelta(days=i) for i in range(8)]  # 01-28..02-04
NATIONAL_DAY_2025 = [date(2025, 10, 1) + timedelta(days=i) for i in range(8)]  # 10-01..10-08
MAKEUP_WORKDAYS_2025 = [date(2025, 1, 26), date(2025, 2, 8), date(2025, 9, 28), date(2025, 10, 11)]


@pytest.fixture(autouse=True)
def _no_operator_dir(monkeypatch):
    # The developer's own environment must not change what these tests see.
    monkeypatch.delenv(HOLIDAY_DIR_ENV, raising=False)


def write_holiday_file(directory, year, **overrides):
    content = {"year": year, "provisional": False, "source": "test", "holidays": [], "workdays": []}
    content.update(overrides)
    path = directory / f"holidays-{year}.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


# --- the package's 2025 data ------------------------------------------------------------------


def test_package_knows_2004_to_2026():
    assert PACKAGE_ONLY.known_years() == tuple(range(2004, 2027))
    assert not PACKAGE_ONLY.is_provisional(2026)


@pytest.mark.parametrize("day", SPRING_FESTIVAL_2025 + NATIONAL_DAY_2025, ids=str)
def test_2025_holidays_are_not_working_days(day):
    assert not PACKAGE_ONLY.is_working_day(day)


@pytest.mark.parametrize("day", MAKEUP_WORKDAYS_2025, ids=str)
def test_2025_makeup_weekends_are_working_days(day):
    assert day.weekday() >= 5
    assert PACKAGE_ONLY.is_working_day(day)


def test_ordinary_weekend_is_not_a_working_day():
    assert not PACKAGE_ONLY.is_working_day(date(2025, 1, 25))  # Saturday before the makeup Sunday


# --- arithmetic ------------------------------------------------------------------------------


def test_20_working_days_after_a_check_just_before_spring_festival():
    # Fri 01-24 -> Sun 01-26 (1), Mon 01-27 (2), [01-28..02-04 off], 02-05..02-07 (3-5),
    # Sat 02-08 (6), then 14 ordinary weekdays: 02-10 .. 02-27 (20).
    assert PACKAGE_ONLY.add_working_days(date(2025, 1, 24), 20) == date(2025, 2, 27)
    assert PACKAGE_ONLY.add_working_days(date(2025, 1, 24), 2) == date(2025, 1, 27)
    assert PACKAGE_ONLY.add_working_days(date(2025, 1, 24), 3) == date(2025, 2, 5)


def test_20_working_days_after_a_check_just_before_national_day():
    # Fri 09-26 -> Sun 09-28, 09-29, 09-30 (3), [10-01..10-08 off], 10-09, 10-10, Sat 10-11 (6),
    # then 10-13 .. 10-30 (20).
    assert PACKAGE_ONLY.add_working_days(date(2025, 9, 26), 20) == date(2025, 10, 30)
    assert PACKAGE_ONLY.add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)


def test_zero_working_days_is_the_day_itself_even_on_a_holiday():
    assert PACKAGE_ONLY.add_working_days(date(2025, 1, 29), 0) == date(2025, 1, 29)
    assert PACKAGE_ONLY.subtract_working_days(date(2025, 1, 29), 0) == date(2025, 1, 29)


def test_subtract_working_days_crosses_the_holiday_backwards():
    assert PACKAGE_ONLY.subtract_working_days(date(2025, 2, 5), 1) == date(2025, 1, 27)
    assert PACKAGE_ONLY.subtract_working_days(date(2025, 2, 5), 2) == date(2025, 1, 26)
    # 09-30 (1), 09-29 (2), makeup Sunday 09-28 (3).
    assert PACKAGE_ONLY.subtract_working_days(date(2025, 10, 9), 3) == date(2025, 9, 28)


def test_working_days_between_is_half_open():
    assert PACKAGE_ONLY.working_days_between(date(2025, 1, 24), date(2025, 1, 24)) == 0
    assert PACKAGE_ONLY.working_days_between(date(2025, 1, 24), date(2025, 2, 27)) == 20
    # (01-27, 02-05]: only 02-05 itself works.
    assert PACKAGE_ONLY.working_days_between(date(2025, 1, 27), date(2025, 2, 5)) == 1


def test_arithmetic_crosses_into_the_provisional_year():
    # Thu 2026-12-31 -> Fri 01-01..Sun 01-03 off -> Mon 2027-01-04.
    assert WITH_2027.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


def test_bad_arguments():
    with pytest.raises(ValueError):
        PACKAGE_ONLY.add_working_days(date(2025, 1, 24), -1)
    with pytest.raises(ValueError):
        PACKAGE_ONLY.working_days_between(date(2025, 2, 1), date(2025, 1, 1))
    with pytest.raises(TypeError):
        PACKAGE_ONLY.add_working_days(datetime(2025, 1, 24, tzinfo=SHANGHAI), 1)


known_days = st.dates(min_value=date(2004, 1, 1), max_value=date(2026, 12, 31))


@given(known_days, st.integers(min_value=0, max_value=200))
def test_add_then_count_gives_back_n(day, n):
    # 200 working days from 2026 at the latest stays inside the 2027 file.
    result = WITH_2027.add_working_days(day, n)
    assert WITH_2027.working_days_between(day, result) == n
    if n:
        assert WITH_2027.is_working_day(result)


@given(known_days, st.integers(min_value=0, max_value=200))
def test_subtract_undoes_add_from_a_working_day(day, n):
    start = day if WITH_2027.is_working_day(day) else WITH_2027.add_working_days(day, 1)
    assert WITH_2027.subtract_working_days(WITH_2027.add_working_days(start, n), n) == start


# --- unknown years -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.is_working_day(date(2027, 3, 1)),
        lambda c: c.add_working_days(date(2027, 3, 1), 0),
        lambda c: c.add_working_days(date(2026, 12, 30), 5),  # starts known, walks into 2027
        lambda c: c.subtract_working_days(date(2027, 1, 4), 1),
        lambda c: c.working_days_between(date(2027, 1, 4), date(2027, 1, 4)),
        lambda c: c.is_provisional(2027),
    ],
)
def test_unknown_year_raises(call):
    with pytest.raises(CalendarYearUnknown) as raised:
        call(PACKAGE_ONLY)
    assert raised.value.year == 2027


def test_year_before_the_package_raises():
    with pytest.raises(CalendarYearUnknown) as raised:
        PACKAGE_ONLY.subtract_working_days(date(2004, 1, 5), 10)
    assert raised.value.year == 2003


def test_unknown_year_message_says_how_to_fix_it_and_survives_pickling():
    error = CalendarYearUnknown(2027, PACKAGE_ONLY.known_years())
    message = str(error)
    assert "2027" in message and "2004–2026" in message
    assert "holidays-2027.json" in message and HOLIDAY_DIR_ENV in message
    assert isinstance(error, LookupError)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.year == 2027 and str(copy) == message


# --- deadlines ---------------------------------------------------------------------------------

CHECKED_AT = datetime(2025, 1, 24, 15, 30, tzinfo=SHANGHAI)


def test_official_due_is_end_of_local_day_20_working_days_later():
    due = Deadlines(PACKAGE_ONLY).after_working_days(CHECKED_AT, 20)
    assert due == datetime(2025, 2, 27, 23, 59, 59, tzinfo=SHANGHAI)
    assert due.utcoffset() == timedelta(hours=8)


def test_official_due_counts_from_the_shanghai_date_not_the_utc_date():
    # 2025-01-26 16:30 UTC is Monday 01-27 00:30 in Shanghai; the next working day is 02-05.
    start = datetime(2025, 1, 26, 16, 30, tzinfo=timezone.utc)
    assert Deadlines(PACKAGE_ONLY).after_working_days(start, 1) == datetime(2025, 2, 5, 23, 59, 59, tzinfo=SHANGHAI)


def test_official_reminder_is_0900_on_an_earlier_working_day():
    deadlines = Deadlines(PACKAGE_ONLY)
    due = datetime(2025, 2, 27, 23, 59, 59, tzinfo=SHANGHAI)
    assert deadlines.reminder_before(due, 3) == datetime(2025, 2, 24, 9, 0, tzinfo=SHANGHAI)
    # Across the Spring Festival: 02-05 (1), 01-27 (2), makeup Sunday 01-26 (3).
    due = datetime(2025, 2, 6, 23, 59, 59, tzinfo=SHANGHAI)
    assert deadlines.reminder_before(due, 3) == datetime(2025, 1, 26, 9, 0, tzinfo=SHANGHAI)


def test_official_window_ends_at_end_of_last_day():
    end = Deadlines(PACKAGE_ONLY).window_end(date(2025, 1, 24), date(2025, 2, 10), CHECKED_AT)
    assert end == datetime(2025, 2, 10, 23, 59, 59, tzinfo=SHANGHAI)


def test_scaled_mode_is_working_days_times_seconds():
    deadlines = Deadlines(PACKAGE_ONLY, workday_seconds=2.0)
    assert deadlines.after_working_days(CHECKED_AT, 20) == CHECKED_AT + timedelta(seconds=40)
    due = CHECKED_AT + timedelta(seconds=40)
    assert deadlines.reminder_before(due, 3) == due - timedelta(seconds=6)


def test_scaled_window_counts_working_days_so_holidays_still_shorten_it():
    # (01-24, 02-10] is 17 calendar days but only 7 working days: 01-26, 01-27, 02-05..02-08, 02-10.
    end = Deadlines(PACKAGE_ONLY, workday_seconds=2.0).window_end(date(2025, 1, 24), date(2025, 2, 10), CHECKED_AT)
    assert end == CHECKED_AT + timedelta(seconds=14)


@pytest.mark.parametrize("workday_seconds", [None, 2.0], ids=["official", "scaled"])
@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.after_working_days(datetime(2027, 3, 1, 10, tzinfo=SHANGHAI), 20),
        lambda d: d.after_working_days(datetime(2026, 12, 28, 10, tzinfo=SHANGHAI), 20),  # crosses into 2027
        lambda d: d.after_working_days(datetime(2027, 3, 1, 10, tzinfo=SHANGHAI), 0),
        lambda d: d.reminder_before(datetime(2027, 3, 1, 23, 59, 59, tzinfo=SHANGHAI), 3),
        lambda d: d.window_end(date(2026, 12, 20), date(2027, 1, 10), datetime(2026, 12, 20, tzinfo=SHANGHAI)),
    ],
)
def test_unknown_year_raises_in_both_modes(workday_seconds, call):
    with pytest.raises(CalendarYearUnknown) as raised:
        call(Deadlines(PACKAGE_ONLY, workday_seconds))
    assert raised.value.year == 2027


@pytest.mark.parametrize("workday_seconds", [None, 2.0], ids=["official", "scaled"])
def test_naive_datetimes_are_refused_in_both_modes(workday_seconds):
    with pytest.raises(ValueError, match="naive"):
        Deadlines(PACKAGE_ONLY, workday_seconds).after_working_days(datetime(2025, 1, 24, 10), 1)


@pytest.mark.parametrize("workday_seconds", [0, -1.0])
def test_workday_seconds_must_be_positive(workday_seconds):
    with pytest.raises(ValueError):
        Deadlines(PACKAGE_ONLY, workday_seconds)


# --- holiday files -----------------------------------------------------------------------------


def test_packaged_2027_file_is_provisional_and_plausible():
    year = load_holiday_file(PACKAGED_HOLIDAY_DIR / "holidays-2027.json")
    assert year.year == 2027 and year.provisional
    assert "PROVISIONAL" in year.source
    assert {date(2027, 1, 1), date(2027, 2, 6), date(2027, 4, 5), date(2027, 5, 1),
            date(2027, 6, 9), date(2027, 9, 15), date(2027, 10, 1)} <= year.holidays
    # The post-2025 rule the estimate follows: never more than 6 working days in a row.
    day, run, longest = date(2027, 1, 1), 0, 0
    while day.year == 2027:
        run = run + 1 if year.is_working_day(day) else 0
        longest = max(longest, run)
        day += timedelta(days=1)
    assert longest <= 6


def test_file_with_ranges_loads(tmp_path):
    path = write_holiday_file(
        tmp_path, 2030, provisional=True, notes=["why"],
        holidays=["2030-01-01", "2030-02-02/2030-02-04"], workdays=["2030-01-26"],
    )
    year = load_holiday_file(path)
    assert year.holidays == {date(2030, 1, 1), date(2030, 2, 2), date(2030, 2, 3), date(2030, 2, 4)}
    assert year.workdays == {date(2030, 1, 26)}
    assert year.provisional and str(path) in year.source


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        (json.dumps({"year": 2030, "provisional": False, "source": "x", "holidays": []}), "missing keys: workdays"),
        (json.dumps({"year": 2030, "provisional": False, "source": "x", "holidays": [], "workdays": [], "holiday": []}),
         "unknown keys: holiday"),
        (json.dumps({"year": 2031, "provisional": False, "source": "x", "holidays": [], "workdays": []}),
         "name it holidays-2031.json"),
        (json.dumps({"year": "2030", "provisional": False, "source": "x", "holidays": [], "workdays": []}),
         '"year" must be an integer'),
        (json.dumps({"year": 2030, "provisional": "yes", "source": "x", "holidays": [], "workdays": []}),
         '"provisional" must be true or false'),
        (json.dumps({"year": 2030, "provisional": False, "source": "", "holidays": [], "workdays": []}),
         '"source" must say'),
        (json.dumps({"year": 2030, "provisional": False, "source": "x", "holidays": ["2030-1-1"], "workdays": []}),
         "is not \"YYYY-MM-DD\""),
        (json.dumps({"year": 2030, "provisional": False, "source": "x", "holidays": ["2030-02-30"], "workdays": []}),
         "2030-02-30"),
        (json.dumps({"year": 2030, "provisional": False, "source": "x", "holidays": ["2030-02-04/2030-02-02"],
                     "workdays": []}), "ends before it starts"),
        (json.dumps({"year": 2030, "provisional": False, "source": "x", "holidays": ["2031-01-01"], "workdays": []}),
         "outside 2030: 2031-01-01"),
        (json.dumps({"year": 2030, "provisional": False, "source": "x", "holidays": ["2030-01-26"],
                     "workdays": ["2030-01-26"]}), "both holiday and workday: 2030-01-26"),
        (json.dumps({"year": 2030, "provisional": False, "source": "x", "holidays": [], "workdays": ["2030-01-28"]}),
         "2030-01-28 (Monday)"),
    ],
    ids=["bad-json", "not-object", "missing-key", "unknown-key", "wrong-year", "year-type", "provisional-type",
         "empty-source", "bad-date-format", "impossible-date", "backwards-range", "date-outside-year",
         "holiday-and-workday", "weekday-workday"],
)
def test_holiday_file_errors_name_file_and_problem(tmp_path, content, expected):
    path = tmp_path / "holidays-2030.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(HolidayFileError) as raised:
        load_holiday_file(path)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(HolidayFileError, match="holidays-2030.json: cannot be read"):
        load_holiday_file(tmp_path / "holidays-2030.json")


def test_draft_file_name_is_refused(tmp_path):
    # holidays-2027-draft.json would otherwise sit next to holidays-2027.json and compete with it.
    write_holiday_file(tmp_path, 2027).rename(tmp_path / "holidays-2027-draft.json")
    with pytest.raises(HolidayFileError, match="name it holidays-2027.json"):
        calendar_from_env(tmp_path)


# --- precedence --------------------------------------------------------------------------------


def test_calendar_from_env_without_operator_dir_uses_package_and_packaged_2027():
    assert WITH_2027.known_years() == tuple(range(2004, 2028))
    assert WITH_2027.is_provisional(2027) and not WITH_2027.is_provisional(2026)
    assert not WITH_2027.is_working_day(date(2027, 2, 8))
    assert WITH_2027.is_working_day(date(2027, 1, 31))  # provisional makeup Sunday


def test_operator_file_from_env_wins_over_packaged_file(tmp_path, monkeypatch):
    write_holiday_file(tmp_path, 2027, source="国务院办公厅通知", holidays=["2027-02-08"])
    monkeypatch.setenv(HOLIDAY_DIR_ENV, str(tmp_path))
    calendar = calendar_from_env(None)
    assert not calendar.is_provisional(2027)
    assert not calendar.is_working_day(date(2027, 2, 8))
    assert calendar.is_working_day(date(2027, 2, 9))  # a holiday only in the packaged estimate
    assert not calendar.is_working_day(date(2027, 1, 31))  # no makeup Sunday in the operator file


def test_explicit_dir_wins_over_env(tmp_path, monkeypatch):
    monkeypatch.setenv(HOLIDAY_DIR_ENV, str(tmp_path / "absent"))
    write_holiday_file(tmp_path, 2028, holidays=["2028-03-01"])
    calendar = calendar_from_env(tmp_path)
    assert not calendar.is_working_day(date(2028, 3, 1))


def test_operator_file_extends_to_later_years(tmp_path, monkeypatch):
    write_holiday_file(tmp_path, 2028)
    monkeypatch.setenv(HOLIDAY_DIR_ENV, str(tmp_path))
    assert calendar_from_env(None).known_years()[-2:] == (2027, 2028)


def test_missing_operator_dir_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(HOLIDAY_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(HolidayFileError, match="absent"):
        calendar_from_env(None)


def test_official_file_overrides_package_year(tmp_path):
    # 2025-01-24 is an ordinary Friday in the package; a correcting official file wins.
    corrected = load_holiday_file(write_holiday_file(tmp_path, 2025, holidays=["2025-01-24"]))
    calendar = WorkingDayCalendar.official([corrected])
    assert not calendar.is_working_day(date(2025, 1, 24))
    assert calendar.is_working_day(date(2025, 1, 28))  # the file replaces the whole year


def test_provisional_file_never_overrides_official_package_year(tmp_path):
    estimate = load_holiday_file(write_holiday_file(tmp_path, 2025, provisional=True, holidays=["2025-01-24"]))
    calendar = WorkingDayCalendar.official([estimate])
    assert calendar.is_working_day(date(2025, 1, 24))
    assert not calendar.is_provisional(2025)


def test_two_arrangements_for_one_year_are_refused():
    one = HolidayYear(2030, frozenset(), frozenset(), provisional=False, source="a")
    other = HolidayYear(2030, frozenset(), frozenset(), provisional=False, source="b")
    with pytest.raises(ValueError, match="two arrangements for 2030"):
        WorkingDayCalendar.official([one, other])
