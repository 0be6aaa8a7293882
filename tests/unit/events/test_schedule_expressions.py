"""Schedule expressions: parsing, fire times against an independent brute-force reading of AWS's
rules, time zones and daylight saving time."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnplat.errors import SpecError
from fnplat.events.schedule_expressions import (
    EPOCH,
    AtExpression,
    CronExpression,
    RateExpression,
    fire_times,
    next_fire_time,
    parse_schedule_expression,
    parse_timezone,
)

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
AFTER = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def nearest_weekday(year: int, month: int, day: int) -> int:
    """Quartz's `nW`: the weekday nearest to day n, never leaving the month."""
    last = calendar.monthrange(year, month)[1]
    d = date(year, month, min(day, last))
    if d.weekday() == 5:  # Saturday: Friday before, unless that is the previous month
        return d.day - 1 if d.day > 1 else d.day + 2
    if d.weekday() == 6:  # Sunday: Monday after, unless that is the next month
        return d.day + 1 if d.day < last else d.day - 2
    return d.day


def last_day(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


@dataclass(frozen=True)
class Case:
    expression: str
    days: Callable[[date], bool]  # which days fire (AWS's meaning, written independently)
    times: Callable[[int, int], bool]  # which (hour, minute) of those days fire
    window_days: int  # how far to compare every fire time


CRON_CASES = [
    Case("cron(0 12 * * ? *)", lambda d: True, lambda h, m: (h, m) == (12, 0), 10),
    Case("cron(0/15 * * * ? *)", lambda d: True, lambda h, m: m % 15 == 0, 2),
    Case("cron(5/20 8-10 * * ? *)", lambda d: True, lambda h, m: m in (5, 25, 45) and 8 <= h <= 10, 3),
    Case("cron(0,30 9,17 * * ? *)", lambda d: True, lambda h, m: m in (0, 30) and h in (9, 17), 3),
    Case("cron(0 12 ? * MON-FRI *)", lambda d: d.weekday() < 5, lambda h, m: (h, m) == (12, 0), 21),
    Case("cron(0 9 ? * 2,4,6 *)", lambda d: d.weekday() in (0, 2, 4), lambda h, m: (h, m) == (9, 0), 21),
    Case("cron(0 9 ? * 1 *)", lambda d: d.weekday() == 6, lambda h, m: (h, m) == (9, 0), 30),  # 1 = SUN
    Case("cron(0 9 ? * 7 *)", lambda d: d.weekday() == 5, lambda h, m: (h, m) == (9, 0), 30),  # 7 = SAT
    Case("cron(0 9 ? * sun,sat *)", lambda d: d.weekday() >= 5, lambda h, m: (h, m) == (9, 0), 30),
    Case("cron(0 9 ? * */2 *)", lambda d: d.weekday() in (6, 1, 3, 5), lambda h, m: (h, m) == (9, 0), 21),
    Case("cron(0 0 L * ? *)", lambda d: d.day == last_day(d), lambda h, m: (h, m) == (0, 0), 800),
    Case("cron(0 0 ? * L *)", lambda d: d.weekday() == 5, lambda h, m: (h, m) == (0, 0), 30),
    Case(
        "cron(0 0 ? * 6L *)",  # the month's last Friday
        lambda d: d.weekday() == 4 and d.day + 7 > last_day(d),
        lambda h, m: (h, m) == (0, 0),
        400,
    ),
    Case(
        "cron(0 10 ? * 3#2 *)",
        lambda d: d.weekday() == 1 and 8 <= d.day <= 14,
        lambda h, m: (h, m) == (10, 0),
        400,
    ),
    Case(
        "cron(0 10 ? * MON#1 *)",
        lambda d: d.weekday() == 0 and d.day <= 7,
        lambda h, m: (h, m) == (10, 0),
        400,
    ),
    Case(
        "cron(0 10 ? * fri#5 *)",
        lambda d: d.weekday() == 4 and d.day > 28,
        lambda h, m: (h, m) == (10, 0),
        800,
    ),
    Case(
        "cron(0 10 15W * ? *)",
        lambda d: d.day == nearest_weekday(d.year, d.month, 15),
        lambda h, m: (h, m) == (10, 0),
        800,
    ),
    Case(
        "cron(0 10 1W * ? *)",
        lambda d: d.day == nearest_weekday(d.year, d.month, 1),
        lambda h, m: (h, m) == (10, 0),
        800,
    ),
    Case(
        "cron(0 10 31W * ? *)",  # short months: the weekday nearest their last day (croniter clamps)
        lambda d: d.day == nearest_weekday(d.year, d.month, 31),
        lambda h, m: (h, m) == (10, 0),
        800,
    ),
    Case(
        "cron(0 8 1,15 JAN,JUL ? *)",
        lambda d: d.day in (1, 15) and d.month in (1, 7),
        lambda h, m: (h, m) == (8, 0),
        800,
    ),
    Case("cron(0 8 1-7/3 * ? *)", lambda d: d.day in (1, 4, 7), lambda h, m: (h, m) == (8, 0), 100),
    Case("cron(0 8 */10 * ? *)", lambda d: d.day in (1, 11, 21, 31), lambda h, m: (h, m) == (8, 0), 100),
    Case("cron(0 8 ? * * *)", lambda d: True, lambda h, m: (h, m) == (8, 0), 10),
    Case("cron(0 8 * jun-aug ? *)", lambda d: d.month in (6, 7, 8), lambda h, m: (h, m) == (8, 0), 400),
    Case("cron(30 2 * * ? 2027)", lambda d: d.year == 2027, lambda h, m: (h, m) == (2, 30), 800),
    Case(
        "cron(0 0 1 * ? 2026,2028)",
        lambda d: d.year in (2026, 2028) and d.day == 1,
        lambda h, m: h == m == 0,
        1200,
    ),
]


def brute_force(case: Case, after: datetime) -> list[datetime]:
    """Every fire time in the window by checking each day and minute against the case's meaning."""
    found = []
    start = after.date()
    for offset in range(case.window_days + 1):
        day = start + timedelta(days=offset)
        if not case.days(day):
            continue
        for minute in range(24 * 60):
            h, m = divmod(minute, 60)
            if case.times(h, m):
                instant = datetime.combine(day, time(h, m), tzinfo=UTC)
                if instant > after:
                    found.append(instant)
    end = datetime.combine(start + timedelta(days=case.window_days + 1), time(), tzinfo=UTC)
    return [t for t in found if t < end]


@pytest.mark.parametrize("case", CRON_CASES, ids=[c.expression for c in CRON_CASES])
def test_cron_fire_times_match_aws_meaning(case: Case) -> None:
    expected = brute_force(case, AFTER)
    assert expected, "the window must hold at least one fire time"
    end = datetime.combine(AFTER.date() + timedelta(days=case.window_days + 1), time(), tzinfo=UTC)
    expression = parse_schedule_expression(case.expression)
    got = []
    for t in fire_times(expression, AFTER):
        if t >= end:
            break
        got.append(t)
    assert got == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 12 * * ? *)", utc(2026, 1, 1, 12, 0), utc(2026, 1, 2, 12, 0)),  # strictly after
        ("cron(0 12 * * ? *)", utc(2026, 1, 1, 11, 59, 59), utc(2026, 1, 1, 12, 0)),
        ("cron(* * * * ? *)", utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 0, 1)),
        ("cron(0 0 29 2 ? *)", utc(2026, 1, 1), utc(2028, 2, 29)),  # leap day
        ("cron(0 0 1 1 ? 2150)", utc(2026, 1, 1), utc(2150, 1, 1)),  # beyond croniter's 2099
        ("cron(0 0 1 1 ? 2199)", utc(2198, 6, 1), utc(2199, 1, 1)),
        ("cron(0 0 1 1 ? 2027-2199/100)", utc(2026, 1, 1), utc(2027, 1, 1)),
        ("cron(0 0 30 2 ? *)", utc(2026, 1, 1), None),  # 30 February never comes
        ("cron(0 0 1 1 ? 2025)", utc(2026, 1, 1), None),  # in the past
        ("cron(59 23 31 DEC ? 2199)", utc(2199, 12, 31, 23, 59), None),  # the last possible tick, passed
        ("cron(0 0 ? 2 MON#5 *)", utc(2026, 1, 1), utc(2044, 2, 29)),  # a fifth Monday in February
    ],
)
def test_next_fire_time_edges(expression: str, after: datetime, expected: datetime | None) -> None:
    assert next_fire_time(parse_schedule_expression(expression), after) == expected


