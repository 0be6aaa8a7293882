"""An aiohttp load generator for what wrk cannot report: per-client first-response times in a burst.

Each client is one coroutine with its own keep-alive connection, sending requests back to back
until the deadline. Its own ceiling is measured against the floor and reported next to its figures.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True, slots=True)
class ClientStats:
    first_ok_s: float | None  # seconds from the burst's start to this client's first 2xx
    statuses: Counter[int]
    exceptions: int  # connection failures and timeouts


@dataclass(frozen=True, slots=True)
class BurstResult:
    clients: tuple[ClientStats, ...]
    duration_s: float

    def count(self, low: int, high: int) -> int:
        return sum(n for c in self.clients for status, n in c.statuses.items() if low <= status <= high)

    @property
    def total(self) -> int:
        return sum(sum(c.statuses.values()) for c in self.clients) + self.exceptions

    @property
    def ok(self) -> int:
        return self.count(200, 299)

    @property
    def throttled(self) -> int:
        return self.count(429, 429)

    @property
    def exceptions(self) -> int:
        return sum(c.exceptions for c in self.clients)

    @property
    def failed(self) -> int:
        """Everything that is not a 2xx: other statuses, 429s and exceptions."""
        return self.total - self.ok

    @property
    def rps(self) -> float:
        return self.total / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def all_first_ok_s(self) -> float | None:
        """When the last client got its first 2xx; None if some client never got one."""
        firsts = [c.first_ok_s for c in self.clients]
        if not firsts or any(f is None for f in firsts):
            return None
        return max(f for f in firsts if f is not None)


async def burst(
    url: str,
    clients: int,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
    request_timeout_s: float = 30.0,
) -> BurstResult:
    """`clients` concurrent clients, each sending requests back to back for `duration_s`."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + duration_s

        async def client() -> ClientStats:
            first: float | None = None
            statuses: Counter[int] = Counter()
            exceptions = 0
            while True:
                try:
                    async with session.request(method, url, headers=headers, data=body) as response:
                        await response.read()
                        statuses[response.status] += 1
                        if first is None and 200 <= response.status < 300:
                            first = time.perf_counter() - start
                except (aiohttp.ClientError, TimeoutError):
                    exceptions += 1
                if time.perf_counter() >= deadline:
                    return ClientStats(first, statuses, exceptions)

        results = await asyncio.gather(*(client() for _ in range(clients)))
        return BurstResult(tuple(results), time.perf_counter() - start)


async def concurrent_requests(
    url: str, count: int, headers: Mapping[str, str], body: bytes, timeout_s: float = 60.0
) -> Counter[int]:
    """`count` POSTs sent at once (one each); the statuses they got (0 = no response)."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)
    ) as session:

        async def one() -> int:
            try:
                async with session.post(url, headers=headers, data=body) as response:
                    await response.read()
                    return response.status
            except (aiohttp.ClientError, TimeoutError):
                return 0

        return Counter(await asyncio.gather(*(one() for _ in range(count))))
