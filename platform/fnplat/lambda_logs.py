"""Lambda's platform log lines (START / END / REPORT), formatted exactly as Lambda writes them.

They are not stored as lines: an invocation's record holds everything they say, so the
controller writes one row per invocation and the lines are rendered when logs are read, merged
in time order with the function's own output.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence

from fnplat.domain import InvocationRecord, LogEvent

# At one timestamp: START, then the function's output, then END and REPORT.
_START, _OUTPUT, _END, _REPORT = range(4)


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def billed_duration_ms(duration_ms: float) -> int:
    """Lambda bills in whole milliseconds, rounded up, at least 1."""
    return max(1, math.ceil(duration_ms))


def report_line(
    request_id: str,
    duration_ms: float,
    memory_size_mb: int,
    max_memory_used_mb: int | None,
    init_duration_ms: float | None = None,
) -> str:
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed_duration_ms(duration_ms)} ms",
        f"Memory Size: {memory_size_mb} MB",
    ]
    if max_memory_used_mb is not None:  # unknown when the engine cannot read the cgroup: say nothing
        parts.append(f"Max Memory Used: {max_memory_used_mb} MB")
    if init_duration_ms is not None:
        parts.append(f"Init Duration: {init_duration_ms:.2f} ms")
    return "\t".join(parts)


def platform_lines(record: InvocationRecord) -> tuple[LogEvent, LogEvent, LogEvent]:
    """START (when the invocation began), END and REPORT (when it ended) of one invocation."""
    fn, rid, ended = record.function_name, record.request_id, record.ended_at
    return (
        LogEvent(fn, rid, record.started_at, start_line(rid, record.executed_version)),
        LogEvent(fn, rid, ended, end_line(rid)),
        LogEvent(
            fn,
            rid,
            ended,
            report_line(
                rid,
                record.duration_ms,
                record.memory_size_mb,
                record.max_memory_used_mb,
                record.init_duration_ms,
            ),
        ),
    )


def newest_lines(
    output: Sequence[LogEvent], records: Iterable[InvocationRecord], limit: int
) -> list[LogEvent]:
    """The newest `limit` lines, oldest first, of a function's output lines (oldest first, in
    insertion order) and the platform lines of its invocation records.

    For the result to be exact, `output` must hold at least the newest `limit` output lines and
    `records` at least the `limit` records that ended last: no other line can be among the newest.
    """
    keyed: list[tuple[object, int, int, LogEvent]] = [
        (event.timestamp, _OUTPUT, seq, event) for seq, event in enumerate(output)
    ]
    for seq, record in enumerate(records):
        start, end, report = platform_lines(record)
        keyed += [
            (start.timestamp, _START, seq, start),
            (end.timestamp, _END, seq, end),
            (end.timestamp, _REPORT, seq, report),
        ]
    newest = heapq.nlargest(limit, keyed, key=lambda k: k[:3])
    return [k[3] for k in reversed(newest)]
