"""The grammar of EventBridge's six-field cron expressions, checked here, evaluated elsewhere.

`cron(minutes hours day-of-month month day-of-week year)`, as AWS documents it:

| field | values | wildcards |
|---|---|---|
| minutes | 0-59 | `, - * /` |
| hours | 0-23 | `, - * /` |
| day-of-month | 1-31 | `, - * ? / L W` |
| month | 1-12 or JAN-DEC | `, - * /` |
| day-of-week | 1-7 or SUN-SAT (1 = Sunday) | `, - * ? L #` |
| year | 1970-2199 | `, - * /` |

`?` stands in exactly one of day-of-month and day-of-week (the other one chooses the days).
`L` alone in day-of-month is the month's last day; `nW` the weekday nearest to day n, within
the month; `L` alone in day-of-week is Saturday, `nL` the month's last weekday n; `n#k` its k-th
weekday n. Like Quartz (whose syntax AWS's is), `L`, `W` and `#` stand alone in their field.
Names are case-insensitive. Stricter than AWS where AWS does not say: a range must not run
backwards (`22-2` is refused with a hint, not wrapped), a step must be 1 or more and fit its
range, and `LW` / `L-n` (Quartz extensions AWS does not document) are refused.

The result is a `CronFields`: the days, hours and minutes translated into the 5-field syntax of
croniter (which does the calendar arithmetic, see schedule_expressions.py), with day-of-week
renumbered (AWS 1-7 from Sunday, croniter 0-6 from Sunday), plus the set of allowed years,
which croniter's own year field cannot hold (it stops at 2099).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_YEAR, MAX_YEAR = 1970, 2199

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


class CronSyntaxError(ValueError):
    """One field of a cron expression is wrong; the message names the field and the problem."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names for low, low+1, ...


