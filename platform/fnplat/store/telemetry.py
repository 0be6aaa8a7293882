"""Invocation records and function output lines: written in batches by the recorder, read by
`fnctl logs` and `fnctl usage`. Re-exported by `fnplat.store.repository`.

Platform lines (START/END/REPORT) are not stored: `recent_log_events` renders them from the
records (fnplat.lambda_logs), so an invocation costs one row, plus one per line it printed.

Text is cleaned on the way in (store/telemetry_values.py: NUL and lone surrogates replaced,
over-long values cut with a marker), so a value the store would refuse does not cost its row.
Every record inserted also counts in `usage_hourly`, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.errors import InvalidParameter
from fnplat.lambda_logs import newest_lines
from fnplat.store.models import InvocationRecordRow, LogEventRow, UsageHourlyRow
from fnplat.store.sqlhelpers import check_aware, dialect_insert
from fnplat.store.telemetry_values import clean_error_type, clean_message

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


@dataclass(frozen=True, slots=True)
class HourlyUsage:
    """One row of the usage rollup: a function's invocations in one hour (UTC)."""

    function_name: str
    key_id: str  # '' while the key of an invocation is not recorded
    hour: datetime
    requests: int
    errors: int
    cold_starts: int
    duration_ms: float
    billed_duration_ms: int
    billed_mb_ms: int  # billed duration x configured memory; / 1024 / 1000 gives GB-seconds


def add_invocation_records(s: Session, records: Sequence[InvocationRecord]) -> list[InvocationRecord]:
    """Write a batch of records and count them in the usage rollup; return those inserted.

    A request id already stored is skipped (and not counted again), so a batch can be replayed."""
    inserted = insert_invocation_records(s, records)
    add_usage(s, inserted)
    return inserted


def insert_invocation_records(s: Session, records: Sequence[InvocationRecord]) -> list[InvocationRecord]:
    """The records part of `add_invocation_records`: the caller must pass what it returns to
    `add_usage` in the same transaction (the SQLite writer does so once per transaction)."""
    if not records:
        return []
    for r in records:
        check_aware(r.started_at, f"started_at of {r.request_id}")
    table = InvocationRecordRow.__table__
    statement = dialect_insert(s, InvocationRecordRow).on_conflict_do_nothing().returning(table.c.request_id)
    rows = [
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
            "error_type": clean_error_type(r.error_type),
        }
        for r in records
    ]
    new_ids = set(s.execute(statement, rows).scalars())
    inserted = []
    for r in records:
        if r.request_id in new_ids:
            new_ids.discard(r.request_id)  # a request id twice in one batch is inserted once
            inserted.append(r)
    return inserted


def add_usage(s: Session, records: Sequence[InvocationRecord]) -> None:
    """Add records to the usage rollup (INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x)."""
    if not records:
        return
    totals: dict[tuple[str, datetime], list[Any]] = {}
    for r in records:
        hour = r.started_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        t = totals.get((r.function_name, hour))
        if t is None:
            t = totals[(r.function_name, hour)] = [0, 0, 0, 0.0, 0, 0]
        t[0] += 1
        t[1] += r.error_type is not None
        t[2] += r.init_duration_ms is not None
        t[3] += r.duration_ms
        t[4] += r.billed_duration_ms
        t[5] += r.billed_duration_ms * r.memory_size_mb
    statement = dialect_insert(s, UsageHourlyRow)
    columns = ("requests", "errors", "cold_starts", "duration_ms", "billed_duration_ms", "billed_mb_ms")
    table = UsageHourlyRow.__table__
    statement = statement.on_conflict_do_update(
        index_elements=["function_name", "key_id", "hour"],
        set_={c: table.c[c] + statement.excluded[c] for c in columns},
    )
    # In key order: two writers sharing Postgres then lock the rows they both touch in one order.
    s.execute(
        statement,
        [
            {"function_name": name, "key_id": "", "hour": hour, **dict(zip(columns, t, strict=True))}
            for (name, hour), t in sorted(totals.items())
        ],
    )


def hourly_usage(s: Session, function_name: str, since: datetime | None = None) -> list[HourlyUsage]:
    """The rollup rows of a function, oldest hour first (optionally from the hour of `since`)."""
    u = UsageHourlyRow
    query = select(u).where(u.function_name == function_name).order_by(u.hour, u.key_id)
    if since is not None:
        check_aware(since, "since")
        query = query.where(u.hour >= since.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
    return [
        HourlyUsage(
            function_name=r.function_name,
            key_id=r.key_id,
            hour=r.hour,
            requests=r.requests,
            errors=r.errors,
            cold_starts=r.cold_starts,
            duration_ms=r.duration_ms,
            billed_duration_ms=r.billed_duration_ms,
            billed_mb_ms=r.billed_mb_ms,
        )
        for r in s.execute(query).scalars()
    ]


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
                    "message": clean_message(e.message),
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
