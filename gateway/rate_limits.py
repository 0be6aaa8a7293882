"""Usage plans per API key: a token bucket for rate and burst, a quota per day, week or month.

API Gateway's semantics (lambda-compat §6):
- **Rate**: a token bucket per key holding at most `burst` tokens, refilled at `rate` tokens per
  second, one token per request; a new bucket is full. An empty bucket → 429 `{"message":"Too Many
  Requests"}` with `Retry-After` = whole seconds until the next token.
- **Quota**: at most `limit` requests per calendar period in UTC: a day from 00:00, a week from
  Monday 00:00 (ISO weeks; AWS does not document the first day of its WEEK period), a month from
  the 1st at 00:00. Used up → 429 `{"message":"Limit Exceeded"}` with `Retry-After` = seconds
  until the next period.
- Order: the quota is looked at first, so a request refused for the quota takes no token; then
  the bucket, so a throttled request is not counted against the quota.

Everything takes the time from an injected clock (epoch seconds; a clock stepping back is
treated as no time passing), so decisions are deterministic in tests.

## Several gateways sharing one database

**Quota: leased in batches.** The count of a key's period lives in a shared counter (a row per
key and period in Postgres; `QuotaStore`). A gateway never counts against it request by request:
it leases a batch (`batch_size` requests, fewer near the end, see `grant_size`) and serves from
the batch locally. When a batch runs low (at `low_water` of it) the next one is leased in the
background, so requests do not wait for the database; a request waits only when its gateway has
nothing left and the counter still has some. Unused allowance is given back when the gateway
stops (`UsageLimiter.release_unused`) and is simply dropped when the period ends (the next
period is another row).
Tolerance: the counter never grants more than `limit`, so the quota is **never exceeded** (each
gateway takes the period from its own clock: keep them NTP-synced, or a gateway ahead starts the
next period's row early). It can be under-served while other gateways hold allowance they have
not used: at most H = `batch_size * (1 + low_water)` per gateway (the batch in use plus the one
leased ahead; less near the end, since `grant_size` splits what is left among live gateways),
and a gateway that dies without giving back strands at most H for the rest of that period.
So with N gateways a key gets between `limit - H * (N - 1)` (the others idle with full hands)
and `limit` while all run, and at worst `limit - H * N` after crashes; with the defaults (100,
0.25) H is 125.

**Rate: shared out.** Each gateway enforces `rate / N` with a bucket of `ceil(burst / N)`, N being
the live gateways (`Throttle.share`). With requests spread evenly (round-robin load balancing)
a key gets its rate. Tolerance: a key never gets more than `rate` (bursts at most
`burst + N - 1` from rounding up); if all of a key's traffic lands on one gateway it gets `rate /
N` there. Route keys to gateways by key (sticky balancing) to give such clients their full rate.
No database round trip is involved, so rate checks cost the same with one gateway or many.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fnplat.errors import FnplatError, TooManyRequests
from fnplat.gateway import responses
from fnplat.gateway.quota_leases import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LOW_WATER,
    QUOTA_PERIODS,
    LeaseRequest,
    MemoryQuotaStore,
    Quota,
    QuotaLedger,
    QuotaPeriod,
    QuotaState,
    QuotaStore,
    grant_size,
    period_bounds,
)
from fnplat.gateway.responses import HttpResponse

__all__ = [  # the quota types are re-exported: this module is the usage plans' entry point
    "ALLOWED",
    "QUOTA_PERIODS",
    "LeaseRequest",
    "MemoryQuotaStore",
    "Outcome",
    "PlanLimits",
    "Quota",
    "QuotaPeriod",
    "QuotaStore",
    "Throttle",
    "TokenBucket",
    "UsageLimiter",
    "Verdict",
    "grant_size",
    "period_bounds",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Throttle:
    """Steady `rate` (requests per second) and `burst` (the bucket's size)."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number of requests per second, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")

    def share(self, gateways: int) -> Throttle:
        """This gateway's part when `gateways` gateways enforce the plan together."""
        if gateways <= 1:
            return self
        return Throttle(rate=self.rate / gateways, burst=max(1, math.ceil(self.burst / gateways)))


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """What a usage plan enforces on each of its keys; both parts are optional."""

    throttle: Throttle | None = None
    quota: Quota | None = None


def _whole_seconds(seconds: float) -> int:
    """Retry-After is whole seconds; never 0 for a refusal (a client would retry at once)."""
    return max(1, math.ceil(seconds - 1e-9))


# --- rate -------------------------------------------------------------------------------------


class TokenBucket:
    """One key's bucket. Starts full. Remembers the last throttle it was used with (the share can
    change as gateways come and go; the tokens are then clamped to the new size)."""

    __slots__ = ("_throttle", "_tokens", "_updated")

    def __init__(self, throttle: Throttle, now: float) -> None:
        self._throttle = throttle
        self._tokens = float(throttle.burst)
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)  # a clock stepping back adds nothing
        self._tokens = min(float(self._throttle.burst), self._tokens + elapsed * self._throttle.rate)
        self._updated = max(self._updated, now)

    def take(self, throttle: Throttle, now: float) -> float:
        """Take one token: 0.0 if taken, else the seconds until one is available."""
        self._refill(now)
        if throttle != self._throttle:
            self._throttle = throttle
            self._tokens = min(self._tokens, float(throttle.burst))
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / throttle.rate

    def is_full(self, now: float) -> bool:
        """A full bucket is the same as no bucket: it can be forgotten."""
        self._refill(now)
        return self._tokens >= self._throttle.burst

    @property
    def tokens(self) -> float:
        return self._tokens


