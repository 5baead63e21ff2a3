"""Working days on the official Chinese calendar (Asia/Shanghai) and the deadlines built on them.

Legal deadlines (e.g. publishing a result within 20 working days of the check) count working
days as the State Council arranges them each year: statutory holidays are off and some weekends
are worked (调休). `chinesecalendar` ships the arrangements it knows; later years come from
holiday files (docs/holiday-file.md). A year nobody knows is an error, never a guess.

The arithmetic is pure (no clock, no I/O). Files are read only by the `load_*` functions, which
take paths, and the environment only by `calendar_from_env`.
"""
from __future__ import annotations

import functools
import json
import os
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Iterable, Mapping

import chinese_calendar
from chinese_calendar import constants as _package_data

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
HOLIDAY_DIR_ENV = "SPOTCHECK_HOLIDAY_DIR"
PACKAGED_HOLIDAY_DIR = Path(__file__).parent / "data"
HOLIDAY_FILE_GLOB = "holidays-*.json"
END_OF_DAY = time(23, 59, 59)
REMINDER_TIME = time(9, 0)

_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _describe_years(years: Iterable[int]) -> str:
    """2004–2026, 2028: consecutive years collapsed so the message stays short."""
    runs: list[list[int]] = []
    for year in sorted(years):
        if runs and year == runs[-1][1] + 1:
            runs[-1][1] = year
        else:
            runs.append([year, year])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs) or "none"


class CalendarYearUnknown(LookupError):
    """No holiday arrangement for `year`: deadlines in it cannot be computed, only fixed by an operator."""

    def __init__(self, year: int, known_years: Iterable[int] = ()):
        self.year = year
        self.known_years = tuple(sorted(known_years))
        super().__init__(
            f"no working-day calendar for {year} (known years: {_describe_years(self.known_years)}); "
            f"working-day deadlines need the State Council holiday arrangement for {year}: "
            f"add holidays-{year}.json to the directory named by {HOLIDAY_DIR_ENV} "
            f"(format: docs/holiday-file.md) and restart the worker"
        )

    def __reduce__(self):
        # Exceptions pickle as cls(*args); ours takes the year, not the message.
        return (type(self), (self.year, self.known_years))


@dataclass(frozen=True)
class HolidayYear:
    """One year's arrangement: days off (any weekday) and weekend days worked instead (调休)."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]
    provisional: bool
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "workdays", frozenset(self.workdays))
        problems = []
        outside = sorted(d for d in self.holidays | self.workdays if d.year != self.year)
        if outside:
            problems.append(f"dates outside {self.year}: {_list_dates(outside)}")
        both = sorted(self.holidays & self.workdays)
        if both:
            problems.append(f"dates both holiday and workday: {_list_dates(both)}")
        # A weekday listed as a workday changes nothing, so it is almost surely a typo.
        weekday_workdays = sorted(d for d in self.workdays if d.weekday() < 5)
        if weekday_workdays:
            named = ", ".join(f"{d} ({_WEEKDAY_NAMES[d.weekday()]})" for d in weekday_workdays[:5])
            problems.append(f"workdays must be weekend days worked instead (调休), not {named}")
        if problems:
            raise ValueError("; ".join(problems))

    def is_working_day(self, d: date) -> bool:
        return d in self.workdays or (d.weekday() < 5 and d not in self.holidays)


def _list_dates(dates: list[date]) -> str:
    shown = ", ".join(str(d) for d in dates[:5])
    return shown + (f" and {len(dates) - 5} more" if len(dates) > 5 else "")


@functools.cache
def _package_years() -> Mapping[int, HolidayYear]:
    """chinesecalendar's data as HolidayYears, for the years it says it supports."""
    years = {d.year for d in _package_data.holidays}
    source = f"chinesecalendar {chinese_calendar.__version__}"
    return {
        year: HolidayYear(
            year=year,
            holidays=frozenset(d for d in _package_data.holidays if d.year == year),
            workdays=frozenset(d for d in _package_data.workdays if d.year == year),
            provisional=False,
            source=source,
        )
        for year in range(min(years), max(years) + 1)
    }


def _require_date(d: date) -> None:
    # datetime is a date subclass; counting days from one would silently drop its time and zone.
    if isinstance(d, datetime) or not isinstance(d, date):
        raise TypeError(f"expected a date, got {type(d).__name__} {d!r}")


