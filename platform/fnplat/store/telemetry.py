"""Invocation records and function output lines: written in batches by the recorder, read by
`fnctl logs` and `fnctl usage`. Re-exported by `fnplat.store.repository`.

Platform lines (START/END/REPORT) are not stored: `recent_log_events` renders them from the
records (fnplat.lambda_logs), so an invocation costs one row, plus one per line it printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.errors import InvalidParameter
from fnplat.lambda_logs import newest_lines
from fnplat.store.models import InvocationRecordRow, LogEventRow
from fnplat.store.sqlhelpers import check_aware, insert_ignoring_duplicates

MAX_LOG_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """Usage of one function from its invocation records (`fnctl usage`)."""

    invocations: int
    errors: int
    cold_starts: int
    average_duration_ms: float | None  # None when there were no invocations
    billed_duration_ms: int
    gb_seconds: float  # billed duration x configured memory, as Lambda bills


def add_invocation_records(s: Session, records: Sequence[InvocationRecord]) -> None:
    """Write a batch of records. A request id already stored is skipped, so a batch can be replayed."""
    for r in records:
        check_aware(r.started_at, f"started_at of {r.request_id}")
    insert_ignoring_duplicates(
        s,
        InvocationRecordRow,
        [
            {
                "request_id": r.request_id,
                "function_name": r.function_name,
                "version": r.version,
                "executed_version": r.executed_version,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "duration_ms": r.duration_ms,
                "billed_duration_ms": r.billed_duration_ms,
                "memory_size_mb": r.memory_size_mb,
                "max_memory_used_mb": r.max_memory_used_mb,
                "init_duration_ms": r.init_duration_ms,
                "error_type": r.error_type,
            }
            for r in records
        ],
    )


def get_invocation_records(s: Session, function_name: str, limit: int = 100) -> list[InvocationRecord]:
    """The newest `limit` records of a function, newest first."""
    if limit < 1:
        raise InvalidParameter("limit must be at least 1")
    rows = (
        s.execute(
            select(InvocationRecordRow)
            .where(InvocationRecordRow.function_name == function_name)
            .order_by(InvocationRecordRow.started_at.desc(), InvocationRecordRow.request_id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    return [_to_record(r) for r in rows]


def _to_record(r: InvocationRecordRow) -> InvocationRecord:
    return InvocationRecord(
        request_id=r.request_id,
        function_name=r.function_name,
        version=r.version,
        executed_version=r.executed_version,
        started_at=r.started_at,
        duration_ms=r.duration_ms,
        billed_duration_ms=r.billed_duration_ms,
        memory_size_mb=r.memory_size_mb,
        max_memory_used_mb=r.max_memory_used_mb,
        init_duration_ms=r.init_duration_ms,
        error_type=r.error_type,
    )


def function_stats(s: Session, name: str, since: datetime | None = None) -> FunctionStats:
    """Totals over a function's invocation records, optionally only those started at or after `since`."""
    if since is not None:
        check_aware(since, "since")
    r = InvocationRecordRow
    query = select(
        func.count(),
        func.count(r.error_type),
        func.count(r.init_duration_ms),
        func.avg(r.duration_ms),
        func.coalesce(func.sum(r.billed_duration_ms), 0),
        func.coalesce(func.sum(r.billed_duration_ms * r.memory_size_mb), 0),
    ).where(r.function_name == name)
    if since is not None:
        query = query.where(r.started_at >= since)
    count, errors, cold, average, billed, mb_ms = s.execute(query).one()
    return FunctionStats(
        invocations=int(count),
        errors=int(errors),
        cold_starts=int(cold),
        average_duration_ms=float(average) if average is not None else None,
        billed_duration_ms=int(billed),
        gb_seconds=float(mb_ms) / 1024 / 1000,
    )


def add_log_events(s: Session, events: Sequence[LogEvent]) -> None:
    """Write a batch of output lines (a Core executemany: no ORM work per row)."""
    for e in events:
        check_aware(e.timestamp, "log event timestamp")
    if events:
        s.execute(
            insert(cast(Table, LogEventRow.__table__)),
            [
                {
                    "function_name": e.function_name,
                    "request_id": e.request_id,
                    "timestamp": e.timestamp,
                    "message": e.message,
                }
                for e in events
            ],
        )


def recent_log_events(
    s: Session, function_name: str, limit: int = 100, request_id: str | None = None
) -> list[LogEvent]:
    """The newest `limit` lines of a function (optionally of one request), oldest first: its
    output and the START/END/REPORT lines of its invocations, in time order.

    Output lines with equal timestamps keep their insertion order.
    """
    if not 1 <= limit <= MAX_LOG_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {MAX_LOG_LIMIT}")
    lines = select(LogEventRow).where(LogEventRow.function_name == function_name)
    records = select(InvocationRecordRow).where(
        InvocationRecordRow.function_name == function_name, InvocationRecordRow.ended_at.is_not(None)
    )
    if request_id is not None:
        lines = lines.where(LogEventRow.request_id == request_id)
        records = records.where(InvocationRecordRow.request_id == request_id)
    newest_output = (
        s.execute(lines.order_by(LogEventRow.timestamp.desc(), LogEventRow.id.desc()).limit(limit))
        .scalars()
        .all()
    )
    # Each record gives END and REPORT at its end and START before it: the `limit` records that
    # ended last hold every platform line that can be among the newest `limit`.
    ended_last = (
        s.execute(records.order_by(InvocationRecordRow.ended_at.desc()).limit(limit)).scalars().all()
    )
    output = [
        LogEvent(
            function_name=r.function_name, request_id=r.request_id, timestamp=r.timestamp, message=r.message
        )
        for r in reversed(newest_output)
    ]
    return newest_lines(output, [_to_record(r) for r in reversed(ended_last)], limit)