@pytest.mark.parametrize(
    ("expression", "after", "start", "expected"),
    [
        # Without a start, ticks count from 1970-01-01T00:00Z: the same in every process.
        ("rate(5 minutes)", utc(2026, 1, 1, 0, 0), None, [utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 10)]),
        ("rate(5 minutes)", utc(2026, 1, 1, 0, 4, 59), None, [utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 10)]),
        ("rate(1 minute)", utc(2026, 1, 1, 0, 0, 1), None, [utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2)]),
        ("rate(2 hours)", utc(2026, 1, 1, 1, 0), None, [utc(2026, 1, 1, 2), utc(2026, 1, 1, 4)]),
        ("rate(1 day)", utc(2026, 1, 1, 0, 0), None, [utc(2026, 1, 2), utc(2026, 1, 3)]),
        # With a start (the schedule's creation time): it fires at the start, then every period.
        (
            "rate(10 minutes)",
            utc(2026, 1, 1),
            utc(2026, 1, 1, 9, 3, 20),
            [utc(2026, 1, 1, 9, 3, 20), utc(2026, 1, 1, 9, 13, 20)],
        ),
        (
            "rate(10 minutes)",
            utc(2026, 1, 1, 9, 3, 20),
            utc(2026, 1, 1, 9, 3, 20),
            [utc(2026, 1, 1, 9, 13, 20), utc(2026, 1, 1, 9, 23, 20)],
        ),
        ("rate(3 days)", utc(2026, 1, 10), utc(2026, 1, 1), [utc(2026, 1, 13), utc(2026, 1, 16)]),
        # A start in the future holds back cron schedules too.
        (
            "cron(0 12 * * ? *)",
            utc(2026, 1, 1),
            utc(2026, 1, 5, 12),
            [utc(2026, 1, 5, 12), utc(2026, 1, 6, 12)],
        ),
        ("at(2026-06-01T00:00:00)", utc(2026, 1, 1), utc(2026, 7, 1), []),
    ],
)
def test_rate_and_start(
    expression: str, after: datetime, start: datetime | None, expected: list[datetime]
) -> None:
    times = list(islice(fire_times(parse_schedule_expression(expression), after, start=start), 2))
    assert times == expected


