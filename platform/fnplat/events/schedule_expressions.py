"""EventBridge Scheduler expressions: parse `rate(...)`, `cron(...)` and `at(...)`, and compute
when a schedule fires.

- `rate(value unit)`: unit `minute|minutes|hour|hours|day|days`, the singular only with 1 and
  the plural only above it (AWS refuses `rate(1 minutes)` and `rate(5 minute)`). A rate is
  elapsed time: `rate(1 day)` is every 24 hours whatever the clocks do, as AWS documents, so its
  time zone plays no part. It fires at `start` and every period after it; without a start the
  ticks are counted from 1970-01-01T00:00Z, so every process computes the same ticks (AWS starts
  a rate schedule at once when created: pass the schedule's creation time as `start` for that).
- `cron(min hour day-of-month month day-of-week year)`: see cron_syntax.py. Evaluated on the
  wall clock of the schedule's time zone (UTC by default).
- `at(yyyy-mm-ddThh:mm:ss)`: once, at that wall-clock time of the schedule's time zone.

Daylight saving time, as EventBridge Scheduler documents it for cron: a wall-clock time the
clocks skip does not fire (a daily `cron(30 2 * * ? *)` in America/New_York does not run on
the spring-forward day: 02:30 does not exist then), and a wall-clock time that happens twice
fires once, at its first occurrence (on the fall-back day the 01:30 job runs at 01:30 EDT, not
again at 01:30 EST; every-15-minutes jobs likewise do not repeat the repeated hour). A
one-time `at(...)` in the skipped hour is not dropped: it fires at the instant that wall time
names under the offset before the change (02:30 on the spring-forward day is 03:30 EDT).

The calendar arithmetic of cron (last day of month, nearest weekday, n-th weekday, ...) is done
by croniter (pallets-eco, maintained), on naive wall-clock times only: its own time zone
handling is not used, our DST rule above is applied to what it yields. It is imported lazily,
because importing it costs ~50 ms and parsing a function.yaml (the CLI's deploy) never needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fnplat.errors import SpecError
from fnplat.events.cron_syntax import MAX_YEAR, CronFields, CronSyntaxError, parse_cron_fields

if TYPE_CHECKING:
    from croniter import croniter

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RateUnit = Literal["minute", "hour", "day"]
_UNIT_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}

_RATE_RE = re.compile(r"^rate\(\s*([0-9]+)\s+([a-z]+)\s*\)$")
_CRON_RE = re.compile(r"^cron\((.*)\)$")
_AT_RE = re.compile(r"^at\(([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\)$")
# Croniter gives up after this many years without a match; enough to reach AWS's last year.
_CRONITER_HORIZON_YEARS = MAX_YEAR - 1970 + 1


@dataclass(frozen=True, slots=True)
class RateExpression:
    value: int
    unit: RateUnit

    @property
    def period(self) -> timedelta:
        return timedelta(seconds=self.value * _UNIT_SECONDS[self.unit])

    @property
    def text(self) -> str:
        return f"rate({self.value} {self.unit}{'' if self.value == 1 else 's'})"


@dataclass(frozen=True, slots=True)
class CronExpression:
    fields: CronFields

    @property
    def text(self) -> str:
        return f"cron({self.fields.text})"


@dataclass(frozen=True, slots=True)
class AtExpression:
    local_time: datetime  # naive: a wall-clock time in the schedule's time zone

    @property
    def text(self) -> str:
        return f"at({self.local_time.strftime('%Y-%m-%dT%H:%M:%S')})"


ScheduleExpression = RateExpression | CronExpression | AtExpression


def parse_schedule_expression(text: str) -> ScheduleExpression:
    """`rate(...)`, `cron(...)` or `at(...)`. Raises SpecError naming the expression."""
    if not isinstance(text, str):
        raise SpecError(f"schedule expression must be a string like 'rate(5 minutes)', got {text!r}")
    stripped = text.strip()
    try:
        return _parse(stripped)
    except (CronSyntaxError, ValueError, OverflowError) as exc:
        raise SpecError(f"schedule expression {text!r}: {exc}") from None


def _parse(text: str) -> ScheduleExpression:
    if text.startswith("rate("):
        return _parse_rate(text)
    cron = _CRON_RE.match(text)
    if cron:
        return CronExpression(parse_cron_fields(cron.group(1)))
    if text.startswith("at("):
        at = _AT_RE.match(text)
        if not at:
            raise ValueError("must be at(yyyy-mm-ddThh:mm:ss), e.g. at(2027-01-01T00:00:00)")
        # datetime() says which part is wrong ("month must be in 1..12"); strptime would not.
        year, month, day, hour, minute, second = (int(part) for part in at.groups())
        return AtExpression(datetime(year, month, day, hour, minute, second))
    raise ValueError("must be rate(value unit), cron(six fields) or at(yyyy-mm-ddThh:mm:ss)")


def _parse_rate(text: str) -> RateExpression:
    match = _RATE_RE.match(text)
    if not match:
        raise ValueError("must be rate(value unit), e.g. rate(5 minutes)")
    value, unit = int(match.group(1)), match.group(2)
    if value < 1:
        raise ValueError("the value must be a positive integer")
    singular = unit.removesuffix("s")
    if singular not in _UNIT_SECONDS:
        raise ValueError(f"unit {unit!r} must be minute(s), hour(s) or day(s)")
    if value == 1 and unit != singular:
        raise ValueError(f"with 1 the unit is singular: rate(1 {singular})")
    if value > 1 and unit == singular:
        raise ValueError(f"with {value} the unit is plural: rate({value} {singular}s)")
    expression = RateExpression(value, singular)  # type: ignore[arg-type]  # checked just above
    _ = EPOCH + expression.period  # OverflowError here, not when the scheduler meets it
    return expression


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone name (`Europe/Paris`, `UTC`). Raises SpecError naming it."""
    if not isinstance(name, str) or not name:
        raise SpecError(f"time zone must be an IANA name like 'Europe/Paris', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(
            f"time zone {name!r} is not a known IANA time zone (e.g. 'America/New_York')"
        ) from None


