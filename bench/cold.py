"""P3b (fresh cold starts against the container start floor), P4 (bursts from zero tasks) and
P6 (`fnctl deploy` to the first 2xx)."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import requests

from bench.baselines import container_start_floor_ms
from bench.context import Context, run_async
from bench.loadgen import burst
from bench.report import INFO, Row, ms, rps, signed_ms, verdict
from bench.target import PlatformError

COLD_FN, BURST_FN, HELLO_FN = "bench-cold", "bench-burst", "hello"
HELLO_DIR = Path(__file__).parent.parent / "examples" / "hello-python"
P3B_DELTA_TARGET_MS = 150.0
P6_TARGET_S = 2.0
INIT_DURATION = re.compile(r"Init Duration: ([0-9.]+) ms")
CEILING_CLIENTS = 50


def _fresh(ctx: Context, name: str) -> None:
    """Deploy a new version of `name` (retiring the old one's tasks) and wait until none is left."""
    ctx.platform.deploy("noop-python", name)
    ctx.platform.wait_tasks(name, 0)


def init_duration_ms(lines: list[str]) -> float | None:
    """The Init Duration of the REPORT line among an invocation's log lines (pure)."""
    for line in lines:
        if line.startswith("REPORT") and (found := INIT_DURATION.search(line)):
            return float(found.group(1))
    return None


def _report_init(ctx: Context, request_id: str) -> float | None:
    for _ in range(20):  # the REPORT line is written just after the response
        found = init_duration_ms(ctx.platform.logs(COLD_FN, request_id))
        if found is not None:
            return found
        time.sleep(0.1)  # polling the platform's log API; there is no event to wait on
    return None


def p3b(ctx: Context) -> None:
    floor = statistics.median(container_start_floor_ms(ctx.mode.docker_run_samples))
    walls: list[float] = []
    request_ids: list[str] = []
    for _ in range(ctx.mode.cold_starts):
        _fresh(ctx, COLD_FN)
        start = time.perf_counter()
        response = requests.post(
            ctx.invoke_url(COLD_FN), data=b"{}", headers=ctx.platform.headers, timeout=60
        )
        wall = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise PlatformError(f"cold start answered {response.status_code}: {response.text[:200]}")
        walls.append(wall)
        request_ids.append(response.headers.get("x-amzn-RequestId", ""))
    inits = [d for rid in request_ids if (d := _report_init(ctx, rid)) is not None]
    cold = statistics.median(walls)
    delta = cold - floor
    ctx.report.add(
        Row(
            f"P3b cold start, median of {len(walls)} (invoke API, python)",
            ms(cold),
            f"`docker run --rm` floor {ms(floor)} (median of {ctx.mode.docker_run_samples})",
            f"{signed_ms(delta)}, x{cold / floor:.2f}",
            f"<= floor + {P3B_DELTA_TARGET_MS:.0f} ms",
            verdict(delta <= P3B_DELTA_TARGET_MS),
            f"min {ms(min(walls))}, max {ms(max(walls))}",
        )
    )
    ctx.report.add(
        Row(
            "P3b init duration (REPORT line), median",
            ms(statistics.median(inits)) if inits else "n/a",
            "",
            "",
            "",
            INFO,
            f"{len(inits)} of {len(walls)} REPORT lines had one",
        )
    )


def generator_ceiling(ctx: Context) -> float:
    result = run_async(burst(ctx.floor_url + "/", CEILING_CLIENTS, ctx.mode.ceiling_s))
    ctx.report.notes.append(
        f"aiohttp generator ceiling (P4's load): {rps(result.rps)} against the floor with "
        f"{CEILING_CLIENTS} clients, {result.failed} failed"
    )
    return result.rps


def p4(ctx: Context) -> None:
    ceiling = generator_ceiling(ctx)
    for n in ctx.mode.burst_sizes:
        _fresh(ctx, BURST_FN)
        result = run_async(burst(ctx.route_url(BURST_FN), n, ctx.mode.burst_duration_s, ctx.platform.headers))
        first = result.all_first_ok_s
        failures = (
            f"{result.failed} failed ({result.throttled} x 429, {result.exceptions} exceptions, "
            f"{result.failed - result.throttled - result.exceptions} other non-2xx)"
        )
        ctx.report.add(
            Row(
                f"P4 burst from zero, N={n}, {ctx.mode.burst_duration_s:g} s",
                f"{result.ok} ok, {failures}",
                f"generator ceiling {rps(ceiling)}",
                f"{rps(result.rps)}; all clients served after "
                + (f"{first:.2f} s" if first is not None else "never (some client got no 2xx)"),
                "0 failed (limit 256 >= N)",
                verdict(result.failed == 0 and first is not None),
                f"{ctx.live_tasks(BURST_FN)} tasks after the burst",
            )
        )


def p6(ctx: Context) -> None:
    totals: list[float] = []
    deploy_only: list[float] = []
    url = f"{ctx.platform.url}/hello/bench"
    # P4 leaves cold starts under way for seconds after its bursts (Docker starts ~10 containers a
    # second here): remove its function and let the engine settle, or the first deploy queues
    # behind them and times Docker's backlog.
    for name in (BURST_FN, COLD_FN):
        ctx.platform.delete(name)
    ctx.platform.wait_tasks(BURST_FN, 0, timeout_s=300)
    ctx.platform.wait_tasks(COLD_FN, 0, timeout_s=300)
    for _ in range(ctx.mode.deploys):
        # Each deploy creates the function anew (untimed removal first): no old task is retired
        # while the timed one starts.
        ctx.platform.delete(HELLO_FN)
        ctx.platform.wait_tasks(HELLO_FN, 0)
        start = time.perf_counter()
        ctx.platform.fnctl("deploy", str(HELLO_DIR))
        deploy_only.append(time.perf_counter() - start)
        deadline = time.monotonic() + 60
        while True:
            status = requests.get(url, headers=ctx.platform.headers, timeout=60).status_code
            if 200 <= status < 300:
                break
            if time.monotonic() > deadline:
                raise PlatformError(f"hello never answered 2xx after deploy (last {status})")
        totals.append(time.perf_counter() - start)
    total = statistics.median(totals)
    ctx.report.add(
        Row(
            f"P6 `fnctl deploy examples/hello-python` -> first 2xx, median of {len(totals)}",
            f"{total:.2f} s",
            "",
            f"of which `fnctl deploy` {statistics.median(deploy_only):.2f} s",
            f"< {P6_TARGET_S:g} s (goal 1.5)",
            verdict(total < P6_TARGET_S),
            f"min {min(totals):.2f} s, max {max(totals):.2f} s",
        )
    )