MINUTES = _Field("minutes", 0, 59)
HOURS = _Field("hours", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = _Field("day-of-week", 1, 7, DAY_NAMES)
YEAR = _Field("year", MIN_YEAR, MAX_YEAR)

_ITEM_RE = re.compile(
    r"^(?:(?P<star>\*)|(?P<start>[A-Z0-9]+)(?:-(?P<end>[A-Z0-9]+))?)(?:/(?P<step>[0-9]+))?$"
)
_NEAREST_WEEKDAY_RE = re.compile(r"^([0-9]+)W$")
_LAST_WEEKDAY_RE = re.compile(r"^([A-Z0-9]+)L$")
_NTH_WEEKDAY_RE = re.compile(r"^([A-Z0-9]+)#([0-9]+)$")


@dataclass(frozen=True, slots=True)
class CronFields:
    """A valid cron expression: croniter's 5-field form of it, and the years it may fire in."""

    text: str  # the six fields as written, single-spaced
    croniter_expression: str  # "minute hour day-of-month month day-of-week" for croniter
    years: frozenset[int] | None  # None: every year (1970-2199)


def parse_cron_fields(body: str) -> CronFields:
    """Validate the inside of `cron(...)`. Raises CronSyntaxError naming the field."""
    parts = body.split()
    if len(parts) != 6:
        raise CronSyntaxError(
            f"needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(parts)}"
        )
    minutes, hours, dom, month, dow, year = (p.upper() for p in parts)
    if (dom == "?") == (dow == "?"):
        raise CronSyntaxError("use '?' in exactly one of day-of-month and day-of-week (e.g. '* * ? *')")
    translated = (
        _plain(minutes, MINUTES),
        _plain(hours, HOURS),
        "*" if dom == "?" else _day_of_month(dom),
        _plain(month, MONTH),
        "*" if dow == "?" else _day_of_week(dow),
    )
    years = None if year == "*" else frozenset(_values(year, YEAR))
    return CronFields(" ".join(parts), " ".join(translated), years)


def _plain(text: str, spec: _Field) -> str:
    """A field of numbers, names, ranges, steps and lists, as croniter's explicit list."""
    if text == "*":
        return "*"
    return ",".join(str(v) for v in sorted(_values(text, spec)))


def _values(text: str, spec: _Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_item_values(item, spec))
    return values


def _item_values(item: str, spec: _Field) -> range:
    if _is_special(item, spec):
        raise CronSyntaxError(
            f"{spec.name}: {item!r} is not allowed here ('?', 'L', 'W' and '#' stand alone in"
            " day-of-month or day-of-week)"
        )
    match = _ITEM_RE.match(item)
    if not match:
        raise CronSyntaxError(f"{spec.name}: {item!r} is not a value, range or step ({_hint(spec)})")
    if match["star"]:
        start, end = spec.low, spec.high
    else:
        start = _number(match["start"], spec)
        # `5/15` means from 5 to the end of the field, every 15, as in Quartz.
        end = _number(match["end"], spec) if match["end"] else (spec.high if match["step"] else start)
    if start > end:
        raise CronSyntaxError(
            f"{spec.name}: range {item!r} runs backwards (write it as two ranges, e.g. "
            f"'{match['start']}-{_show(spec, spec.high)},{_show(spec, spec.low)}-{match['end']}')"
        )
    step = 1
    if match["step"]:
        step = int(match["step"])
        if not 1 <= step <= spec.high - spec.low + 1:
            raise CronSyntaxError(
                f"{spec.name}: step {step} in {item!r} must be 1-{spec.high - spec.low + 1}"
            )
    return range(start, end + 1, step)


def _is_special(item: str, spec: _Field) -> bool:
    if item in ("?", "L") or "#" in item or _NEAREST_WEEKDAY_RE.match(item):
        return True
    last = _LAST_WEEKDAY_RE.match(item)  # `5L`, `FRIL`; not a name ending in L such as JUL
    if last is None or item in spec.names:
        return False
    return last.group(1).isdigit() or last.group(1) in DAY_NAMES


def _number(token: str, spec: _Field) -> int:
    if token in spec.names:
        return spec.low + spec.names.index(token)
    if not token.isdigit():
        raise CronSyntaxError(f"{spec.name}: {token!r} is not a number or name ({_hint(spec)})")
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise CronSyntaxError(f"{spec.name}: {value} is out of range ({_hint(spec)})")
    return value


def _show(spec: _Field, value: int) -> str:
    return spec.names[value - spec.low] if spec.names else str(value)


def _hint(spec: _Field) -> str:
    names = f" or {spec.names[0]}-{spec.names[-1]}" if spec.names else ""
    return f"{spec.low}-{spec.high}{names}"


def _day_of_month(text: str) -> str:
    if text == "L":
        return "L"
    nearest = _NEAREST_WEEKDAY_RE.match(text)
    if nearest:
        return f"{_number(nearest.group(1), DAY_OF_MONTH)}W"
    if text in ("LW",) or text.startswith("L-"):
        raise CronSyntaxError(f"day-of-month: {text!r} is not supported (use L, nW or a day list)")
    return _plain(text, DAY_OF_MONTH)


def _day_of_week(text: str) -> str:
    # croniter counts 0-6 from Sunday, AWS 1-7 from Sunday.
    if text == "L":
        return "6"  # Quartz: `L` alone in day-of-week is its last day, Saturday
    last = _LAST_WEEKDAY_RE.match(text)
    if last:
        return f"L{_number(last.group(1), DAY_OF_WEEK) - 1}"
    nth = _NTH_WEEKDAY_RE.match(text)
    if nth:
        k = int(nth.group(2))
        if not 1 <= k <= 5:
            raise CronSyntaxError(f"day-of-week: {text!r}: the week of the month must be 1-5")
        return f"{_number(nth.group(1), DAY_OF_WEEK) - 1}#{k}"
    if text == "*":
        return "*"
    return ",".join(str(v - 1) for v in sorted(_values(text, DAY_OF_WEEK)))