class WorkingDayCalendar:
    """Working-day arithmetic over the years it has arrangements for; other years raise."""

    def __init__(self, years: Mapping[int, HolidayYear]):
        for year, holiday_year in years.items():
            if holiday_year.year != year:
                raise ValueError(f"calendar entry {year} holds the arrangement for {holiday_year.year}")
        self._years = dict(years)

    @classmethod
    def official(cls, extra_years: Iterable[HolidayYear] = ()) -> WorkingDayCalendar:
        """chinesecalendar's years plus `extra_years` (holiday files).

        A file for a year the package knows replaces the package's data (operators can correct
        it without waiting for a release), except a provisional file: an estimate never replaces
        an official arrangement, so upgrading chinesecalendar makes a stale provisional file moot.
        """
        years = dict(_package_years())
        extras: dict[int, HolidayYear] = {}
        for holiday_year in extra_years:
            if holiday_year.year in extras:
                raise ValueError(
                    f"two arrangements for {holiday_year.year}: "
                    f"{extras[holiday_year.year].source!r} and {holiday_year.source!r}"
                )
            extras[holiday_year.year] = holiday_year
        for year, holiday_year in extras.items():
            package_is_official = year in years and not years[year].provisional
            if not (holiday_year.provisional and package_is_official):
                years[year] = holiday_year
        return cls(years)

    def known_years(self) -> tuple[int, ...]:
        return tuple(sorted(self._years))

    def holiday_year(self, year: int) -> HolidayYear:
        try:
            return self._years[year]
        except KeyError:
            raise CalendarYearUnknown(year, self._years) from None

    def is_provisional(self, year: int) -> bool:
        return self.holiday_year(year).provisional

    def is_working_day(self, d: date) -> bool:
        _require_date(d)
        return self.holiday_year(d.year).is_working_day(d)

    def add_working_days(self, d: date, n: int) -> date:
        """The n-th working day after d (d itself when n == 0)."""
        return self._walk(d, n, timedelta(days=1))

    def subtract_working_days(self, d: date, n: int) -> date:
        """The n-th working day before d (d itself when n == 0)."""
        return self._walk(d, n, timedelta(days=-1))

    def working_days_between(self, a: date, b: date) -> int:
        """How many working days lie in (a, b]."""
        _require_date(a)
        _require_date(b)
        if b < a:
            raise ValueError(f"interval ends ({b}) before it starts ({a})")
        self.holiday_year(a.year)  # an empty interval must still refuse an unknown year
        return sum(self.is_working_day(a + timedelta(days=i)) for i in range(1, (b - a).days + 1))

    def _walk(self, d: date, n: int, step: timedelta) -> date:
        _require_date(d)
        if n < 0:
            raise ValueError(f"number of working days must be >= 0, got {n}")
        self.holiday_year(d.year)  # n == 0 must not slip past an unknown year
        day = d
        while n:
            day += step
            if self.is_working_day(day):
                n -= 1
        return day


def _local_date(moment: datetime) -> date:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: deadlines need an aware datetime")
    return moment.astimezone(SHANGHAI).date()


def _local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=SHANGHAI)


class Deadlines:
    """Deadlines as aware datetimes.

    Official mode (workday_seconds None): a deadline is the end of a local working day.
    Demo mode: a working day lasts `workday_seconds` real seconds, so a 20-working-day deadline
    passes in 20 * workday_seconds. Both modes ask the calendar first, so holidays still decide
    how many working days a window has and an unknown year raises in both.
    """

    def __init__(self, calendar: WorkingDayCalendar, workday_seconds: float | None = None):
        if workday_seconds is not None and not workday_seconds > 0:
            raise ValueError(f"workday_seconds must be > 0, got {workday_seconds}")
        self.calendar = calendar
        self.workday_seconds = workday_seconds

    @property
    def scaled(self) -> bool:
        return self.workday_seconds is not None

    def _span(self, working_days: int) -> timedelta:
        return timedelta(seconds=working_days * self.workday_seconds)

    def after_working_days(self, start: datetime, n: int) -> datetime:
        """Due n working days after start's local date: end of that day, or start + n scaled days."""
        due_day = self.calendar.add_working_days(_local_date(start), n)
        if self.scaled:
            return start + self._span(n)
        return _local(due_day, END_OF_DAY)

    def reminder_before(self, due: datetime, n: int) -> datetime:
        """09:00 on the working day n working days before due's local date, or due - n scaled days."""
        reminder_day = self.calendar.subtract_working_days(_local_date(due), n)
        if self.scaled:
            return due - self._span(n)
        return _local(reminder_day, REMINDER_TIME)

    def window_end(self, starts: date, ends: date, started_at: datetime) -> datetime:
        """End of a [starts, ends] window: end of `ends`, or started_at + its working days scaled."""
        working_days = self.calendar.working_days_between(starts, ends)
        _local_date(started_at)  # same aware-datetime rule in both modes
        if self.scaled:
            return started_at + self._span(working_days)
        return _local(ends, END_OF_DAY)


# --- holiday files: the only file reading in this module -------------------------------------

