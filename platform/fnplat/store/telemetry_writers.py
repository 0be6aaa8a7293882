"""How the recorder's batches reach the database, per backend.

SQLite (the one-host default) is written on the event loop itself, a slice of rows at a time.
A worker thread would be worse: `sqlite3` releases the GIL around every row it steps through,
so a writer thread and the event loop hand the GIL back and forth once per row, which cost the
platform ~100 us of CPU per invocation when measured. On the loop, a slice of 25 rows takes
about 0.4 ms (~15 us a row), which bounds how long a request can be held up. The slices go
through a connection of the writer's own, with a short busy timeout (a deploy holding the write
lock makes the slice fail and retry, instead of stalling the loop) and no automatic WAL
checkpoints (a checkpoint fsyncs): `checkpoint()` does that work in a thread, where SQLite runs
without the GIL.

Postgres is written from a worker thread: its driver releases the GIL only while it waits on
the network, a few times per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.store import telemetry
from fnplat.store.db import transaction

SQLITE_ROWS_PER_WRITE = 25
SQLITE_BUSY_TIMEOUT_MS = 100
THREAD_ROWS_PER_WRITE = 1000


class TelemetryWriter(Protocol):
    on_loop: bool  # write() runs on the event loop (else in a worker thread)
    rows_per_write: int  # at most this many records and this many lines per write()

    def write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        """Write both in one transaction (all or nothing)."""
        ...

    def checkpoint(self) -> None:
        """Maintenance after writes; the recorder runs it in a worker thread."""
        ...

    def close(self) -> None: ...


def _write(session: Session, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
    if records:
        telemetry.add_invocation_records(session, records)
    if events:
        telemetry.add_log_events(session, events)


class SqliteLoopWriter:
    on_loop = True
    rows_per_write = SQLITE_ROWS_PER_WRITE

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        with Session(self._connect()) as session, session.begin():
            _write(session, events, records)

    def checkpoint(self) -> None:
        # PASSIVE: copy what can be copied without waiting for readers or writers.
        with self._engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect()
            connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            connection.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            connection.commit()
            self._connection = connection
        return self._connection


class ThreadWriter:
    on_loop = False
    rows_per_write = THREAD_ROWS_PER_WRITE

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        with transaction(self._sessions) as session:
            _write(session, events, records)

    def checkpoint(self) -> None:
        return None

    def close(self) -> None:
        return None


def writer_for(engine: Engine, sessions: sessionmaker[Session]) -> TelemetryWriter:
    """On the loop for a SQLite file; in a thread for Postgres (and in-memory SQLite, whose one
    shared connection must not be used from two places at once)."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return SqliteLoopWriter(engine)
    return ThreadWriter(sessions)
