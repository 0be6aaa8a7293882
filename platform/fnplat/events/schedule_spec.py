"""function.yaml's `schedules:` list: when a function is invoked on its own, and with what.

```yaml
schedules:
  - expression: cron(0 12 * * ? *)     # rate(...), cron(...) or at(...): schedule_expressions.py
    timezone: Europe/Paris               # IANA name; default UTC
    input: {"report": "daily"}           # optional: delivered instead of the Scheduled Event
    name: daily-report                   # optional; default schedule-1, schedule-2, ... by position
    enabled: true                        # optional; default true
  - rate(5 minutes)                      # shorthand: just the expression
```

`input` is any YAML value that JSON can hold; the function receives it as that JSON value (a
YAML string becomes a JSON string). Like EventBridge Scheduler's target input, it is at most
8,192 characters once encoded. Without `input` the function receives EventBridge's Scheduled
Event (records.py). Names follow AWS's schedule names (1-64 of letters, digits, `.`, `_`, `-`),
unique within the function: a schedule's name is its identity for the scheduler (its ticks are
recorded under it), so name schedules whose order may change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from fnplat.errors import SpecError
from fnplat.events.schedule_expressions import ScheduleExpression, parse_schedule_expression, parse_timezone

SCHEDULE_KEYS: tuple[str, ...] = ("expression", "timezone", "input", "name", "enabled")
SCHEDULE_NAME_RE = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")
INPUT_MAX_CHARS = 8192
DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    name: str
    expression: ScheduleExpression
    timezone: str = DEFAULT_TIMEZONE  # a valid IANA name
    input: str | None = None  # JSON text, or None for the Scheduled Event
    enabled: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse_schedules(raw: object) -> tuple[ScheduleSpec, ...]:
    """The `schedules:` value. Raises SpecError naming the entry (`schedules[1].timezone: ...`)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError("schedules must be a list of schedules (mappings with an expression)")
    schedules: list[ScheduleSpec] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        try:
            schedule = _schedule(item, index)
        except SpecError as exc:
            raise SpecError(f"schedules[{index}]: {exc.message}") from None
        if schedule.name in names:
            raise SpecError(f"schedules[{index}]: name {schedule.name!r} is used twice")
        names.add(schedule.name)
        schedules.append(schedule)
    return tuple(schedules)


def _schedule(item: object, index: int) -> ScheduleSpec:
    default_name = f"schedule-{index + 1}"
    if isinstance(item, str):
        return ScheduleSpec(default_name, parse_schedule_expression(item))
    if not isinstance(item, Mapping):
        raise SpecError("must be an expression string or a mapping with an expression")
    for key in item:
        if key not in SCHEDULE_KEYS:
            raise SpecError(f"unknown key {key!r} (allowed: {', '.join(SCHEDULE_KEYS)})")
    if item.get("expression") is None:
        raise SpecError("missing required key 'expression' (e.g. rate(5 minutes))")
    timezone = item.get("timezone")
    if timezone is None:
        timezone = DEFAULT_TIMEZONE
    parse_timezone(timezone)
    return ScheduleSpec(
        name=_name(item.get("name"), default_name),
        expression=parse_schedule_expression(item["expression"]),
        timezone=timezone,
        input=_input(item),
        enabled=_enabled(item.get("enabled")),
    )


def _name(value: object, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not SCHEDULE_NAME_RE.match(value):
        raise SpecError(f"name must be 1-64 letters, digits, '.', '_' or '-', got {value!r}")
    return value


def _input(item: Mapping[Any, Any]) -> str | None:
    if "input" not in item:
        return None
    try:
        text = json.dumps(item["input"], ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise SpecError("input must be JSON data (YAML dates and times are not: quote them)") from None
    if len(text) > INPUT_MAX_CHARS:
        raise SpecError(f"input is {len(text)} characters as JSON, over the {INPUT_MAX_CHARS} limit")
    return text


def _enabled(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise SpecError(f"enabled must be true or false, got {value!r}")
    return value