def test_rate_is_elapsed_time_across_daylight_saving() -> None:
    # rate(1 day) is every 24 hours, as AWS documents: the wall-clock time shifts with DST.
    ticks = list(
        islice(
            fire_times(
                parse_schedule_expression("rate(1 day)"),
                utc(2026, 3, 7),
                tz=NEW_YORK,
                start=utc(2026, 3, 7, 12),
            ),
            3,
        )
    )
    assert [t - ticks[0] for t in ticks] == [timedelta(0), timedelta(days=1), timedelta(days=2)]
    assert [t.astimezone(NEW_YORK).hour for t in ticks] == [7, 8, 8]  # 12:00Z: 07:00 EST, then 08:00 EDT


def test_at_fires_once_in_its_time_zone() -> None:
    at = parse_schedule_expression("at(2027-01-01T00:00:00)")
    assert isinstance(at, AtExpression)
    assert next_fire_time(at, utc(2026, 1, 1)) == utc(2027, 1, 1)
    assert next_fire_time(at, utc(2026, 1, 1), tz=PARIS) == utc(2026, 12, 31, 23)
    assert next_fire_time(at, utc(2027, 1, 1)) is None  # strictly after
    assert list(fire_times(at, utc(2026, 1, 1))) == [utc(2027, 1, 1)]


# ---- daylight saving time: EventBridge Scheduler's documented rule ----------------------------------
# Spring forward (America/New_York, 2026-03-08 02:00 -> 03:00): a wall time in the gap does not fire.
# Fall back (2026-11-01 02:00 -> 01:00): a wall time shown twice fires once, at its first reading.


def local_times(expression: str, after: datetime, tz: ZoneInfo, count: int) -> list[str]:
    times = islice(fire_times(parse_schedule_expression(expression), after, tz=tz), count)
    return [t.astimezone(tz).isoformat() for t in times]


def test_daily_0230_is_skipped_on_the_spring_forward_day() -> None:
    assert local_times("cron(30 2 * * ? *)", utc(2026, 3, 7), NEW_YORK, 3) == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-09T02:30:00-04:00",  # 2026-03-08 02:30 does not exist in New York
        "2026-03-10T02:30:00-04:00",
    ]


