"""function.yaml's schedules: and async: keys, through the spec reader."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from fnplat.errors import SpecError
from fnplat.events.invoke_config import DEAD_LETTER_QUEUE, EventInvokeConfig, FunctionDestination
from fnplat.events.schedule_expressions import RateExpression, next_fire_time
from fnplat.events.schedule_spec import ScheduleSpec, parse_schedules
from fnplat.spec import parse_spec

BASE = "name: report\nruntime: python3.11\nhandler: app.handler\n"


def spec_error(extra: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(BASE + textwrap.dedent(extra), "function.yaml")
    return str(caught.value.message)


def test_spec_without_the_new_keys_is_unchanged() -> None:
    spec = parse_spec(BASE)
    assert spec.event_invoke is None  # not given: a config stored through the API stands
    assert spec.schedules == ()


def test_spec_with_async_and_schedules() -> None:
    spec = parse_spec(
        BASE
        + textwrap.dedent("""\
            async:
              retries: 1
              max_age: 3600
              on_success: audit
              on_failure: $dlq
            schedules:
              - expression: cron(0 12 * * ? *)
                timezone: Europe/Paris
                input: {"report": "daily", "n": [1, 2]}
                name: daily-report
              - rate(5 minutes)
              - expression: at(2027-01-01T00:00:00)
                enabled: false
                input: "new year"
            """),
    )
    assert spec.event_invoke == EventInvokeConfig(1, 3600, FunctionDestination("audit"), DEAD_LETTER_QUEUE)
    daily, every5, once = spec.schedules
    assert daily.name == "daily-report" and daily.timezone == "Europe/Paris"
    assert daily.input == '{"report":"daily","n":[1,2]}'
    fired = next_fire_time(daily.expression, datetime(2026, 7, 1, tzinfo=UTC), tz=daily.zone)
    assert fired == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # noon in Paris summer time
    assert every5 == ScheduleSpec("schedule-2", RateExpression(5, "minute"))
    assert (once.name, once.enabled, once.input, once.timezone) == ("schedule-3", False, '"new year"', "UTC")


def test_empty_async_block_means_the_defaults() -> None:
    assert parse_spec(BASE + "async: {}\n").event_invoke == EventInvokeConfig()
    assert parse_spec(BASE + "async:\n").event_invoke == EventInvokeConfig()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("async: {retries: 5}\n", "function.yaml: async.retries must be an integer between 0 and 2, got 5"),
        (
            "async: {on_success: report}\n",
            "function.yaml: async.on_success: 'report': a function cannot be its own",
        ),
        ("async: [1]\n", "function.yaml: async must be a mapping"),
        ("schedules: rate(5 minutes)\n", "function.yaml: schedules must be a list of schedules"),
        (
            "schedules: ['rate(1 minutes)']\n",
            "function.yaml: schedules[0]: schedule expression 'rate(1 minutes)': with 1 the unit is singular",
        ),
        (
            "schedules: [{expression: 'cron(0 12 * * * *)'}]\n",
            "function.yaml: schedules[0]: schedule expression 'cron(0 12 * * * *)': use '?' in exactly one",
        ),
        ("schedules: [{timezone: UTC}]\n", "function.yaml: schedules[0]: missing required key 'expression'"),
        (
            "schedules: [{expression: rate(1 day), timezone: Mars/Base}]\n",
            "function.yaml: schedules[0]: time zone 'Mars/Base' is not a known IANA time zone",
        ),
        (
            "schedules: [{expression: rate(1 day), tz: UTC}]\n",
            "schedules[0]: unknown key 'tz' (allowed: expression,",
        ),
        ("schedules: [{expression: rate(1 day), name: 'a b'}]\n", "schedules[0]: name must be 1-64 letters"),
        (
            "schedules: [{expression: rate(1 day), enabled: 'no'}]\n",
            "schedules[0]: enabled must be true or false",
        ),
        (
            "schedules: [{expression: rate(1 day), input: 2027-01-01}]\n",
            "schedules[0]: input must be JSON data (YAML dates and times are not: quote them)",
        ),
        (
            "schedules: [{expression: rate(1 day), input: .nan}]\n",
            "schedules[0]: input must be JSON data",
        ),
        (
            "schedules: [{expression: rate(1 day), name: a}, {expression: rate(2 days), name: a}]\n",
            "schedules[1]: name 'a' is used twice",
        ),
        (
            "schedules: [rate(1 day), {expression: rate(2 days), name: schedule-1}]\n",
            "name 'schedule-1' is used twice",
        ),
        ("schedules: [5]\n", "schedules[0]: must be an expression string or a mapping"),
    ],
)
def test_errors_name_the_file_the_entry_and_the_problem(extra: str, message: str) -> None:
    assert message in spec_error(extra)


def test_input_size_limit() -> None:
    assert parse_schedules([{"expression": "rate(1 day)", "input": "x" * 8190}])[0].input is not None
    with pytest.raises(SpecError, match="input is 8193 characters as JSON, over the 8192 limit"):
        parse_schedules([{"expression": "rate(1 day)", "input": "x" * 8191}])


def test_null_timezone_means_utc() -> None:
    (schedule,) = parse_schedules([{"expression": "rate(1 day)", "timezone": None}])
    assert schedule.timezone == "UTC"
