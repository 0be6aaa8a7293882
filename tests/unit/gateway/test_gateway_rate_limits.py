"""Usage plans: token bucket, quota periods, 429 responses, quota leases and N gateways (rate_limits)."""

from __future__ import annotations

import asyncio
import calendar
import json
import logging

import pytest

from fnplat.errors import TooManyRequests
from fnplat.gateway.quota_leases import LeaseRequest, QuotaLedger, QuotaState, grant_size
from fnplat.gateway.rate_limits import (
    MemoryQuotaStore,
    Outcome,
    PlanLimits,
    Quota,
    Throttle,
    TokenBucket,
    UsageLimiter,
    Verdict,
    period_bounds,
)

pytestmark = pytest.mark.timeout(60)  # a test waiting on a gate fails instead of hanging


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: float = 0) -> float:
    return calendar.timegm((y, mo, d, h, mi, 0)) + s


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryQuotaStore):
    """The in-memory counter, counting leases and optionally holding them until released."""

    def __init__(self) -> None:
        super().__init__()
        self.leases: list[LeaseRequest] = []
        self.gate: asyncio.Event | None = None
        self.fail_next = False

    async def lease(self, request: LeaseRequest) -> int:
        self.leases.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database unavailable")
        return await super().lease(request)


class SharedCounter:
    """One counter shared by N gateways (what the Postgres row does)."""

    def __init__(self, gateways: int) -> None:
        self.gateways = gateways
        self.leased: dict[tuple[str, int], int] = {}

    async def lease(self, request: LeaseRequest) -> int:
        row = (request.key_id, request.period_start)
        granted = grant_size(request.limit, self.leased.get(row, 0), request.amount, self.gateways)
        self.leased[row] = self.leased.get(row, 0) + granted
        return granted

    async def give_back(self, key_id: str, period_start: int, amount: int) -> None:
        row = (key_id, period_start)
        self.leased[row] -= amount


T0 = utc(2024, 5, 15, 12)  # a Wednesday


async def settle() -> None:
    """Let tasks that are ready run (no time passes): what the event loop does between requests."""
    for _ in range(5):
        await asyncio.sleep(0)


# --- periods ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", T0, utc(2024, 5, 15), utc(2024, 5, 16)),
        ("day", utc(2024, 5, 15), utc(2024, 5, 15), utc(2024, 5, 16)),  # the start belongs to it
        ("day", utc(2024, 5, 15, 23, 59, 59.999), utc(2024, 5, 15), utc(2024, 5, 16)),
        ("week", T0, utc(2024, 5, 13), utc(2024, 5, 20)),  # Monday to Monday
        ("week", utc(2024, 5, 13), utc(2024, 5, 13), utc(2024, 5, 20)),
        ("week", utc(2024, 5, 19, 23, 59, 59), utc(2024, 5, 13), utc(2024, 5, 20)),  # Sunday night
        ("week", utc(2024, 12, 31), utc(2024, 12, 30), utc(2025, 1, 6)),  # across the year
        ("month", T0, utc(2024, 5, 1), utc(2024, 6, 1)),
        ("month", utc(2024, 12, 31, 23), utc(2024, 12, 1), utc(2025, 1, 1)),
        ("month", utc(2024, 2, 29), utc(2024, 2, 1), utc(2024, 3, 1)),  # leap year
        ("month", utc(2023, 2, 28), utc(2023, 2, 1), utc(2023, 3, 1)),
    ],
)
def test_period_bounds_are_utc_calendar_periods(period: str, now: float, start: float, end: float) -> None:
    assert period_bounds(period, now) == (start, end)  # type: ignore[arg-type]


# --- plan values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [(0, 1, "rate"), (-1, 1, "rate"), (float("inf"), 1, "rate"), (float("nan"), 1, "rate"), (1, 0, "burst")],
)
def test_throttle_rejects_impossible_values(rate: float, burst: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Throttle(rate, burst)


def test_quota_rejects_impossible_values() -> None:
    with pytest.raises(ValueError, match="limit"):
        Quota(-1, "day")
    with pytest.raises(ValueError, match="period"):
        Quota(1, "year")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("gateways", "rate", "burst"),
    [(1, 10.0, 5), (0, 10.0, 5), (2, 5.0, 3), (3, 10 / 3, 2), (10, 1.0, 1), (20, 0.5, 1)],
)
def test_each_gateway_takes_a_share_of_the_rate(gateways: int, rate: float, burst: int) -> None:
    share = Throttle(10.0, 5).share(gateways)
    assert share.rate == pytest.approx(rate)
    assert share.burst == burst
    # the shares never add up to more than the rate; bursts at most burst + N - 1
    assert share.rate * max(1, gateways) <= 10.0 + 1e-9
    assert share.burst * max(1, gateways) <= 5 + max(1, gateways) - 1 or share.burst == 1