def test_daily_0230_runs_once_on_the_fall_back_day() -> None:
    # 02:30 exists once on 2026-11-01 (clocks go from 01:59:59 EDT back to 01:00 EST).
    assert local_times("cron(30 2 * * ? *)", utc(2026, 10, 31), NEW_YORK, 3) == [
        "2026-10-31T02:30:00-04:00",
        "2026-11-01T02:30:00-05:00",
        "2026-11-02T02:30:00-05:00",
    ]


def test_daily_0130_runs_once_at_its_first_reading_on_the_fall_back_day() -> None:
    assert local_times("cron(30 1 * * ? *)", utc(2026, 10, 31), NEW_YORK, 3) == [
        "2026-10-31T01:30:00-04:00",
        "2026-11-01T01:30:00-04:00",  # not again at 01:30 EST
        "2026-11-02T01:30:00-05:00",
    ]


def test_every_30_minutes_over_the_fall_back_hour_does_not_repeat_it() -> None:
    # 01:00 EDT is 05:00Z; the repeated hour 01:00-01:59 EST (06:00Z-06:59Z) fires nothing.
    assert local_times("cron(0/30 * * * ? *)", utc(2026, 11, 1, 4, 59), NEW_YORK, 5) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T02:30:00-05:00",
        "2026-11-01T03:00:00-05:00",
    ]


def test_after_inside_the_second_reading_of_the_repeated_hour() -> None:
    # 06:15Z is 01:15 EST, the second 01:15 of the day: the first-reading 01:30 EDT has passed.
    assert local_times("cron(30 1 * * ? *)", utc(2026, 11, 1, 6, 15), NEW_YORK, 1) == [
        "2026-11-02T01:30:00-05:00"
    ]


def test_every_30_minutes_over_the_spring_forward_gap() -> None:
    assert local_times("cron(0/30 * * * ? *)", utc(2026, 3, 8, 6, 29), NEW_YORK, 3) == [
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00",  # 02:00 and 02:30 do not exist
        "2026-03-08T03:30:00-04:00",
    ]


def test_at_in_the_spring_forward_gap_fires_at_the_shifted_instant() -> None:
    at = parse_schedule_expression("at(2026-03-08T02:30:00)")
    fired = next_fire_time(at, utc(2026, 1, 1), tz=NEW_YORK)
    assert fired is not None and fired.astimezone(NEW_YORK).isoformat() == "2026-03-08T03:30:00-04:00"


def test_a_wall_time_that_never_exists_never_fires() -> None:
    # 02:00 on the second Sunday of March is when New York's clocks jump to 03:00, every year.
    never = parse_schedule_expression("cron(0 2 ? 3 1#2 *)")
    assert next_fire_time(never, utc(2026, 1, 1), tz=NEW_YORK) is None
    assert next_fire_time(never, utc(2026, 1, 1)) == utc(2026, 3, 8, 2)  # in UTC it exists


def test_paris_noon_is_noon_in_winter_and_summer() -> None:
    assert local_times("cron(0 12 ? * SUN *)", utc(2026, 3, 22), PARIS, 2) == [
        "2026-03-22T12:00:00+01:00",
        "2026-03-29T12:00:00+02:00",
    ]


# ---- parsing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rate(1 minute)", RateExpression(1, "minute")),
        ("rate(5 minutes)", RateExpression(5, "minute")),
        ("rate(1 hour)", RateExpression(1, "hour")),
        ("rate(12 hours)", RateExpression(12, "hour")),
        ("rate(1 day)", RateExpression(1, "day")),
        ("rate(30 days)", RateExpression(30, "day")),
        ("  rate( 5  minutes )  ", RateExpression(5, "minute")),
        ("at(2027-01-01T00:00:00)", AtExpression(datetime(2027, 1, 1))),
    ],
)
def test_parse_valid(text: str, expected: object) -> None:
    assert parse_schedule_expression(text) == expected


