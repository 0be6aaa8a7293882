"""P1 (warm overhead at c=1 over the floor) and P2 (warm throughput against the bare aiohttp hop)."""

from __future__ import annotations

import requests

from bench.context import NODE_FN, PYTHON_FN, Context
from bench.report import FLAG, INFO, Row, ms, rps, signed_ms, verdict
from bench.wrk import WrkSeries

P1_P50_TARGET_MS, P1_P99_TARGET_MS = 0.5, 3.0
P2_RATIO_TARGET = 0.60


def _warm_up(ctx: Context, url: str, method: str, body: str, count: int = 50) -> None:
    """Make the task warm and the connection paths hot before measuring (untimed)."""
    with requests.Session() as http:
        for _ in range(count):
            http.request(method, url, data=body or None, headers=ctx.platform.headers, timeout=60)


def _errors(*series: WrkSeries) -> str:
    return "; ".join(f"{s.label} c={s.connections}: {n}" for s in series if (n := s.error_note()))


def p1(ctx: Context) -> None:
    paths = [
        ("route, python", ctx.route_url(PYTHON_FN), "GET", ""),
        ("invoke API, python", ctx.invoke_url(PYTHON_FN), "POST", "{}"),
        ("route, node", ctx.route_url(NODE_FN), "GET", ""),
    ]
    floor = ctx.floor(1)
    hop = ctx.hop(1)
    ctx.report.add(
        Row(
            "P1 baseline: bare aiohttp hop, c=1",
            f"p50 {ms(hop.p50_ms)}, p99 {ms(hop.p99_ms)}",
            f"floor p50 {ms(floor.p50_ms)}, p99 {ms(floor.p99_ms)}",
            f"{signed_ms(hop.p50_ms - floor.p50_ms)} / {signed_ms(hop.p99_ms - floor.p99_ms)}",
            "",
            INFO,
            _errors(floor, hop),
        )
    )
    for label, url, method, body in paths:
        _warm_up(ctx, url, method, body)
        s = ctx.series(label, url, 1, method, body)
        errors = _errors(floor, s)
        over50, over99 = s.p50_ms - floor.p50_ms, s.p99_ms - floor.p99_ms
        ctx.report.add(
            Row(
                f"P1 warm overhead p50, {label}",
                ms(s.p50_ms),
                f"floor {ms(floor.p50_ms)}",
                signed_ms(over50),
                f"< {P1_P50_TARGET_MS} ms (goal 0.3)",
                verdict(over50 < P1_P50_TARGET_MS, errors),
                errors,
            )
        )
        ctx.report.add(
            Row(
                f"P1 warm overhead p99, {label}",
                ms(s.p99_ms),
                f"floor {ms(floor.p99_ms)}",
                signed_ms(over99),
                f"< {P1_P99_TARGET_MS} ms (goal 2)",
                verdict(over99 < P1_P99_TARGET_MS, errors),
                errors,
            )
        )


def p2(ctx: Context) -> None:
    url = ctx.route_url(PYTHON_FN)
    warm = ctx.grow_tasks(PYTHON_FN, ctx.mode.warm_tasks)
    _warm_up(ctx, url, "GET", "")
    for c in ctx.mode.concurrencies:
        s = ctx.series("route, python", url, c)
        hop = ctx.hop(c)
        ratio = s.rps / hop.rps if hop.rps else 0.0
        errors = _errors(s, hop)
        targeted = c == max(ctx.mode.concurrencies)
        ctx.report.add(
            Row(
                f"P2 warm throughput c={c}, route python",
                f"{rps(s.rps)} (p50 {ms(s.p50_ms)}, p99 {ms(s.p99_ms)})",
                f"hop {rps(hop.rps)}",
                f"{ratio:.0%} of hop",
                f">= {P2_RATIO_TARGET:.0%} (goal 70%)" if targeted else "",
                verdict(ratio >= P2_RATIO_TARGET, errors) if targeted else (FLAG if errors else INFO),
                "; ".join(x for x in (errors, f"{warm} warm tasks" if targeted else "") if x),
            )
        )
