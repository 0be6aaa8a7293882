"""The delivery decision after each attempt: Lambda's retries, backoff, maximum age, targets."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from fnplat.events.invoke_config import (
    DEAD_LETTER_QUEUE,
    EventInvokeConfig,
    FunctionDestination,
)
from fnplat.events.retry_policy import (
    Condition,
    DeliveryState,
    Finish,
    Outcome,
    Redeliver,
    RetryDelays,
    decide,
    expired,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SINK = FunctionDestination("sink")
AUDIT = FunctionDestination("audit", "live")


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


LOW, HIGH = FixedRandom(0.0), FixedRandom(0.999999)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Row:
    name: str
    outcome: Outcome
    state: DeliveryState
    now: datetime
    config: EventInvokeConfig
    expected: Redeliver | Finish


DEFAULT = EventInvokeConfig()
NO_RETRY = EventInvokeConfig(maximum_retry_attempts=0)
ONE_RETRY_TO_SINK = EventInvokeConfig(maximum_retry_attempts=1, on_failure=SINK)
SHORT_AGE = EventInvokeConfig(maximum_event_age_s=90)
WITH_BOTH = EventInvokeConfig(on_success=AUDIT, on_failure=SINK)

ROWS = [
    Row(
        "success without destination: nothing more to do",
        Outcome.SUCCESS,
        DeliveryState(T0),
        T0,
        DEFAULT,
        Finish(Condition.SUCCESS, None, DeliveryState(T0, attempts=1)),
    ),
    Row(
        "success goes to OnSuccess",
        Outcome.SUCCESS,
        DeliveryState(T0, attempts=2, function_errors=1),
        T0 + s(61),
        WITH_BOTH,
        Finish(Condition.SUCCESS, AUDIT, DeliveryState(T0, attempts=3, function_errors=1)),
    ),
    Row(
        "first function error: retry after 1 minute",
        Outcome.FUNCTION_ERROR,
        DeliveryState(T0),
        T0 + s(2),
        DEFAULT,
        Redeliver(T0 + s(62), DeliveryState(T0, attempts=1, function_errors=1)),
    ),
    Row(
        "second function error: retry after 2 minutes",
        Outcome.FUNCTION_ERROR,
        DeliveryState(T0, attempts=1, function_errors=1),
        T0 + s(63),
        DEFAULT,
        Redeliver(T0 + s(183), DeliveryState(T0, attempts=2, function_errors=2)),
    ),
    Row(
        "third function error: retries exhausted, to the dead-letter queue",
        Outcome.FUNCTION_ERROR,
        DeliveryState(T0, attempts=2, function_errors=2),
        T0 + s(184),
        DEFAULT,
        Finish(
            Condition.RETRIES_EXHAUSTED, DEAD_LETTER_QUEUE, DeliveryState(T0, attempts=3, function_errors=3)
        ),
    ),
    Row(
        "retries exhausted go to OnFailure when set",
        Outcome.FUNCTION_ERROR,
        DeliveryState(T0, attempts=1, function_errors=1),
        T0 + s(70),
        ONE_RETRY_TO_SINK,
        Finish(Condition.RETRIES_EXHAUSTED, SINK, DeliveryState(T0, attempts=2, function_errors=2)),
    ),
    Row(
        "MaximumRetryAttempts 0: the first function error finishes",
        Outcome.FUNCTION_ERROR,
        DeliveryState(T0),
        T0 + s(1),
        NO_RETRY,
        Finish(
            Condition.RETRIES_EXHAUSTED, DEAD_LETTER_QUEUE, DeliveryState(T0, attempts=1, function_errors=1)
        ),
    ),
    Row(
        "a function-error retry past the maximum age finishes now: EventAgeExceeded",
        Outcome.FUNCTION_ERROR,
        DeliveryState(T0),
        T0 + s(31),
        SHORT_AGE,
        Finish(
            Condition.EVENT_AGE_EXCEEDED, DEAD_LETTER_QUEUE, DeliveryState(T0, attempts=1, function_errors=1)
        ),
    ),
    Row(
        "a retry landing exactly on the deadline is still made",
        Outcome.FUNCTION_ERROR,
        DeliveryState(T0),
        T0 + s(30),
        SHORT_AGE,
        Redeliver(T0 + s(90), DeliveryState(T0, attempts=1, function_errors=1)),
    ),
    Row(
        "throttle: backoff from 1 s (equal jitter: at least half of it)",
        Outcome.THROTTLED,
        DeliveryState(T0),
        T0,
        DEFAULT,
        Redeliver(T0 + s(0.5), DeliveryState(T0, attempts=1, transient_failures=1)),
    ),
    Row(
        "throttles do not use up retries, even after function errors",
        Outcome.THROTTLED,
        DeliveryState(T0, attempts=3, function_errors=2, transient_failures=3),
        T0 + s(500),
        DEFAULT,
        Redeliver(T0 + s(504), DeliveryState(T0, attempts=4, function_errors=2, transient_failures=4)),
    ),
    Row(
        "platform errors back off like throttles",
        Outcome.PLATFORM_ERROR,
        DeliveryState(T0, attempts=4, transient_failures=4),
        T0 + s(100),
        DEFAULT,
        Redeliver(T0 + s(108), DeliveryState(T0, attempts=5, transient_failures=5)),
    ),
    Row(
        "backoff is capped at 5 minutes",
        Outcome.THROTTLED,
        DeliveryState(T0, attempts=30, transient_failures=30),
        T0 + s(3600),
        DEFAULT,
        Redeliver(T0 + s(3600 + 150), DeliveryState(T0, attempts=31, transient_failures=31)),
    ),
    Row(
        "throttled until the maximum age: EventAgeExceeded to OnFailure",
        Outcome.THROTTLED,
        DeliveryState(T0, attempts=40, transient_failures=40),
        T0 + s(21600 - 100),
        WITH_BOTH,
        Finish(Condition.EVENT_AGE_EXCEEDED, SINK, DeliveryState(T0, attempts=41, transient_failures=41)),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decision_table(row: Row) -> None:
    assert decide(row.outcome, row.state, row.now, row.config, LOW) == row.expected


def test_jitter_stays_within_half_to_all_of_the_step() -> None:
    for failures, step in ((1, 1), (2, 2), (3, 4), (9, 256), (10, 300), (100, 300)):
        state = DeliveryState(T0, attempts=failures - 1, transient_failures=failures - 1)
        waits = []
        for rng in (LOW, HIGH, random.Random(failures)):
            decision = decide(Outcome.THROTTLED, state, T0, DEFAULT, rng)
            assert isinstance(decision, Redeliver)
            waits.append((decision.at - T0).total_seconds())
        assert all(step / 2 <= w <= step for w in waits), (failures, waits)


def test_seeded_jitter_is_reproducible_and_spreads() -> None:
    state = DeliveryState(T0, attempts=5, transient_failures=5)

    def waits(seed: int) -> list[float]:
        rng = random.Random(seed)
        out = []
        for _ in range(50):
            decision = decide(Outcome.THROTTLED, state, T0, DEFAULT, rng)
            assert isinstance(decision, Redeliver)
            out.append((decision.at - T0).total_seconds())
        return out

    assert waits(7) == waits(7)
    assert len(set(waits(7))) == 50


def test_delays_are_settings_so_tests_can_shorten_them() -> None:
    fast = RetryDelays(function_error_s=(0.01, 0.02), backoff_initial_s=0.001, backoff_max_s=0.004)
    first = decide(Outcome.FUNCTION_ERROR, DeliveryState(T0), T0, DEFAULT, LOW, fast)
    assert isinstance(first, Redeliver) and first.at == T0 + s(0.01)
    second = decide(Outcome.FUNCTION_ERROR, first.state, T0, DEFAULT, LOW, fast)
    assert isinstance(second, Redeliver) and second.at == T0 + s(0.02)
    throttled = decide(Outcome.THROTTLED, DeliveryState(T0, transient_failures=20), T0, DEFAULT, HIGH, fast)
    assert isinstance(throttled, Redeliver) and throttled.at - T0 <= s(0.004)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"function_error_s": ()},
        {"function_error_s": (-1.0,)},
        {"backoff_initial_s": 0.0},
        {"backoff_initial_s": 10.0, "backoff_max_s": 5.0},
        {"backoff_factor": 0.5},
    ],
)
def test_invalid_delays_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryDelays(**kwargs)  # type: ignore[arg-type]


def test_lambda_default_schedule_end_to_end() -> None:
    """Three function errors in a row: attempts at 0, ~1 and ~3 minutes, then the DLQ."""
    state, now, attempts = DeliveryState(T0), T0, [T0]
    while True:
        decision = decide(Outcome.FUNCTION_ERROR, state, now, DEFAULT, LOW)
        if isinstance(decision, Finish):
            break
        state, now = decision.state, decision.at
        attempts.append(now)
    assert attempts == [T0, T0 + s(60), T0 + s(180)]
    assert decision.condition is Condition.RETRIES_EXHAUSTED and decision.dead_lettered and decision.failed
    assert decision.state.attempts == 3


def test_throttled_forever_ends_at_the_maximum_age_never_later() -> None:
    config = EventInvokeConfig(maximum_event_age_s=3600)
    state, now, rng = DeliveryState(T0), T0, random.Random(1)
    for _ in range(1000):
        decision = decide(Outcome.THROTTLED, state, now, config, rng)
        if isinstance(decision, Finish):
            break
        assert decision.at <= T0 + s(3600)
        state, now = decision.state, decision.at
    assert isinstance(decision, Finish)
    assert decision.condition is Condition.EVENT_AGE_EXCEEDED and decision.target is DEAD_LETTER_QUEUE
    assert 10 < decision.state.attempts < 40  # about 1 h of backoff capped at 5 min


def test_a_failure_is_never_sent_nowhere() -> None:
    for config in (DEFAULT, NO_RETRY, SHORT_AGE, WITH_BOTH, EventInvokeConfig(on_success=AUDIT)):
        for outcome in (Outcome.FUNCTION_ERROR, Outcome.THROTTLED, Outcome.PLATFORM_ERROR):
            state = DeliveryState(T0, attempts=2, function_errors=2, transient_failures=50)
            decision = decide(outcome, state, T0 + s(21599), config, LOW)
            assert isinstance(decision, Finish) and decision.failed
            assert decision.target is not None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0 + s(90), None),
        (T0 + s(90.001), Finish(Condition.EVENT_AGE_EXCEEDED, DEAD_LETTER_QUEUE, DeliveryState(T0))),
    ],
)
def test_expired_before_an_attempt(now: datetime, expected: Finish | None) -> None:
    assert expired(DeliveryState(T0), now, SHORT_AGE) == expected
