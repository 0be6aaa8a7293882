"""Load with `wrk`: one run, parsed from the summary line our Lua script prints (bench/wrk_report.lua)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("wrk_report.lua")
MARKER = "BENCH-JSON "


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary line."""


@dataclass(frozen=True, slots=True)
class WrkRun:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int  # wrk counts responses with status >= 400
    socket_errors: int  # connect + read + write + timeout

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def has_errors(self) -> bool:
        return self.non_2xx > 0 or self.socket_errors > 0

    def errors_text(self) -> str:
        return f"non-2xx {self.non_2xx}, socket errors {self.socket_errors}"


def parse_wrk_output(stdout: str) -> WrkRun:
    """The run described by the BENCH-JSON line of wrk's output (pure)."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            return WrkRun(
                requests=int(data["requests"]),
                duration_s=int(data["duration_us"]) / 1e6,
                p50_ms=float(data["p50_us"]) / 1000,
                p90_ms=float(data["p90_us"]) / 1000,
                p99_ms=float(data["p99_us"]) / 1000,
                non_2xx=int(data["status"]),
                socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
            )
    raise WrkError("wrk printed no summary line:\n" + stdout[-2000:])


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed (Debian: apt-get install wrk; `make bench` does it)")
    return found


def run_wrk(
    url: str,
    connections: int,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    body: str = "",
) -> WrkRun:
    """One wrk run. One thread: on 2 shared cores a second wrk thread only steals CPU from the target."""
    args = [wrk_binary(), "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency"]
    args += ["-s", str(LUA_SCRIPT)]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    args.append(url)
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": body}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    return parse_wrk_output(done.stdout)


@dataclass(frozen=True, slots=True)
class WrkSeries:
    """Repeated runs of one load; figures use the medians, errors of every run stay visible."""

    label: str
    connections: int
    runs: tuple[WrkRun, ...]

    def _median(self, values: Sequence[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def rps(self) -> float:
        return self._median([r.rps for r in self.runs])

    @property
    def p50_ms(self) -> float:
        return self._median([r.p50_ms for r in self.runs])

    @property
    def p90_ms(self) -> float:
        return self._median([r.p90_ms for r in self.runs])

    @property
    def p99_ms(self) -> float:
        return self._median([r.p99_ms for r in self.runs])

    @property
    def runs_with_errors(self) -> list[int]:
        """1-based numbers of the runs that had errors."""
        return [i for i, r in enumerate(self.runs, 1) if r.has_errors]

    def error_note(self) -> str:
        bad = self.runs_with_errors
        if not bad:
            return ""
        return "; ".join(f"run {i}: {self.runs[i - 1].errors_text()}" for i in bad)


def run_series(
    label: str,
    url: str,
    connections: int,
    runs: int,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    body: str = "",
) -> WrkSeries:
    results = tuple(run_wrk(url, connections, duration_s, headers, method, body) for _ in range(max(1, runs)))
    return WrkSeries(label, connections, results)
