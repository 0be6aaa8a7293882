"""How the recorder's batches reach the database, per backend.

SQLite (the one-host default) is written on the event loop itself, a slice of rows at a time.
A worker thread would be worse: `sqlite3` releases the GIL around every row it steps through,
so a writer thread and the event loop hand the GIL back and forth once per row, which cost the
platform ~100 us of CPU per invocation when measured. On the loop, one transaction of up to 500
rows is written a slice of 25 rows per loop turn (~0.3 ms each, which bounds how long a request
is held up), with pauses between slices, and committed once. The transactions go through a
connection of the writer's own, with a short busy timeout (a deploy holding the write lock makes
the write fail and be retried, instead of stalling the loop) and no automatic WAL checkpoints (a
checkpoint fsyncs): `checkpoint()` does that work in a thread, where SQLite runs without the GIL.

Postgres is written from a worker thread: its driver releases the GIL only while it waits on
the network, a few times per batch. The thread is a daemon thread of its own per write
(store/calls.py): a write stuck on a frozen database must not hold the process's exit.

Each write also adds the records it inserted to the usage rollup, in the same transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.store import telemetry
from fnplat.store.calls import start_blocking
from fnplat.store.db import transaction

SQLITE_ROWS_PER_TRANSACTION = 500
SQLITE_ROWS_PER_SLICE = 25
SQLITE_BUSY_TIMEOUT_MS = 100
# A request needs several loop turns; back-to-back slices would delay it by one slice per turn.
# Pausing twice a slice's time after each keeps the writer to a third of the loop, and a request
# to about one slice.
SQLITE_PAUSE_FACTOR = 2.0
THREAD_ROWS_PER_TRANSACTION = 1000


class TelemetryWriter(Protocol):
    rows_per_write: int  # at most this many records and this many lines per write()

    async def write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        """Write both in one transaction (all or nothing)."""
        ...

    def checkpoint(self) -> None:
        """Maintenance after writes; the recorder runs it in a worker thread."""
        ...

    def close(self) -> None: ...


def _write(
    session: Session, events: Sequence[LogEvent], records: Sequence[InvocationRecord]
) -> list[InvocationRecord]:
    """Insert both; return the records inserted (not already stored), for the rollup."""
    inserted = telemetry.insert_invocation_records(session, records) if records else []
    if events:
        telemetry.add_log_events(session, events)
    return inserted


class SqliteLoopWriter:
    rows_per_write = SQLITE_ROWS_PER_TRANSACTION

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    async def write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        step = SQLITE_ROWS_PER_SLICE
        with Session(self._connect()) as session:
            try:
                inserted: list[InvocationRecord] = []
                for start in range(0, max(len(events), len(records)), step):
                    started = time.perf_counter()
                    inserted += _write(session, events[start : start + step], records[start : start + step])
                    await asyncio.sleep(SQLITE_PAUSE_FACTOR * (time.perf_counter() - started))
                telemetry.add_usage(session, inserted)  # one upsert per transaction, not per slice
                session.commit()
            except BaseException:
                session.rollback()
                raise

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
    rows_per_write = THREAD_ROWS_PER_TRANSACTION

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        await start_blocking(lambda: self._write(events, records), name="fnplat-telemetry")

    def _write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        with transaction(self._sessions) as session:
            telemetry.add_usage(session, _write(session, events, records))

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