def next_fire_time(
    expression: ScheduleExpression,
    after: datetime,
    *,
    tz: tzinfo = UTC,
    start: datetime | None = None,
) -> datetime | None:
    """The first fire time strictly after `after` (and not before `start`), in UTC; None when the
    schedule never fires again. `after` and `start` must be timezone-aware."""
    return next(fire_times(expression, after, tz=tz, start=start), None)


def fire_times(
    expression: ScheduleExpression,
    after: datetime,
    *,
    tz: tzinfo = UTC,
    start: datetime | None = None,
) -> Iterator[datetime]:
    """Every fire time strictly after `after` (and not before `start`), in order, in UTC."""
    after = _utc(after, "after")
    if start is not None:
        start = _utc(start, "start")
    if isinstance(expression, RateExpression):
        return _rate_times(expression.period, after, start or EPOCH)
    if start is not None and start > after:
        after = start - timedelta(microseconds=1)
    if isinstance(expression, AtExpression):
        instant = expression.local_time.replace(tzinfo=tz).astimezone(UTC)
        return iter([instant] if instant > after else [])
    return _cron_times(expression.fields, after, tz)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def _rate_times(period: timedelta, after: datetime, anchor: datetime) -> Iterator[datetime]:
    tick = anchor if after < anchor else anchor + ((after - anchor) // period + 1) * period
    try:
        while True:
            yield tick
            tick += period
    except OverflowError:  # past year 9999
        return


def _cron_times(fields: CronFields, after: datetime, tz: tzinfo) -> Iterator[datetime]:
    wall_after = after.astimezone(tz).replace(tzinfo=None)
    years = fields.years
    if years is not None:
        first = min((y for y in years if y >= wall_after.year), default=None)
        if first is None:
            return
        if first > wall_after.year:
            wall_after = datetime(first, 1, 1) - timedelta(minutes=1)
    walls = _croniter(fields.croniter_expression, wall_after)
    while True:
        wall = _next_wall(walls)
        if wall is None or wall.year > MAX_YEAR:
            return
        if years is not None and wall.year not in years:
            later = min((y for y in years if y > wall.year), default=None)
            if later is None:
                return
            walls = _croniter(fields.croniter_expression, datetime(later, 1, 1) - timedelta(minutes=1))
            continue
        instant = _instant(wall, tz)
        # Skipped: a wall time the clocks jump over, or the earlier reading of a repeated hour
        # when `after` lies in its second reading.
        if instant is not None and instant > after:
            yield instant


def _instant(wall: datetime, tz: tzinfo) -> datetime | None:
    """The UTC instant of a wall-clock time: its first reading when the clocks show it twice,
    None when they skip it."""
    instant = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0: the first of two readings
    if instant.astimezone(tz).replace(tzinfo=None) != wall:
        return None
    return instant


def _croniter(expression: str, start: datetime) -> croniter:
    from croniter import croniter  # lazy: see the module docstring

    return croniter(expression, start, max_years_between_matches=_CRONITER_HORIZON_YEARS)


def _next_wall(walls: croniter) -> datetime | None:
    from croniter import CroniterBadDateError

    try:
        wall = walls.get_next(datetime)
    except CroniterBadDateError:  # no match within the horizon, e.g. cron(0 0 30 2 ? *)
        return None
    except OverflowError:
        return None
    assert isinstance(wall, datetime)
    return wall
