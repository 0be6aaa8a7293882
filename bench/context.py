"""What every figure needs: the platform, the baselines' URLs, the mode and the report, plus the
baseline measurements shared between figures (measured once, on first use)."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import uvloop

from bench.loadgen import concurrent_requests
from bench.modes import Mode
from bench.report import Report
from bench.target import Platform, PlatformError
from bench.wrk import WrkSeries, run_series

T = TypeVar("T")

PYTHON_FN = "bench-py"
NODE_FN = "bench-node"
LIVE_STATES = ("starting", "idle", "busy")


def run_async(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    return uvloop.run(wrapper())


@dataclass
class Context:
    platform: Platform
    floor_url: str
    hop_url: str
    mode: Mode
    report: Report
    _series: dict[tuple[str, int], WrkSeries] = field(default_factory=dict)

    def route_url(self, function: str) -> str:
        return f"{self.platform.url}/{function}"

    def invoke_url(self, function: str) -> str:
        return f"{self.platform.url}/2015-03-31/functions/{function}/invocations"

    def series(
        self, label: str, url: str, connections: int, method: str = "GET", body: str = "", auth: bool = True
    ) -> WrkSeries:
        """wrk runs of one load, measured once per bench run and shared by the figures using it."""
        key = (label, connections)
        if key not in self._series:
            headers = self.platform.headers if auth else {}
            measured = run_series(
                label, url, connections, self.mode.runs, self.mode.duration_s, headers, method, body
            )
            self._series[key] = measured
            self.report.series.append(measured)
        return self._series[key]

    def floor(self, connections: int) -> WrkSeries:
        return self.series(
            "floor: responder on its bridge address", self.floor_url + "/", connections, auth=False
        )

    def hop(self, connections: int) -> WrkSeries:
        return self.series("bare aiohttp hop -> responder", self.hop_url + "/", connections, auth=False)

    def live_tasks(self, function: str) -> int:
        return sum(1 for t in self.platform.tasks(function) if t["state"] in LIVE_STATES)

    def grow_tasks(self, function: str, count: int, step: int = 50, hold_ms: int = 3000) -> int:
        """Make at least `count` warm tasks by concurrent invocations that hold their task busy.

        At most `step` new tasks per round, so a round's cold starts finish within the init limit
        on two shared cores. Returns the number of live tasks reached.
        """
        body = json.dumps({"hold_ms": hold_ms}).encode()
        have = self.live_tasks(function)
        for _ in range(4 * (count // step + 2)):
            if have >= count:
                return have
            wanted = min(count, have + step)
            statuses = run_async(
                concurrent_requests(self.invoke_url(function), wanted, self.platform.headers, body)
            )
            if statuses.get(200, 0) == 0:
                raise PlatformError(f"growing {function}: no invocation succeeded ({dict(statuses)})")
            have = self.live_tasks(function)
        if have < count:
            raise PlatformError(f"could not grow {function} to {count} tasks (have {have})")
        return have