_REQUIRED_KEYS = {"year", "provisional", "source", "holidays", "workdays"}
_OPTIONAL_KEYS = {"notes"}
_DATE = r"\d{4}-\d{2}-\d{2}"
_ENTRY = re.compile(rf"({_DATE})(?:/({_DATE}))?")
_FILE_NAME = re.compile(r"holidays-(.*)\.json")


class HolidayFileError(ValueError):
    """A holiday file or directory that cannot be used; the message names it and the problem."""


def _parse_dates(entries: object, field: str) -> frozenset[date]:
    """["2027-01-01", "2027-02-05/2027-02-13", ...]: single days or inclusive ranges."""
    if not isinstance(entries, list):
        raise ValueError(f'"{field}" must be a list of "YYYY-MM-DD" or "YYYY-MM-DD/YYYY-MM-DD" strings')
    days: set[date] = set()
    for entry in entries:
        match = _ENTRY.fullmatch(entry) if isinstance(entry, str) else None
        if match is None:
            raise ValueError(f'"{field}" entry {entry!r} is not "YYYY-MM-DD" or "YYYY-MM-DD/YYYY-MM-DD"')
        try:
            first = date.fromisoformat(match.group(1))
            last = date.fromisoformat(match.group(2) or match.group(1))
        except ValueError as exc:
            raise ValueError(f'"{field}" entry {entry!r}: {exc}') from None
        if last < first:
            raise ValueError(f'"{field}" range {entry!r} ends before it starts')
        days.update(first + timedelta(days=i) for i in range((last - first).days + 1))
    return frozenset(days)


def load_holiday_file(path: str | os.PathLike) -> HolidayYear:
    """One holiday file (format: docs/holiday-file.md); HolidayFileError names the file and problem."""
    path = Path(path)

    def problem(message: str) -> HolidayFileError:
        return HolidayFileError(f"holiday file {path}: {message}")

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise problem(f"cannot be read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise problem(f"is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise problem("must hold a JSON object")
    missing, unknown = _REQUIRED_KEYS - raw.keys(), raw.keys() - _REQUIRED_KEYS - _OPTIONAL_KEYS
    if missing:
        raise problem(f"missing keys: {', '.join(sorted(missing))}")
    if unknown:
        raise problem(f"unknown keys: {', '.join(sorted(unknown))}")
    year = raw["year"]
    if type(year) is not int:
        raise problem(f'"year" must be an integer, got {year!r}')
    named = _FILE_NAME.fullmatch(path.name)
    if named and named.group(1) != str(year):
        raise problem(f'"year" is {year} but the file name says {named.group(1)!r}; name it holidays-{year}.json')
    if type(raw["provisional"]) is not bool:
        raise problem(f'"provisional" must be true or false, got {raw["provisional"]!r}')
    if not isinstance(raw["source"], str) or not raw["source"].strip():
        raise problem('"source" must say where the dates come from')
    try:
        return HolidayYear(
            year=year,
            holidays=_parse_dates(raw["holidays"], "holidays"),
            workdays=_parse_dates(raw["workdays"], "workdays"),
            provisional=raw["provisional"],
            source=f"{raw['source']} ({path})",
        )
    except ValueError as exc:
        raise problem(str(exc)) from None


def load_holiday_dir(directory: str | os.PathLike) -> list[HolidayYear]:
    """Every holidays-*.json in `directory`; file names pin the year, so one file per year."""
    directory = Path(directory)
    if not directory.is_dir():
        raise HolidayFileError(f"holiday directory {directory} does not exist or is not a directory")
    return [load_holiday_file(path) for path in sorted(directory.glob(HOLIDAY_FILE_GLOB))]


def load_holiday_years(directories: Iterable[str | os.PathLike]) -> dict[int, HolidayYear]:
    """Holiday files by year; a later directory's file replaces an earlier one's for the same year."""
    return {hy.year: hy for directory in directories for hy in load_holiday_dir(directory)}


def calendar_from_env(holiday_dir: Path | None = None) -> WorkingDayCalendar:
    """The calendar a worker uses: chinesecalendar + packaged files + the operator's files.

    The operator directory is `holiday_dir` if given, else $SPOTCHECK_HOLIDAY_DIR (unset or
    empty: none). Its files win over packaged ones for the same year. A directory that is set
    but missing is an error: silently falling back would hide a misconfigured deployment.
    """
    if holiday_dir is None:
        configured = os.environ.get(HOLIDAY_DIR_ENV, "").strip()
        holiday_dir = Path(configured) if configured else None
    directories = [PACKAGED_HOLIDAY_DIR] + ([holiday_dir] if holiday_dir is not None else [])
    return WorkingDayCalendar.official(load_holiday_years(directories).values())