# --- decisions --------------------------------------------------------------------------------


class Outcome(enum.Enum):
    ALLOWED = "allowed"
    THROTTLED = "throttled"  # the rate: 429 Too Many Requests
    QUOTA_EXCEEDED = "quota_exceeded"  # the quota: 429 Limit Exceeded


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    retry_after: int = 0  # whole seconds; set when refused

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED

    def response(self) -> HttpResponse:
        """The gateway response of a refusal (function routes): API Gateway's body and Retry-After."""
        if self.outcome is Outcome.QUOTA_EXCEEDED:
            base = responses.limit_exceeded()
        else:
            base = responses.too_many_requests()
        return HttpResponse(base.status, (*base.headers, ("Retry-After", str(self.retry_after))), base.body)

    def error(self) -> FnplatError:
        """The refusal as a REST-JSON error (the invoke and management APIs); add Retry-After too."""
        if self.outcome is Outcome.QUOTA_EXCEEDED:
            return TooManyRequests("Limit Exceeded", reason="CallerRateLimitExceeded")
        return TooManyRequests("Rate Exceeded.", reason="CallerRateLimitExceeded")


ALLOWED = Verdict(Outcome.ALLOWED)


class UsageLimiter:
    """Admits or refuses each request of a key under its plan; one per gateway process.

    Rate decisions are local and synchronous in effect. Quota allowance is leased from `store`
    (module docstring): at most one lease per key is in flight, a request that finds nothing local
    waits for it, and the next batch is leased in the background when the current one runs low.
    `gateways` tells how many gateways share the plans (1 on one host).
    """

    def __init__(
        self,
        store: QuotaStore,
        *,
        clock: Clock = time.time,
        gateways: Callable[[], int] = lambda: 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        low_water: float = DEFAULT_LOW_WATER,
    ) -> None:
        self._store = store
        self._clock = clock
        self._gateways = gateways
        self._batch_size = batch_size
        self._low_water = low_water
        self._buckets: dict[str, TokenBucket] = {}
        self._ledgers: dict[str, QuotaLedger] = {}
        self._leases: dict[str, asyncio.Task[None]] = {}

    async def admit(self, key_id: str, limits: PlanLimits) -> Verdict:
        """ALLOWED, or the refusal with its Retry-After. Raises what the store raises if a lease that a
        request has to wait for fails (the caller decides: a 503 is the honest answer)."""
        quota = limits.quota
        ledger: QuotaLedger | None = None
        if quota is not None:
            ledger = self._ledger(key_id)
            state = ledger.take(quota, self._clock())
            while state is QuotaState.LEASE_NEEDED:
                await self._lease(key_id, ledger, quota)
                state = ledger.take(quota, self._clock())
            if state is QuotaState.EXHAUSTED:
                return Verdict(Outcome.QUOTA_EXCEEDED, _whole_seconds(ledger.period[1] - self._clock()))
        if limits.throttle is not None:
            now = self._clock()
            throttle = limits.throttle.share(self._gateways())
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = TokenBucket(throttle, now)
            wait = bucket.take(throttle, now)
            if wait > 0:
                if ledger is not None:
                    ledger.untake()
                return Verdict(Outcome.THROTTLED, _whole_seconds(wait))
        if ledger is not None and quota is not None and ledger.wants_lease():
            self._start_lease(key_id, ledger, quota)
        return ALLOWED

    def _ledger(self, key_id: str) -> QuotaLedger:
        ledger = self._ledgers.get(key_id)
        if ledger is None:
            ledger = self._ledgers[key_id] = QuotaLedger(self._batch_size, self._low_water)
        return ledger

    def _start_lease(self, key_id: str, ledger: QuotaLedger, quota: Quota) -> asyncio.Task[None]:
        request = ledger.lease_request(key_id, quota)
        task = asyncio.get_running_loop().create_task(self._run_lease(ledger, request))
        self._leases[key_id] = task

        def finished(done: asyncio.Task[None]) -> None:
            if self._leases.get(key_id) is done:
                del self._leases[key_id]
            if not done.cancelled() and done.exception() is not None:
                # Retrieved here so a background lease's failure is logged once; waiters re-raise it.
                log.warning("quota lease for key %s failed: %s", key_id, done.exception())

        task.add_done_callback(finished)
        return task

    async def _run_lease(self, ledger: QuotaLedger, request: LeaseRequest) -> None:
        try:
            amount = await self._store.lease(request)
        except BaseException:
            ledger.lease_failed()
            raise
        ledger.granted(request.period_start, amount)

    async def _lease(self, key_id: str, ledger: QuotaLedger, quota: Quota) -> None:
        task = self._leases.get(key_id)
        if task is None or not ledger.pending:
            task = self._start_lease(key_id, ledger, quota)
        # Several waiters share one task; shield it so one cancelled request does not cancel it.
        await asyncio.shield(task)

    def sweep(self) -> None:
        """Forget full buckets and ledgers with nothing in hand or of an ended period (so idle keys
        hold no memory). Call it now and then (e.g. every minute); forgetting changes no decision
        except that an exhausted key's next request asks the counter once more."""
        now = self._clock()
        for key_id in [k for k, bucket in self._buckets.items() if bucket.is_full(now)]:
            del self._buckets[key_id]
        for key_id in [
            k
            for k, ledger in self._ledgers.items()
            if not ledger.pending and (ledger.available <= 0 or ledger.period[1] <= now)
        ]:
            del self._ledgers[key_id]

    @property
    def tracked_keys(self) -> int:
        """Keys with a bucket or a ledger (for tests and a gauge)."""
        return len(self._buckets.keys() | self._ledgers.keys())

    async def release_unused(self) -> None:
        """Give every unused allowance back to the shared counter (when the gateway stops)."""
        if self._leases:  # let leases in flight land first, or their grants would be stranded
            await asyncio.gather(*self._leases.values(), return_exceptions=True)
        for key_id, ledger in list(self._ledgers.items()):
            period_start, unused = ledger.unused()
            if unused <= 0 or ledger.period[1] <= self._clock():
                continue
            try:
                await self._store.give_back(key_id, period_start, unused)
            except Exception:  # best effort: an unreturned batch is only under-served quota
                log.warning("could not give back %d unused requests of key %s", unused, key_id, exc_info=True)
            else:
                ledger.drop_unused()
