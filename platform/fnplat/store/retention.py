"""Retention of invocation records and log lines, and what garbage collection asks of the store.

Records and lines expire after an age and past a row count, oldest first, deleted in chunks of
`chunk_rows`, each chunk its own short transaction with a pause after it: on SQLite the
recorder's writer (which waits at most 100 ms for the write lock) keeps up, and on Postgres no
lock is held long. The usage rollup (usage_hourly) is never deleted: it already counts every
record written.

- Records: by `started_at` (indexed). The row cap counts rows once per run (a full count; the
  run is minutes apart) and deletes the excess oldest.
- Lines: in id order (the primary key; lines are inserted in time order), so neither rule needs
  an index of its own on the hottest table. By age: the oldest ids whose timestamps are past the
  cutoff, stopping at the first younger line (a line replayed late from the journal expires when
  the lines before it do). By cap: every id more than `max_lines` below the newest, so at most
  `max_lines` remain.

When several processes share one Postgres, only one runs retention at a time
(`exclusive_run`: pg_try_advisory_lock; the others skip the run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, exists, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from fnplat.store.db import transaction
from fnplat.store.models import ArtifactRow, FunctionVersionRow, InvocationRecordRow, LogEventRow
from fnplat.store.sqlhelpers import check_aware

# Any constant, the same in every process; not the migration's.
RETENTION_LOCK_KEY = 0x666E706C6174 + 1


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_age: timedelta
    max_records: int
    max_lines: int
    chunk_rows: int = 1000
    pause_s: float = 0.02  # after each chunk: the writer's turn


@dataclass(slots=True)
class Deleted:
    """Rows deleted by one run, by (table, reason)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, table: str, reason: str, n: int) -> None:
        if n:
            self.counts[(table, reason)] = self.counts.get((table, reason), 0) + n


class Stopped(Exception):
    """The run was asked to stop between two chunks (shutdown)."""

    def __init__(self, deleted: Deleted) -> None:
        super().__init__("retention stopped")
        self.deleted = deleted


Pause = Callable[[float], None]
ShouldStop = Callable[[], bool]
Step = Callable[[Session, int], tuple[int, bool]]


def expire(
    sessions: sessionmaker[Session],
    policy: RetentionPolicy,
    now: datetime,
    pause: Pause,
    should_stop: ShouldStop = lambda: False,
) -> Deleted:
    """Delete expired records and lines, chunk by chunk; raise Stopped when asked to stop."""
    check_aware(now, "now")
    cutoff = now - policy.max_age
    deleted = Deleted()

    def run(step: Step, table: str, reason: str, total: int | None = None) -> None:
        remaining = total
        while remaining is None or remaining > 0:
            if should_stop():
                raise Stopped(deleted)
            n = policy.chunk_rows if remaining is None else min(policy.chunk_rows, remaining)
            with transaction(sessions) as s:
                done, more = step(s, n)
            deleted.add(table, reason, done)
            if remaining is not None:
                remaining -= done
            if not more:
                return
            pause(policy.pause_s)

    run(lambda s, n: _delete_records_before(s, cutoff, n), "invocation_records", "age")
    with transaction(sessions) as s:
        count = s.execute(select(func.count()).select_from(InvocationRecordRow)).scalar_one()
    if count > policy.max_records:
        run(_delete_oldest_records, "invocation_records", "cap", total=count - policy.max_records)
    run(lambda s, n: _delete_lines_before(s, cutoff, n), "log_events", "age")
    with transaction(sessions) as s:
        newest = s.execute(select(func.max(LogEventRow.id))).scalar_one()
    if newest is not None and newest > policy.max_lines:
        run(lambda s, n: _delete_lines_up_to(s, newest - policy.max_lines, n), "log_events", "cap")
    return deleted


# Each step deletes at most n rows in the session's transaction: (deleted, maybe more to delete).


def _delete_records_before(s: Session, cutoff: datetime, n: int) -> tuple[int, bool]:
    r = InvocationRecordRow
    oldest = select(r.request_id).where(r.started_at < cutoff).order_by(r.started_at).limit(n)
    done = _rowcount(s.execute(delete(r).where(r.request_id.in_(oldest.scalar_subquery()))))
    return done, done == n


def _delete_oldest_records(s: Session, n: int) -> tuple[int, bool]:
    r = InvocationRecordRow
    oldest = select(r.request_id).order_by(r.started_at).limit(n)
    done = _rowcount(s.execute(delete(r).where(r.request_id.in_(oldest.scalar_subquery()))))
    return done, done == n


def _delete_lines_before(s: Session, cutoff: datetime, n: int) -> tuple[int, bool]:
    e = LogEventRow
    rows = s.execute(select(e.id, e.timestamp).order_by(e.id).limit(n)).all()
    expired = []
    for line_id, timestamp in rows:
        if timestamp >= cutoff:
            break  # a younger line: the rest is younger too (as far as id order tells)
        expired.append(line_id)
    if expired:
        s.execute(delete(e).where(e.id.in_(expired)))
    return len(expired), len(expired) == n


def _delete_lines_up_to(s: Session, last_id: int, n: int) -> tuple[int, bool]:
    e = LogEventRow
    ids = select(e.id).where(e.id <= last_id).order_by(e.id).limit(n)
    done = _rowcount(s.execute(delete(e).where(e.id.in_(ids.scalar_subquery()))))
    return done, done == n


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@contextmanager
def exclusive_run(engine: Engine) -> Iterator[bool]:
    """Yield True when this process may run retention now: always on SQLite (one process per data
    dir), on Postgres when it holds the session advisory lock (released at the end, or by the
    server if the connection dies)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        held = bool(
            connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": RETENTION_LOCK_KEY}).scalar()
        )
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RETENTION_LOCK_KEY})
                connection.commit()


# ---- what garbage collection asks ----------------------------------------------------------------


def referenced_artifacts(s: Session) -> set[str]:
    """sha256 of every artifact some function version uses."""
    return set(s.execute(select(FunctionVersionRow.code_sha256).distinct()).scalars())


def referenced_images(s: Session) -> set[str]:
    return {i for i in s.execute(select(FunctionVersionRow.image).distinct()).scalars() if i}


def artifact_rows(s: Session) -> dict[str, datetime]:
    """Every recorded artifact and when it was first recorded."""
    return {sha: created for sha, created in s.execute(select(ArtifactRow.sha256, ArtifactRow.created_at))}


def forget_artifact(s: Session, sha256: str) -> bool:
    """Delete an artifact's row unless a version references it now; True when deleted (the check
    and the delete are one statement, so a deploy that just referenced it keeps it)."""
    v = FunctionVersionRow
    result = s.execute(
        delete(ArtifactRow).where(
            ArtifactRow.sha256 == sha256, ~exists().where(v.code_sha256 == ArtifactRow.sha256)
        )
    )
    return _rowcount(result) > 0


def is_referenced(s: Session, sha256: str) -> bool:
    v = FunctionVersionRow
    return s.execute(select(exists().where(v.code_sha256 == sha256))).scalar_one()
