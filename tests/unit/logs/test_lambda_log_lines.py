"""START/END/REPORT rendered from invocation records, merged in time order with output lines."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.lambda_logs import newest_lines, platform_lines

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def record(rid: str, start_ms: float, duration_ms: float, **changes: object) -> InvocationRecord:
    values: dict[str, object] = {
        "request_id": rid,
        "function_name": "fn",
        "version": 3,
        "executed_version": "$LATEST",
        "started_at": T0 + timedelta(milliseconds=start_ms),
        "duration_ms": duration_ms,
        "billed_duration_ms": 13,
        "memory_size_mb": 256,
        "max_memory_used_mb": 40,
        "init_duration_ms": None,
        "error_type": None,
    }
    values.update(changes)
    return InvocationRecord(**values)  # type: ignore[arg-type]


def output(rid: str, at_ms: float, message: str) -> LogEvent:
    return LogEvent("fn", rid, T0 + timedelta(milliseconds=at_ms), message)


def test_platform_lines_are_lambdas_lines_at_start_and_end() -> None:
    start, end, report = platform_lines(record("r1", 0, 12.341, executed_version="3", init_duration_ms=250.5))
    assert (start.message, start.timestamp, start.request_id) == ("START RequestId: r1 Version: 3", T0, "r1")
    assert end.message == "END RequestId: r1"
    assert end.timestamp == report.timestamp == T0 + timedelta(milliseconds=12.341)
    assert report.message == (
        "REPORT RequestId: r1\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB"
        "\tMax Memory Used: 40 MB\tInit Duration: 250.50 ms"
    )


def test_output_sits_between_its_start_and_end_even_at_equal_timestamps() -> None:
    lines = newest_lines(
        [output("r1", 0, "first"), output("r1", 0, "second"), output("r1", 5, "late")],
        [record("r1", 0, 5)],
        100,
    )
    assert [e.message.split(" ")[0] for e in lines] == ["START", "first", "second", "late", "END", "REPORT"]


def test_overlapping_invocations_interleave_by_time() -> None:
    records = [record("a", 0, 10), record("b", 2, 3)]
    lines = newest_lines([output("a", 1, "a-says"), output("b", 3, "b-says")], records, 100)
    assert [(e.request_id, e.message.split(" ")[0]) for e in lines] == [
        ("a", "START"),
        ("a", "a-says"),
        ("b", "START"),
        ("b", "b-says"),
        ("b", "END"),
        ("b", "REPORT"),
        ("a", "END"),
        ("a", "REPORT"),
    ]


def test_limit_keeps_the_newest_lines_oldest_first() -> None:
    lines = newest_lines([output("r1", 1, "out")], [record("r1", 0, 2), record("r2", 3, 1)], 3)
    assert [(e.request_id, e.message.split(" ")[0]) for e in lines] == [
        ("r2", "START"),
        ("r2", "END"),
        ("r2", "REPORT"),
    ]


def test_the_newest_records_by_end_are_enough_for_an_exact_answer() -> None:
    # What the store relies on: give newest_lines only the `limit` newest output lines and the
    # `limit` records that ended last, and it answers as if it had been given everything.
    rng = random.Random(7)
    records = [record(f"r{i}", rng.uniform(0, 1000), rng.choice([0.5, 3, 40, 400])) for i in range(60)]
    out = [
        output(r.request_id, (r.started_at - T0).total_seconds() * 1000 + r.duration_ms / 2, f"line {i}")
        for i, r in enumerate(records)
    ]
    out.sort(key=lambda e: e.timestamp)
    for limit in (1, 2, 5, 17, 100, 500):
        everything = newest_lines(out, sorted(records, key=lambda r: r.ended_at), limit)
        ended_last = sorted(records, key=lambda r: r.ended_at)[-limit:]
        assert newest_lines(out[-limit:], ended_last, limit) == everything
        assert len(everything) == min(limit, len(out) + 3 * len(records))