def test_texts_round_trip() -> None:
    for text in ("rate(1 minute)", "rate(7 days)", "cron(0 12 * * ? *)", "at(2027-01-01T00:00:00)"):
        expression = parse_schedule_expression(text)
        assert expression.text == text
    cron = parse_schedule_expression("cron(0  12 * *  ? *)")
    assert isinstance(cron, CronExpression) and cron.text == "cron(0 12 * * ? *)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rate(1 minutes)", "with 1 the unit is singular: rate(1 minute)"),
        ("rate(5 minute)", "with 5 the unit is plural: rate(5 minutes)"),
        ("rate(0 minutes)", "positive integer"),
        ("rate(-1 minutes)", "must be rate(value unit)"),
        ("rate(1.5 hours)", "must be rate(value unit)"),
        ("rate(5 seconds)", "unit 'seconds' must be minute(s), hour(s) or day(s)"),
        ("rate(5 weeks)", "unit 'weeks'"),
        ("rate(5)", "must be rate(value unit)"),
        ("rate(99999999999999999999 days)", "schedule expression"),
        ("RATE(5 minutes)", "must be rate(value unit), cron(six fields) or at"),
        ("every 5 minutes", "must be rate(value unit), cron(six fields) or at"),
        ("", "must be rate(value unit)"),
        ("at(2027-01-01)", "must be at(yyyy-mm-ddThh:mm:ss)"),
        ("at(2027-13-01T00:00:00)", "month must be in 1..12"),
        ("at(2027-02-30T00:00:00)", "day is out of range"),
        ("at(2027-01-01T24:00:00)", "schedule expression"),
        ("at(2027-01-01T00:00:00Z)", "must be at(yyyy-mm-ddThh:mm:ss)"),
        ("cron(0 12 * * *)", "needs 6 fields"),
        ("cron(0 12 * * ? * *)", "needs 6 fields"),
        ("cron(0 12 * * * *)", "use '?' in exactly one of day-of-month and day-of-week"),
        ("cron(0 12 ? * ? *)", "use '?' in exactly one"),
        ("cron(0 12 1 * MON *)", "use '?' in exactly one"),
        ("cron(60 12 * * ? *)", "minutes: 60 is out of range (0-59)"),
        ("cron(0 24 * * ? *)", "hours: 24 is out of range (0-23)"),
        ("cron(0 12 0 * ? *)", "day-of-month: 0 is out of range (1-31)"),
        ("cron(0 12 32 * ? *)", "day-of-month: 32 is out of range"),
        ("cron(0 12 * 13 ? *)", "month: 13 is out of range (1-12 or JAN-DEC)"),
        ("cron(0 12 * FOO ? *)", "month: 'FOO' is not a number or name"),
        ("cron(0 12 ? * 0 *)", "day-of-week: 0 is out of range (1-7 or SUN-SAT)"),
        ("cron(0 12 ? * 8 *)", "day-of-week: 8 is out of range"),
        ("cron(0 12 * * ? 1969)", "year: 1969 is out of range (1970-2199)"),
        ("cron(0 12 * * ? 2200)", "year: 2200 is out of range"),
        (
            "cron(0 22-2 * * ? *)",
            "hours: range '22-2' runs backwards (write it as two ranges, e.g. '22-23,0-2')",
        ),
        (
            "cron(0 12 ? * FRI-MON *)",
            "range 'FRI-MON' runs backwards (write it as two ranges, e.g. 'FRI-SAT,SUN-MON')",
        ),
        ("cron(0/0 12 * * ? *)", "minutes: step 0 in '0/0' must be 1-60"),
        ("cron(0/61 12 * * ? *)", "step 61"),
        ("cron(0 12 ? * 3#6 *)", "the week of the month must be 1-5"),
        ("cron(0 12 ? * 8#1 *)", "day-of-week: 8 is out of range"),
        ("cron(0 12 ? * 3#1,6#3 *)", "day-of-week: '3#1' is not allowed here"),
        ("cron(0 12 ? * 2L,3 *)", "day-of-week: '2L' is not allowed here"),
        ("cron(0 12 L,15 * ? *)", "day-of-month: 'L' is not allowed here"),
        ("cron(0 12 15W,1 * ? *)", "day-of-month: '15W' is not allowed here"),
        ("cron(0 12 LW * ? *)", "day-of-month: 'LW' is not supported"),
        ("cron(0 12 L-3 * ? *)", "day-of-month: 'L-3' is not supported"),
        ("cron(0 12 32W * ? *)", "day-of-month: 32 is out of range"),
        ("cron(L 12 * * ? *)", "minutes: 'L' is not allowed here"),
        ("cron(0 12 * * ? ?)", "year: '?' is not allowed here"),
        ("cron(0 12 1,,2 * ? *)", "day-of-month: '' is not a value, range or step"),
        ("cron(0 12 * * ? */0)", "year: step 0"),
        ("cron(a 12 * * ? *)", "minutes: 'A' is not a number or name (0-59)"),
    ],
)
def test_invalid_expressions_name_the_expression_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_schedule_expression(text)
    assert caught.value.message.startswith(f"schedule expression {text!r}: ")
    assert problem in caught.value.message


