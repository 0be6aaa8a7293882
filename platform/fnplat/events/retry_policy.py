"""What happens to an asynchronous event after an attempt to deliver it: the pure decision.

Lambda's rules (lambda-compat.md section 4):
- A function error (unhandled error, timeout, out of memory) uses one of the config's
  `MaximumRetryAttempts` (0-2, default 2); the retries wait about 1 then 2 minutes
  (`RetryDelays.function_error_s`, shorter in tests). When none are left the event finishes
  with `RetriesExhausted`.
- A throttle or a platform error does not use a retry: the event goes back to the queue with
  exponential backoff from 1 s up to 5 minutes, with jitter drawn from an injected random
  source, for as long as the event is younger than `MaximumEventAgeInSeconds`.
- No attempt is ever made after an event's deadline (enqueued + maximum age): when the next
  attempt would fall after it, the event finishes at once with `EventAgeExceeded` rather than
  waiting to expire. A worker that claims an event late (a backlog) asks `expired()` first.
- Success finishes with `Success` and goes to the OnSuccess destination, if any. A failure goes
  to OnFailure, else to the function's dead-letter queue: a failed event is never dropped.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from fnplat.events.invoke_config import DeadLetterQueue, Destination, EventInvokeConfig, FunctionDestination


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"  # unhandled error, timeout, out of memory
    THROTTLED = "throttled"  # 429: concurrency limit or queue full
    PLATFORM_ERROR = "platform_error"  # ours: engine failure, lost node, ...


class Condition(enum.StrEnum):
    """`requestContext.condition` of the invocation record."""

    SUCCESS = "Success"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


class RandomSource(Protocol):
    def random(self) -> float:
        """A float in [0, 1), as `random.Random.random`."""
        ...


@dataclass(frozen=True, slots=True)
class RetryDelays:
    # Before the 2nd and the 3rd attempt after function errors (Lambda: ~1 and ~2 minutes).
    function_error_s: tuple[float, ...] = (60.0, 120.0)
    backoff_initial_s: float = 1.0  # throttles and platform errors: the first wait...
    backoff_max_s: float = 300.0  # ...doubling up to this
    backoff_factor: float = 2.0

    def __post_init__(self) -> None:
        if not self.function_error_s or any(d < 0 for d in self.function_error_s):
            raise ValueError("function_error_s needs at least one delay, none negative")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s or self.backoff_factor < 1:
            raise ValueError("backoff needs 0 < initial <= max and a factor of at least 1")

    def after_function_error(self, function_errors: int) -> timedelta:
        """The wait after the `function_errors`-th function error (1-based)."""
        index = min(function_errors, len(self.function_error_s)) - 1
        return timedelta(seconds=self.function_error_s[index])

    def after_transient(self, transient_failures: int, rng: RandomSource) -> timedelta:
        """Exponential backoff after the `transient_failures`-th throttle or platform error
        (1-based), with "equal jitter": uniform in [half, all] of the step, so retries of many
        throttled events spread out but none comes back at once."""
        exponent = min(transient_failures - 1, 64)  # beyond that the cap holds anyway
        step = min(self.backoff_max_s, self.backoff_initial_s * math.pow(self.backoff_factor, exponent))
        return timedelta(seconds=step * (0.5 + 0.5 * rng.random()))


DEFAULT_DELAYS = RetryDelays()


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """What the queue keeps per event between attempts."""

    enqueued_at: datetime  # when it was accepted: the origin of its age
    attempts: int = 0  # attempts made, whatever their outcome (approximateInvokeCount)
    function_errors: int = 0  # attempts that ended in a function error (use up retries)
    transient_failures: int = 0  # throttles and platform errors (the backoff exponent)

    def deadline(self, config: EventInvokeConfig) -> datetime:
        return self.enqueued_at + timedelta(seconds=config.maximum_event_age_s)


@dataclass(frozen=True, slots=True)
class Redeliver:
    """Attempt again at `at` (the queue makes the event visible then)."""

    at: datetime
    state: DeliveryState


@dataclass(frozen=True, slots=True)
class Finish:
    """Done. `target`: the destination that gets the invocation record, or None (a success with
    no OnSuccess destination: nothing more to do)."""

    condition: Condition
    target: Destination | None
    state: DeliveryState

    @property
    def failed(self) -> bool:
        return self.condition is not Condition.SUCCESS

    @property
    def dead_lettered(self) -> bool:
        return isinstance(self.target, DeadLetterQueue)


Decision = Redeliver | Finish


def decide(
    outcome: Outcome,
    state: DeliveryState,
    now: datetime,
    config: EventInvokeConfig,
    rng: RandomSource,
    delays: RetryDelays = DEFAULT_DELAYS,
) -> Decision:
    """The decision after an attempt that ended with `outcome` at `now`. `state` holds the counts
    before this attempt; the returned decision carries them updated."""
    state = replace(state, attempts=state.attempts + 1)
    if outcome is Outcome.SUCCESS:
        success_target: FunctionDestination | None = config.on_success
        return Finish(Condition.SUCCESS, success_target, state)
    if outcome is Outcome.FUNCTION_ERROR:
        state = replace(state, function_errors=state.function_errors + 1)
        if state.function_errors > config.maximum_retry_attempts:
            return Finish(Condition.RETRIES_EXHAUSTED, config.failure_target, state)
        at = now + delays.after_function_error(state.function_errors)
    else:
        state = replace(state, transient_failures=state.transient_failures + 1)
        at = now + delays.after_transient(state.transient_failures, rng)
    if at > state.deadline(config):
        return Finish(Condition.EVENT_AGE_EXCEEDED, config.failure_target, state)
    return Redeliver(at, state)


def expired(state: DeliveryState, now: datetime, config: EventInvokeConfig) -> Finish | None:
    """Ask before an attempt: an event past its deadline is not attempted but finishes here."""
    if now > state.deadline(config):
        return Finish(Condition.EVENT_AGE_EXCEEDED, config.failure_target, state)
    return None
