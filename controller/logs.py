"""Lambda's platform log lines (START / END / REPORT), formatted exactly as Lambda writes them."""

from __future__ import annotations

import math


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