def test_non_string_expression_is_refused() -> None:
    with pytest.raises(SpecError, match="must be a string"):
        parse_schedule_expression(5)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_time(parse_schedule_expression("rate(1 day)"), datetime(2026, 1, 1))


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])
def test_known_time_zones(name: str) -> None:
    assert parse_timezone(name) == ZoneInfo(name)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "Europe/", 5])
def test_unknown_time_zones_are_refused(name: object) -> None:
    with pytest.raises(SpecError, match="time zone"):
        parse_timezone(name)  # type: ignore[arg-type]


# ---- properties over many expressions and instants around DST changes ------------------------------

ZONES = [
    ZoneInfo(name) for name in ("America/New_York", "Europe/Paris", "Australia/Lord_Howe", "Asia/Kolkata")
]


@settings(max_examples=150, deadline=None)
@given(
    minute=st.sampled_from(["0", "30", "0/15", "*/20", "5,35", "59"]),
    hour=st.sampled_from(["*", "1", "2", "0-3", "*/2", "12"]),
    days=st.sampled_from([("*", "?"), ("?", "SUN"), ("L", "?"), ("?", "1#2"), ("?", "1L"), ("1W", "?")]),
    month=st.sampled_from(["*", "MAR,APR,OCT,NOV", "3", "10-11"]),
    zone=st.sampled_from(ZONES),
    offset_hours=st.integers(min_value=0, max_value=24 * 365 * 2),
)
def test_fire_times_in_any_zone_are_real_increasing_and_never_repeat_a_wall_time(
    minute: str, hour: str, days: tuple[str, str], month: str, zone: ZoneInfo, offset_hours: int
) -> None:
    expression = parse_schedule_expression(f"cron({minute} {hour} {days[0]} {month} {days[1]} *)")
    after = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=offset_hours)
    times = list(islice(fire_times(expression, after, tz=zone), 40))
    if not times:
        # Only a wall time that the clocks always skip: 02:00 on the second Sunday of March in
        # New York (the day and hour of the change) never exists, so it never fires.
        assert next_fire_time(expression, after, tz=zone) is None
        return
    assert times[0] > after
    assert all(a < b for a, b in pairwise(times))
    walls = [t.astimezone(zone).replace(tzinfo=None) for t in times]
    assert len(set(walls)) == len(walls)  # a repeated hour does not fire twice
    for t, wall in zip(times, walls, strict=True):
        assert wall.second == 0 and wall.microsecond == 0
        # A real wall time of the zone (not in a gap): it maps back to the same instant.
        assert wall.replace(tzinfo=zone).astimezone(UTC) == t
    assert next_fire_time(expression, after, tz=zone) == times[0]
    if len(times) > 1:
        assert next_fire_time(expression, times[0], tz=zone) == times[1]


@settings(max_examples=200, deadline=None)
@given(
    value=st.integers(min_value=1, max_value=500),
    unit=st.sampled_from(["minute", "hour", "day"]),
    after_s=st.integers(min_value=0, max_value=10**10),
    start_s=st.one_of(st.none(), st.integers(min_value=0, max_value=10**10)),
)
def test_rate_ticks_are_the_anchor_plus_whole_periods(
    value: int, unit: str, after_s: int, start_s: int | None
) -> None:
    expression = parse_schedule_expression(f"rate({value} {unit}{'' if value == 1 else 's'})")
    assert isinstance(expression, RateExpression)
    after = EPOCH + timedelta(seconds=after_s)
    start = None if start_s is None else EPOCH + timedelta(seconds=start_s)
    first, second = islice(fire_times(expression, after, start=start), 2)
    anchor = start or EPOCH
    assert first > after and first >= anchor
    assert (first - anchor) % expression.period == timedelta(0)
    assert second - first == expression.period
    assert first - expression.period <= max(after, anchor - expression.period)