# --- token bucket -------------------------------------------------------------------------------


def test_bucket_starts_full_and_refills_at_the_rate() -> None:
    throttle = Throttle(rate=2.0, burst=3)
    bucket = TokenBucket(throttle, now=100.0)
    assert [bucket.take(throttle, 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(throttle, 100.0) == pytest.approx(0.5)  # one token per 0.5 s
    assert bucket.take(throttle, 100.25) == pytest.approx(0.25)
    assert bucket.take(throttle, 100.5) == 0.0
    assert bucket.take(throttle, 110.0) == 0.0  # refill stops at the burst
    assert bucket.tokens == pytest.approx(2.0)


def test_bucket_ignores_a_clock_stepping_back() -> None:
    throttle = Throttle(rate=1.0, burst=1)
    bucket = TokenBucket(throttle, now=100.0)
    assert bucket.take(throttle, 100.0) == 0.0
    assert bucket.take(throttle, 50.0) == pytest.approx(1.0)  # no negative refill, no free token
    assert bucket.take(throttle, 100.5) == pytest.approx(0.5)


def test_bucket_shrinks_to_a_smaller_share() -> None:
    big, small = Throttle(10.0, 10), Throttle(5.0, 2)
    bucket = TokenBucket(big, now=0.0)
    assert bucket.take(small, 0.0) == 0.0  # 10 tokens clamped to 2, one taken
    assert bucket.take(small, 0.0) == 0.0
    assert bucket.take(small, 0.0) == pytest.approx(0.2)
    assert not bucket.is_full(0.0)
    assert bucket.is_full(10.0)


# --- the limiter: rate --------------------------------------------------------------------------


async def test_rate_and_burst_with_retry_after() -> None:
    clock = FakeClock(T0)
    limiter = UsageLimiter(MemoryQuotaStore(), clock=clock)
    plan = PlanLimits(throttle=Throttle(rate=1.0, burst=3))
    assert [(await limiter.admit("k", plan)).outcome for _ in range(3)] == [Outcome.ALLOWED] * 3
    refused = await limiter.admit("k", plan)
    assert refused == Verdict(Outcome.THROTTLED, retry_after=1)
    clock.now += 0.5
    assert (await limiter.admit("k", plan)).retry_after == 1  # 0.5 s rounds up: never 0
    clock.now += 0.5
    assert (await limiter.admit("k", plan)).allowed
    assert (await limiter.admit("other", plan)).allowed  # buckets are per key


async def test_slow_rates_give_long_retry_after() -> None:
    clock = FakeClock(T0)
    limiter = UsageLimiter(MemoryQuotaStore(), clock=clock)
    plan = PlanLimits(throttle=Throttle(rate=0.1, burst=1))
    assert (await limiter.admit("k", plan)).allowed
    assert (await limiter.admit("k", plan)).retry_after == 10


def test_429_responses_carry_api_gateway_bodies_and_retry_after() -> None:
    throttled = Verdict(Outcome.THROTTLED, retry_after=2).response()
    assert throttled.status == 429
    assert json.loads(throttled.body) == {"message": "Too Many Requests"}
    assert throttled.header("Retry-After") == "2"
    assert throttled.header("Content-Type") == "application/json"
    quota = Verdict(Outcome.QUOTA_EXCEEDED, retry_after=3600).response()
    assert (quota.status, json.loads(quota.body), quota.header("retry-after")) == (
        429,
        {"message": "Limit Exceeded"},
        "3600",
    )


@pytest.mark.parametrize(
    ("outcome", "message"),
    [(Outcome.THROTTLED, "Rate Exceeded."), (Outcome.QUOTA_EXCEEDED, "Limit Exceeded")],
)
def test_refusals_as_aws_errors(outcome: Outcome, message: str) -> None:
    error = Verdict(outcome, 1).error()
    assert isinstance(error, TooManyRequests)
    assert (error.status, error.message, error.reason) == (429, message, "CallerRateLimitExceeded")


async def test_rate_is_shared_among_live_gateways() -> None:
    clock = FakeClock(T0)
    live = [2]
    limiter = UsageLimiter(MemoryQuotaStore(), clock=clock, gateways=lambda: live[0])
    plan = PlanLimits(throttle=Throttle(rate=4.0, burst=4))
    results = [(await limiter.admit("k", plan)).allowed for _ in range(3)]
    assert results == [True, True, False]  # this gateway's burst is 2
    assert (await limiter.admit("k", plan)).retry_after == 1  # at 2/s a token takes 0.5 s
    live[0] = 1  # the other gateway left: the full plan applies here again
    clock.now += 1.0
    assert [(await limiter.admit("k", plan)).allowed for _ in range(3)] == [True, True, False]


# --- the limiter: quota ---------------------------------------------------------------------------


async def test_quota_per_day_then_the_next_day() -> None:
    clock = FakeClock(utc(2024, 5, 15, 23, 0))
    limiter = UsageLimiter(MemoryQuotaStore(), clock=clock, batch_size=2)
    plan = PlanLimits(quota=Quota(limit=5, period="day"))
    assert [(await limiter.admit("k", plan)).allowed for _ in range(5)] == [True] * 5
    assert await limiter.admit("k", plan) == Verdict(Outcome.QUOTA_EXCEEDED, retry_after=3600)
    clock.now = utc(2024, 5, 16)
    assert (await limiter.admit("k", plan)).allowed


async def test_zero_quota_refuses_without_asking_the_counter() -> None:
    store = CountingStore()
    limiter = UsageLimiter(store, clock=FakeClock(T0))
    verdict = await limiter.admit("k", PlanLimits(quota=Quota(0, "month")))
    assert verdict.outcome is Outcome.QUOTA_EXCEEDED
    assert store.leases == []


async def test_a_throttled_request_is_not_counted_against_the_quota() -> None:
    clock = FakeClock(T0)
    limiter = UsageLimiter(MemoryQuotaStore(), clock=clock)
    plan = PlanLimits(throttle=Throttle(rate=1.0, burst=1), quota=Quota(limit=2, period="day"))
    assert (await limiter.admit("k", plan)).allowed
    assert (await limiter.admit("k", plan)).outcome is Outcome.THROTTLED
    clock.now += 1
    assert (await limiter.admit("k", plan)).allowed  # the throttled one did not use quota
    clock.now += 1
    assert (await limiter.admit("k", plan)).outcome is Outcome.QUOTA_EXCEEDED


async def test_a_request_refused_for_the_quota_takes_no_token() -> None:
    clock = FakeClock(utc(2024, 5, 15, 23, 59, 59))
    limiter = UsageLimiter(MemoryQuotaStore(), clock=clock)
    plan = PlanLimits(throttle=Throttle(rate=1e-6, burst=2), quota=Quota(limit=1, period="day"))
    assert (await limiter.admit("k", plan)).allowed  # one token left
    assert (await limiter.admit("k", plan)).outcome is Outcome.QUOTA_EXCEEDED
    assert (await limiter.admit("k", plan)).outcome is Outcome.QUOTA_EXCEEDED
    clock.now = utc(2024, 5, 16)
    assert (await limiter.admit("k", plan)).allowed  # the refusals above took no token


async def test_quota_is_leased_in_batches_and_prefetched_before_it_runs_out() -> None:
    store = CountingStore()
    limiter = UsageLimiter(store, clock=FakeClock(T0), batch_size=10, low_water=0.25)
    plan = PlanLimits(quota=Quota(limit=25, period="month"))
    allowed = 0
    for _ in range(30):
        verdict = await limiter.admit("k", plan)
        allowed += verdict.allowed
        await asyncio.sleep(0)  # let a background lease land, as the event loop would between requests
    assert allowed == 25
    assert [lease.amount for lease in store.leases] == [10, 10, 10, 10]  # the last one got 0
    assert store.leased("k", int(utc(2024, 5, 1))) == 25
    assert all(lease.limit == 25 and lease.period_end == utc(2024, 6, 1) for lease in store.leases)


async def test_concurrent_requests_share_one_lease() -> None:
    store = CountingStore()
    store.gate = asyncio.Event()
    limiter = UsageLimiter(store, clock=FakeClock(T0), batch_size=10)
    plan = PlanLimits(quota=Quota(limit=100, period="day"))
    waiting = [asyncio.create_task(limiter.admit("k", plan)) for _ in range(5)]
    await settle()
    assert len(store.leases) == 1
    store.gate.set()
    verdicts = await asyncio.gather(*waiting)
    assert all(v.allowed for v in verdicts)
    assert len(store.leases) == 1


async def test_a_cancelled_waiter_does_not_cancel_the_shared_lease() -> None:
    store = CountingStore()
    store.gate = asyncio.Event()
    limiter = UsageLimiter(store, clock=FakeClock(T0), batch_size=10)
    plan = PlanLimits(quota=Quota(limit=100, period="day"))
    first = asyncio.create_task(limiter.admit("k", plan))
    second = asyncio.create_task(limiter.admit("k", plan))
    await settle()
    first.cancel()
    store.gate.set()
    assert (await second).allowed
    assert len(store.leases) == 1


async def test_a_failed_lease_raises_and_the_next_request_tries_again() -> None:
    store = CountingStore()
    store.fail_next = True
    limiter = UsageLimiter(store, clock=FakeClock(T0))
    plan = PlanLimits(quota=Quota(limit=10, period="day"))
    with pytest.raises(ConnectionError):
        await limiter.admit("k", plan)
    assert (await limiter.admit("k", plan)).allowed
    assert len(store.leases) == 2


async def test_a_failed_background_lease_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    store = CountingStore()
    limiter = UsageLimiter(store, clock=FakeClock(T0), batch_size=4, low_water=0.5)
    plan = PlanLimits(quota=Quota(limit=100, period="day"))
    assert (await limiter.admit("k", plan)).allowed  # first batch of 4, 3 left
    store.fail_next = True
    with caplog.at_level(logging.WARNING):
        assert (await limiter.admit("k", plan)).allowed  # 2 left: prefetch starts, and fails
        await settle()
    assert "quota lease for key k failed" in caplog.text
    assert [(await limiter.admit("k", plan)).allowed for _ in range(3)] == [True, True, True]


async def test_unused_allowance_is_given_back_on_release() -> None:
    store = CountingStore()
    limiter = UsageLimiter(store, clock=FakeClock(T0), batch_size=10)
    plan = PlanLimits(quota=Quota(limit=100, period="day"))
    for _ in range(3):
        await limiter.admit("k", plan)
    await limiter.release_unused()
    assert store.leased("k", int(utc(2024, 5, 15))) == 3
    await limiter.release_unused()  # idempotent
    assert store.leased("k", int(utc(2024, 5, 15))) == 3


async def test_nothing_is_given_back_for_an_ended_period() -> None:
    clock = FakeClock(utc(2024, 5, 15, 23, 59))
    store = CountingStore()
    limiter = UsageLimiter(store, clock=clock, batch_size=10)
    await limiter.admit("k", PlanLimits(quota=Quota(limit=100, period="day")))
    clock.now = utc(2024, 5, 16, 0, 1)
    await limiter.release_unused()
    assert store.leased("k", int(utc(2024, 5, 15))) == 10  # that row is done with


async def test_a_late_grant_for_an_ended_period_is_ignored() -> None:
    ledger = QuotaLedger(batch_size=10)
    quota = Quota(limit=100, period="day")
    assert ledger.take(quota, utc(2024, 5, 15, 23)) is QuotaState.LEASE_NEEDED
    request = ledger.lease_request("k", quota)
    assert ledger.take(quota, utc(2024, 5, 16, 1)) is QuotaState.LEASE_NEEDED  # a new period
    ledger.granted(request.period_start, 10)
    assert ledger.available == 0


def test_ledger_asks_for_the_next_batch_at_the_low_water_mark() -> None:
    ledger = QuotaLedger(batch_size=8, low_water=0.25)
    quota = Quota(limit=100, period="day")
    ledger.take(quota, T0)
    ledger.granted(ledger.lease_request("k", quota).period_start, 8)
    seen = []
    for _ in range(8):
        assert ledger.take(quota, T0) is QuotaState.TAKEN
        seen.append(ledger.wants_lease())
    assert seen == [False, False, False, False, False, True, True, True]  # from 2 left on
    ledger.lease_request("k", quota)
    assert not ledger.wants_lease()  # one in flight
    ledger.granted(ledger.period[0], 0)
    assert ledger.take(quota, T0) is QuotaState.EXHAUSTED
    assert not ledger.wants_lease()


def test_ledger_untake_and_unused() -> None:
    ledger = QuotaLedger(batch_size=5)
    quota = Quota(limit=100, period="week")
    ledger.take(quota, T0)
    ledger.granted(ledger.lease_request("k", quota).period_start, 5)
    ledger.take(quota, T0)
    ledger.take(quota, T0)
    ledger.untake()
    assert ledger.unused() == (int(utc(2024, 5, 13)), 4)
    ledger.drop_unused()
    assert ledger.unused()[1] == 0


@pytest.mark.parametrize(
    ("limit", "leased", "amount", "gateways", "granted"),
    [
        (1000, 0, 100, 1, 100),
        (1000, 950, 100, 1, 50),  # what is left
        (1000, 1000, 100, 1, 0),
        (1000, 1200, 100, 1, 0),  # a lowered limit: nothing more
        (1000, 0, 100, 3, 100),
        (1000, 850, 100, 3, 50),  # 150 left, 3 gateways: a fair share
        (1000, 998, 100, 3, 1),  # never less than one while something is left
        (1000, 0, 0, 1, 0),
        (5, 0, 100, 0, 5),  # 0 live gateways counts as one
    ],
)
def test_grant_size(limit: int, leased: int, amount: int, gateways: int, granted: int) -> None:
    assert grant_size(limit, leased, amount, gateways) == granted


# --- several gateways ---------------------------------------------------------------------------


async def test_n_gateways_never_exceed_the_quota_and_serve_it_all_when_drained() -> None:
    counter = SharedCounter(gateways=3)
    clock = FakeClock(T0)
    gateways = [UsageLimiter(counter, clock=clock, gateways=lambda: 3, batch_size=7) for _ in range(3)]
    plan = PlanLimits(quota=Quota(limit=100, period="day"))
    allowed = 0
    for i in range(400):  # round-robin, as a load balancer spreads them
        allowed += (await gateways[i % 3].admit("k", plan)).allowed
        await asyncio.sleep(0)
    assert allowed == 100


async def test_a_gateway_that_dies_strands_at_most_one_batch() -> None:
    counter = SharedCounter(gateways=2)
    clock = FakeClock(T0)
    plan = PlanLimits(quota=Quota(limit=50, period="day"))
    dying = UsageLimiter(counter, clock=clock, gateways=lambda: 2, batch_size=10)
    survivor = UsageLimiter(counter, clock=clock, gateways=lambda: 2, batch_size=10)
    assert (await dying.admit("k", plan)).allowed  # leased 10, used 1, then gone without giving back
    allowed = 1
    for _ in range(100):
        allowed += (await survivor.admit("k", plan)).allowed
        await asyncio.sleep(0)
    assert 50 - 10 <= allowed <= 50
    assert allowed == 41  # exactly the 9 stranded requests are lost


async def test_a_gateway_that_stops_cleanly_hands_its_batch_to_the_others() -> None:
    counter = SharedCounter(gateways=2)
    clock = FakeClock(T0)
    plan = PlanLimits(quota=Quota(limit=50, period="day"))
    leaving = UsageLimiter(counter, clock=clock, gateways=lambda: 2, batch_size=10)
    staying = UsageLimiter(counter, clock=clock, gateways=lambda: 2, batch_size=10)
    assert (await leaving.admit("k", plan)).allowed
    await leaving.release_unused()
    allowed = 1
    for _ in range(100):
        allowed += (await staying.admit("k", plan)).allowed
        await asyncio.sleep(0)
    assert allowed == 50


# --- bounded state ------------------------------------------------------------------------------


async def test_sweep_forgets_idle_keys_without_changing_decisions() -> None:
    clock = FakeClock(T0)
    limiter = UsageLimiter(MemoryQuotaStore(), clock=clock, batch_size=1)
    plan = PlanLimits(throttle=Throttle(rate=1.0, burst=2), quota=Quota(limit=1, period="day"))
    for key in ("a", "b", "c"):
        assert (await limiter.admit(key, plan)).allowed
    await settle()  # the prefetches learn that the quota is used up
    assert limiter.tracked_keys == 3
    limiter.sweep()
    assert limiter.tracked_keys == 3  # buckets not yet refilled
    clock.now += 2
    limiter.sweep()
    assert limiter.tracked_keys == 0  # buckets full again, nothing left in hand
    assert (await limiter.admit("a", plan)).outcome is Outcome.QUOTA_EXCEEDED  # the counter still knows
    plan_rate_only = PlanLimits(throttle=Throttle(rate=1.0, burst=1))
    assert (await limiter.admit("d", plan_rate_only)).allowed
    limiter.sweep()
    assert (await limiter.admit("d", plan_rate_only)).outcome is Outcome.THROTTLED  # kept: not full
