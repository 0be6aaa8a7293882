"""The quota side of usage plans: UTC periods, and allowance leased in batches from a shared counter.

`fnplat.gateway.rate_limits` explains the protocol and its tolerance; this module holds the
bookkeeping: what one gateway has been granted and used for a key's period (`QuotaLedger`), when
it asks for the next batch, what it gives back, and how much the shared counter grants
(`grant_size`, run by the store inside its transaction).
"""

from __future__ import annotations

import calendar
import enum
import math
import time
from dataclasses import dataclass
from typing import Literal, Protocol

QuotaPeriod = Literal["day", "week", "month"]
QUOTA_PERIODS: tuple[QuotaPeriod, ...] = ("day", "week", "month")

DEFAULT_BATCH_SIZE = 100
DEFAULT_LOW_WATER = 0.25  # lease the next batch when a quarter of the current one is left


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `limit` requests per `period` (UTC calendar periods)."""

    limit: int
    period: QuotaPeriod

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError(f"quota limit must be 0 or more, got {self.limit}")
        if self.period not in QUOTA_PERIODS:
            raise ValueError(f"quota period must be one of {', '.join(QUOTA_PERIODS)}, got {self.period!r}")


def period_bounds(period: QuotaPeriod, now: float) -> tuple[int, int]:
    """`[start, end)` of the UTC period containing `now`, in epoch seconds."""
    t = time.gmtime(now)
    midnight = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
    if period == "day":
        return midnight, midnight + 86400
    if period == "week":
        start = midnight - t.tm_wday * 86400  # tm_wday: Monday is 0
        return start, start + 7 * 86400
    start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return start, calendar.timegm((year, month, 1, 0, 0, 0))


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """Ask the shared counter of `key_id`'s period `[period_start, period_end)` for `amount` requests."""

    key_id: str
    period_start: int
    period_end: int
    amount: int
    limit: int


def grant_size(limit: int, leased: int, amount: int, gateways: int) -> int:
    """How much the shared counter grants to one lease: the counter side of the protocol.

    Never past `limit`; near the end, at most a fair share of what is left (`ceil(left /
    gateways)`), so one gateway cannot strand the tail of the quota while others have none.
    The store runs this inside its transaction (row locked, or one conditional UPDATE).
    """
    left = limit - leased
    if left <= 0 or amount <= 0:
        return 0
    return min(amount, left, max(1, math.ceil(left / max(1, gateways))))


class QuotaStore(Protocol):
    """The shared counter: one row per (key, period) with the number leased so far."""

    async def lease(self, request: LeaseRequest) -> int:
        """Grant up to `request.amount` (`grant_size`), add it to the row, return it (0: used up)."""
        ...

    async def give_back(self, key_id: str, period_start: int, amount: int) -> None:
        """Subtract unused allowance of a period that has not ended."""
        ...


class MemoryQuotaStore:
    """The shared counter in this process's memory: for tests, and for one gateway whose quota
    counts need not survive a restart. `gateways` is fixed at 1 (one process shares with no one)."""

    def __init__(self) -> None:
        self._leased: dict[tuple[str, int], int] = {}

    async def lease(self, request: LeaseRequest) -> int:
        row = (request.key_id, request.period_start)
        granted = grant_size(request.limit, self._leased.get(row, 0), request.amount, 1)
        self._leased[row] = self._leased.get(row, 0) + granted
        return granted

    async def give_back(self, key_id: str, period_start: int, amount: int) -> None:
        row = (key_id, period_start)
        self._leased[row] = max(0, self._leased.get(row, 0) - amount)

    def leased(self, key_id: str, period_start: int) -> int:
        return self._leased.get((key_id, period_start), 0)


class QuotaState(enum.Enum):
    TAKEN = "taken"  # one request counted from the local allowance
    EXHAUSTED = "exhausted"  # the counter has nothing left this period
    LEASE_NEEDED = "lease_needed"  # nothing local; lease before deciding


class QuotaLedger:
    """One key's local allowance for the current period (the gateway side of the lease protocol)."""

    __slots__ = ("_batch", "_exhausted", "_granted", "_low_water", "_pending", "_period", "_used")

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE, low_water: float = DEFAULT_LOW_WATER) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._batch = batch_size
        self._low_water = max(0, math.floor(batch_size * low_water))
        self._period: tuple[int, int] = (0, 0)
        self._granted = 0
        self._used = 0
        self._pending = False  # a lease is in flight
        self._exhausted = False

    def _roll(self, quota: Quota, now: float) -> None:
        period = period_bounds(quota.period, now)
        if period != self._period:  # the old period's row is done with: its leftovers need no return
            self._period, self._granted, self._used = period, 0, 0
            self._pending, self._exhausted = False, False

    @property
    def period(self) -> tuple[int, int]:
        return self._period

    @property
    def available(self) -> int:
        return self._granted - self._used

    @property
    def pending(self) -> bool:
        return self._pending

    def take(self, quota: Quota, now: float) -> QuotaState:
        self._roll(quota, now)
        if self._granted - self._used > 0:
            self._used += 1
            return QuotaState.TAKEN
        if self._exhausted or quota.limit == 0:
            return QuotaState.EXHAUSTED
        return QuotaState.LEASE_NEEDED

    def untake(self) -> None:
        """Return a request taken by `take` that was then refused by the rate limit."""
        if self._used > 0:
            self._used -= 1

    def wants_lease(self) -> bool:
        """Whether to ask for the next batch now: running low, nothing in flight, counter not empty."""
        return not self._pending and not self._exhausted and self.available <= self._low_water

    def lease_request(self, key_id: str, quota: Quota) -> LeaseRequest:
        """Mark a lease in flight and describe it. Call `granted` or `lease_failed` afterwards."""
        self._pending = True
        start, end = self._period
        return LeaseRequest(key_id, start, end, self._batch, quota.limit)

    def granted(self, period_start: int, amount: int) -> None:
        """The counter granted `amount` for `period_start` (0: nothing left this period)."""
        if period_start != self._period[0]:
            return  # an answer for a period that has ended; its row is done with
        self._pending = False
        if amount <= 0:
            self._exhausted = True
        else:
            self._granted += amount

    def lease_failed(self) -> None:
        self._pending = False

    def unused(self) -> tuple[int, int]:
        """`(period_start, unused)` to give back (when the gateway stops)."""
        return self._period[0], max(0, self.available)

    def drop_unused(self) -> None:
        self._granted = self._used
